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
