"""Composite ranking of models across quality, speed and memory metrics.

Metrics live on different scales and directions, so each is min-max normalized to [0, 1] with 1
always best (the direction comes from the metric registry, helpers/metrics.py) before the
weighted sum; the ranking is then checked against paired significance tests so neighbours that do
not really differ are flagged.
"""
from __future__ import annotations

import pandas as pd

from helpers.metrics import MAIN_METRIC, SECOND_METRIC, lower_is_better

DEFAULT_WEIGHTS = {"accuracy": 0.3, "f1": 0.3, "throughput_samples_per_sec": 0.2, "latency_median_ms": 0.2}


def default_weights(label_type: str = "single") -> dict[str, float]:
    """The default weights with a label type's two headline metrics in place of accuracy and F1."""
    first, second = MAIN_METRIC[label_type], SECOND_METRIC[label_type]
    return {first: 0.3, second: 0.3, "throughput_samples_per_sec": 0.2, "latency_median_ms": 0.2}


def normalize(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Min-max scale each column across models to [0, 1], inverted where lower is better."""
    normalized = pd.DataFrame(index=df.index)
    for column in columns:
        values = pd.to_numeric(df[column], errors="coerce").astype(float)
        low, high = values.min(), values.max()
        if pd.isna(high) or high == low:
            scaled = values.where(values.isna(), 1.0)
        elif lower_is_better(column):
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
