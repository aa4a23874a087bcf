"""Quality metrics for sentiment predictions, thin wrappers over scikit-learn.

`labels` is always passed explicitly so a class the model never predicts (a common
failure of small fine-tuned models) still counts in the macro averages.
Per-group metrics show who pays for a good average: the worst group and the gap between groups.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, classification_report, confusion_matrix,
                             precision_recall_fscore_support)

from helpers.evaluate import calibration
from helpers.metrics import lower_is_better


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: list[int]) -> dict[str, float]:
    """Accuracy, macro and weighted precision/recall/F1, and balanced accuracy as plain floats."""
    metrics = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average, suffix in (("macro", ""), ("weighted", "_weighted")):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        metrics[f"f1{suffix}"] = float(f1)
        metrics[f"precision{suffix}"] = float(precision)
        metrics[f"recall{suffix}"] = float(recall)
    metrics["balanced_accuracy"] = float(balanced_accuracy_score(y_true, y_pred))
    return metrics


def confusion(y_true: Sequence[int], y_pred: Sequence[int], labels: list[int]) -> np.ndarray:
    """Confusion matrix with rows = true label, columns = predicted label, in `labels` order."""
    return confusion_matrix(y_true, y_pred, labels=labels)


def majority_baseline(y_train: Sequence[int], y_test: Sequence[int], labels: list[int]) -> dict[str, float | int]:
    """Metrics of always predicting the most frequent training class: the floor any model must beat."""
    majority_label = Counter(np.asarray(y_train).tolist()).most_common(1)[0][0]
    y_pred = [majority_label] * len(y_test)
    return {**classification_metrics(y_test, y_pred, labels), "majority_label": int(majority_label)}


def per_class_report(y_true: Sequence[int], y_pred: Sequence[int], label_names: list[str]) -> pd.DataFrame:
    """Per-class precision/recall/F1/support table (plus averages) for reports and notebooks."""
    report = classification_report(
        y_true,
        y_pred,
        labels=list(range(len(label_names))),
        target_names=label_names,
        output_dict=True,
        zero_division=0,
    )
    return pd.DataFrame(report).transpose()


PROBABILITY_METRICS = {"ece": calibration.ece, "brier": calibration.brier, "nll": calibration.nll}


def group_metrics(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence, labels: list[int],
                  min_size: int = 10, probabilities: np.ndarray | None = None) -> pd.DataFrame:
    """Every quality metric per group (ECE, Brier and NLL too when probabilities are given), one row
    per group name (a missing group is the group "nan") with its size `n`; `small` flags groups
    under `min_size`, too noisy to judge."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups).astype(str)
    if not len(y_true) == len(y_pred) == len(groups):
        raise ValueError(f"y_true, y_pred and groups differ in length: {len(y_true)}, {len(y_pred)}, {len(groups)}")
    rows = {}
    for group in pd.unique(groups):
        mask = groups == group
        with warnings.catch_warnings():  # a group without some class is common, not news
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true|A single label")
            quality = classification_metrics(y_true[mask], y_pred[mask], labels)
        row = {"n": int(mask.sum()), "small": bool(mask.sum() < min_size), **quality}
        if probabilities is not None:
            row.update({name: metric(y_true[mask], np.asarray(probabilities)[mask])
                        for name, metric in PROBABILITY_METRICS.items()})
        rows[str(group)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("group")


def group_summary(table: pd.DataFrame) -> dict:
    """JSON-ready per-group record: the metrics of every group large enough to judge, the size of
    each group set aside as small (metrics of a handful of examples are noise, and a dataset grouped
    by product has hundreds), and per metric the worst judged value, its group and the largest gap."""
    judged = table[~table["small"]]
    metric_columns = [c for c in table.columns if c not in {"n", "small"}]
    worst, worst_group, gap = {}, {}, {}
    for column in metric_columns if len(judged) else []:
        values = judged[column].astype(float)
        name = values.idxmax() if lower_is_better(column) else values.idxmin()
        worst[column], worst_group[column] = float(values[name]), str(name)
        gap[column] = float(values.max() - values.min())
    return {
        "groups": {str(g): {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
                   for g, row in judged.drop(columns="small").to_dict(orient="index").items()},
        "small_groups": {str(g): int(n) for g, n in table.loc[table["small"], "n"].items()},
        "worst": worst,
        "worst_group": worst_group,
        "gap": gap,
    }
