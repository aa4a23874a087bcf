"""Multi-label and regression label types (helpers/labels/): reading the labels, the metrics against
hand-computed values, the fitted thresholds, conformal sets and intervals, the paired bootstrap."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import config
from helpers.config.base import ConfigError
from helpers.data.records import DataError
from helpers.data.splits import fingerprint, load_splits, read_splits, save_splits
from helpers.labels import compare, conformal, targets
from helpers.labels import metrics as label_metrics

EMOTIONS = ["joy", "anger", "fear"]


def emotions_table(n: int = 90) -> pd.DataFrame:
    """n texts with 0-2 emotions each, as names joined by commas (the way a user's CSV holds them)."""
    cells = ["joy", "anger", "joy,fear", "", "fear", "joy,anger"]
    return pd.DataFrame({"text": [f"text number {i}" for i in range(n)], "label": [cells[i % 6] for i in range(n)],
                         "stars": [1 + i % 5 for i in range(n)], "helpful": [i % 7 for i in range(n)]})


def test_multi_label_cells_are_read_as_sorted_class_ids(file_dataset, own_data_cache):
    spec = file_dataset(emotions_table(), label_type="multi", labels=EMOTIONS)
    splits = load_splits(spec, config.load_preset("tiny"), 1337)
    every = pd.concat([splits.split(name) for name in ("train", "validation", "calibration", "test")])
    by_text = dict(zip(every["text"], every["label"].map(list), strict=True))
    assert by_text["text number 2"] == [0, 2]  # "joy,fear"
    assert by_text["text number 3"] == []  # no emotion: kept, counted
    assert by_text["text number 5"] == [0, 1]
    assert any(f.check == "no_labels" for f in splits.findings)
    assert splits.label_type == "multi"
    assert list(splits.summary().columns) == ["rows", *EMOTIONS]


def test_label_map_groups_several_raw_labels_into_one_and_null_drops_one(file_dataset, own_data_cache):
    spec = file_dataset(emotions_table(), label_type="multi", labels=["positive", "negative"],
                        label_map={"joy": "positive", "anger": "negative", "fear": None})
    splits = load_splits(spec, config.load_preset("tiny"), 1337)
    every = pd.concat([splits.split(name) for name in ("train", "validation", "calibration", "test")])
    by_text = dict(zip(every["text"], every["label"].map(list), strict=True))
    assert by_text["text number 2"] == [0]  # joy, fear -> positive
    assert by_text["text number 4"] == []  # fear alone -> none
    assert by_text["text number 5"] == [0, 1]


def test_unknown_multi_labels_are_an_error_naming_the_fix(file_dataset, own_data_cache):
    spec = file_dataset(emotions_table(), label_type="multi", labels=["joy", "anger"])
    with pytest.raises(DataError, match=r"labels outside \['joy', 'anger'\]: \['fear'\].*label_map"):
        load_splits(spec, config.load_preset("tiny"), 1337)


def test_regression_targets_are_floats_and_the_saved_splits_read_back_identically(file_dataset, own_data_cache,
                                                                                  tmp_path):
    spec = file_dataset(emotions_table(), label_type="regression", label_column=["stars", "helpful"], labels=[])
    assert spec.labels == ["stars", "helpful"]  # the columns name the targets by default
    splits = load_splits(spec, config.load_preset("tiny"), 1337)
    assert all(isinstance(v, float) for row in splits.train["label"] for v in row)
    save_splits(splits, tmp_path / "saved")
    again = read_splits(tmp_path / "saved")
    assert again.label_type == "regression"
    assert fingerprint(again) == splits.fingerprint
    assert list(again.summary().columns) == ["rows", "mean stars", "mean helpful"]


def test_label_type_config_errors():
    base = {"id": "x", "source": "file", "path": "x.csv", "text_column": "t"}
    with pytest.raises(ConfigError, match="only label_type: regression reads several"):
        config.DatasetSpec(**base, label_column=["a", "b"], labels=["a", "b"])
    with pytest.raises(ConfigError, match="one name each"):
        config.DatasetSpec(**base, label_column=["a", "b"], labels=["a"], label_type="regression")
    with pytest.raises(ConfigError, match="no classes to map"):
        config.DatasetSpec(**base, label_column="a", label_type="regression", label_map={1: "a"}, labels=["a"])
    with pytest.raises(ConfigError, match="label_type"):
        config.DatasetSpec(**base, label_column="a", labels=["a", "b"], label_type="ordinal")


def test_the_registered_label_type_datasets_load():
    found = config.load_datasets()
    assert found["goemotions"].label_type == "multi" and len(found["goemotions"].labels) == 28
    ekman = found["goemotions_ekman"]
    assert ekman.labels == ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    assert set(ekman.label_map) == set(range(28)) and set(ekman.label_map.values()) == set(ekman.labels)
    assert found["disneyland_rating"].label_type == "regression" and found["disneyland_rating"].labels == ["rating"]


def test_multilabel_metrics_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    decided = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0]])
    got = label_metrics.multilabel_metrics(y, decided)
    # tp 3 (0,0) (1,1) (2,0); fp 1 (2,2); fn 2 (0,2) (2,1)
    assert got["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert got["hamming_loss"] == pytest.approx(3 / 12)
    assert got["subset_accuracy"] == pytest.approx(2 / 4)  # rows 1 and 3 exactly right
    # samples F1: row 0 2/3, row 1 1, row 2 F1 of {0,1} vs {0,2} = 1/2, row 3 (nothing, nothing) 0 in sklearn
    assert got["samples_f1"] == pytest.approx((2 / 3 + 1 + 0.5 + 0) / 4)
    assert got["label_cardinality_true"] == pytest.approx(5 / 4)
    assert got["label_cardinality_predicted"] == pytest.approx(4 / 4)


def test_regression_metrics_by_hand():
    y = np.array([[1.0], [2.0], [3.0], [4.0]])
    guess = np.array([[1.5], [2.0], [2.5], [5.0]])
    got = label_metrics.regression_metrics(y, guess, ["t"])
    assert got["mae"] == pytest.approx((0.5 + 0 + 0.5 + 1) / 4)
    assert got["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 0.25 + 1) / 4))
    assert got["r2"] == pytest.approx(1 - 1.5 / 5.0)  # SS_res 1.5, SS_tot 5
    assert got["spearman"] == pytest.approx(1.0)
    assert got["per_target"]["t"]["mae"] == got["mae"]
    constant = label_metrics.regression_metrics(y, np.full_like(y, 2.5), ["t"])
    assert constant["pearson"] is None and constant["r2"] == pytest.approx(0.0)


def test_thresholds_are_fitted_per_label_and_a_label_without_positives_keeps_the_global_one():
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    scores = np.array([[0.3, 0.9, 0.1], [0.35, 0.8, 0.2], [0.1, 0.95, 0.3], [0.2, 0.97, 0.2]])
    global_t = label_metrics.fit_global_threshold(y, scores)
    thresholds = label_metrics.fit_label_thresholds(y, scores, global_t)
    assert 0.2 < thresholds[0] <= 0.3  # separates label 0's positives (0.3, 0.35) from its negatives
    assert 0.9 < thresholds[1] <= 0.95
    assert thresholds[2] == global_t  # no positive in validation


def test_the_trivial_baselines():
    y_train = np.array([[1, 0], [1, 0], [1, 1], [0, 1], [1, 0]])  # label 0 in 4 of 5
    y_test = np.array([[1, 0], [0, 1], [1, 1]])
    got = label_metrics.prior_baselines(y_train, y_train, y_test)
    assert got["most_frequent_label"]["label"] == 0
    assert got["most_frequent_label"]["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))


def test_label_sets_cover_all_true_labels_at_the_promised_rate_on_exchangeable_data():
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(200):
        scores = rng.uniform(size=(400, 5))
        y = (rng.uniform(size=scores.shape) < scores).astype(int)  # calibrated sigmoids
        sets, q_hat = conformal.label_sets(y[:200], scores[:200], scores[200:], alpha=0.1)
        covered.append(conformal.label_set_report(y[200:], sets, q_hat, 0.1)["conformal_coverage"])
    assert 0.89 <= np.mean(covered) <= 0.93  # >= 1 - alpha, and not far above


def test_label_sets_by_hand():
    y_cal = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores_cal = np.array([[0.9, 0.2], [0.1, 0.6], [0.8, 0.3], [0.5, 0.5]])
    np.testing.assert_allclose(conformal.label_set_scores(y_cal, scores_cal), [0.1, 0.4, 0.7, -np.inf])
    sets, q_hat = conformal.label_sets(y_cal, scores_cal, np.array([[0.95, 0.35], [0.2, 0.25]]), alpha=0.4)
    assert q_hat == pytest.approx(0.4)  # ceil(5 * 0.6) = 3rd smallest of (-inf, 0.1, 0.4, 0.7)
    np.testing.assert_array_equal(sets, [[1, 0], [0, 0]])  # 1 - p <= 0.4: only 0.95


def test_intervals_cover_at_the_promised_rate_on_exchangeable_data():
    rng = np.random.default_rng(1)
    coverage, widths = [], []
    for _ in range(200):
        x = rng.normal(size=600)
        y = (2 * x + rng.normal(scale=0.5, size=600))[:, None]
        predicted = (2 * x)[:, None]
        lower, upper, q_hat = conformal.intervals(y[:300], predicted[:300], predicted[300:], alpha=0.2)
        report = conformal.interval_report(y[300:], lower, upper, ["y"], 0.2)
        coverage.append(report["interval_coverage"])
        widths.append(report["interval_width"])
    assert 0.79 <= np.mean(coverage) <= 0.82
    assert np.mean(widths) == pytest.approx(2 * 1.2816 * 0.5, rel=0.05)  # the true 80 % interval's width


def test_resampled_metrics_equal_the_plain_ones_with_every_example_once():
    rng = np.random.default_rng(2)
    y, decided = rng.integers(0, 2, (50, 4)), rng.integers(0, 2, (50, 4))
    once = np.ones((1, 50))
    exact = label_metrics.multilabel_metrics(y, decided)
    assert label_metrics.micro_f1_resampled(y, decided, once)[0] == pytest.approx(exact["micro_f1"])
    assert label_metrics.macro_f1_resampled(y, decided, once)[0] == pytest.approx(exact["macro_f1"])
    truth, guess = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    plain = label_metrics.regression_metrics(truth, guess, ["a", "b"])
    assert label_metrics.mae_resampled(truth, guess, once)[0] == pytest.approx(plain["mae"])
    assert label_metrics.r2_resampled(truth, guess, once)[0] == pytest.approx(plain["r2"])


def test_paired_bootstrap_tells_a_better_model_apart_and_not_an_equal_one():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(300, 1))
    good, bad = truth + rng.normal(scale=0.3, size=truth.shape), truth + rng.normal(scale=1.0, size=truth.shape)
    difference, ci, p_value = compare.paired_bootstrap(truth, good, bad, "mae")
    assert difference < 0 and ci[1] < 0 and p_value < 0.01
    same = compare.paired_bootstrap(truth, good, good.copy(), "mae")
    assert same[0] == 0 and same[2] == 1.0


def test_targets_are_standardized_on_train_and_read_back_in_their_units():
    y = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    scaler = targets.Scaler.fit(y)
    np.testing.assert_allclose(scaler.forward(y).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(scaler.forward(y)), y)
    with pytest.raises(DataError, match="constant"):
        targets.Scaler.fit(np.array([[2.0], [2.0]]))


def test_a_regression_comparison_ranks_by_mae_and_tests_pairs_by_paired_bootstrap(tmp_path):
    """Two runs' results.json and predictions.csv as 03_evaluate writes them, through compare_dataset."""
    from helpers.compare import views
    from helpers.compare.stage import compare_dataset
    from helpers.core.io import write_json

    rng = np.random.default_rng(4)
    truth = rng.integers(1, 6, 300).astype(float)
    for model, noise in (("close", 0.3), ("far", 1.2)):
        guess = truth + rng.normal(scale=noise, size=truth.shape)
        folder = tmp_path / model
        folder.mkdir()
        pd.DataFrame({"example": np.arange(300), "true_rating": truth, "pred_rating": guess}).to_csv(
            folder / "predictions.csv", index=False)
        scores = label_metrics.regression_metrics(truth[:, None], guess[:, None], ["rating"])
        write_json(folder / "results.json", {
            "model_name": model, "seed": 1, "label_type": "regression", "mae": scores["mae"], "r2": scores["r2"],
            "latency_median_ms": 10.0, "throughput_samples_per_sec": 5.0, "training_time_hours": 0.1,
            "trainable_params": 10, "data_fingerprint": "same",
            "quality": {"labels": ["rating"], "label_type": "regression",
                        **label_metrics.bootstrap_cis(truth[:, None], guess[:, None], ("mae", "r2")),
                        "baselines": {"train_mean": {"mae": 1.2}}}})
    found = compare_dataset(tmp_path)
    assert found.ranked["model"].tolist() == ["close", "far"]
    row = found.pairwise.iloc[0]
    assert row["metric"] == "mae" and row["significant"] and row["p_holm"] < 0.01
    assert (row["difference"] < 0) == (row["model_a"] == "close")
    table = views.summary(found.ranked)
    assert {"MAE", "R²", "training-mean baseline MAE"} <= set(table.columns)
    assert "p (paired bootstrap)" in views.pairwise_view(found.pairwise).columns


class _Classifier(torch.nn.Module):
    """A model whose head is a linear `classifier`, as an encoder's sequence classifier."""

    def __init__(self, features: int, outputs: int):
        super().__init__()
        self.classifier = torch.nn.Linear(features, outputs)


def test_the_probe_start_recovers_a_linear_regression_and_skips_a_label_without_positives():
    from helpers.labels import probe

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6))
    weight = np.array([[1.0, -2.0, 0.5, 0.0, 0.0, 3.0]])
    y = x @ weight.T + 0.7
    model = _Classifier(6, 1)
    fit = probe.fit_head(model, x, y, "regression", seed=0)
    assert fit["probe_train_r2"] > 0.99
    np.testing.assert_allclose(model.classifier.weight.detach().numpy(), weight, atol=0.05)
    assert float(model.classifier.bias) == pytest.approx(0.7, abs=0.05)
    labels = np.column_stack([(x[:, 0] > 0), np.zeros(400)]).astype(int)  # label 1 never occurs
    model = _Classifier(6, 2)
    probe.fit_head(model, x, labels, "multi", seed=0)
    assert model.classifier.weight[0, 0] > 1 and float(model.classifier.weight[1].abs().sum()) == 0
    assert float(model.classifier.bias[1]) < -5


def test_the_apis_prediction_schema_takes_multi_label_and_regression_rows():
    """POST /predict returns what LabelRules.decide gives for a multi-label or regression adapter."""
    from helpers.labels.rules import LabelRules
    from helpers.serve.schemas import Prediction

    multi = LabelRules("multi", ["joy", "anger"], thresholds=np.array([0.5, 0.3]), set_q_hat=0.8)
    row = Prediction(**multi.decide(np.array([[0.6, 0.1]]))[0])
    assert row.labels == ["joy"] and row.label_set == ["joy"] and row.label is None
    regression = LabelRules("regression", ["rating"], mean=np.array([4.0]), std=np.array([1.0]),
                            interval_q_hat=np.array([0.5]))
    row = Prediction(**regression.decide(np.array([[0.5]]))[0])
    assert row.prediction == {"rating": 4.5} and row.interval == {"rating": [4.0, 5.0]}
