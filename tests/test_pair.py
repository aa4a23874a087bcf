"""`senticompare pair`: two finished runs from any studies, paired on the test examples they share."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.cli import main
from helpers.compare.pair import PairError, format_pair, pair_runs
from helpers.evaluate.significance import mcnemar_exact

LABELS = np.array([0, 1] * 50)


def _run(folder, predictions, fingerprint="fp-1337", label_type="single", training_time_s=100.0, order=None,
         gflops=150.0):
    folder.mkdir(parents=True)
    rows = pd.DataFrame({"example": np.arange(len(LABELS)), "label": LABELS, "prediction": predictions})
    rows = rows.iloc[order] if order is not None else rows
    rows.to_csv(folder / "predictions.csv", index=False)
    accuracy = float(np.mean(predictions == LABELS))
    (folder / "results.json").write_text(json.dumps({
        "model_name": folder.name, "seed": 1337, "label_type": label_type, "data_fingerprint": fingerprint,
        "accuracy": accuracy, "trainable_params": 1000, "artifact_mb": 1.5,
        "quality": {"accuracy": accuracy, "accuracy_ci95": [accuracy - 0.05, accuracy + 0.05]},
        "training": {"training_time_s": training_time_s, "steps": 30, "method": "lora"},
        "speed": {"matmul_peak": {"gflops": gflops}}}))
    return folder


def _predictions(wrong: list[int]) -> np.ndarray:
    predicted = LABELS.copy()
    predicted[wrong] = 1 - predicted[wrong]
    return predicted


def test_pair_counts_the_discordant_examples_and_tests_them(tmp_path):
    a = _run(tmp_path / "study-a" / "sst2" / "full", _predictions(list(range(10))), training_time_s=300.0)
    # B in another order on disk: pairing goes by example, not by row.
    b = _run(tmp_path / "study-b" / "sst2" / "lora", _predictions(list(range(5, 25))), training_time_s=100.0,
             order=np.arange(len(LABELS))[::-1])
    pair = pair_runs(a, b)
    assert (pair.a_only_correct, pair.b_only_correct) == (15, 5)  # A wrong on 0-9, B on 5-24
    assert pair.p_value == pytest.approx(mcnemar_exact([True] * 15 + [False] * 5, [False] * 15 + [True] * 5)[2])
    assert pair.p_value < 0.05
    assert (pair.a.accuracy, pair.b.accuracy) == (0.9, 0.8)
    assert pair.accuracy_difference == pytest.approx(-0.1)
    assert pair.time_ratio == pytest.approx(1 / 3)
    text = format_pair(pair)
    assert "-10.0 points on 100 test examples" in text and "only A right 15, only B right 5" in text
    assert "0.33 of A's" in text
    assert "matmul speeds differ" not in text


def test_pair_warns_when_the_hosts_ran_at_different_speeds(tmp_path):
    a = _run(tmp_path / "a", _predictions([1]), gflops=180.0)
    pair = pair_runs(a, _run(tmp_path / "b", _predictions([1]), gflops=144.0))
    assert pair.host_speed_ratio == pytest.approx(0.8)
    assert "matmul speeds differ by 20 %" in format_pair(pair)


def test_pair_refuses_runs_of_different_test_splits(tmp_path):
    a = _run(tmp_path / "a", _predictions([1]))
    with pytest.raises(PairError, match="different test splits"):
        pair_runs(a, _run(tmp_path / "b", _predictions([2]), fingerprint="fp-42"))
    shorter = _run(tmp_path / "c", _predictions([2]), fingerprint=None)
    pd.read_csv(shorter / "predictions.csv").iloc[:-1].to_csv(shorter / "predictions.csv", index=False)
    with pytest.raises(PairError, match="different test examples or labels"):
        pair_runs(a, shorter)


def test_pair_refuses_multi_label_and_unfinished_runs(tmp_path):
    a = _run(tmp_path / "a", _predictions([1]))
    with pytest.raises(PairError, match="multi-label run"):
        pair_runs(a, _run(tmp_path / "b", _predictions([1]), label_type="multi"))
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(PairError, match="results.json is missing"):
        pair_runs(a, tmp_path / "unfinished")


def test_pair_command_prints_the_table_or_json_and_exits_2_on_a_bad_pair(tmp_path, capsys):
    a = _run(tmp_path / "a", _predictions([1, 2]))
    b = _run(tmp_path / "b", _predictions([3]))
    assert main(["pair", str(a), str(b), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["a_only_correct"], printed["b_only_correct"], printed["test_examples"]) == (1, 2, 100)
    assert main(["pair", str(a), str(tmp_path / "missing")]) == 2
    assert "results.json is missing" in capsys.readouterr().err
