"""Evaluation depth in one call: calibration, recalibration, selective prediction, conformal
sets, cost-sensitive decisions and per-group quality, as flat JSON-ready keys for results.json.

Which split does what, so no number is fitted on the examples it is measured on:
- validation: fits the recalibration (a temperature, and with `bias_temperature` per-class biases
  that move the decision threshold) and picks the selective-prediction threshold;
- calibration: calibrates the conformal q-hat (it must be disjoint from validation and test,
  or the coverage guarantee is lost);
- test: every reported number.
ECE, MCE, Brier and NLL read the network's own probabilities (`*_recalibrated` the recalibrated
ones); everything that decides (the prediction, selective prediction, AURC, conformal sets, cost
decisions, per-group quality) reads the recalibrated probabilities, the `prob_*` columns of
predictions.csv.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from helpers.config import EvaluationConfig
from helpers.evaluate import calibration, conformal, quality, selective
from helpers.evaluate.calibration import check_probabilities

APS_RANDOMIZED = True  # exact coverage; the deterministic variant is uninformative on two classes (conformal.py)


def calibration_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """ECE (equal-width bins), Brier and NLL: the probability-quality triple, e.g. for a base-model baseline."""
    return {"ece": calibration.ece(y, p, n_bins), "brier": calibration.brier(y, p), "nll": calibration.nll(y, p)}


def _finite(value: float) -> float | None:
    """JSON has no infinity; an infinite q-hat means every set holds every label."""
    return value if math.isfinite(value) else None


def _conformal_keys(prefix: str, outcome: conformal.ConformalOutcome) -> dict[str, Any]:
    return {
        f"{prefix}_qhat": _finite(outcome.qhat),
        f"{prefix}_coverage": outcome.metrics.coverage,
        f"{prefix}_set_size": outcome.metrics.set_size,
        f"{prefix}_singleton_share": outcome.metrics.singleton_share,
        f"{prefix}_empty_share": outcome.metrics.empty_share,
    }


def uncertainty_report(y_val: np.ndarray, p_val: np.ndarray, y_cal: np.ndarray, p_cal: np.ndarray,
                       y_test: np.ndarray, p_test: np.ndarray, cfg: EvaluationConfig,
                       groups_test: np.ndarray | None = None, label_ids: list[int] | None = None,
                       recalibration: calibration.Recalibration | None = None) -> dict[str, Any]:
    """Every uncertainty number of one model on one test split (see the module docstring for which
    split is used where). Labels are int ids 0..k-1, probabilities (n, k) arrays of the network in
    label-id order; `recalibration` is fitted on validation when not given; `groups_test` (one group
    name per test example) adds `per_group`."""
    y_val, p_val = check_probabilities(y_val, p_val)
    y_cal, p_cal = check_probabilities(y_cal, p_cal)
    y_test, p_test = check_probabilities(y_test, p_test)
    n_classes = p_test.shape[1]
    if not p_val.shape[1] == p_cal.shape[1] == n_classes:
        raise ValueError(f"validation, calibration and test probabilities have different numbers of classes: "
                         f"{p_val.shape[1]}, {p_cal.shape[1]}, {n_classes}")
    label_ids = list(range(n_classes)) if label_ids is None else list(label_ids)
    if label_ids != list(range(n_classes)):
        raise ValueError(f"label_ids must be 0..{n_classes - 1} in the probability columns' order, got {label_ids}")
    bins = cfg.ece_bins

    fitted = recalibration or calibration.fit_recalibration(y_val, p_val, cfg.recalibration)
    decide_val, decide_cal, decide_test = (calibration.recalibrate(p, fitted) for p in (p_val, p_cal, p_test))

    threshold = selective.threshold_for_accuracy(y_val, decide_val, cfg.target_accuracy)
    chosen = selective.apply_threshold(y_test, decide_test, threshold, cfg.target_accuracy)
    lac = conformal.split_conformal(y_cal, decide_cal, y_test, decide_test, cfg.conformal_alpha, "lac")
    aps = conformal.split_conformal(y_cal, decide_cal, y_test, decide_test, cfg.conformal_alpha, "aps",
                                    randomized=APS_RANDOMIZED)
    costs = selective.cost_outcome(y_test, decide_test, cfg.cost_matrix, cfg.abstain_cost)

    report: dict[str, Any] = {
        "ece_bins": bins,
        "ece": calibration.ece(y_test, p_test, bins),
        "ece_equal_mass": calibration.ece(y_test, p_test, bins, "equal_mass"),
        "ece_classwise": calibration.classwise_ece(y_test, p_test, bins),
        "mce": calibration.mce(y_test, p_test, bins),
        "brier": calibration.brier(y_test, p_test),
        "nll": calibration.nll(y_test, p_test),
        "recalibration": fitted.method,
        "temperature": fitted.temperature,
        "class_bias": list(fitted.bias),
        "ece_recalibrated": calibration.ece(y_test, decide_test, bins),
        "nll_recalibrated": calibration.nll(y_test, decide_test),
        "brier_recalibrated": calibration.brier(y_test, decide_test),
        "aurc": selective.aurc(y_test, decide_test),
        "selective_target_accuracy": chosen.target_accuracy,
        "selective_target_reached": chosen.reached,
        "selective_threshold": chosen.threshold,
        "selective_coverage": chosen.coverage,
        "selective_accuracy": chosen.accuracy,
        "conformal_alpha": cfg.conformal_alpha,
        "conformal_calibration_examples": len(y_cal),
        **_conformal_keys("conformal", lac),
        **_conformal_keys("conformal_aps", aps),
        "conformal_aps_randomized": APS_RANDOMIZED,
        "abstain_cost": cfg.abstain_cost,
        "expected_cost": costs.expected_cost,
        "expected_cost_argmax": costs.expected_cost_argmax,
        "abstain_share": costs.abstain_share,
    }
    if groups_test is not None:
        table = quality.group_metrics(y_test, decide_test.argmax(axis=1), groups_test, label_ids,
                                      cfg.min_group_size, probabilities=decide_test)
        report["per_group"] = {"min_group_size": cfg.min_group_size, **quality.group_summary(table)}
    return report
