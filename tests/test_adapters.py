"""Adapters as products: the registry a finished run writes itself into, `senticompare adapters`,
`senticompare predict` on a real tiny run (against the run's own predictions.csv),
`senticompare export --adapter` and `senticompare merge` of two real tiny runs (LoRA and heads).
Reading the users' input files and checking what may be merged need no model."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers import config
from helpers.adapters import registry
from helpers.adapters.inputs import BadRow, read_texts
from helpers.adapters.merge import WeightedAdapter, merge_weights, parse_weighted, plan_merge
from helpers.adapters.predict import load_predictor
from helpers.cli import main
from helpers.config import ConfigError
from helpers.core import paths
from helpers.core.device import precision_for
from helpers.core.io import read_json
from helpers.data.splits import read_splits
from helpers.evaluate import quantize
from helpers.evaluate.inference import predict_proba
from helpers.pipeline.adapters import bring_into_run, check_study
from helpers.pipeline.study import run_study
from helpers.serve.predictors import PredictorCache
from helpers.train import models

STUDY = {
    "name": "tiny_adapters",
    "models": ["smollm2-135m"],
    "datasets": ["sst2", "uci_yelp"],  # two adapters of one base model and label set, to merge
    "preset": "tiny",
    "seeds": [7],
    "overrides": {"max_train": 32, "max_validation": 16, "max_calibration": 16, "max_test": 24,
                  "train": {"max_steps": 2, "batch_size": 16},
                  "speed": {"warmup": 1, "repeats": 2, "max_examples": 8, "batch_size": 8}},
}
ADAPTER = "tiny_adapters/sst2/smollm2-135m"
OTHER = "tiny_adapters/uci_yelp/smollm2-135m"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mirror_path):
    """Finished head runs on two datasets, registered by their own 04_speed (assemble_results);
    the SST-2 run's folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    path = tmp_path_factory.mktemp("study") / "tiny_adapters.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    outcome = run_study(path, report=False)
    assert [p.model for p in outcome.done] == ["smollm2-135m"] * 2 and not outcome.failed
    yield paths.experiments_dir() / ADAPTER
    mp.undo()


@pytest.fixture(scope="module")
def test_split(run_dir) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The run's test texts, its predictions.csv and its labels."""
    labels = read_json(run_dir / "results.json")["quality"]["labels"]
    return read_splits(run_dir / "data").test, pd.read_csv(run_dir / "predictions.csv"), labels


@pytest.mark.slow
def test_a_finished_run_registers_its_adapter(run_dir):
    record = registry.get_adapter(ADAPTER)
    results = read_json(run_dir / "results.json")
    assert (record.study, record.model, record.method, record.dataset, record.preset, record.seed) == \
        ("tiny_adapters", "smollm2-135m", "head", "sst2", "tiny", 7)
    assert record.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert record.labels == ["negative", "positive"] and record.label_type == "binary"
    assert record.run_dir == run_dir.resolve() and record.present
    assert record.metrics["accuracy"] == results["accuracy"] and record.metrics["f1"] == results["f1"]
    assert record.data_fingerprint == results["data_fingerprint"]
    assert record.git_commit == results["environment"]["git"]["commit"]
    assert record.created.endswith("+00:00")


@pytest.mark.slow
def test_adapters_list_show_remove_and_scan(run_dir, tmp_path, capsys):
    assert main(["adapters"]) == 0
    assert ADAPTER in capsys.readouterr().out
    assert main(["adapters", "show", ADAPTER]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == ADAPTER and shown["present"] is True and shown["labels"] == ["negative", "positive"]

    assert main(["adapters", "remove", ADAPTER]) == 0
    assert "is kept" in capsys.readouterr().out and (run_dir / "results.json").is_file()
    assert main(["adapters", "show", ADAPTER]) == 2
    assert "no adapter" in capsys.readouterr().err
    assert main(["adapters", "scan", "tiny_adapters"]) == 0
    assert "2 adapter(s) registered" in capsys.readouterr().out
    assert registry.get_adapter(ADAPTER).present

    copy = paths.experiments_dir() / "tiny_adapters_copy" / "sst2" / "smollm2-135m"
    shutil.copytree(run_dir, copy)
    assert main(["adapters", "scan", str(copy.parents[1])]) == 0
    assert main(["adapters", "remove", "tiny_adapters_copy/sst2/smollm2-135m", "--delete-run"]) == 0
    assert not copy.exists() and (run_dir / "results.json").is_file()
    capsys.readouterr()
    assert main(["adapters", "show", "tiny_adapters/sst2/smollm2-13"]) == 2
    assert f"did you mean {ADAPTER}" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_gives_the_runs_own_probabilities_and_decisions(run_dir, test_split, tmp_path):
    test, predictions, labels = test_split
    test[["text"]].to_csv(tmp_path / "texts.csv", index=False)
    assert main(["predict", "--adapter", ADAPTER, "--input", str(tmp_path / "texts.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["text"].tolist() == test["text"].tolist() and out["row"].tolist() == list(range(2, len(test) + 2))
    columns = [f"prob_{label}" for label in labels]
    np.testing.assert_allclose(out[columns].to_numpy(), predictions[columns].to_numpy(), atol=1e-5)
    assert out["label"].tolist() == [labels[i] for i in predictions["prediction"]]
    quality = read_json(run_dir / "results.json")["quality"]
    sets = out["conformal_set"].map(json.loads)
    assert np.mean([labels[y] in s for y, s in zip(predictions["label"], sets, strict=True)]) == \
        pytest.approx(quality["conformal_coverage"])
    assert sets.map(len).mean() == pytest.approx(quality["conformal_set_size"])
    assert out["abstain"].mean() == pytest.approx(quality["abstain_share"])
    assert out["confident"].mean() == pytest.approx(quality["selective_coverage"])
    assert not (tmp_path / "out.skipped.jsonl").exists()


@pytest.mark.slow
def test_predict_in_int8_answers_as_the_model_does_with_a_smaller_body(test_split, tmp_path):
    test, predictions, labels = test_split
    test[["text"]].to_csv(tmp_path / "texts.csv", index=False)
    assert main(["predict", "--adapter", ADAPTER, "--int8", "weight-only", "--input", str(tmp_path / "texts.csv"),
                 "--output", str(tmp_path / "int8.csv")]) == 0
    columns = [f"prob_{label}" for label in labels]
    int8 = pd.read_csv(tmp_path / "int8.csv")[columns].to_numpy()
    gap = np.abs(int8 - predictions[columns].to_numpy())
    assert 0 < gap.max() < 0.05  # quantized, and within rounding of the trained model's probabilities (0.021)
    _, served = PredictorCache(int8="weight-only").predict(ADAPTER, test["text"].tolist()[:4])  # the API's loader
    np.testing.assert_allclose([[row["probabilities"][label] for label in labels] for row in served], int8[:4],
                               atol=1e-4)  # other batches: other padding
    quantized = load_predictor(ADAPTER, "weight-only").model
    assert type(quantized.model.layers[0].mlp.down_proj.weight).__name__ == "Int8Tensor"
    assert quantized.score.weight.dtype == torch.float32  # the head stays as trained
    assert quantize.weights_mb(quantized) < 0.5 * quantize.weights_mb(load_predictor(ADAPTER).model)
    with pytest.raises(SystemExit):
        main(["predict", "--adapter", ADAPTER, "--int8", "int4", "--input", "x.csv", "--output", "y.csv"])


@pytest.mark.slow
def test_predict_keeps_the_input_order_and_reports_bad_rows(test_split, tmp_path, capsys):
    test, predictions, labels = test_split
    texts = test["text"].tolist()[::-1][:10]  # reversed: the length-sorted batches must not reorder the output
    lines = []
    for i, text in enumerate(texts):
        lines.append(json.dumps({"text": text}))
        lines.append([json.dumps({"text": "  "}), json.dumps({"review": text}), "{not json", json.dumps(7)][i % 4])
    (tmp_path / "texts.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["predict", "--adapter", ADAPTER, "--input", str(tmp_path / "texts.jsonl"),
                 "--output", str(tmp_path / "out.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "10 row(s) without a text skipped" in err and "row 2: empty text" in err
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == texts and [r["row"] for r in rows] == list(range(1, 20, 2))
    expected = predictions.iloc[::-1].head(10)
    for row, (_, want) in zip(rows, expected.iterrows(), strict=True):
        assert row["probabilities"] == pytest.approx({label: want[f"prob_{label}"] for label in labels}, abs=1e-5)
        assert set(row) >= {"label", "confidence", "conformal_set", "abstain", "confident"}
    skipped = [json.loads(line) for line in (tmp_path / "out.skipped.jsonl").read_text().splitlines()]
    assert [s["row"] for s in skipped] == list(range(2, 21, 2))
    assert [s["reason"] for s in skipped[:4]] == [
        "empty text", "no 'text' field", "not JSON (Expecting property name enclosed in double quotes)",
        "not an object with a 'text' field: 7"]


@pytest.mark.slow
def test_export_takes_a_registered_adapter(run_dir, tmp_path, capsys):
    assert main(["export", "--adapter", ADAPTER, "--out", str(tmp_path / "export")]) == 0
    record = read_json(tmp_path / "export" / "senticompare.json")
    assert record["run"] == str(run_dir.resolve()) and record["labels"] == ["negative", "positive"]
    assert main(["export", "--adapter", "nope/sst2/smollm2-135m", "--out", str(tmp_path / "other")]) == 2
    assert "no adapter 'nope/sst2/smollm2-135m'" in capsys.readouterr().err


def test_every_input_format_reads_its_texts_in_order_and_reports_the_rows_without_one(tmp_path):
    (tmp_path / "a.txt").write_text("first\n\nsecond\n")
    (tmp_path / "a.csv").write_text('id,text\n1,"first, quoted"\n2,\n3,second,extra\n4\n5,third\n')
    (tmp_path / "a.json").write_text(json.dumps([{"text": "first"}, "second", {"text": None}, [1], {"body": "x"}]))
    (tmp_path / "a.jsonl").write_text('{"text": "first"}\n\n{"text": 3}\n"second"\n')
    txt, table, listed, lines = (read_texts(tmp_path / f"a.{ext}") for ext in ("txt", "csv", "json", "jsonl"))
    assert (txt.texts, txt.rows, txt.bad) == (["first", "second"], [1, 3], [BadRow(2, "empty text")])
    assert (table.texts, table.rows) == (["first, quoted", "third"], [2, 6])
    assert table.bad == [BadRow(3, "empty text"), BadRow(4, "3 cells, the header has 2"),
                         BadRow(5, "no 'text' field")]
    assert (listed.texts, listed.rows) == (["first", "second"], [1, 2])
    assert [b.row for b in listed.bad] == [3, 4, 5]
    assert (lines.texts, lines.rows) == (["first", "second"], [1, 4])
    assert lines.bad == [BadRow(2, "empty line"), BadRow(3, "'text' is not a text: 3")]
    assert read_texts(tmp_path / "a.csv", column="id").texts == ["1", "2", "4", "5"]


def test_a_wrong_input_file_names_itself_and_the_fix(tmp_path):
    (tmp_path / "a.csv").write_text("review,stars\ngood,5\n")
    with pytest.raises(ConfigError, match=r"a.csv has no column 'text' \(its header: \['review', 'stars'\]\); "
                                          r"name the text column with --column"):
        read_texts(tmp_path / "a.csv")
    with pytest.raises(ConfigError, match="predict reads .csv, .jsonl, .json, .txt"):
        read_texts(tmp_path / "a.xlsx")
    (tmp_path / "b.json").write_text('{"text": "one"}')
    with pytest.raises(ConfigError, match="holds a JSON dict; give a list"):
        read_texts(tmp_path / "b.json")
    (tmp_path / "c.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_texts(tmp_path / "c.txt")


def _register_many(worker: int) -> None:
    record = registry.AdapterRecord(
        id="", study="s", model="m", base_model="b", method="head", dataset="d", label_type="binary",
        labels=["negative", "positive"], preset="tiny", seed=worker, path="p", metrics={"accuracy": 0.5},
        data_fingerprint=None, git_commit=None, git_dirty=None, created="2026-01-01T00:00:00+00:00")
    for i in range(20):
        registry.register(dataclasses.replace(record, id=f"s/d/m-{worker}-{i}"))


def test_runs_registering_at_the_same_moment_keep_every_record(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path))
    with multiprocessing.get_context("fork").Pool(6) as pool:
        pool.map(_register_many, range(6))
    records = registry.list_adapters()
    assert len(records) == 120 and {r.seed for r in records} == set(range(6))
    assert records[0].labels == ["negative", "positive"] and records[0].git_dirty is None


def _lora_deltas(adapter_dir) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per LoRA module its update scaling * B @ A, and the trained head tensors, from an adapter folder."""
    config = read_json(adapter_dir / "adapter_config.json")
    state = load_file(adapter_dir / "adapter_model.safetensors")
    scaling = config["lora_alpha"] / config["r"]
    deltas = {key.removesuffix(".lora_A.weight"): scaling * state[key.replace("lora_A", "lora_B")] @ state[key]
              for key in state if key.endswith(".lora_A.weight")}
    return deltas, {key: value for key, value in state.items() if ".lora_" not in key}


@pytest.mark.slow
def test_merge_cat_is_the_weighted_sum_of_updates_and_heads_and_predicts(run_dir, tmp_path, capsys):
    weights = {ADAPTER: 0.6, OTHER: 0.4}
    assert main(["merge", "--adapters", *(f"{a}:{w}" for a, w in weights.items()), "--method", "cat",
                 "--out-id", "sst2-yelp"]) == 0
    assert "merged: merged/sst2/sst2-yelp" in capsys.readouterr().out
    record = registry.get_adapter("merged/sst2/sst2-yelp")
    parent = registry.get_adapter(ADAPTER)
    assert (record.base_model, record.method, record.labels, record.dataset) == \
        (parent.base_model, "head", parent.labels, "sst2")
    merged = record.run_dir
    deltas, heads = _lora_deltas(merged / "adapter")
    parents = [_lora_deltas(registry.get_adapter(a).run_dir / "adapter") for a in weights]
    assert set(heads) == {"base_model.model.score.weight"} and set(deltas) == set(parents[0][0])
    for key, head in heads.items():  # the heads: the same weights as the LoRA updates
        torch.testing.assert_close(head, sum(w * p[1][key] for w, p in zip(weights.values(), parents, strict=True)))
    for key, delta in deltas.items():
        expected = sum(w * p[0][key] for w, p in zip(weights.values(), parents, strict=True))
        torch.testing.assert_close(delta, expected, rtol=1e-5, atol=1e-7)
    assert read_json(merged / "adapter" / "adapter_config.json")["modules_to_save"] == ["classifier", "score"]

    results = read_json(merged / "results.json")
    assert results["merge"]["parents"] == [
        {"id": a, "weight": w, "dataset": registry.get_adapter(a).dataset, "labels": registry.get_adapter(a).labels,
         "accuracy": registry.get_adapter(a).metrics["accuracy"]} for a, w in weights.items()]
    assert results["merge"]["label_map"] == {}
    assert results["data_fingerprint"] == read_json(run_dir / "results.json")["data_fingerprint"]
    assert record.metrics["accuracy"] == results["accuracy"]

    # predict takes it like a trained run: its own recalibrated probabilities on its own test split
    test = read_splits(merged / "data").test
    test[["text"]].to_csv(tmp_path / "texts.csv", index=False)
    assert main(["predict", "--adapter", record.id, "--input", str(tmp_path / "texts.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    columns = [f"prob_{label}" for label in record.labels]
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")[columns].to_numpy(),
                               pd.read_csv(merged / "predictions.csv")[columns].to_numpy(), atol=1e-5)
    assert main(["export", "--adapter", record.id, "--out", str(tmp_path / "export")]) == 0
    assert read_json(tmp_path / "export" / "config.json")["id2label"] == {"0": "negative", "1": "positive"}

    assert main(["merge", "--adapters", f"{ADAPTER}:1", f"{OTHER}:1", "--method", "cat", "--out-id", "sst2-yelp"]) == 2
    assert "give another --out-id, or --force" in capsys.readouterr().err


@pytest.mark.slow
def test_a_merged_adapter_used_as_trained_brings_its_weights_and_a_record_of_no_training(run_dir, tmp_path):
    """What 02_train does for a study's `adapters:` entry (tests/test_study_multiclass.py runs one
    end to end): a trained adapter carries its run's training record; a merged one, which never
    trained, a record of no steps with its own weight count and its parents' model size."""
    assert main(["merge", "--adapters", f"{ADAPTER}:0.5", f"{OTHER}:0.5", "--method", "linear",
                 "--out-id", "as-trained"]) == 0
    merged = "merged/sst2/as-trained"
    record = bring_into_run(merged, tmp_path / "mix" / "adapter")
    source = registry.get_adapter(merged).run_dir / "adapter"
    assert sorted(p.name for p in (tmp_path / "mix" / "adapter").iterdir()) == sorted(p.name for p in source.iterdir())
    parent = read_json(run_dir / "stages" / "02_train.json")
    assert (record["adapter_from"], record["steps"], record["training_time_s"], record["method"]) == \
        (merged, 0, 0.0, "merge")
    assert record["trainable_params"] == parent["trainable_params"]  # linear keeps the rank and the head
    assert record["total_params"] == parent["total_params"]
    assert [p["id"] for p in record["merge"]["parents"]] == [ADAPTER, OTHER]
    again = bring_into_run(ADAPTER, tmp_path / "parent" / "adapter")
    assert again == {**parent, "adapter_from": ADAPTER, "artifact_mb": parent["artifact_mb"]}


def test_a_study_refuses_an_adapter_whose_labels_the_dataset_lacks(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path / "experiments"))
    adapter = _fake_adapter(tmp_path, "a", labels=["bad", "good"])
    study = config.Study(name="s", models=[], datasets=["sst2"], preset="tiny", seeds=[1], adapters={"x": adapter})
    with pytest.raises(ConfigError, match=r"adapters.x: adapter 'fake/d/a' was trained on labels \['bad', 'good'\], "
                                          r"dataset 'sst2' has \['negative', 'positive'\].*--label-map"):
        check_study(study)
    with pytest.raises(ConfigError, match="none a model of the study"):
        config.Study(name="s", models=["x"], datasets=["sst2"], preset="tiny", seeds=[1], adapters={"x": adapter})
    with pytest.raises(ConfigError, match="at least one, or some adapters"):
        config.Study(name="s", models=[], datasets=["sst2"], preset="tiny", seeds=[1])


@pytest.mark.slow
@pytest.mark.full
@pytest.mark.parametrize("method", ["linear", "ties", "dare_ties"])
def test_every_method_merges_the_heads_with_the_same_weights(run_dir, tmp_path, method):
    plan = plan_merge([WeightedAdapter(ADAPTER, 0.7), WeightedAdapter(OTHER, 0.3)], method, "m")
    assert plan.density == (None if method == "linear" else 0.5)
    spec = config.get_model("smollm2-135m")
    base = models.load_base(spec, plan.evaluate_on.labels, precision_for("cpu"))
    out = merge_weights([r.run_dir / "adapter" for r, _ in plan.parents], [0.7, 0.3], method, plan.density, base,
                        tmp_path / "adapter")
    deltas, heads = _lora_deltas(out)
    parents = [_lora_deltas(r.run_dir / "adapter") for r, _ in plan.parents]
    key = "base_model.model.score.weight"
    torch.testing.assert_close(heads[key], 0.7 * parents[0][1][key] + 0.3 * parents[1][1][key])
    assert set(deltas) == set(parents[0][0]) and all(torch.isfinite(d).all() for d in deltas.values())
    model = models.load_finetuned(spec, out, plan.evaluate_on.labels, precision_for("cpu"))
    tokenizer = models.load_tokenizer(spec)
    probs = predict_proba(model, tokenizer, ["a fine film", "dull and long"], 2, 48, "cpu")
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1)


def _fake_adapter(root, name: str, **fields) -> str:
    """A registered record with a run folder holding results.json and an adapter config, no weights."""
    run = root / "fake" / "d" / name
    (run / "adapter").mkdir(parents=True)
    (run / "results.json").write_text("{}")
    lora = {"r": 8, "target_modules": ["q_proj", "v_proj"], "layers_to_transform": [1, 2], "task_type": "SEQ_CLS",
            "modules_to_save": ["classifier", "score"], **fields.pop("lora", {})}
    (run / "adapter" / "adapter_config.json").write_text(json.dumps(lora))
    values = {"study": "fake", "model": "m", "base_model": "org/base", "method": "head", "dataset": "d",
              "label_type": "binary", "labels": ["negative", "positive"], "preset": "tiny", "seed": 1, "path": str(run),
              "metrics": {"accuracy": 0.5}, "data_fingerprint": None, "git_commit": None, "git_dirty": None,
              "created": "2026-01-01T00:00:00+00:00", **fields}
    return registry.register(registry.AdapterRecord(id=f"fake/d/{name}", **values)).id


def test_merge_refuses_what_cannot_be_merged_naming_the_fix(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path))
    a, b = _fake_adapter(tmp_path, "a"), _fake_adapter(tmp_path, "b")
    other_base = _fake_adapter(tmp_path, "base", base_model="org/other")
    generator = _fake_adapter(tmp_path, "gen", method="generate")
    rank = _fake_adapter(tmp_path, "rank", lora={"r": 16})
    layers = _fake_adapter(tmp_path, "layers", lora={"layers_to_transform": [2, 3]})

    def refused(parents: list[str], method: str = "linear", name: str = "m", **kwargs) -> str:
        with pytest.raises(ConfigError) as error:
            plan_merge([parse_weighted(p) for p in parents], method, name, **kwargs)
        return str(error.value)

    assert "different base model: 'org/base' and 'org/other'" in refused([f"{a}:1", f"{other_base}:1"])
    assert "different method" in refused([f"{a}:1", f"{generator}:1"])
    assert "use --method cat, which takes any ranks" in refused([f"{a}:1", f"{rank}:1"], "ties")
    assert plan_merge([parse_weighted(f"{a}:1"), parse_weighted(f"{rank}:1")], "cat", "m").parents[1][0].id == rank
    assert "layers_to_transform: [1, 2] and [2, 3]" in refused([f"{a}:1", f"{layers}:1"])
    assert "two or more different adapters" in refused([f"{a}:1", f"{a}:2"])
    assert "one of linear, ties, dare_ties, cat" in refused([f"{a}:1", f"{b}:1"], "svd")
    assert "--out-id '../x'" in refused([f"{a}:1", f"{b}:1"], name="../x")
    assert "applies to ties and dare_ties only" in refused([f"{a}:1", f"{b}:1"], density=0.3)
    assert "give 0 < density <= 1" in refused([f"{a}:1", f"{b}:1"], "dare_ties", density=1.5)
    assert "none of the parents' datasets" in refused([f"{a}:1", f"{b}:1"], dataset="sst2")
    assert "give each adapter as ID:WEIGHT" in refused([a, f"{b}:1"])
    assert "no adapter 'fake/d/nope'" in refused([f"{a}:1", "fake/d/nope:1"])
    assert main(["merge", "--adapters", f"{a}:0.5", f"{other_base}:0.5", "--out-id", "m"]) == 2
    assert "merge adapters of one base model and one label set" in capsys.readouterr().err


def test_heads_merge_label_by_label_in_any_order_or_under_names_the_user_pairs(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SENTICOMPARE_EXPERIMENTS", str(tmp_path))
    a = _fake_adapter(tmp_path, "a")
    reversed_order = _fake_adapter(tmp_path, "reversed", labels=["positive", "negative"])
    renamed = _fake_adapter(tmp_path, "renamed", labels=["other", "great"])
    three = _fake_adapter(tmp_path, "three", labels=["other", "great", "meh"])

    def orders(parents: list[str], **kwargs) -> list[list[int]]:
        return plan_merge([parse_weighted(f"{p}:0.5") for p in parents], "linear", "m", **kwargs).head_orders

    assert orders([a, reversed_order]) == [[0, 1], [1, 0]]
    assert orders([a, reversed_order], dataset="d") == [[0, 1], [1, 0]]  # rows in the evaluated parent's order
    pairs = {"great": "positive", "other": "negative"}
    assert orders([a, renamed], label_map=pairs) == [[0, 1], [0, 1]]
    assert orders([a, renamed], label_map={v: k for k, v in pairs.items()}) == [[0, 1], [0, 1]]  # either way round
    assert orders([renamed, a], label_map=pairs) == [[0, 1], [0, 1]]
    for parents, label_map in (([a, renamed], None), ([a, renamed], {"great": "positive"}), ([a, three], pairs)):
        with pytest.raises(ConfigError, match=r"have different labels: .*; pair them with --label-map PARENT_LABEL"):
            orders(parents, label_map=label_map)
    generator = _fake_adapter(tmp_path, "gen", method="generate")
    generator_reversed = _fake_adapter(tmp_path, "gen_reversed", method="generate", labels=["positive", "negative"])
    with pytest.raises(ConfigError, match="a generator's prompt lists its labels"):
        orders([generator, generator_reversed])
    assert main(["merge", "--adapters", f"{a}:0.5", f"{renamed}:0.5", "--out-id", "m"]) == 2
    assert "--label-map PARENT_LABEL=LABEL, e.g. --label-map great=positive" in capsys.readouterr().err


@pytest.mark.slow
def test_a_head_is_put_in_the_evaluated_parents_label_order_before_it_is_combined(run_dir, tmp_path):
    plan = plan_merge([WeightedAdapter(ADAPTER, 0.7), WeightedAdapter(OTHER, 0.3)], "linear", "m")
    base = models.load_base(config.get_model("smollm2-135m"), plan.evaluate_on.labels, precision_for("cpu"))
    out = merge_weights([r.run_dir / "adapter" for r, _ in plan.parents], [0.7, 0.3], "linear", None, base,
                        tmp_path / "adapter", head_orders=[[0, 1], [1, 0]])
    key = "base_model.model.score.weight"
    first, second = (_lora_deltas(r.run_dir / "adapter")[1][key] for r, _ in plan.parents)
    torch.testing.assert_close(_lora_deltas(out)[1][key], 0.7 * first + 0.3 * second[[1, 0]])
