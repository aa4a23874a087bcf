"""Report figures. Each function returns a Figure and never shows it, so notebooks can save or display it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from helpers.evaluate.calibration import reliability_ece
from helpers.evaluate.selective import curve_area
from helpers.metrics import title

MAX_MARKER_AREA = 600.0
PALETTE = "colorblind"  # seaborn's colour-blind-safe palette (Okabe-Ito-like), for every figure


def model_colors(models: list[str]) -> dict[str, tuple]:
    """One colour per model, the same in every figure of a report: assigned in sorted order."""
    names = sorted(set(models))
    return dict(zip(names, sns.color_palette(PALETTE, max(len(names), 1))))


def throughput_bars(df: pd.DataFrame) -> Figure:
    """Samples per second per model, with tokens per second in the label when measured."""
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.barplot(data=df, x="model", y="throughput_samples_per_sec", hue="model", legend=False, ax=ax,
                palette=model_colors(df["model"].tolist()))
    labels = [f"{value:.1f}" for value in df["throughput_samples_per_sec"]]
    if "throughput_tokens_per_sec" in df.columns:
        labels = [
            f"{label}\n({tokens:.0f} tok/s)" if pd.notna(tokens) else label
            for label, tokens in zip(labels, df["throughput_tokens_per_sec"])
        ]
    for container, label in zip(ax.containers, labels):
        ax.bar_label(container, labels=[label], fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel(title("throughput_samples_per_sec"))
    ax.set_title("Inference throughput")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


def confusion_heatmap(cm: np.ndarray, label_names: list[str], title: str = "") -> Figure:
    """Annotated confusion matrix, rows = true label, columns = predicted label."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(label_names) + 2, 1.2 * len(label_names) + 1))
    fmt = "d" if np.issubdtype(cm.dtype, np.integer) else ".2f"
    sns.heatmap(cm, annot=True, fmt=fmt, cmap="Blues", xticklabels=label_names, yticklabels=label_names, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def training_curves(log_history: list[dict], best_step: int | None = None) -> Figure:
    """Train loss against step from Trainer `state.log_history`, with the learning-rate schedule on a
    twin axis: a loss that stalls while the rate is still high reads differently from one at the tail.
    Where validation ran during training, its loss joins the train loss and its macro F1 gets a panel
    of its own, with the best step (the adapter kept) marked."""
    evaluated = [entry for entry in log_history if "eval_loss" in entry and "step" in entry]
    fig, axes = plt.subplots(1, 2 if evaluated else 1, figsize=(12 if evaluated else 7, 4), squeeze=False)
    ax = axes[0, 0]
    logged = [entry for entry in log_history if "loss" in entry and "step" in entry]
    handles = []
    if logged:
        handles += ax.plot([e["step"] for e in logged], [e["loss"] for e in logged], "-", marker=".", label="train loss")
    if evaluated:
        handles += ax.plot([e["step"] for e in evaluated], [e["eval_loss"] for e in evaluated], "-", marker="o",
                           label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    scheduled = [entry for entry in logged if "learning_rate" in entry]
    if scheduled:
        twin = ax.twinx()
        handles += twin.plot([e["step"] for e in scheduled], [e["learning_rate"] for e in scheduled], ":",
                             color="tab:gray", label="learning rate")
        twin.set_ylabel("learning rate")
    if handles:
        ax.legend(handles, [h.get_label() for h in handles], loc="best")
    ax.set_title("Training curves")
    if evaluated:
        right = axes[0, 1]
        for key, label in (("eval_f1", "validation macro F1"), ("eval_accuracy", "validation accuracy")):
            points = [e for e in evaluated if key in e]
            if points:
                right.plot([e["step"] for e in points], [e[key] for e in points], "-", marker="o", label=label)
        if best_step is not None:
            for axis in (ax, right):
                axis.axvline(best_step, color="black", linestyle="--", linewidth=1)
            right.plot([], [], color="black", linestyle="--", label=f"best step {best_step} (the adapter kept)")
        right.set_xlabel("step")
        right.set_ylabel("score on validation")
        right.set_title("Validation during training")
        right.legend(loc="best")
    fig.tight_layout()
    return fig


def data_card(splits, lengths: dict[str, np.ndarray], max_length: int) -> Figure:
    """Class balance per split (the share of texts carrying each label for multi-label data, the
    first target's distribution for regression) and the token-length distribution against the
    truncation limit."""
    long = pd.DataFrame([(name, n) for name, values in lengths.items() for n in values], columns=["split", "tokens"])
    label_type = getattr(splits, "label_type", "single")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4 if label_type == "single" else 5))
    if label_type == "regression":
        values = pd.DataFrame([(name, v[0]) for name in lengths for v in splits.split(name)["label"]],
                              columns=["split", splits.labels[0]])
        sns.histplot(data=values, x=splits.labels[0], hue="split", stat="density", common_norm=False, discrete=True,
                     multiple="dodge", ax=left)
        left.set_title(f"Target {splits.labels[0]}")
    elif label_type == "multi":
        summary = splits.summary()
        shares = summary.drop(columns="rows").div(summary["rows"], axis=0).T.rename_axis("label")
        shares.plot.barh(ax=left, width=0.8)
        left.invert_yaxis()
        left.set_xlabel("share of texts")
        left.set_title("Labels per split (a text may carry several)")
    else:
        counts = pd.concat(
            {name: splits.split(name)["label"].map(dict(enumerate(splits.labels))).value_counts() for name in lengths},
            names=["split", "class"],
        ).rename("rows").reset_index()
        sns.barplot(data=counts, x="split", y="rows", hue="class", ax=left)
        left.set_title("Class balance")
    sns.histplot(data=long, x="tokens", hue="split", element="step", stat="density", common_norm=False, ax=right)
    right.axvline(max_length, color="red", linestyle="--")
    truncated = {name: float((values > max_length).mean()) for name, values in lengths.items()}
    right.set_title("Length in tokens; truncated beyond the red line: "
                    + ", ".join(f"{k} {v:.0%}" for k, v in truncated.items()))
    fig.tight_layout()
    return fig


def reliability_diagrams(curves: dict[str, pd.DataFrame]) -> Figure:
    """Accuracy against confidence per bin, one panel per model; on the diagonal a model's
    confidence can be taken at its word, below it the model is over-confident. Marker area ∝ examples."""
    columns = min(len(curves), 3)
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4 * rows), squeeze=False)
    for ax, (name, table) in zip(axes.flat, curves.items()):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.plot(table["confidence"], table["accuracy"], color="tab:blue", linewidth=1)
        ax.scatter(table["confidence"], table["accuracy"],
                   s=MAX_MARKER_AREA * table["count"] / table["count"].sum(), alpha=0.6, color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name} (ECE {reliability_ece(table):.3f})")
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def risk_coverage(curves: dict[str, pd.DataFrame]) -> Figure:
    """Error rate among the examples answered against the share answered, per model: lower and
    flatter is better, and the area under each curve is its AURC."""
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = model_colors(list(curves))
    for name, curve in curves.items():
        ax.step(np.r_[0.0, curve["coverage"]], np.r_[curve["risk"].iloc[0], curve["risk"]], where="pre",
                label=f"{name} (AURC {curve_area(curve):.3f})", color=colors[name])
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("coverage (share of examples answered, most confident first)")
    ax.set_ylabel("risk (error rate among answered)")
    ax.set_title("Risk–coverage")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
