"""Selective prediction: answer only when confident enough, or when answering is cheaper than
abstaining.

A model that is right 80 % of the time overall may be right 95 % of the time on the half of the
examples it is surest about; the risk-coverage curve shows that trade, and a threshold picked on
validation data turns it into a rule for new examples. With a cost matrix the rule comes from
the (calibrated) probabilities instead: answer with the class of least expected cost, or abstain
when even that costs more than handing the example to a person.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.evaluate.calibration import check_probabilities

ABSTAIN = -1


def risk_coverage(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """For every confidence threshold t (accept when confidence >= t), from strictest to loosest:
    the share of examples accepted (coverage), the error rate among them (risk) and their accuracy.
    Tied confidences are accepted together, so the curve does not depend on how ties are ordered."""
    y, p = check_probabilities(y, p)
    confidence = p.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    errors = np.cumsum(p.argmax(axis=1)[order] != y[order])
    last_of_tie = np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True]
    accepted = np.flatnonzero(last_of_tie) + 1
    risk = errors[accepted - 1] / accepted
    return pd.DataFrame({"threshold": sorted_confidence[accepted - 1], "coverage": accepted / len(y),
                         "risk": risk, "accuracy": 1.0 - risk, "accepted": accepted})


def aurc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the risk-coverage step curve (lower is better): the mean selective risk over all
    coverages, i.e. how well the confidence ranks right answers above wrong ones. Without ties it
    equals the usual (1/n) sum over k of the error rate among the k most confident examples."""
    return curve_area(risk_coverage(y, p))


def curve_area(curve: pd.DataFrame) -> float:
    """Area under a risk-coverage step curve as `risk_coverage` returns it."""
    widths = np.diff(np.r_[0.0, curve["coverage"].to_numpy()])
    return float(np.sum(widths * curve["risk"].to_numpy()))


def selective_accuracy(y: np.ndarray, p: np.ndarray, coverage: float) -> float:
    """Accuracy on the most confident examples at the first threshold that accepts at least `coverage`."""
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    curve = risk_coverage(y, p)
    return float(curve.loc[curve["coverage"] >= coverage - 1e-12, "accuracy"].iloc[0])


def threshold_for_accuracy(y: np.ndarray, p: np.ndarray, target_accuracy: float) -> float | None:
    """The lowest confidence threshold (the largest coverage) whose selective accuracy reaches the
    target on these (validation) examples; None when no threshold does."""
    curve = risk_coverage(y, p)
    reached = curve[curve["accuracy"] >= target_accuracy - 1e-12]
    return None if reached.empty else float(reached["threshold"].iloc[-1])


@dataclass(frozen=True)
class SelectiveOutcome:
    target_accuracy: float
    threshold: float | None  # None: no threshold reached the target on validation
    reached: bool
    coverage: float  # share of test examples answered (0 when no threshold)
    accuracy: float | None  # accuracy on the answered test examples; None when none are answered


def apply_threshold(y: np.ndarray, p: np.ndarray, threshold: float | None, target_accuracy: float) -> SelectiveOutcome:
    """Answer the test examples whose confidence is at least the threshold chosen on validation;
    the test accuracy may miss the target, which is the honest measure of how well the choice generalizes."""
    y, p = check_probabilities(y, p)
    if threshold is None:
        return SelectiveOutcome(target_accuracy, None, False, 0.0, None)
    accepted = p.max(axis=1) >= threshold
    accuracy = float(np.mean(p.argmax(axis=1)[accepted] == y[accepted])) if accepted.any() else None
    return SelectiveOutcome(target_accuracy, threshold, True, float(accepted.mean()), accuracy)


def default_cost_matrix(n_classes: int) -> np.ndarray:
    """0 for a right answer, 1 for any wrong one: expected cost is then the error rate."""
    return 1.0 - np.eye(n_classes)


def check_cost_matrix(cost_matrix: np.ndarray | list | None, n_classes: int) -> np.ndarray:
    """A (true class x predicted class) matrix of non-negative costs, the default when None."""
    if cost_matrix is None:
        return default_cost_matrix(n_classes)
    costs = np.asarray(cost_matrix, dtype=np.float64)
    if costs.shape != (n_classes, n_classes):
        raise ValueError(f"cost_matrix must be {n_classes} x {n_classes} (true class x predicted class), "
                         f"got shape {costs.shape}")
    if (costs < 0).any():
        raise ValueError("cost_matrix entries must be non-negative")
    return costs


def bayes_decisions(p: np.ndarray, cost_matrix: np.ndarray, abstain_cost: float) -> np.ndarray:
    """Per example the action of least expected cost under p: the class j minimizing
    sum_i p_i * cost[i, j], or ABSTAIN (-1) when abstain_cost is lower still (ties answer)."""
    p = np.asarray(p, dtype=np.float64)
    expected = p @ np.asarray(cost_matrix, dtype=np.float64)
    best = expected.argmin(axis=1)
    return np.where(abstain_cost < expected.min(axis=1), ABSTAIN, best)


def realized_cost(y: np.ndarray, actions: np.ndarray, cost_matrix: np.ndarray, abstain_cost: float) -> float:
    """Average cost the actions actually incur on labelled examples (an abstention costs abstain_cost)."""
    y = np.asarray(y)
    actions = np.asarray(actions)
    answered = actions != ABSTAIN
    costs = np.full(len(y), float(abstain_cost))
    costs[answered] = np.asarray(cost_matrix)[y[answered], actions[answered]]
    return float(costs.mean())


@dataclass(frozen=True)
class CostOutcome:
    expected_cost: float  # average realized cost of the Bayes-optimal actions
    expected_cost_argmax: float  # average realized cost of always answering with the argmax
    abstain_share: float


def cost_outcome(y: np.ndarray, p: np.ndarray, cost_matrix: np.ndarray | list | None,
                 abstain_cost: float) -> CostOutcome:
    """Bayes-optimal decisions from calibrated probabilities scored against the labels, next to the
    plain argmax: the gap is what calibrated abstention is worth under these costs."""
    y, p = check_probabilities(y, p)
    costs = check_cost_matrix(cost_matrix, p.shape[1])
    actions = bayes_decisions(p, costs, abstain_cost)
    return CostOutcome(realized_cost(y, actions, costs, abstain_cost),
                       realized_cost(y, p.argmax(axis=1), costs, abstain_cost),
                       float(np.mean(actions == ABSTAIN)))
