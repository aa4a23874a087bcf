"""What 03_evaluate and the report show of a multi-label or regression run: its headline table
beside the trivial baselines, a verdict in words, the per-label or per-target table and a figure."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from helpers.metrics import LABEL_TYPE_HEADLINE, title

BASE_MODEL_NOTE = {
    "regression": "Not scored: a regression target has no answer words to score the base model on.",
    "multi": "Not scored: an encoder has no base model to ask, and a causal LM's is scored only where the preset's "
             "evaluation.baseline_shots holds 0."}
BASELINE_NAMES = {"label_frequencies": "baseline: training label frequencies",
                  "most_frequent_label": "baseline: most frequent label", "train_mean": "baseline: training mean"}


def headline(record: dict, name: str = "fine-tuned") -> pd.DataFrame:
    """The type's headline metrics of the model and of each trivial baseline, one column each."""
    keys = [k for k in LABEL_TYPE_HEADLINE[record["label_type"]] if k in record]
    columns = {name: {title(k): record[k] for k in keys}}
    for baseline, values in record.get("baselines", {}).items():
        columns[BASELINE_NAMES.get(baseline, baseline)] = {title(k): values.get(k) for k in keys}
    return pd.DataFrame(columns).round(4)


def _ci(record: dict, key: str) -> str:
    low, high = record[f"{key}_ci95"]
    return f"{record[key]:.3f} (95 % CI {low:.3f}-{high:.3f})"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def verdict(record: dict) -> str:
    """Two sentences: the main metric with its CI against the best trivial baseline, and the
    conformal sets' or intervals' coverage."""
    if record["label_type"] == "multi":
        best = max(record["baselines"].values(), key=lambda b: b["micro_f1"])
        rule = record["label_thresholds"].replace("_", "-")
        return (f"Micro-F1 {_ci(record, 'micro_f1')}, macro-F1 {_ci(record, 'macro_f1')}, against "
                f"{best['micro_f1']:.3f} micro-F1 for the better trivial baseline; {rule} thresholds fitted on "
                f"validation. Conformal label sets at alpha {record['conformal_alpha']}: "
                f"{record['conformal_coverage']:.1%} of test texts have all their labels in the set "
                f"(target {1 - record['conformal_alpha']:.0%}), {record['conformal_set_size']:.2f} labels per set.")
    base = record["baselines"]["train_mean"]
    return (f"MAE {_ci(record, 'mae')} against {base['mae']:.3f} for always predicting the training mean; "
            f"R² {_ci(record, 'r2')}, Spearman {_number(record['spearman'])}. "
            f"Conformal intervals at alpha {record['conformal_alpha']}: {record['interval_coverage']:.1%} of test "
            f"targets inside (target {1 - record['conformal_alpha']:.0%}), mean width {record['interval_width']:.2f}.")


def detail(record: dict) -> pd.DataFrame:
    """Per label (precision, recall, F1, support, AP, ROC AUC, ECE, threshold) or per target."""
    if record["label_type"] == "multi":
        table = pd.DataFrame(record["per_label"]).T
        table["threshold"] = pd.Series(record["thresholds"])
        return table.sort_values("support", ascending=False)
    table = pd.DataFrame(record["per_target"]).T
    return table.join(pd.DataFrame(record["intervals_per_target"]).T)


def figure(record: dict, predictions: pd.DataFrame, name: str = "") -> Figure:
    """Multi-label: per-label F1 against the label's test support. Regression: prediction against
    truth for the first target, with the conformal interval of every test text."""
    if record["label_type"] == "multi":
        table = detail(record)
        fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(table))))
        ax.barh(table.index, table["f1"].astype(float), color="tab:blue")
        for y, (f1, support) in enumerate(zip(table["f1"], table["support"], strict=True)):
            ax.text(float(f1) + 0.01, y, f"n={int(support)}", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.1)
        ax.set_xlabel(f"F1 on test ({record['label_thresholds'].replace('_', '-')} threshold)")
        ax.set_title(f"{name} per-label F1 (micro {record['micro_f1']:.3f}, macro {record['macro_f1']:.3f})")
    else:
        target = record["labels"][0]
        truth, guess = predictions[f"true_{target}"], predictions[f"pred_{target}"]
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(truth))  # integer ratings overlap
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.errorbar(truth + jitter, guess, yerr=[guess - predictions[f"lower_{target}"],
                                                 predictions[f"upper_{target}"] - guess],
                    fmt="o", markersize=3, alpha=0.35, elinewidth=0.5)
        low, high = float(min(truth.min(), guess.min())), float(max(truth.max(), guess.max()))
        ax.plot([low, high], [low, high], linestyle="--", color="grey")
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel(f"predicted {target} (with its conformal interval)")
        ax.set_title(f"{name} R² {record['r2']:.3f}, MAE {record['mae']:.3f}")
    fig.tight_layout()
    return fig


def base_model(record: dict, name: str = "fine-tuned") -> pd.DataFrame | str:
    """The base causal LM zero-shot beside the fine-tuned model (multi-label), or why there is none."""
    if "baseline" not in record:
        return BASE_MODEL_NOTE[record["label_type"]]
    keys = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "macro_average_precision")
    return pd.DataFrame({name: {title(k): record.get(k) for k in keys},
                         **{f"base, {setting}": {title(k): block.get(k) for k in keys}
                            for setting, block in record["baseline"].items()}}).round(4)


def uncertainty(record: dict) -> pd.Series:
    """Calibration and conformal numbers of the run."""
    keys = (("ece_per_label_mean", "macro_average_precision", "macro_roc_auc", "conformal_alpha",
             "conformal_coverage", "conformal_set_size", "conformal_label_recall", "global_threshold")
            if record["label_type"] == "multi" else ("conformal_alpha", "interval_coverage", "interval_width"))
    return pd.Series({title(k): record.get(k) for k in keys}, name="value")


def by_model(results: list[dict]) -> pd.DataFrame:
    """Every model's per-label F1 (multi-label, one column per model, labels by test support) or
    per-target and per-group MAE and R² (regression), from the runs' results.json (first seed)."""
    first = {}
    for r in results:
        first.setdefault(r["model_name"], r["quality"])
    if not first:
        return pd.DataFrame()
    some = next(iter(first.values()))
    if some["label_type"] == "multi":
        table = pd.DataFrame({model: {label: row["f1"] for label, row in q["per_label"].items()}
                              for model, q in first.items()})
        support = pd.Series({label: row["support"] for label, row in some["per_label"].items()})
        return table.assign(support=support).sort_values("support", ascending=False)
    rows = {}
    for model, q in first.items():
        for target, values in q["per_target"].items():
            rows[(model, f"target {target}")] = {"n": q["test_examples"], "MAE": values["mae"], "R²": values["r2"]}
        for group, values in q.get("group_scores", {}).items():
            rows[(model, f"group {group}")] = {"n": values["n"], "MAE": values["mae"], "R²": values["r2"]}
    return pd.DataFrame(rows).T.rename_axis(["model", "part"])


def by_model_figure(results: list[dict]) -> Figure | None:
    """Multi-label: per-label F1 of every model side by side; regression: MAE per group and model."""
    table = by_model(results)
    if table.empty:
        return None
    if "support" in table:
        shown = table.drop(columns="support")
        fig, ax = plt.subplots(figsize=(8, max(3.0, 0.3 * len(shown) * max(1, shown.shape[1] / 2))))
        shown.plot.barh(ax=ax, width=0.8)
        ax.invert_yaxis()
        ax.set_xlabel("F1 on test; labels by test support")
    else:
        mae = table["MAE"].astype(float).unstack("model")
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(mae) + 1.5))
        mae.plot.barh(ax=ax, width=0.8)
        ax.set_xlabel(f"{title('mae')} on test")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def group_table(record: dict) -> pd.DataFrame:
    """The headline metrics per group of the dataset's group column."""
    return pd.DataFrame(record.get("group_scores", {})).T
