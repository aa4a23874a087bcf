from __future__ import annotations

import numpy as np
import pytest

from helpers.evaluate.quality import (classification_metrics, confusion, group_metrics, group_summary,
                                      majority_baseline, per_class_report)

METRIC_KEYS = {
    "accuracy",
    "f1",
    "precision",
    "recall",
    "f1_weighted",
    "precision_weighted",
    "recall_weighted",
    "balanced_accuracy",
}


def test_binary_hand_example():
    # class 0: P = R = F1 = 1/2 (support 2); class 1: P = R = F1 = 2/3 (support 3)
    metrics = classification_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], labels=[0, 1])
    assert set(metrics) == METRIC_KEYS
    assert all(type(value) is float for value in metrics.values())
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics["precision"] == pytest.approx(7 / 12)
    assert metrics["recall"] == pytest.approx(7 / 12)
    assert metrics["f1_weighted"] == pytest.approx((2 * 1 / 2 + 3 * 2 / 3) / 5)
    assert metrics["balanced_accuracy"] == pytest.approx(7 / 12)


def test_three_class_hand_example():
    # class 0: P=1, R=1/2; class 1: P=1/2, R=1/2; class 2: P=2/3, R=1
    y_true = [0, 1, 2, 2, 1, 0]
    y_pred = [0, 2, 2, 2, 1, 1]
    metrics = classification_metrics(y_true, y_pred, labels=[0, 1, 2])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    assert metrics["recall"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert metrics["f1"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)
    assert metrics["f1_weighted"] == pytest.approx((2 * 2 / 3 + 2 * 1 / 2 + 2 * 4 / 5) / 6)


def test_class_never_predicted_counts_as_zero():
    # always predicting 0: class 0 has P=1/3, R=1, F1=1/2; classes 1 and 2 score 0
    metrics = classification_metrics([0, 1, 2, 0, 1, 2], [0] * 6, labels=[0, 1, 2])
    assert metrics["f1"] == pytest.approx(0.5 / 3)
    assert metrics["precision"] == pytest.approx((1 / 3) / 3)
    assert metrics["recall"] == pytest.approx(1 / 3)
    assert metrics["balanced_accuracy"] == pytest.approx(1 / 3)


def test_label_absent_from_data_still_averaged():
    two_labels = classification_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], labels=[0, 1])
    three_labels = classification_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], labels=[0, 1, 2])
    assert three_labels["f1"] == pytest.approx(two_labels["f1"] * 2 / 3)
    assert three_labels["accuracy"] == pytest.approx(two_labels["accuracy"])


def test_confusion_keeps_label_order_and_missing_labels():
    cm = confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], labels=[0, 1, 2])
    np.testing.assert_array_equal(cm, [[1, 1, 0], [1, 2, 0], [0, 0, 0]])


def test_majority_baseline_predicts_training_majority():
    baseline = majority_baseline([1, 1, 0, 1, 2], [0, 1, 1, 2], labels=[0, 1, 2])
    assert baseline["majority_label"] == 1
    assert baseline["accuracy"] == pytest.approx(0.5)
    # class 1: P = 1/2, R = 1, F1 = 2/3; others 0
    assert baseline["f1"] == pytest.approx((2 / 3) / 3)
    assert baseline["balanced_accuracy"] == pytest.approx(1 / 3)


def test_majority_baseline_uses_train_not_test_distribution():
    baseline = majority_baseline([0, 0, 0, 1], [1, 1, 1, 0], labels=[0, 1])
    assert baseline["majority_label"] == 0
    assert baseline["accuracy"] == pytest.approx(0.25)


def test_per_class_report_rows_and_values():
    report = per_class_report([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], ["negative", "positive"])
    assert {"negative", "positive", "macro avg", "weighted avg"} <= set(report.index)
    assert report.loc["negative", "f1-score"] == pytest.approx(0.5)
    assert report.loc["positive", "precision"] == pytest.approx(2 / 3)
    assert report.loc["positive", "support"] == 3


def test_per_class_report_includes_unseen_label():
    report = per_class_report([0, 1, 0], [0, 1, 1], ["negative", "neutral", "positive"])
    assert report.loc["positive", "support"] == 0
    assert report.loc["positive", "f1-score"] == 0


def test_group_metrics_by_hand():
    # group a: 3 of 4 right; group b: 1 of 2 right; group c: 1 example, too small to judge
    y_true = [0, 1, 1, 0, 1, 0, 1]
    y_pred = [0, 1, 0, 0, 1, 1, 0]
    groups = ["a", "a", "a", "a", "b", "b", "c"]
    table = group_metrics(y_true, y_pred, groups, labels=[0, 1], min_size=2)
    assert table.loc["a", "n"] == 4 and table.loc["c", "n"] == 1
    assert table["small"].to_dict() == {"a": False, "b": False, "c": True}
    assert table.loc["a", "accuracy"] == pytest.approx(0.75)
    assert table.loc["b", "accuracy"] == pytest.approx(0.5)
    assert table.loc["c", "accuracy"] == pytest.approx(0.0)
    assert set(METRIC_KEYS) <= set(table.columns)
    summary = group_summary(table)
    assert summary["small_groups"] == {"c": 1}
    assert summary["worst_group"]["accuracy"] == "b"  # c is worse but too small to judge
    assert summary["worst"]["accuracy"] == pytest.approx(0.5)
    assert summary["gap"]["accuracy"] == pytest.approx(0.25)
    assert summary["groups"]["a"]["n"] == 4 and set(summary["groups"]) == {"a", "b"}


def test_group_metrics_with_probabilities_judge_lower_is_better_metrics_by_their_maximum():
    y_true = np.array([0, 1, 0, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4]])  # group a confident and right, b wrong
    table = group_metrics(y_true, p.argmax(axis=1), ["a", "a", "b", "b"], [0, 1], min_size=1, probabilities=p)
    summary = group_summary(table)
    assert table.loc["a", "nll"] == pytest.approx(-np.mean(np.log([0.9, 0.8])))
    assert summary["worst_group"]["nll"] == "b" and summary["worst_group"]["brier"] == "b"
    assert summary["worst"]["ece"] == pytest.approx(table["ece"].max())
    assert summary["gap"]["brier"] == pytest.approx(table.loc["b", "brier"] - table.loc["a", "brier"])


def test_group_summary_without_a_group_large_enough():
    table = group_metrics([0, 1], [0, 0], ["a", "b"], [0, 1], min_size=5)
    summary = group_summary(table)
    assert summary["small_groups"] == {"a": 1, "b": 1} and summary["groups"] == {}
    assert summary["worst"] == {} and summary["gap"] == {}
