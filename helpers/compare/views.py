"""The comparison's display tables: labels, units and rounding from the metric registry
(helpers/metrics.py), mean ± seed std where several seeds ran."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.compare.runs import BASELINE_COLUMN, GROUP_METRICS
from helpers.metrics import (ABSTENTION, BASELINE_METRIC, GENERATION, LABEL_TYPE_HEADLINE, MAIN_METRIC, METRICS,
                             SECOND_METRIC, keys, metric)

# The opening table's metric columns, in reading order; labels, units and rounding from the registry.
SUMMARY_METRICS = ("latency_median_ms", "latency_p99_ms", "throughput_samples_per_sec", "inference_mfu", "peak_rss_mb")


def _number(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce").round(metric(column).digits)


def ci(pair) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]" if isinstance(pair, (list, tuple)) else ""


def label_type(ranked: pd.DataFrame) -> str:
    """The comparison's label type (single where the runs predate label types)."""
    found = ranked["label_type"].dropna() if "label_type" in ranked else pd.Series(dtype=object)
    return str(found.iloc[0]) if len(found) else "single"


def headline_keys(table: pd.DataFrame) -> tuple[str, str]:
    """The comparison's two headline metrics: accuracy and F1, or a label type's (micro- and macro-F1; MAE and R²)."""
    kind = label_type(table)
    return MAIN_METRIC[kind], SECOND_METRIC[kind]


def _label_type_summary(ranked: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The opening table of a multi-label or regression comparison: its two headline metrics with
    CIs, the trivial baseline, its other headline numbers, speed and cost."""
    first, second, baseline = MAIN_METRIC[kind], SECOND_METRIC[kind], BASELINE_METRIC[kind]
    view = pd.DataFrame({"rank": ranked["rank"], "model": ranked["model"], "score": ranked["score"].round(3)})
    if "tied_with" in ranked:
        view["not significantly different from"] = ranked["tied_with"]
    for key in (first, second):
        view[metric(key).title] = _number(ranked, key)
        view[f"{metric(key).label} 95% CI"] = ranked[f"{key}_ci95"].map(ci)
    view[metric(baseline).title] = _number(ranked, baseline)
    for key in LABEL_TYPE_HEADLINE[kind]:
        if key not in (first, second):
            view[metric(key).title] = _number(ranked, key)
    for key in SUMMARY_METRICS:
        view[metric(key).title] = _number(ranked, key)
    view["training (min)"] = (pd.to_numeric(ranked["training_time_hours"], errors="coerce") * 60).round(2)
    view[metric("trainable_params").title] = _number(ranked, "trainable_params").astype("Int64")
    return view.set_index("rank")


def summary(ranked: pd.DataFrame) -> pd.DataFrame:
    """The report's opening table: rank, score, ties, quality with CIs next to the majority
    baseline and the exact McNemar p against it, speed and cost, rounded for reading (a
    multi-label or regression comparison: its own headline metrics)."""
    if label_type(ranked) != "single":
        return _label_type_summary(ranked, label_type(ranked))

    p_vs_majority = metric("p_vs_majority")
    view = pd.DataFrame({
        "rank": ranked["rank"],
        "model": ranked["model"],
        "score": ranked["score"].round(3),
        metric("accuracy").title: _number(ranked, "accuracy"),
        "accuracy 95% CI": ranked["accuracy_ci95"].map(ci),
        metric("f1").title: _number(ranked, "f1"),
        "F1 95% CI": ranked["f1_ci95"].map(ci),
        metric("baseline_accuracy").title: _number(ranked, "baseline_accuracy"),
        # significant digits: on a large test set p can be 1e-40, which rounding to places shows as 0
        p_vs_majority.title: pd.to_numeric(ranked["p_vs_majority"], errors="coerce").map(
            lambda p: float(f"{p:.{p_vs_majority.digits}g}") if pd.notna(p) else p),
        **{metric(key).title: _number(ranked, key) for key in SUMMARY_METRICS},
        "training (min)": (pd.to_numeric(ranked["training_time_hours"], errors="coerce") * 60).round(2),
        metric("trainable_params").title: _number(ranked, "trainable_params").astype("Int64"),
    })
    if "artifact_mb" in ranked and ranked["artifact_mb"].notna().any():  # runs before it was recorded: none
        view[metric("artifact_mb").title] = _number(ranked, "artifact_mb")
    if "accuracy_raw_argmax" in ranked and ranked["accuracy_raw_argmax"].notna().any():
        view.insert(view.columns.get_loc("accuracy 95% CI") + 1, metric("accuracy_raw_argmax").title,
                    _number(ranked, "accuracy_raw_argmax"))
    if "tied_with" in ranked:
        view.insert(3, "not significantly different from", ranked["tied_with"])
    if "n_seeds" in ranked and ranked["n_seeds"].max() > 1:
        view.insert(view.columns.get_loc(metric("accuracy").title) + 1, "accuracy seed std",
                    ranked["accuracy_std"].round(3))
        view.insert(view.columns.get_loc(metric("f1").title) + 1, "F1 seed std", ranked["f1_std"].round(3))
        view.insert(2, "seeds", ranked["n_seeds"])
        view = view.rename(columns={p_vs_majority.title: f"{p_vs_majority.title} (largest over seeds)"})
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
    view = pd.DataFrame({label: _mean_std(frame, column, METRICS[column].digits if column in METRICS else digits)
                         for label, column in present.items()})
    return view.set_axis(frame["model"]).rename_axis("model") if present else pd.DataFrame()


def uncertainty_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """Calibration, selective prediction, conformal sets and decision cost per model (lower is better
    for ECE, Brier, NLL, AURC, set size and cost); empty when no run recorded them."""
    return _view(aggregated, {metric(key).title: key for key in keys(uncertainty=True, shown=True)})


def generation_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """The answers of models that generate (parse and schema rates, abstention, rationale overlap,
    the base model on the same prompts, time to first token, decode speed); empty when none did."""
    present = [key for key in GENERATION if key in aggregated]
    if not present:
        return pd.DataFrame()
    generators = aggregated[aggregated[present].apply(pd.to_numeric, errors="coerce").notna().any(axis=1)]
    return _view(generators, {metric(key).title: key for key in GENERATION})


def abstention_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """How each model treats the texts it should not decide (a dataset's abstain_labels): the
    generators' written abstentions, every model's confidence AUROC and selective-threshold
    abstentions; empty when the dataset has no abstention examples."""
    if "abstention_examples" not in aggregated:
        return pd.DataFrame()
    return _view(aggregated[pd.to_numeric(aggregated["abstention_examples"], errors="coerce").notna()],
                 {metric(key).title: key for key in ABSTENTION})


def baseline_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """Base model (zero-/k-shot prompting, causal LMs only) against the fine-tuned model, metric by
    metric; empty when no run recorded a base-model baseline."""
    settings = sorted({match["setting"] for match in map(BASELINE_COLUMN.match, aggregated.columns) if match},
                      key=lambda name: (len(name), name))
    columns = {}
    for key in GROUP_METRICS if label_type(aggregated) == "single" else headline_keys(aggregated):
        label = metric(key).label
        columns.update({f"{label} {setting}": f"baseline_{setting}_{key}" for setting in settings})
        columns[f"{label} fine-tuned"] = key
    return _view(aggregated, columns) if settings else pd.DataFrame()


def group_view(aggregated: pd.DataFrame) -> pd.DataFrame:
    """Worst group and largest gap between groups per model, where the dataset has groups."""
    if "groups_judged" not in aggregated or not (aggregated["groups_judged"].fillna(0) > 0).any():
        return pd.DataFrame()  # no group column, or no group large enough to judge
    columns = {}
    for key in GROUP_METRICS:
        label = metric(key).label
        columns.update({f"worst-group {label}": f"worst_{key}", f"{label} gap": f"gap_{key}"})
    view = _view(aggregated, columns)
    view.insert(0, "groups judged", aggregated["groups_judged"].round().astype("Int64").to_numpy())
    view.insert(1, "groups too small", aggregated["groups_small"].round().astype("Int64").to_numpy())
    if "worst_group_accuracy" in aggregated:
        view.insert(2, "worst group (accuracy)", aggregated["worst_group_accuracy"].fillna("").to_numpy())
    return view


PAIRWISE_LABELS = {"seed": "seed", "model_a": "model A", "model_b": "model B", "a_only_correct": "only A right",
                   "b_only_correct": "only B right", "p_value": "p (exact McNemar)", "p_holm": "p (Holm-corrected)",
                   "significant": "significant at 0.05"}


BOOTSTRAP_LABELS = {**PAIRWISE_LABELS, "metric": "metric", "difference": "A - B",
                    "difference_ci95": "A - B 95% CI", "p_value": "p (paired bootstrap)"}


def pairwise_view(pairwise: pd.DataFrame) -> pd.DataFrame:
    """The paired tests with readable column names, p to two significant digits (McNemar, or for a
    multi-label or regression comparison the paired bootstrap of its main metric)."""
    bootstrap = "metric" in pairwise
    view = pairwise.rename(columns=BOOTSTRAP_LABELS if bootstrap else PAIRWISE_LABELS)
    for column in ("p (paired bootstrap)" if bootstrap else "p (exact McNemar)", "p (Holm-corrected)"):
        view[column] = view[column].map(lambda p: float(f"{p:.2g}"))
    if bootstrap:
        view["A - B"] = view["A - B"].round(4)
        view["A - B 95% CI"] = view["A - B 95% CI"].map(ci)
    return view.set_index("seed")
