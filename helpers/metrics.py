"""Quality metrics for sentiment predictions, thin wrappers over scikit-learn.

`labels` is always passed explicitly so a class the model never predicts (a common
failure of small fine-tuned models) still counts in the macro averages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)


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
