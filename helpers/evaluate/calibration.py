"""Calibration: does a model's stated confidence match how often it is right?

Accuracy says how often a model is right; calibration says whether its probabilities can be
used as probabilities (to abstain, to weigh costs, to build prediction sets). Probabilities are
(n, k) arrays whose rows sum to 1, labels are int ids 0..k-1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.metrics import brier_score_loss, log_loss

from helpers.config import RECALIBRATIONS

STRATEGIES = ("equal_width", "equal_mass")
TEMPERATURE_BOUNDS = (0.01, 100.0)
BIAS_BOUND = 10.0  # odds of e^10 between classes: a bias beyond it only says validation was separable
SUM_TOLERANCE = 1e-3  # probabilities read back from CSV or computed in float32 sum to 1 only roughly
PROBABILITY_FLOOR = float(np.finfo(np.float32).tiny)  # a 0 from a float32 softmax was at most this small


def check_probabilities(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int ids and probabilities as float64 rows renormalized to sum to 1; reject
    shapes, ids or rows that cannot be class probabilities, so a wrong column order fails loudly."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be an (n, k) array with k >= 2 classes, got shape {p.shape}")
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels must be a vector of {p.shape[0]} ids, got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("no examples")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must be int ids 0..{p.shape[1] - 1}")
    sums = p.sum(axis=1)
    if (p < 0).any() or np.abs(sums - 1).max() > SUM_TOLERANCE:
        raise ValueError("each row of probabilities must be non-negative and sum to 1")
    return y.astype(np.int64), p / sums[:, None]


def bin_ids(scores: np.ndarray, n_bins: int, strategy: str = "equal_width") -> np.ndarray:
    """Bin of each score: equal-width bins over [0, 1] or equal-mass bins at the scores' quantiles
    (tied scores share a bin, so there can be fewer than n_bins). Bins are [low, high), the last closed."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if strategy == "equal_width":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "equal_mass":
        edges = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1)))
    else:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    return np.searchsorted(edges[1:-1], scores, side="right")


def _binned_gaps(scores: np.ndarray, hits: np.ndarray, n_bins: int, strategy: str) -> pd.DataFrame:
    """Per non-empty bin: mean score, mean hit rate, count."""
    bins = bin_ids(scores, n_bins, strategy)
    frame = pd.DataFrame({"bin": bins, "confidence": scores, "accuracy": hits.astype(float)})
    table = frame.groupby("bin").agg(confidence=("confidence", "mean"), accuracy=("accuracy", "mean"),
                                     count=("accuracy", "size"))
    return table.reset_index()


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = 15, strategy: str = "equal_width") -> pd.DataFrame:
    """Reliability-diagram data of the top label: per non-empty bin the mean confidence, the
    accuracy and the number of examples (columns bin, confidence, accuracy, count)."""
    y, p = check_probabilities(y, p)
    return _binned_gaps(p.max(axis=1), p.argmax(axis=1) == y, n_bins, strategy)


def reliability_ece(table: pd.DataFrame) -> float:
    """ECE from reliability-diagram data: the count-weighted mean |accuracy - confidence|."""
    return float(np.sum(table["count"] * np.abs(table["accuracy"] - table["confidence"])) / table["count"].sum())


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15, strategy: str = "equal_width") -> float:
    """Top-label expected calibration error: the count-weighted mean |accuracy - confidence| over
    bins. Equal-mass bins keep every bin populated where confidences crowd near 1."""
    return reliability_ece(reliability(y, p, n_bins, strategy))


def mce(y: np.ndarray, p: np.ndarray, n_bins: int = 15, strategy: str = "equal_width") -> float:
    """Maximum calibration error: the worst bin's |accuracy - confidence|, for high-stakes reading."""
    table = reliability(y, p, n_bins, strategy)
    return float(np.abs(table["accuracy"] - table["confidence"]).max())


def classwise_ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15, strategy: str = "equal_width") -> float:
    """ECE of every class's own probability against that class's frequency, averaged over classes:
    catches miscalibration of the non-top classes that top-label ECE never looks at."""
    y, p = check_probabilities(y, p)
    return float(np.mean([reliability_ece(_binned_gaps(p[:, j], y == j, n_bins, strategy))
                          for j in range(p.shape[1])]))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Multi-class Brier score: squared error against the one-hot label summed over classes and
    averaged over examples, in [0, 2] for every k (for two classes twice the positive-class Brier)."""
    y, p = check_probabilities(y, p)
    return float(brier_score_loss(y, p, labels=np.arange(p.shape[1]), scale_by_half=False))


def nll(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (natural log), the loss temperature scaling minimizes."""
    y, p = check_probabilities(y, p)
    return float(log_loss(y, p, labels=np.arange(p.shape[1])))


def log_probabilities(p: np.ndarray) -> np.ndarray:
    """log p, with zeros floored: these are logits up to a per-row constant that softmax ignores,
    so temperature scaling fitted on probabilities equals fitting on the model's logits."""
    return np.log(np.maximum(p, PROBABILITY_FLOOR))


def fit_temperature(y: np.ndarray, p: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature T minimizing validation NLL of softmax(log p / T), by L-BFGS-B on log T
    (T > 1 softens an over-confident model, T < 1 sharpens an under-confident one)."""
    y, p = check_probabilities(y, p)
    logits = log_probabilities(p)
    true_logit = logits[np.arange(len(y)), y]

    def loss_and_grad(log_t: np.ndarray) -> tuple[float, np.ndarray]:
        inverse = np.exp(-log_t[0])
        scaled = logits * inverse
        log_q = log_softmax(scaled, axis=1)
        loss = float(np.mean(-log_q[np.arange(len(y)), y]))
        d_inverse = np.mean(np.sum(np.exp(log_q) * logits, axis=1) - true_logit)
        return loss, np.array([-inverse * d_inverse])

    result = minimize(loss_and_grad, x0=np.zeros(1), jac=True, method="L-BFGS-B",
                      bounds=[(np.log(bounds[0]), np.log(bounds[1]))])
    return float(np.exp(result.x[0]))


@dataclass(frozen=True)
class Recalibration:
    """softmax(log p / temperature + bias), fitted on held-out data. With a bias (bias-corrected
    temperature scaling, Alexandari et al. 2020) it also moves the decision threshold: a short
    fine-tune often leans to one class by a margin that changes from run to run."""
    method: str
    temperature: float
    bias: tuple[float, ...]  # per class, the first fixed at 0


def fit_recalibration(y: np.ndarray, p: np.ndarray, method: str = "bias_temperature") -> Recalibration:
    """Temperature (and, for bias_temperature, per-class biases) minimizing the NLL of the true
    labels, jointly by L-BFGS-B on (log T, bias) within bounds."""
    if method not in RECALIBRATIONS:
        raise ValueError(f"recalibration must be one of {RECALIBRATIONS}, got {method!r}")
    y, p = check_probabilities(y, p)
    n_classes = p.shape[1]
    if method == "temperature":
        return Recalibration(method, fit_temperature(y, p), (0.0,) * n_classes)
    logits, rows = log_probabilities(p), np.arange(len(y))
    onehot = np.eye(n_classes)[y]

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        inverse, bias = np.exp(-theta[0]), np.concatenate([[0.0], theta[1:]])
        log_q = log_softmax(logits * inverse + bias, axis=1)
        d_scores = (np.exp(log_q) - onehot) / len(y)
        grad = np.concatenate([[-inverse * np.sum(d_scores * logits)], d_scores.sum(axis=0)[1:]])
        return float(-log_q[rows, y].mean()), grad

    bounds = [tuple(np.log(TEMPERATURE_BOUNDS))] + [(-BIAS_BOUND, BIAS_BOUND)] * (n_classes - 1)
    result = minimize(loss_and_grad, x0=np.zeros(n_classes), jac=True, method="L-BFGS-B", bounds=bounds)
    return Recalibration(method, float(np.exp(result.x[0])), (0.0, *map(float, result.x[1:])))


def recalibrate(p: np.ndarray, recalibration: Recalibration) -> np.ndarray:
    """Probabilities after a fitted recalibration; their argmax is the decision."""
    p = np.asarray(p, dtype=np.float64)
    if len(recalibration.bias) != p.shape[1]:
        raise ValueError(f"recalibration has {len(recalibration.bias)} class biases, probabilities {p.shape[1]} classes")
    scores = log_probabilities(p) / recalibration.temperature + np.asarray(recalibration.bias)
    return softmax(scores, axis=1)
