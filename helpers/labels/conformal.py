"""Split conformal prediction for multi-label and regression heads: the guarantee of
helpers/evaluate/conformal.py (coverage >= 1 - alpha on exchangeable calibration texts, whatever
the model) for label sets and intervals.

Multi-label: one set of labels per text that holds ALL its true labels with probability >= 1 - alpha.
A text's score is the largest 1 - p over its true labels (the least confident true label must get
in); a label enters a test text's set where 1 - p <= q-hat. A text with no true label is always
covered (score -inf). Regression: absolute residuals per target; the interval is the prediction
± q-hat, in the target's own units (the absolute-residual split conformal interval, constant width).
"""
from __future__ import annotations

import numpy as np

from helpers.evaluate.conformal import conformal_quantile


def label_set_scores(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per text: the largest 1 - p over its true labels (-inf for a text with none)."""
    y = np.asarray(y, dtype=bool)
    return np.where(y, 1.0 - np.asarray(scores, dtype=np.float64), -np.inf).max(axis=1)


def label_sets(y_cal: np.ndarray, scores_cal: np.ndarray, scores_test: np.ndarray, alpha: float
               ) -> tuple[np.ndarray, float]:
    """The test texts' label sets (n x L, 0/1) and q-hat."""
    q_hat = conformal_quantile(label_set_scores(y_cal, scores_cal), alpha)
    return (1.0 - np.asarray(scores_test) <= q_hat).astype(int), float(q_hat)


def label_set_report(y_test: np.ndarray, sets: np.ndarray, q_hat: float, alpha: float) -> dict[str, float]:
    """Coverage (every true label in the set), mean set size and the share of true labels covered."""
    y = np.asarray(y_test, dtype=bool)
    held = np.asarray(sets, dtype=bool)
    return {"conformal_alpha": alpha, "conformal_q_hat": q_hat,
            "conformal_coverage": float(np.mean(np.all(~y | held, axis=1))),
            "conformal_set_size": float(held.sum(axis=1).mean()),
            "conformal_label_recall": float((y & held).sum() / max(int(y.sum()), 1))}


def intervals(y_cal: np.ndarray, predicted_cal: np.ndarray, predicted_test: np.ndarray, alpha: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper bounds per test text and target, and q-hat per target."""
    residuals = np.abs(np.atleast_2d(y_cal) - np.atleast_2d(predicted_cal))
    q_hat = np.array([conformal_quantile(residuals[:, j], alpha) for j in range(residuals.shape[1])])
    return predicted_test - q_hat, predicted_test + q_hat, q_hat


def interval_report(y_test: np.ndarray, lower: np.ndarray, upper: np.ndarray, targets: list[str], alpha: float
                    ) -> dict:
    """Coverage and mean width per target and averaged over targets."""
    y = np.atleast_2d(y_test)
    inside = (y >= lower) & (y <= upper)
    width = upper - lower
    per_target = {name: {"interval_coverage": float(inside[:, j].mean()), "interval_width": float(width[:, j].mean())}
                  for j, name in enumerate(targets)}
    return {"conformal_alpha": alpha, "interval_coverage": float(inside.mean()),
            "interval_width": float(width.mean()), "intervals_per_target": per_target}
