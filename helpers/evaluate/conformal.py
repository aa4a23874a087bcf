"""Split conformal prediction: label sets that contain the true label with probability >= 1 - alpha.

The guarantee needs no calibrated model, only calibration examples exchangeable with the test
examples and unused for anything else; a better model buys smaller sets, not more coverage.
Two scores: LAC (1 - p_true; the smallest sets on average) and APS (the probability mass of
every label at least as likely as the true one; sets that grow where the model is unsure).

APS is randomized by default (Romano et al., 2020): each example's own label mass counts with a
uniform draw, which makes coverage exact instead of conservative. The draws come from a fixed
seed, so the sets are reproducible. The deterministic variant (`randomized=False`: calibrated on
the mass including the true label, a set keeps labels while the mass before them is at most
q-hat) is never empty but so conservative that with two classes and under 1 - alpha accuracy
every set holds both labels, which says nothing. LAC and randomized APS may give an empty set
where the model is surer than q-hat requires; it counts as a miss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from helpers.evaluate.calibration import check_probabilities

METHODS = ("lac", "aps")


def lac_scores(p: np.ndarray) -> np.ndarray:
    """Score of every candidate label: 1 - its probability."""
    return 1.0 - np.asarray(p, dtype=np.float64)


def aps_scores(p: np.ndarray, u: np.ndarray | float = 0.0) -> np.ndarray:
    """Score of every candidate label: the total probability of the labels ranked at or above it,
    minus u times its own probability (u = 0: mass including the label, u = 1: mass before it,
    uniform draws per example: randomized APS)."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, axis=1, kind="stable")
    cumulative = np.take_along_axis(np.cumsum(np.take_along_axis(p, order, axis=1), axis=1),
                                    np.argsort(order, axis=1), axis=1)
    return cumulative - np.reshape(u, (-1, 1)) * p


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n + 1)(1 - alpha))-th smallest calibration score, the finite-sample correction that
    makes coverage >= 1 - alpha hold exactly; +inf (every label in every set) when n is too small."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((len(scores) + 1) * (1 - alpha))
    return float(scores[rank - 1]) if rank <= len(scores) else math.inf


def score_matrix(p: np.ndarray, method: str, for_sets: bool, randomized: bool = True, seed: int = 0) -> np.ndarray:
    """(n, k) scores of every label under `method` ("lac" or "aps"); deterministic APS scores the
    calibration labels with their own mass included and the candidate set labels without it."""
    if method == "lac":
        return lac_scores(p)
    if method == "aps":
        u = np.random.default_rng(seed).uniform(size=len(p)) if randomized else float(for_sets)
        return aps_scores(p, u)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def calibrate(y_cal: np.ndarray, p_cal: np.ndarray, alpha: float, method: str = "lac",
              randomized: bool = True, seed: int = 0) -> float:
    """q-hat from the true labels' scores on the calibration split."""
    y_cal, p_cal = check_probabilities(y_cal, p_cal)
    scores = score_matrix(p_cal, method, False, randomized, seed)
    return conformal_quantile(scores[np.arange(len(y_cal)), y_cal], alpha)


def prediction_sets(p: np.ndarray, qhat: float, method: str = "lac", randomized: bool = True,
                    seed: int = 1) -> np.ndarray:
    """Boolean (n, k) membership: label j is in example i's set when its score is at most q-hat.
    The randomized APS draws must be independent of the calibration draws, hence another seed."""
    return score_matrix(p, method, True, randomized, seed) <= qhat


@dataclass(frozen=True)
class SetMetrics:
    coverage: float  # share of examples whose set holds the true label
    set_size: float  # mean number of labels per set
    singleton_share: float  # share of sets with exactly one label: a confident, usable answer
    empty_share: float


def set_metrics(y: np.ndarray, sets: np.ndarray) -> SetMetrics:
    """Empirical coverage, mean set size, and the shares of singleton and empty sets."""
    y = np.asarray(y)
    sets = np.asarray(sets, dtype=bool)
    sizes = sets.sum(axis=1)
    return SetMetrics(float(np.mean(sets[np.arange(len(y)), y])), float(sizes.mean()),
                      float(np.mean(sizes == 1)), float(np.mean(sizes == 0)))


@dataclass(frozen=True)
class ConformalOutcome:
    method: str
    alpha: float
    qhat: float
    sets: np.ndarray
    metrics: SetMetrics


def split_conformal(y_cal: np.ndarray, p_cal: np.ndarray, y_test: np.ndarray, p_test: np.ndarray, alpha: float,
                    method: str = "lac", randomized: bool = True, seed: int = 0) -> ConformalOutcome:
    """Calibrate q-hat on one split, build the test sets, and measure them against the test labels."""
    qhat = calibrate(y_cal, p_cal, alpha, method, randomized, seed)
    y_test, p_test = check_probabilities(y_test, p_test)
    sets = prediction_sets(p_test, qhat, method, randomized, seed + 1)
    return ConformalOutcome(method, alpha, qhat, sets, set_metrics(y_test, sets))
