"""Composite ranking of models across quality, speed and memory metrics.

Metrics live on different scales and directions, so each is min-max normalized to
[0, 1] with 1 always best before the weighted sum; the ranking is then checked
against paired significance tests so neighbours that do not really differ are flagged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.io import read_json

DEFAULT_WEIGHTS = {"accuracy": 0.3, "f1": 0.3, "throughput_samples_per_sec": 0.2, "latency_median_ms": 0.2}
LOWER_IS_BETTER = {
    "latency_median_ms",
    "latency_p99_ms",
    "ttft_mean_ms",
    "peak_rss_mb",
    "memory_allocated_mb",
    "training_time_hours",
    "trainable_params",
    "ece",
    "brier",
    "nll",
}


def normalize(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Min-max scale each column across models to [0, 1], inverted where lower is better."""
    normalized = pd.DataFrame(index=df.index)
    for column in columns:
        values = pd.to_numeric(df[column], errors="coerce").astype(float)
        low, high = values.min(), values.max()
        if pd.isna(high) or high == low:
            scaled = values.where(values.isna(), 1.0)
        elif column in LOWER_IS_BETTER:
            scaled = (high - values) / (high - low)
        else:
            scaled = (values - low) / (high - low)
        normalized[column] = scaled
    return normalized


def check_weights(df: pd.DataFrame, weights: dict[str, float]) -> dict[str, float]:
    """Reject weights that would silently produce a meaningless score; return them summing to 1."""
    missing = [column for column in weights if column not in df.columns]
    if missing:
        raise ValueError(f"weighted column {missing[0]!r} not in results; available columns: {sorted(df.columns)}")
    negative = {column: weight for column, weight in weights.items() if weight < 0}
    if negative:
        raise ValueError(f"weights must be non-negative, got {negative}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("weights must sum to a positive number")
    return {column: weight / total for column, weight in weights.items()}


def rank_models(df: pd.DataFrame, weights: dict[str, float] | None = None) -> pd.DataFrame:
    """Weighted sum of normalized metrics per model, ranked 1 = best (a missing metric scores 0)."""
    weights = check_weights(df, DEFAULT_WEIGHTS if weights is None else weights)
    normalized = normalize(df, list(weights))
    ranked = df.copy()
    ranked["score"] = 0.0
    for column, weight in weights.items():
        ranked[f"norm_{column}"] = normalized[column]
        ranked["score"] += weight * normalized[column].fillna(0.0)
    ranked["rank"] = ranked["score"].rank(ascending=False, method="min").astype(int)
    return ranked.sort_values("rank", kind="stable").reset_index(drop=True)


def mark_ties(ranked: pd.DataFrame, pairwise: pd.DataFrame) -> pd.DataFrame:
    """Flag neighbours in the ranking whose McNemar difference is not significant.

    Only pairs present in `pairwise` can be called tied; a pair that was never tested is left unmarked.
    """
    not_significant = {
        frozenset((row.model_a, row.model_b)) for row in pairwise.itertuples() if not bool(row.significant)
    }
    marked = ranked.sort_values("rank", kind="stable").reset_index(drop=True)
    names = marked["model"].tolist()
    tied: list[list[str]] = [[] for _ in names]
    for position in range(len(names) - 1):
        upper, lower = names[position], names[position + 1]
        if frozenset((upper, lower)) in not_significant:
            tied[position].append(lower)
            tied[position + 1].append(upper)
    marked["tied_with"] = [", ".join(neighbours) for neighbours in tied]
    return marked


SUMMARY_COLUMNS = [
    "accuracy", "accuracy_ci95", "f1", "f1_ci95", "precision", "recall", "baseline_accuracy",
    "latency_median_ms", "latency_p99_ms", "ttft_mean_ms", "throughput_samples_per_sec",
    "throughput_tokens_per_sec", "peak_rss_mb", "memory_allocated_mb", "training_time_hours",
    "trainable_params", "total_params",
]


def results_table(results: list[dict]) -> pd.DataFrame:
    """One row per run from the runs' results.json, with the majority baseline beside each."""
    rows = []
    for r in results:
        row = {"model": r["model_name"], **{k: r.get(k) for k in SUMMARY_COLUMNS}}
        row["accuracy_ci95"] = r["quality"]["accuracy_ci95"]
        row["f1_ci95"] = r["quality"]["f1_ci95"]
        row["baseline_accuracy"] = r["quality"]["baseline_majority"]["accuracy"]
        row["data_fingerprint"] = r["data_fingerprint"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", *SUMMARY_COLUMNS, "data_fingerprint"])


def correctness(dataset_dir: Path, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-example right/wrong of each model on the shared test split (for paired tests)."""
    if table["data_fingerprint"].nunique() > 1:
        raise ValueError("the runs were evaluated on different test splits (data fingerprints differ); "
                         "paired tests need the same dataset, preset and seed for every model")
    correct = {}
    for model in table["model"]:
        predictions = pd.read_csv(dataset_dir / model / "predictions.csv").sort_values("example")
        correct[model] = (predictions["label"] == predictions["prediction"]).to_numpy()
    return correct


def summary(ranked: pd.DataFrame) -> pd.DataFrame:
    """The report's opening table: rank, score, ties, quality with CIs next to the majority
    baseline, speed and cost, rounded for reading."""
    def ci(pair) -> str:
        return f"[{pair[0]:.3f}, {pair[1]:.3f}]" if isinstance(pair, (list, tuple)) else ""

    view = pd.DataFrame({
        "rank": ranked["rank"],
        "model": ranked["model"],
        "score": ranked["score"].round(3),
        "accuracy": ranked["accuracy"].round(3),
        "accuracy 95% CI": ranked["accuracy_ci95"].map(ci),
        "F1 (macro)": ranked["f1"].round(3),
        "F1 95% CI": ranked["f1_ci95"].map(ci),
        "majority baseline": ranked["baseline_accuracy"].round(3),
        "latency median (ms)": ranked["latency_median_ms"].round(1),
        "latency P99 (ms)": ranked["latency_p99_ms"].round(1),
        "samples/s": ranked["throughput_samples_per_sec"].round(2),
        "peak RSS (MB)": ranked["peak_rss_mb"].round(0),
        "training (min)": (ranked["training_time_hours"] * 60).round(2),
        "trainable params": ranked["trainable_params"],
    })
    if "tied_with" in ranked:
        view.insert(3, "not significantly different from", ranked["tied_with"])
    return view.set_index("rank")


def collect_runs(dataset_dir: Path) -> tuple[list[dict], list[dict]]:
    """Results and failures of every run under one dataset of a study."""
    results, failures = [], []
    for run_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
        if (run_dir / "failed.json").exists():
            failures.append({"run": run_dir.name, **read_json(run_dir / "failed.json")})
        elif (run_dir / "results.json").exists():
            results.append(read_json(run_dir / "results.json"))
    return results, failures

