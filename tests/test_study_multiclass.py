"""CI: params/studies/ci_multiclass.yaml end to end, 3-class Disneyland and 4-class TweetEval
from the mirror, through the study runner and the stage notebooks (a few minutes on 2 cores)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.core import paths
from helpers.core.io import read_json
from helpers.evaluate.quality import per_class_report
from helpers.pipeline.study import run_study

pytestmark = pytest.mark.slow  # runs in `make test` like every test; `-m "not slow"` skips it


@pytest.fixture(scope="module")
def outcome(mirror_path):
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    yield run_study(paths.PARAMS_DIR / "studies" / "ci_multiclass.yaml", report=False)
    mp.undo()


def test_both_runs_finish(outcome):
    assert not outcome.failed
    assert sorted(p.dataset for p in outcome.done) == ["disneyland_3class", "tweet_eval_emotion"]


@pytest.mark.parametrize("dataset, labels", [
    ("disneyland_3class", ["negative", "neutral", "positive"]),
    ("tweet_eval_emotion", ["anger", "joy", "optimism", "sadness"]),
])
def test_every_class_has_its_metrics_and_confusion_matrix_row(outcome, dataset, labels):
    run_dir = paths.experiments_dir() / "ci_multiclass" / dataset / "minilm-l6"
    results = read_json(run_dir / "results.json")
    quality = results["quality"]
    assert quality["labels"] == labels
    matrix = np.array(quality["confusion_matrix"])
    assert matrix.shape == (len(labels), len(labels)) and matrix.sum() == quality["test_examples"] == 64
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert [c for c in predictions if c.startswith("prob_")] == [f"prob_{label}" for label in labels]
    per_class = per_class_report(predictions["label"], predictions["prediction"], labels)
    assert per_class.loc[labels, "support"].sum() == 64
    assert {"f1_weighted", "precision_weighted", "recall_weighted"} <= set(quality)
    assert results["data"]["rows"] == {"train": 64, "validation": 32, "calibration": 32, "test": 64}
    assert set(results["data"]["class_counts"]["test"]) == set(labels)


@pytest.mark.full  # one more run (about 50 s); CI checks the adapter's record in tests/test_adapters.py
def test_a_registered_adapter_listed_as_a_model_gives_its_own_runs_numbers_again(outcome, tmp_path):
    """A study's `adapters:` entry runs without training (helpers/pipeline/adapters.py): the
    TweetEval run's adapter, under its own preset, overrides and seed, on its own dataset, decides
    the same test tweets with the same probabilities and is ranked like a model."""
    from helpers.config import read_yaml
    from helpers.core.io import write_yaml

    study = read_yaml(paths.PARAMS_DIR / "studies" / "ci_multiclass.yaml")
    path = write_yaml(tmp_path / "again.yaml", {
        **study, "name": "ci_adapter_models", "models": [], "datasets": ["tweet_eval_emotion"],
        "adapters": {"again": "ci_multiclass/tweet_eval_emotion/minilm-l6"}})
    again = run_study(path, report=False)
    assert [p.model for p in again.done] == ["again"] and not again.failed
    own = paths.experiments_dir() / "ci_multiclass" / "tweet_eval_emotion" / "minilm-l6"
    folder = paths.experiments_dir() / "ci_adapter_models" / "tweet_eval_emotion"
    pd.testing.assert_frame_equal(pd.read_csv(folder / "again" / "predictions.csv"),
                                  pd.read_csv(own / "predictions.csv"))
    results = read_json(folder / "again" / "results.json")
    assert results["accuracy"] == read_json(own / "results.json")["accuracy"] and results["model_name"] == "again"
    assert results["training"]["adapter_from"] == "ci_multiclass/tweet_eval_emotion/minilm-l6"
    assert results["params"]["adapter"] == "ci_multiclass/tweet_eval_emotion/minilm-l6"
    assert [row["model"] for row in read_json(folder / "comparison.json")["ranking"]] == ["again"]
