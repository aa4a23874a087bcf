"""Paired tests between the models of a multi-label or regression comparison: McNemar needs one
right/wrong per text, which micro-F1 and MAE are not. Instead, a paired bootstrap of the type's
main metric: the same resamples of the shared test texts score both models, the difference's
distribution gives a 95 % interval and a two-sided p-value, and Holm corrects over the pairs."""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from helpers.labels import metrics as label_metrics
from helpers.labels.targets import read_label_matrix
from helpers.metrics import MAIN_METRIC

PAIRWISE_COLUMNS = ["model_a", "model_b", "metric", "difference", "difference_ci95", "p_value", "p_holm", "significant"]


def run_outputs(run_dir: Path, label_type: str, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A run's test truth and decisions (multi-label: 0/1 matrices) or predictions (regression), in
    test order, from its predictions.csv."""
    predictions = pd.read_csv(run_dir / "predictions.csv", dtype={"labels": str, "predicted": str}
                              ).sort_values("example")
    if label_type == "multi":
        return (read_label_matrix(predictions["labels"], len(labels)),
                read_label_matrix(predictions["predicted"], len(labels)))
    return (predictions[[f"true_{t}" for t in labels]].to_numpy(),
            predictions[[f"pred_{t}" for t in labels]].to_numpy())


def paired_bootstrap(truth: np.ndarray, a: np.ndarray, b: np.ndarray, key: str, n_resamples: int = 2000,
                     seed: int = 0) -> tuple[float, list[float], float]:
    """Model A's metric minus model B's on the same texts; its 95 % interval over paired resamples and
    the two-sided bootstrap p-value of no difference (twice the smaller tail share, at most 1, and at
    least 1 / n_resamples: no resample crossing zero says p is below that, not 0)."""
    scorer = label_metrics.RESAMPLED[key]
    observed = float(scorer(truth, a, np.ones((1, len(truth))))[0] - scorer(truth, b, np.ones((1, len(truth))))[0])
    weights = label_metrics.resample_weights(len(truth), n_resamples, seed)
    differences = scorer(truth, a, weights) - scorer(truth, b, weights)
    tail = min(np.mean(differences <= 0), np.mean(differences >= 0))
    p_value = min(1.0, max(2 * tail, 1.0 / n_resamples))
    return observed, [float(v) for v in np.percentile(differences, [2.5, 97.5])], float(p_value)


def pairwise(dataset_dir: Path, runs: pd.DataFrame, label_type: str, labels: list[str], alpha: float = 0.05,
             seed: int = 0) -> pd.DataFrame:
    """The paired bootstrap of the type's main metric (micro-F1, MAE) for every pair of models of one
    seed (they share the test texts), Holm-corrected."""
    key = MAIN_METRIC[label_type]
    outputs = {model: run_outputs(dataset_dir / run, label_type, labels)
               for model, run in zip(runs["model"], runs["run"], strict=True)}
    rows = []
    for name_a, name_b in combinations(outputs, 2):
        (truth, a), (truth_b, b) = outputs[name_a], outputs[name_b]
        if truth.shape != truth_b.shape or not np.array_equal(truth, truth_b):
            raise ValueError(f"{name_a} and {name_b} were tested on different texts; paired tests need the same "
                             f"dataset, preset and seed for every model")
        difference, ci, p_value = paired_bootstrap(truth, a, b, key, seed=seed)
        rows.append({"model_a": name_a, "model_b": name_b, "metric": key, "difference": difference,
                     "difference_ci95": ci, "p_value": p_value})
    if not rows:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    table = pd.DataFrame(rows)
    reject, p_holm, _, _ = multipletests(table["p_value"], alpha=alpha, method="holm")
    table["p_holm"], table["significant"] = p_holm, reject.astype(bool)
    return table[PAIRWISE_COLUMNS]
