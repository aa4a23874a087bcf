"""Quality of multi-label and regression predictions: sklearn and scipy do the scoring; this module
picks the numbers a reader of an emotion or rating study expects and fits the decision thresholds.

Multi-label: micro / macro / samples F1, Hamming loss, subset accuracy, per-label precision, recall,
F1, support, average precision and ROC AUC, label cardinality; each label's sigmoid ECE. Thresholds
per label are fitted on validation (the F1-best of a grid), with one global threshold as the simple
baseline. Regression: R², MAE, RMSE, Pearson and Spearman per target and averaged.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (average_precision_score, f1_score, hamming_loss, mean_absolute_error,
                             mean_squared_error, precision_recall_fscore_support, r2_score, roc_auc_score)

from helpers.evaluate.calibration import ece

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def multilabel_metrics(y: np.ndarray, decided: np.ndarray) -> dict[str, float]:
    """The headline numbers of 0/1 decisions (n x L) against the 0/1 truth."""
    y, decided = np.asarray(y, dtype=int), np.asarray(decided, dtype=int)
    scores = {f"{average}_f1": float(f1_score(y, decided, average=average, zero_division=0))
              for average in ("micro", "macro", "samples")}
    return {**scores, "hamming_loss": float(hamming_loss(y, decided)),
            "subset_accuracy": float(np.mean(np.all(y == decided, axis=1))),
            "label_cardinality_true": float(y.sum(axis=1).mean()),
            "label_cardinality_predicted": float(decided.sum(axis=1).mean())}


def per_label(y: np.ndarray, scores: np.ndarray, decided: np.ndarray, labels: list[str], n_bins: int) -> dict:
    """Per label: precision, recall, F1 and support of the decisions; average precision and ROC AUC
    of the scores (None where the test split has no positive, or no negative, for it); the ECE of its
    sigmoid as a two-class probability."""
    y = np.asarray(y, dtype=int)
    precision, recall, f1, support = precision_recall_fscore_support(y, decided, average=None, zero_division=0)
    table = {}
    for j, name in enumerate(labels):
        both = 0 < y[:, j].sum() < len(y)
        two_class = np.column_stack([1 - scores[:, j], scores[:, j]])
        table[name] = {"precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j]),
                       "support": int(support[j]),
                       "average_precision": float(average_precision_score(y[:, j], scores[:, j])) if both else None,
                       "roc_auc": float(roc_auc_score(y[:, j], scores[:, j])) if both else None,
                       "ece": ece(y[:, j], two_class, n_bins)}
    return table


def _mean(values) -> float | None:
    found = [v for v in values if v is not None]
    return float(np.mean(found)) if found else None


def ranking_summary(table: dict) -> dict[str, float | None]:
    """Macro averages of the per-label score quality: mean average precision, ROC AUC and ECE."""
    return {"macro_average_precision": _mean(row["average_precision"] for row in table.values()),
            "macro_roc_auc": _mean(row["roc_auc"] for row in table.values()),
            "ece_per_label_mean": _mean(row["ece"] for row in table.values())}


def fit_global_threshold(y: np.ndarray, scores: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> float:
    """One threshold for every label: the grid value with the best micro-F1 on validation."""
    best = max(grid, key=lambda t: (f1_score(y, scores >= t, average="micro", zero_division=0), -abs(t - 0.5)))
    return float(best)


def fit_label_thresholds(y: np.ndarray, scores: np.ndarray, fallback: float,
                         grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """A threshold per label: the grid value with that label's best F1 on validation; a label with
    no positive text in validation keeps `fallback` (the global threshold), since its F1 is 0 at any
    threshold there."""
    y = np.asarray(y, dtype=int)
    thresholds = np.full(y.shape[1], fallback, dtype=np.float64)
    for j in range(y.shape[1]):
        if y[:, j].any():
            thresholds[j] = max(grid, key=lambda t: (f1_score(y[:, j], scores[:, j] >= t, zero_division=0),
                                                     -abs(t - fallback)))
    return thresholds


def prior_baselines(y_train: np.ndarray, y_validation: np.ndarray, y_test: np.ndarray) -> dict[str, dict]:
    """The trivial baselines a multi-label model must beat: the training label frequencies as every
    text's scores, thresholded at the micro-F1-best global threshold fitted on validation (it predicts
    the frequent labels for every text); and the single most frequent training label for every text."""
    frequency = np.asarray(y_train, dtype=float).mean(axis=0)
    prior_val = np.tile(frequency, (len(y_validation), 1))
    threshold = fit_global_threshold(y_validation, prior_val)
    label_frequencies = np.tile(frequency >= threshold, (len(y_test), 1)).astype(int)
    most_frequent = np.zeros_like(y_test, dtype=int)
    most_frequent[:, int(frequency.argmax())] = 1
    return {"label_frequencies": {**multilabel_metrics(y_test, label_frequencies), "threshold": threshold},
            "most_frequent_label": {**multilabel_metrics(y_test, most_frequent), "label": int(frequency.argmax())}}


def regression_metrics(y: np.ndarray, predicted: np.ndarray, targets: list[str]) -> dict:
    """R², MAE, RMSE, Pearson and Spearman per target (`per_target`) and their means over the
    targets at the top; a constant prediction has no correlation (None)."""
    y, predicted = np.atleast_2d(np.asarray(y, dtype=float)), np.atleast_2d(np.asarray(predicted, dtype=float))
    per_target = {}
    for j, name in enumerate(targets):
        truth, guess = y[:, j], predicted[:, j]
        varies = np.ptp(guess) > 0 and np.ptp(truth) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_target[name] = {
                "r2": float(r2_score(truth, guess)), "mae": float(mean_absolute_error(truth, guess)),
                "rmse": float(np.sqrt(mean_squared_error(truth, guess))),
                "pearson": float(pearsonr(truth, guess)[0]) if varies else None,
                "spearman": float(spearmanr(truth, guess)[0]) if varies else None}
    means = {key: _mean(row[key] for row in per_target.values())
             for key in ("r2", "mae", "rmse", "pearson", "spearman")}
    return {**means, "per_target": per_target}


def resample_weights(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """How often each test example is drawn in each bootstrap resample (n_resamples x n): the same
    draws for every model of a comparison, so their differences stay paired."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)


def micro_f1_resampled(y: np.ndarray, decided: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Micro-F1 of every bootstrap resample at once (counts weighted by the draws)."""
    y, decided = np.asarray(y, dtype=bool), np.asarray(decided, dtype=bool)
    tp, fp, fn = ((y & decided).sum(axis=1), (~y & decided).sum(axis=1), (y & ~decided).sum(axis=1))
    tp, fp, fn = weights @ tp, weights @ fp, weights @ fn
    return np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)


def macro_f1_resampled(y: np.ndarray, decided: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 over labels of every bootstrap resample at once (a label absent from a resample and
    never predicted there scores 0, as sklearn's zero_division=0)."""
    y, decided = np.asarray(y, dtype=bool), np.asarray(decided, dtype=bool)
    tp, fp, fn = weights @ (y & decided), weights @ (~y & decided), weights @ (y & ~decided)
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0).mean(axis=1)


def mae_resampled(y: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """MAE (averaged over targets) of every bootstrap resample at once."""
    errors = np.abs(np.atleast_2d(y) - np.atleast_2d(predicted)).mean(axis=1)
    return weights @ errors / weights.sum(axis=1)


def r2_resampled(y: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R² (averaged over targets) of every bootstrap resample at once."""
    y, predicted = np.atleast_2d(y), np.atleast_2d(predicted)
    n = weights.sum(axis=1, keepdims=True)
    residual = weights @ (y - predicted) ** 2
    total = weights @ y ** 2 - (weights @ y) ** 2 / n
    return np.mean(1 - np.divide(residual, total, out=np.full_like(residual, np.nan), where=total > 0), axis=1)


RESAMPLED = {"micro_f1": micro_f1_resampled, "macro_f1": macro_f1_resampled, "mae": mae_resampled,
             "r2": r2_resampled}


def bootstrap_cis(y: np.ndarray, predicted: np.ndarray, keys: tuple[str, ...], n_resamples: int = 1000,
                  seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile bootstrap intervals of the headline metrics (`<key>_ci95`)."""
    weights = resample_weights(len(y), n_resamples, seed)
    return {f"{key}_ci95": [float(v) for v in np.nanpercentile(RESAMPLED[key](y, predicted, weights), [2.5, 97.5])]
            for key in keys}
