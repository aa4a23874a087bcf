"""Composite ranking of models across quality, speed and memory metrics.

Metrics live on different scales and directions, so each is min-max normalized to
[0, 1] with 1 always best before the weighted sum; the ranking is then checked
against paired significance tests so neighbours that do not really differ are flagged.
Runs of one model with several seeds are averaged first, and the seed-to-seed spread is shown
beside every difference between models. Calibration, selective prediction, conformal sets,
base-model baselines and per-group numbers are read where a run recorded them (older runs
simply leave those cells empty).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import calibration, selective, significance
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
    "ece_equal_mass",
    "ece_classwise",
    "mce",
    "brier",
    "nll",
    "ece_recalibrated",
    "nll_recalibrated",
    "brier_recalibrated",
    "aurc",
    "conformal_set_size",
    "conformal_aps_set_size",
    "expected_cost",
    "expected_cost_argmax",
    "abstain_share",
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
    "accuracy", "accuracy_ci95", "f1", "f1_ci95", "precision", "recall", "baseline_accuracy", "p_vs_majority",
    "latency_median_ms", "latency_p99_ms", "ttft_mean_ms", "throughput_samples_per_sec",
    "throughput_tokens_per_sec", "peak_rss_mb", "memory_allocated_mb", "training_time_hours",
    "trainable_params", "total_params",
]


UNCERTAINTY_COLUMNS = [
    "ece", "ece_equal_mass", "ece_classwise", "mce", "brier", "nll", "temperature", "ece_recalibrated",
    "nll_recalibrated", "aurc", "selective_target_accuracy", "selective_target_reached", "selective_coverage",
    "selective_accuracy",
    "conformal_alpha", "conformal_coverage", "conformal_set_size", "conformal_singleton_share",
    "conformal_aps_coverage", "conformal_aps_set_size", "expected_cost", "expected_cost_argmax", "abstain_share",
]
GROUP_METRICS = ("accuracy", "f1", "ece")
GROUP_LABELS = {"accuracy": "accuracy", "f1": "F1", "ece": "ECE"}
BASELINE_COLUMN = re.compile(r"^baseline_(?P<setting>.+)_(?P<metric>accuracy|f1|ece|brier|nll)$")
RUN_COLUMNS = ["model", "seed", "run"]
# A mean of p-values is no p-value: over seeds the report shows the weakest seed's.
LARGEST_OVER_SEEDS = {"p_vs_majority"}


def _baseline_columns(quality: dict) -> dict:
    """`baseline_<setting>_<metric>` for every base-model setting a run recorded (e.g. 0-shot)."""
    return {f"baseline_{setting}_{metric}": value
            for setting, values in (quality.get("baseline") or {}).items()
            for metric, value in values.items() if isinstance(value, (int, float))}


def _group_columns(quality: dict) -> dict:
    """Worst group, its value and the largest gap per headline metric, where a run has groups."""
    groups = quality.get("per_group")
    if not groups:
        return {}
    judged = [name for name, row in groups["groups"].items() if not row.get("small")]  # older runs listed all
    columns = {"groups_judged": len(judged), "groups_small": len(groups.get("small_groups", []))}
    for metric in GROUP_METRICS:
        if metric in groups.get("worst", {}):
            columns[f"worst_group_{metric}"] = groups["worst_group"][metric]
            columns[f"worst_{metric}"] = groups["worst"][metric]
            columns[f"gap_{metric}"] = groups["gap"][metric]
    return columns


def results_table(results: list[dict]) -> pd.DataFrame:
    """One row per run from the runs' results.json, with the majority baseline beside each and,
    where recorded, the uncertainty, base-model and per-group numbers."""
    rows = []
    for r in results:
        quality = r.get("quality", {})
        row = {"model": r["model_name"], "seed": r.get("seed"), "run": r.get("run", r["model_name"]),
               **{k: r.get(k) for k in SUMMARY_COLUMNS}}
        row["accuracy_ci95"] = quality.get("accuracy_ci95")
        row["f1_ci95"] = quality.get("f1_ci95")
        row["baseline_accuracy"] = (quality.get("baseline_majority") or {}).get("accuracy")
        row["p_vs_majority"] = (quality.get("vs_majority") or {}).get("p_value")
        row["accuracy_raw_argmax"] = (quality.get("raw_argmax") or {}).get("accuracy")
        row["f1_raw_argmax"] = (quality.get("raw_argmax") or {}).get("f1")
        row.update({k: quality.get(k) for k in UNCERTAINTY_COLUMNS})
        if row["selective_target_reached"] is not None:  # a share of seeds once averaged
            row["selective_target_reached"] = float(row["selective_target_reached"])
        row.update(_baseline_columns(quality))
        row.update(_group_columns(quality))
        row["data_fingerprint"] = r.get("data_fingerprint")
        rows.append(row)
    fixed = [*RUN_COLUMNS, *SUMMARY_COLUMNS, *UNCERTAINTY_COLUMNS, "data_fingerprint"]
    extra = sorted({k for row in rows for k in row} - set(fixed))
    return pd.DataFrame(rows, columns=[*fixed, *extra])


def aggregate_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model: every numeric column averaged over its seeds with `<column>_std` the seed
    standard deviation (NaN with one seed), p-values the largest over seeds; other columns kept
    where the seeds agree."""
    rows = []
    for model, runs in table.groupby("model", sort=False):
        row = {"model": model, "n_seeds": len(runs), "seeds": sorted(runs["seed"].dropna().tolist())}
        for column in table.columns.drop(RUN_COLUMNS):
            values = runs[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                row[column] = values.max() if column in LARGEST_OVER_SEEDS else values.mean()
                row[f"{column}_std"] = values.std(ddof=1)
            elif len(runs) == 1:
                row[column] = values.iloc[0]
            else:
                present = values.dropna().tolist()
                strings = present and all(isinstance(v, str) for v in present)
                row[column] = ", ".join(sorted(set(present))) if strings else None
        rows.append(row)
    return pd.DataFrame(rows)


def seed_differences(table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Every pair of models: the difference of their seed means next to each one's seed std and
    the std of the per-seed paired difference; a difference within the seed noise is not a finding."""
    wide = table.pivot_table(index="seed", columns="model", values=metric, aggfunc="mean")
    rows = []
    models = list(dict.fromkeys(table["model"]))
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            paired = (wide[a] - wide[b]).dropna()
            rows.append({"model_a": a, "model_b": b, "metric": metric,
                         "difference": wide[a].mean() - wide[b].mean(),
                         "seed_std_a": wide[a].std(ddof=1), "seed_std_b": wide[b].std(ddof=1),
                         "paired_difference_std": paired.std(ddof=1), "seeds": len(paired)})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "metric", "difference", "seed_std_a", "seed_std_b",
                                       "paired_difference_std", "seeds"])


def correctness(dataset_dir: Path, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-example right/wrong of each model on the shared test split (for paired tests)."""
    if table["data_fingerprint"].nunique() > 1:
        raise ValueError("the runs were evaluated on different test splits (data fingerprints differ); "
                         "paired tests need the same dataset, preset and seed for every model")
    correct = {}
    for model, run in zip(table["model"], table["run"]):
        predictions = pd.read_csv(dataset_dir / run / "predictions.csv").sort_values("example")
        correct[model] = (predictions["label"] == predictions["prediction"]).to_numpy()
    return correct


def pairwise_by_seed(dataset_dir: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Exact McNemar (Holm-corrected) between the models of each seed: one seed's models share
    the test split, different seeds do not."""
    frames = []
    for seed, runs in table.groupby("seed", sort=True, dropna=False):
        tests = significance.pairwise_mcnemar(correctness(dataset_dir, runs))
        frames.append(tests.assign(seed=seed)[["seed", *significance.PAIRWISE_COLUMNS]])
    if not frames:
        return pd.DataFrame(columns=["seed", *significance.PAIRWISE_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def run_probabilities(run_dir: Path, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities of a run from its predictions.csv, in label order: the
    recalibrated ones the decisions read (`prob_<label>`), or with `raw` the network's own
    (`raw_prob_<label>`; runs recorded before recalibration have only `prob_`, which were raw)."""
    predictions = pd.read_csv(run_dir / "predictions.csv").sort_values("example")
    columns = [c for c in predictions.columns if c.startswith("prob_")]
    raw_columns = [c for c in predictions.columns if c.startswith("raw_prob_")]
    return predictions["label"].to_numpy(), predictions[raw_columns if raw and raw_columns else columns].to_numpy()


def _pooled(dataset_dir: Path, table: pd.DataFrame, raw: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every model's test labels and probabilities (see run_probabilities), its seeds' test splits pooled."""
    pooled = {}
    for model, runs in table.groupby("model", sort=False):
        found = [run_probabilities(dataset_dir / run, raw) for run in runs["run"]
                 if (dataset_dir / run / "predictions.csv").is_file()]
        if found:
            pooled[model] = (np.concatenate([y for y, _ in found]), np.concatenate([p for _, p in found]))
    return pooled


def reliability_curves(dataset_dir: Path, table: pd.DataFrame, n_bins: int = 15) -> dict[str, pd.DataFrame]:
    """Reliability-diagram data per model (equal-width bins) of the network's own probabilities, as
    the ECE column, read from the runs' predictions."""
    return {model: calibration.reliability(y, p, n_bins)
            for model, (y, p) in _pooled(dataset_dir, table, raw=True).items()}


def risk_coverage_curves(dataset_dir: Path, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Risk-coverage curve per model, read from the runs' predictions."""
    return {model: selective.risk_coverage(y, p) for model, (y, p) in _pooled(dataset_dir, table).items()}


def ece_bins(results: list[dict], default: int = 15) -> int:
    """The ECE bin count the runs were evaluated with (their preset's), so the diagrams match the tables."""
    for r in results:
        bins = r.get("quality", {}).get("ece_bins")
        if bins:
            return int(bins)
    return default


def summary(ranked: pd.DataFrame) -> pd.DataFrame:
    """The report's opening table: rank, score, ties, quality with CIs next to the majority
    baseline and the exact McNemar p against it, speed and cost, rounded for reading."""
    def ci(pair) -> str:
        return f"[{pair[0]:.3f}, {pair[1]:.3f}]" if isinstance(pair, (list, tuple)) else ""

    def number(column: str, digits: int) -> pd.Series:
        return pd.to_numeric(ranked[column], errors="coerce").round(digits)

    view = pd.DataFrame({
        "rank": ranked["rank"],
        "model": ranked["model"],
        "score": number("score", 3),
        "accuracy": number("accuracy", 3),
        "accuracy 95% CI": ranked["accuracy_ci95"].map(ci),
        "F1 (macro)": number("f1", 3),
        "F1 95% CI": ranked["f1_ci95"].map(ci),
        "majority baseline": number("baseline_accuracy", 3),
        # two significant digits: on a large test set p can be 1e-40, which rounding to places shows as 0
        "McNemar p vs majority": pd.to_numeric(ranked["p_vs_majority"], errors="coerce").map(
            lambda p: float(f"{p:.2g}") if pd.notna(p) else p),
        "latency median (ms)": number("latency_median_ms", 1),
        "latency P99 (ms)": number("latency_p99_ms", 1),
        "samples/s": number("throughput_samples_per_sec", 2),
        "peak RSS (MB)": number("peak_rss_mb", 0),
        "training (min)": (pd.to_numeric(ranked["training_time_hours"], errors="coerce") * 60).round(2),
        "trainable params": number("trainable_params", 0).astype("Int64"),
    })
    if "accuracy_raw_argmax" in ranked and ranked["accuracy_raw_argmax"].notna().any():
        view.insert(view.columns.get_loc("accuracy 95% CI") + 1, "accuracy before recalibration",
                    number("accuracy_raw_argmax", 3))
    if "tied_with" in ranked:
        view.insert(3, "not significantly different from", ranked["tied_with"])
    if "n_seeds" in ranked and ranked["n_seeds"].max() > 1:
        view.insert(view.columns.get_loc("accuracy") + 1, "accuracy seed std", ranked["accuracy_std"].round(3))
        view.insert(view.columns.get_loc("F1 (macro)") + 1, "F1 seed std", ranked["f1_std"].round(3))
        view.insert(2, "seeds", ranked["n_seeds"])
        view = view.rename(columns={"McNemar p vs majority": "McNemar p vs majority (largest over seeds)"})
    return view.set_index("rank")


def _mean_std(frame: pd.DataFrame, column: str, digits: int) -> pd.Series:
    """'mean ± seed std' where several seeds ran, the mean alone with one, '' where not recorded."""
    if column not in frame:
        return pd.Series("", index=frame.index)
    std = frame.get(f"{column}_std", pd.Series(np.nan, index=frame.index))

    def cell(mean, spread) -> str:
        if pd.isna(mean):
            return ""
        return f"{mean:.{digits}f}" + ("" if pd.isna(spread) else f" ± {spread:.{digits}f}")

    return pd.Series([cell(m, s) for m, s in zip(frame[column], std)], index=frame.index)


def _view(frame: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> pd.DataFrame:
    """Display table indexed by model; columns that no run recorded are dropped."""
    present = {label: column for label, column in columns.items()
               if column in frame and pd.to_numeric(frame[column], errors="coerce").notna().any()}
    view = pd.DataFrame({label: _mean_std(frame, column, digits) for label, column in present.items()})
    return view.set_axis(frame["model"]).rename_axis("model") if present else pd.DataFrame()


UNCERTAINTY_VIEW = {
    "ECE": "ece", "ECE (equal mass)": "ece_equal_mass", "ECE recalibrated": "ece_recalibrated",
    "temperature": "temperature", "Brier": "brier", "NLL": "nll", "NLL recalibrated": "nll_recalibrated",
    "AURC": "aurc", "target reached on validation": "selective_target_reached",
    "selective coverage": "selective_coverage", "selective accuracy": "selective_accuracy",
    "conformal coverage (LAC)": "conformal_coverage", "set size (LAC)": "conformal_set_size",
    "conformal coverage (APS)": "conformal_aps_coverage", "set size (APS)": "conformal_aps_set_size",
    "expected cost": "expected_cost", "cost of argmax": "expected_cost_argmax", "abstained": "abstain_share",
}


def uncertainty_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """Calibration, selective prediction, conformal sets and decision cost per model (lower is better
    for ECE, Brier, NLL, AURC, set size and cost); empty when no run recorded them."""
    return _view(aggregated, UNCERTAINTY_VIEW)


def baseline_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """Base model (zero-/k-shot prompting, causal LMs only) against the fine-tuned model, metric by
    metric; empty when no run recorded a base-model baseline."""
    settings = sorted({match["setting"] for match in map(BASELINE_COLUMN.match, aggregated.columns) if match},
                      key=lambda name: (len(name), name))
    columns = {}
    for metric, label in GROUP_LABELS.items():
        columns.update({f"{label} {setting}": f"baseline_{setting}_{metric}" for setting in settings})
        columns[f"{label} fine-tuned"] = metric
    return _view(aggregated, columns) if settings else pd.DataFrame()


def group_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """Worst group and largest gap between groups per model, where the dataset has groups."""
    if "groups_judged" not in aggregated or aggregated["groups_judged"].isna().all():
        return pd.DataFrame()
    columns = {}
    for metric in GROUP_METRICS:
        label = GROUP_LABELS[metric]
        columns.update({f"worst-group {label}": f"worst_{metric}", f"{label} gap": f"gap_{metric}"})
    view = _view(aggregated, columns)
    view.insert(0, "groups judged", aggregated["groups_judged"].round(1).to_numpy())
    view.insert(1, "groups too small", aggregated["groups_small"].round(1).to_numpy())
    if "worst_group_accuracy" in aggregated:
        view.insert(2, "worst group (accuracy)", aggregated["worst_group_accuracy"].fillna("").to_numpy())
    return view


def collect_runs(dataset_dir: Path) -> tuple[list[dict], list[dict]]:
    """Results and failures of every run under one dataset of a study; each result names its run folder."""
    results, failures = [], []
    for run_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
        if (run_dir / "failed.json").exists():
            failures.append({"run": run_dir.name, **read_json(run_dir / "failed.json")})
        elif (run_dir / "results.json").exists():
            results.append({**read_json(run_dir / "results.json"), "run": run_dir.name})
    return results, failures
