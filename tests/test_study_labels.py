"""CI: params/studies/ci_labels.yaml end to end: a multi-label (GoEmotions, Ekman grouping) and a
regression (Disneyland rating) dataset through the study runner, the stage notebooks, the comparison
and the report (a few minutes on 2 cores). The numbers of the tiny preset mean nothing; what is
checked is that every number the issue asks for is there, consistent with predictions.csv."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.core import paths
from helpers.core.io import read_json
from helpers.labels import metrics as label_metrics
from helpers.labels.targets import read_label_matrix
from helpers.pipeline.study import run_study

pytestmark = pytest.mark.slow

EKMAN = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]


@pytest.fixture(scope="module")
def outcome(mirror_path):
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))  # the studies read GoEmotions and Disneyland there
    try:
        yield run_study(paths.PARAMS_DIR / "studies" / "ci_labels.yaml", report=True)
    finally:
        mp.undo()


def run_dir(dataset: str):
    return paths.experiments_dir() / "ci_labels" / dataset / "minilm-l6"


def test_both_runs_finish(outcome):
    assert not outcome.failed
    assert sorted(p.dataset for p in outcome.done) == ["disneyland_rating", "goemotions_ekman"]


def test_a_multi_label_run_records_its_metrics_and_they_match_its_predictions(outcome):
    results = read_json(run_dir("goemotions_ekman") / "results.json")
    assert results["label_type"] == "multi"
    for key in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy"):
        assert 0 <= results[key] <= 1
    quality = results["quality"]
    assert set(quality["per_label"]) == set(EKMAN)
    assert {"precision", "recall", "f1", "support", "average_precision", "roc_auc", "ece"} <= set(
        quality["per_label"]["joy"])
    assert 0 < quality["conformal_coverage"] <= 1 and quality["conformal_set_size"] >= 0
    assert set(quality["baselines"]) == {"label_frequencies", "most_frequent_label"}
    predictions = pd.read_csv(run_dir("goemotions_ekman") / "predictions.csv", dtype={"labels": str, "predicted": str})
    assert len(predictions) == quality["test_examples"] == 64
    truth = read_label_matrix(predictions["labels"], len(EKMAN))
    decided = read_label_matrix(predictions["predicted"], len(EKMAN))
    assert label_metrics.multilabel_metrics(truth, decided)["micro_f1"] == pytest.approx(results["micro_f1"])
    scores = predictions[[f"score_{label}" for label in EKMAN]].to_numpy()
    thresholds = np.array([quality["thresholds"][label] for label in EKMAN])
    np.testing.assert_array_equal(decided, (scores >= thresholds).astype(int))


def test_a_regression_run_records_its_metrics_and_intervals(outcome):
    results = read_json(run_dir("disneyland_rating") / "results.json")
    assert results["label_type"] == "regression"
    for key in ("r2", "mae", "rmse", "spearman", "interval_coverage", "interval_width"):
        assert results[key] is not None
    predictions = pd.read_csv(run_dir("disneyland_rating") / "predictions.csv")
    assert set(predictions["true_rating"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert np.mean(np.abs(predictions["true_rating"] - predictions["pred_rating"])) == pytest.approx(results["mae"])
    inside = predictions["true_rating"].between(predictions["lower_rating"], predictions["upper_rating"])
    assert inside.mean() == pytest.approx(results["interval_coverage"])
    assert set(results["quality"]["group_scores"]) == {"Disneyland_California", "Disneyland_HongKong",
                                                       "Disneyland_Paris"}


def test_the_report_shows_each_label_type_with_its_own_metrics(outcome):
    html = (paths.reports_dir() / "ci_labels.html").read_text()
    assert "micro-F1" in html and "Hamming loss" in html and "average_precision" in html  # the per-label table
    assert "MAE" in html and "R²" in html and "Conformal intervals" in html
    comparison = read_json(paths.experiments_dir() / "ci_labels" / "disneyland_rating" / "comparison.json")
    assert comparison["ranking"][0]["label_type"] == "regression"
    assert comparison["ranking"][0]["mae_ci95"][0] <= comparison["ranking"][0]["mae"]


@pytest.mark.parametrize("dataset", ["goemotions_ekman", "disneyland_rating"])
def test_predict_with_the_registered_adapter_repeats_the_runs_own_decisions(outcome, dataset, tmp_path):
    """`senticompare predict` on the run's test texts gives its predictions.csv again: the same
    labels above the fitted thresholds, or the same ratings and conformal intervals."""
    from helpers.adapters import registry
    from helpers.adapters.predict import predict_file

    folder = run_dir(dataset)
    record = registry.get_adapter(f"ci_labels/{dataset}/minilm-l6")
    assert record.label_type == ("multi" if dataset == "goemotions_ekman" else "regression")
    test = pd.read_json(folder / "data" / "test.jsonl", lines=True, dtype={"text": str})
    test[["text"]].to_csv(tmp_path / "texts.csv", index=False)
    predict_file(record.id, tmp_path / "texts.csv", tmp_path / "out.csv", show_progress=False)
    predicted = pd.read_csv(tmp_path / "out.csv")
    saved = pd.read_csv(folder / "predictions.csv", dtype={"predicted": str}).sort_values("example")
    assert len(predicted) == len(saved)
    if dataset == "goemotions_ekman":
        names = [json.loads(cell) for cell in predicted["labels"]]
        again = [[EKMAN[int(i)] for i in str(cell).split("|")] if isinstance(cell, str) and cell else []
                 for cell in saved["predicted"].fillna("")]
        assert names == again
        np.testing.assert_allclose(predicted["score_joy"], saved["score_joy"], atol=1e-5)
    else:
        np.testing.assert_allclose(predicted["pred_rating"], saved["pred_rating"], atol=1e-4)
        np.testing.assert_allclose(predicted["upper_rating"], saved["upper_rating"], atol=1e-4)


def test_the_web_ui_shows_each_label_types_answer(outcome, live_server, browser_page):
    """The Adapters view names each run's label type and its own metrics; the Predict view answers a
    text with the multi-label adapter's labels and ranked scores and the regression adapter's
    rating with its interval, side by side, without a script error."""
    from playwright.sync_api import expect

    page, errors = browser_page
    multi, rating = "ci_labels/goemotions_ekman/minilm-l6", "ci_labels/disneyland_rating/minilm-l6"
    page.goto(f"{live_server}/#adapters")
    rows = page.locator("#adapters-table tbody tr")
    expect(rows.filter(has_text=multi)).to_contain_text("micro-F1")
    expect(rows.filter(has_text=rating)).to_contain_text("MAE")
    page.goto(f"{live_server}/#predict")
    for adapter in (multi, rating):
        page.check(f"#predict-adapters input[value='{adapter}']")
    page.fill("#predict-text", "The queue was endless and the staff were rude, but the parade made my day.")
    page.click("#predict-run")
    card = page.locator(f".card[data-adapter='{multi}']")
    expect(card).to_be_visible(timeout=120_000)
    scores = [float(s) for s in card.locator(".prob").all_text_contents()]
    assert len(scores) == len(EKMAN) and scores == sorted(scores, reverse=True)
    chosen = card.locator("tr.chosen td:first-child").all_text_contents()
    shown = card.locator(".label").text_content()
    assert shown == (", ".join(chosen) if chosen else "none above its threshold")
    card = page.locator(f".card[data-adapter='{rating}']")
    cells = card.locator("table.regression tr").nth(1).locator("td").all_text_contents()
    low, high = (float(x) for x in cells[2].strip("[]").split(","))
    assert cells[0] == "rating" and low <= float(cells[1]) <= high
    assert not errors, errors
