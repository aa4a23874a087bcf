"""`senticompare evaluate` and POST /evaluate: a registered adapter scored on a labelled dataset.
One tiny MiniLM run on SST-2 (module-scoped) is evaluated on its own test split (its own numbers
back), on a `file` dataset whose labels have other names (through a label map: the same numbers as
the same rows under the adapter's names), refused without the map, and through the API (the same
numbers as the function). The label map's parsing and checks need no model."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest
import yaml
from fastapi.testclient import TestClient

from helpers import config
from helpers.adapters.evaluate import evaluate_adapter, label_mapping, output_file, parse_label_map
from helpers.cli import main
from helpers.config import ConfigError
from helpers.core import paths
from helpers.core.io import read_json
from helpers.pipeline.study import run_study
from helpers.serve.app import ServeSettings, create_app

STUDY = {
    "name": "tiny_evaluate",
    "models": ["minilm-l6"],
    "datasets": ["sst2"],
    "preset": "tiny",
    "seeds": [7],
    "overrides": {"max_train": 32, "max_validation": 16, "max_calibration": 16, "max_test": 24,
                  "train": {"max_steps": 2, "batch_size": 16}, "evaluation": {"baseline_shots": []},
                  "speed": {"warmup": 1, "repeats": 1, "max_examples": 4, "batch_size": 4}},
}
ADAPTER = "tiny_evaluate/sst2/minilm-l6"
NUMBERS = ("accuracy", "f1", "precision", "recall", "accuracy_ci95", "f1_ci95", "conformal_coverage",
           "conformal_set_size", "abstain_share", "examples")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mirror_path):
    """One finished (registered) MiniLM head run on SST-2: two training steps."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    path = tmp_path_factory.mktemp("study") / "tiny_evaluate.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    outcome = run_study(path, report=False)
    assert [p.model for p in outcome.done] == ["minilm-l6"] and not outcome.failed
    yield paths.experiments_dir() / ADAPTER
    mp.undo()


@pytest.fixture
def renamed(run_dir, reviews, file_dataset, monkeypatch):
    """The same 60 reviews registered twice: `mine` with the adapter's label names, `mine_renamed`
    with bad/good; config.get_dataset finds both."""
    plain = file_dataset(reviews, "plain.csv")
    other = file_dataset(reviews.assign(label=reviews["label"].map({"negative": "bad", "positive": "good"})),
                         "renamed.csv", labels=["bad", "good"])
    found = {"mine": plain, "mine_renamed": dataclasses.replace(other, id="mine_renamed")}
    original = config.get_dataset
    monkeypatch.setattr(config, "get_dataset", lambda dataset: found.get(dataset) or original(dataset))
    return found


def test_label_maps_are_parsed_and_checked():
    assert parse_label_map(["great=positive", " other = negative "]) == {"great": "positive", "other": "negative"}
    with pytest.raises(ConfigError, match=r"DATASET_LABEL=ADAPTER_LABEL"):
        parse_label_map(["great"])
    with pytest.raises(ConfigError, match=r"maps 'great' twice"):
        parse_label_map(["great=positive", "great=negative"])
    assert label_mapping(["negative", "positive"], ["negative", "positive"], None) == \
        {"negative": "negative", "positive": "positive"}
    assert label_mapping(["other", "great"], ["negative", "positive"], {"great": "positive", "other": "negative"}) == \
        {"other": "negative", "great": "positive"}
    with pytest.raises(ConfigError, match=r"labels \['other', 'great'\] of dataset 'finefoods' have no counterpart.*"
                                          r"\['negative', 'positive'\].*"
                                          r"--label-map other=negative --label-map great=positive"):
        label_mapping(["other", "great"], ["negative", "positive"], None, "finefoods", "a/sst2/m")
    with pytest.raises(ConfigError, match=r"\['good'\] are not labels of dataset"):
        label_mapping(["other", "great"], ["negative", "positive"], {"good": "positive"})
    with pytest.raises(ConfigError, match=r"\['pos'\] are not labels of adapter"):
        label_mapping(["other", "great"], ["negative", "positive"], {"great": "pos"})
    assert output_file("default/sst2/minilm-l6", "finefoods").name == "default__sst2__minilm-l6__on__finefoods.json"


@pytest.mark.slow
def test_its_own_test_split_gives_the_runs_own_numbers(run_dir, mirror):
    results = read_json(run_dir / "results.json")
    quality = results["quality"]
    result = evaluate_adapter(ADAPTER, "sst2", seed=7)  # the run's preset (with its overrides) and seed: its rows
    assert result["dataset_fingerprint"] == results["data_fingerprint"]
    assert result["examples"] == quality["test_examples"] == 24 and result["note"] is None
    assert result["accuracy"] == pytest.approx(results["accuracy"]) and result["f1"] == pytest.approx(results["f1"])
    assert result["accuracy_ci95"] == pytest.approx(quality["accuracy_ci95"])
    assert result["f1_ci95"] == pytest.approx(quality["f1_ci95"])
    assert result["confusion_matrix"] == quality["confusion_matrix"]
    assert result["baseline_majority"]["accuracy"] == pytest.approx(quality["baseline_majority"]["accuracy"])
    assert result["conformal_coverage"] == pytest.approx(quality["conformal_coverage"])
    assert result["conformal_set_size"] == pytest.approx(quality["conformal_set_size"])
    assert (result["adapter"], result["adapter_dataset"], result["dataset"]) == (ADAPTER, "sst2", "sst2")
    written = read_json(paths.experiments_dir() / "evaluations" / "tiny_evaluate__sst2__minilm-l6__on__sst2.json")
    assert written == json.loads(json.dumps(result))
    other_seed = evaluate_adapter(ADAPTER, "sst2", seed=1, max_examples=12, write=False)
    assert other_seed["examples"] == 12 and "may include texts the adapter was trained" in other_seed["note"]


@pytest.mark.slow
def test_a_label_map_scores_a_dataset_with_other_label_names(renamed, capsys):
    plain = evaluate_adapter(ADAPTER, "mine", write=False)
    assert main(["evaluate", "--adapter", ADAPTER, "--dataset", "mine_renamed",
                 "--label-map", "bad=negative", "--label-map", "good=positive"]) == 0
    out = capsys.readouterr().out
    assert "accuracy (95 % CI)" in out and "label map                 bad=negative, good=positive" in out
    path = paths.experiments_dir() / "evaluations" / "tiny_evaluate__sst2__minilm-l6__on__mine_renamed.json"
    assert f"written: {paths.display_path(path)}" in out
    mapped = read_json(path)
    assert mapped["label_map"] == {"bad": "negative", "good": "positive"}
    assert mapped["dataset_labels"] == ["bad", "good"] and mapped["examples"] == plain["examples"] == 12
    for key in NUMBERS:
        assert mapped[key] == pytest.approx(plain[key]), key
    assert mapped["baseline_majority"] == plain["baseline_majority"]
    assert mapped["confusion_matrix"] == plain["confusion_matrix"]
    assert sum(map(sum, mapped["confusion_matrix"])) == 12


@pytest.mark.slow
def test_labels_without_a_counterpart_and_other_label_types_are_refused(renamed, capsys):
    with pytest.raises(ConfigError, match=r"labels \['bad', 'good'\] of dataset 'mine_renamed' have no counterpart.*"
                                          r"\['negative', 'positive'\].*--label-map bad=negative"):
        evaluate_adapter(ADAPTER, "mine_renamed")
    assert main(["evaluate", "--adapter", ADAPTER, "--dataset", "mine_renamed", "--label-map", "bad=neg"]) == 2
    assert "['neg'] are not labels of adapter" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"multi-label data; evaluate scores one label per text"):
        evaluate_adapter(ADAPTER, "goemotions")
    with pytest.raises(ConfigError, match=r"split 'train'"):
        evaluate_adapter(ADAPTER, "mine", split="train")


@pytest.mark.slow
def test_the_api_gives_the_functions_numbers(renamed):
    expected = evaluate_adapter(ADAPTER, "mine_renamed", label_map={"bad": "negative", "good": "positive"},
                                write=False)
    with TestClient(create_app(ServeSettings()), base_url="http://127.0.0.1:8000") as client:
        response = client.post("/evaluate", json={"adapter": ADAPTER, "dataset": "mine_renamed",
                                                  "label_map": {"bad": "negative", "good": "positive"}})
        assert response.status_code == 200, response.text
        got = response.json()
        for key in NUMBERS:
            assert got[key] == pytest.approx(expected[key]), key
        for key in ("dataset_fingerprint", "label_map", "adapter", "dataset", "output", "note", "baseline_majority",
                    "confusion_matrix"):
            assert got[key] == expected[key], key
        refused = client.post("/evaluate", json={"adapter": ADAPTER, "dataset": "mine_renamed"})
        assert refused.status_code == 422 and "--label-map bad=negative" in refused.json()["detail"]
        too_many = client.post("/evaluate", json={"adapter": ADAPTER, "dataset": "mine", "max_examples": 2001})
        assert too_many.status_code == 422 and "POST /evaluations" in too_many.text


def test_an_evaluation_job_scores_the_whole_split_and_gives_the_same_record(run_dir, mirror):
    """POST /evaluations runs `senticompare evaluate` as a background job (max_examples null: the
    whole split); its record equals the function's on the same split."""
    expected = evaluate_adapter(ADAPTER, "sst2", write=False)
    with TestClient(create_app(ServeSettings()), base_url="http://127.0.0.1:8000") as client:
        submitted = client.post("/evaluations", json={"adapter": ADAPTER, "dataset": "sst2"})
        assert submitted.status_code == 202, submitted.text
        deadline, job = time.monotonic() + 300, submitted.json()
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            job = client.get(f"/jobs/{job['id']}").json()
        assert job["kind"] == "evaluate" and job["state"] == "succeeded", job["log_tail"]
        got = client.get(job["evaluation"]).json()
        assert got["examples"] == got["split_examples"] == expected["split_examples"]
        for key in NUMBERS:
            assert got[key] == pytest.approx(expected[key]), key
        refused = client.post("/evaluations", json={"adapter": ADAPTER, "dataset": "goemotions"})
        assert refused.status_code == 422 and "single-label" in refused.json()["detail"]
