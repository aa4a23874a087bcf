"""Paired significance tests: every model is scored on the same test examples.

Pairing matters: two models at 0.91 and 0.92 accuracy may or may not differ, and only
the examples where exactly one of them is right (McNemar) can tell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

PAIRWISE_COLUMNS = ["model_a", "model_b", "a_only_correct", "b_only_correct", "p_value", "p_holm", "significant"]


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> tuple[int, int, float]:
    """Discordant counts (A-only right, B-only right) and the exact two-sided McNemar p-value."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b differ in length: {a.shape} vs {b.shape}")
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    if a_only + b_only == 0:
        return a_only, b_only, 1.0
    table = [[int(np.sum(a & b)), a_only], [b_only, int(np.sum(~a & ~b))]]
    p_value = float(mcnemar(table, exact=True).pvalue)
    return a_only, b_only, min(p_value, 1.0)


def versus_majority(y_true: Sequence[int], y_pred: Sequence[int], majority_label: int) -> dict[str, float | int]:
    """Exact McNemar of the model against always answering the training majority class on the same
    test examples: whether the margin over that floor is more than the luck of the test sample."""
    y_true = np.asarray(y_true)
    model_only, majority_only, p_value = mcnemar_exact(np.asarray(y_pred) == y_true, y_true == majority_label)
    return {"model_only_correct": model_only, "majority_only_correct": majority_only, "p_value": p_value}


def pairwise_mcnemar(correct: dict[str, np.ndarray], alpha: float = 0.05) -> pd.DataFrame:
    """McNemar for every pair of models, Holm-corrected because many pairs are tested at once."""
    rows = []
    for name_a, name_b in combinations(correct, 2):
        a_only, b_only, p_value = mcnemar_exact(correct[name_a], correct[name_b])
        rows.append(
            {
                "model_a": name_a,
                "model_b": name_b,
                "a_only_correct": a_only,
                "b_only_correct": b_only,
                "p_value": p_value,
            }
        )
    if not rows:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    table = pd.DataFrame(rows)
    reject, p_holm, _, _ = multipletests(table["p_value"], alpha=alpha, method="holm")
    table["p_holm"] = p_holm
    table["significant"] = reject.astype(bool)
    return table[PAIRWISE_COLUMNS]


def bootstrap_ci(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of `metric`, resampling test examples with their predictions kept paired."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cannot bootstrap an empty test set")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(y_true), size=(n_resamples, len(y_true)))
    scores = np.array([metric(y_true[idx], y_pred[idx]) for idx in indices], dtype=float)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(scores, [tail, 1.0 - tail])
    return float(low), float(high)


def quality_cis(
    y_true: Sequence[int], y_pred: Sequence[int], labels: list[int], n_resamples: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95% bootstrap intervals for accuracy and macro F1, the two headline quality numbers."""

    def macro_f1(t: np.ndarray, p: np.ndarray) -> float:
        return f1_score(t, p, labels=labels, average="macro", zero_division=0)

    return {
        "accuracy_ci95": list(bootstrap_ci(y_true, y_pred, accuracy_score, n_resamples, 0.95, seed)),
        "f1_ci95": list(bootstrap_ci(y_true, y_pred, macro_f1, n_resamples, 0.95, seed)),
    }
