"""The benchmark's JSON turned into the report section: tables and figures (never shown here,
so a notebook can display or save them)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from helpers.bench.targets import accuracy_equal
from helpers.core.io import read_json
from helpers.evaluate.significance import mcnemar_exact_p

PATHS = ("ours", "reference")


def load_results(folder: str | Path) -> list[dict]:
    """Every `<dataset>/<model>.json` (and `<model>.seed<N>.json`) under a bench folder."""
    return [read_json(path) for path in sorted(Path(folder).glob("*/*.json"))]


def _mcnemar_text(paired: dict | None) -> str:
    if not paired:
        return ""
    return (f" on {paired['examples']} (McNemar {paired['ours_only_correct']}/{paired['reference_only_correct']}, "
            f"p = {paired['p_value']:.2f})")


def speedup_interval_text(r: dict) -> str | None:
    """The training speed-up's interval over its steps resampled in pairs (helpers/bench/measure.py
    `speedup_interval`), where recorded (since 2026-11-30)."""
    interval = r.get("train_speedup_interval")
    if not interval:
        return None
    return f"{interval['low']:.2f}-{interval['high']:.2f}x ({interval['confidence']:.0%}, {interval['steps']} steps)"


def summary_line(r: dict) -> str:
    interval = speedup_interval_text(r)
    return (f"{r['dataset']}/{r['model']}: train {r['train_tokens_per_sec_ours']:.1f} vs "
            f"{r['train_tokens_per_sec_reference']:.1f} tokens/s ({r['train_speedup']:.2f}x"
            f"{f', {interval}' if interval else ''}, MFU {r['train_mfu']:.0%}), "
            f"accuracy {r['val_accuracy_ours']:.3f} vs {r['val_accuracy_reference']:.3f}"
            f"{_mcnemar_text(r.get('val_mcnemar'))}; infer "
            f"{r['infer_samples_per_sec_ours']:.2f} vs {r['infer_samples_per_sec_reference']:.2f} samples/s "
            f"({r['infer_speedup']:.2f}x, MFU {r['infer_mfu']:.0%}); matmul peak {r['matmul_peak_gflops']:.1f} "
            f"GFLOP/s; load {r['load']['start']['loadavg_1m']:.1f} -> {r['load']['end']['loadavg_1m']:.1f}")


def summary_table(records: list[dict]) -> pd.DataFrame:
    """The headline numbers per dataset and model (and seed, where a folder holds several), with the
    load they were measured under. The seed stays out of a folder of one seed each: the table is as
    wide as a report's PDF page holds."""
    rows = []
    for r in records:
        rows.append({
            "dataset": r["dataset"], "model": r["model"], "seed": r["seed"], "max_length": r["max_length"],
            "train tok/s ours": r["train_tokens_per_sec_ours"], "train tok/s ref": r["train_tokens_per_sec_reference"],
            "train speedup": r["train_speedup"], "train MFU": r["train_mfu"],
            "train MFU ref": r["train_mfu_reference"], "ref padding share": r["train"]["reference"]["padding_share"],
            "val acc ours": r["val_accuracy_ours"], "val acc ref": r["val_accuracy_reference"],
            "infer samples/s ours": r["infer_samples_per_sec_ours"],
            "infer samples/s ref": r["infer_samples_per_sec_reference"], "infer speedup": r["infer_speedup"],
            "infer MFU": r["infer_mfu"], "infer MFU ref": r["infer_mfu_reference"],
            "infer same labels": r.get("infer_agreement"),  # recorded since 2026-11-28
            "latency ms ours (median/P99)": f"{r['latency_median_ms_ours']:.0f} / {r['latency_p99_ms_ours']:.0f}",
            "latency ms ref (median/P99)": f"{r['latency_median_ms_reference']:.0f} / {r['latency_p99_ms_reference']:.0f}",
            "matmul peak GFLOP/s": r["matmul_peak_gflops"],
            "load 1m start/end": f"{r['load']['start']['loadavg_1m']:.1f} / {r['load']['end']['loadavg_1m']:.1f}",
        })
    table = pd.DataFrame(rows)
    if table.duplicated(["dataset", "model"]).any():  # benched on several seeds (--seed)
        return table.set_index(["dataset", "model", "seed"])
    return table.drop(columns="seed").set_index(["dataset", "model"])


def seeds_table(records: list[dict]) -> pd.DataFrame:
    """The two paths' accuracy over every seed benched of a dataset and model: the mean of each, the
    spread of their difference, and the exact McNemar on the discordant reviews summed over the
    seeds (each seed draws its own training and held-out sample, so the sums are independent
    pairs); `accuracy equal` is the issue's rule (at most 1 point apart, p > 0.05, at least 1,000
    examples) applied to the pooled answers. One seed's training order alone decides a few points
    on a small training set, which is what several seeds average out."""
    rows = []
    paired = [r for r in records if r.get("val_mcnemar")]  # recorded since 2026-11-27
    frame = pd.DataFrame([{"dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
                           "examples": r["val_mcnemar"]["examples"], "ours_only": r["val_mcnemar"]["ours_only_correct"],
                           "ref_only": r["val_mcnemar"]["reference_only_correct"], "ours": r["val_accuracy_ours"],
                           "ref": r["val_accuracy_reference"], "speedup": r["train_speedup"]} for r in paired],
                         columns=["dataset", "model", "seed", "examples", "ours_only", "ref_only", "ours", "ref",
                                  "speedup"])
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=False):
        examples, ours_only, ref_only = (int(group[c].sum()) for c in ("examples", "ours_only", "ref_only"))
        delta = (ours_only - ref_only) / examples * 100
        p_value = mcnemar_exact_p(ours_only, ref_only)
        points = (group["ours"] - group["ref"]) * 100
        rows.append({"dataset": dataset, "model": model, "seeds": " ".join(str(s) for s in sorted(group["seed"])),
                     "examples": examples, "acc ours (mean)": group["ours"].mean(),
                     "acc ref (mean)": group["ref"].mean(),
                     "points ours - ref (pooled)": delta, "points min": points.min(), "points max": points.max(),
                     "ours only / ref only": f"{ours_only} / {ref_only}", "McNemar p (pooled)": p_value,
                     "accuracy equal": accuracy_equal(delta, p_value, examples),
                     "train speedup (min)": group["speedup"].min(), "train speedup (max)": group["speedup"].max()})
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["dataset", "model"]).set_index(["dataset", "model"])


def targets_table(records: list[dict]) -> pd.DataFrame:
    """The targets met or not, with the paired test behind `val_accuracy_equal` (recorded since
    2026-11-27) and the interval behind the training speed-up (since 2026-11-30)."""
    return pd.DataFrame([{"dataset": r["dataset"], "model": r["model"], **r["targets"],
                          "train speedup": r["train_speedup"], "interval over steps": speedup_interval_text(r),
                          "held-out n": r["data"]["validation_examples"],
                          "McNemar p": (r.get("val_mcnemar") or {}).get("p_value")}
                         for r in records]).set_index(["dataset", "model"])


def inference_table(records: list[dict]) -> pd.DataFrame:
    """Samples/s (median, min, max), real tokens/s and MFU of both paths at every batch size."""
    rows = []
    for r in records:
        for path in PATHS:
            for bs, m in r["infer"]["by_batch_size"][path].items():
                rows.append({"dataset": r["dataset"], "model": r["model"], "path": path, "batch_size": int(bs),
                             "samples/s": m["samples_per_sec"], "min": m["samples_per_sec_min"],
                             "max": m["samples_per_sec_max"], "tokens/s": m["tokens_per_sec"], "MFU": m["mfu"]})
    return pd.DataFrame(rows)


def training_table(records: list[dict]) -> pd.DataFrame:
    """Both training paths and QLoRA: throughput, step time, epoch time, memory, accuracy, and how the
    paths' trainings shared the machine (params: train_order, recorded since 2026-11-29: one after the
    other, or interleaved with one peak memory for both; QLoRA trains alone)."""
    rows = []
    for r in records:
        runs = {"ours (LoRA)": r["train"]["ours"], "reference (LoRA)": r["train"]["reference"]}
        if r.get("qlora"):
            runs["ours (QLoRA)"] = {**r["qlora"]["train"], "val_accuracy": r["qlora"]["val_accuracy"],
                                    "peak_memory": r["qlora"]["train_peak_memory"]}
        for name, t in runs.items():
            memory = t["peak_memory"]
            rows.append({"dataset": r["dataset"], "model": r["model"], "path": name,
                         "tokens/s": t["tokens_per_sec"], "step tok/s median": t["tokens_per_sec_median_step"],
                         "step tok/s min": t["tokens_per_sec_min_step"], "step tok/s max": t["tokens_per_sec_max_step"],
                         "samples/s": t["samples_per_sec"], "epoch s": t["wall_time_per_epoch_s"],
                         "step ms median": t["step_time_s"]["median_ms"], "MFU": t["mfu"],
                         "peak memory MB": memory.get("allocated_mb", memory.get("rss_peak_mb")),
                         "val accuracy": t["val_accuracy"], "cross-core ms before / after": _cross_core(t),
                         "trainings": "alone" if "QLoRA" in name else r.get("train_order", "sequential")})
    return pd.DataFrame(rows)


def _cross_core(run: dict) -> str | None:
    """The host's state at a training's start and end (helpers/speed/timing.py `cross_core_ms`),
    where recorded (since 2026-11-29)."""
    probes = [(run.get(key) or {}).get("cross_core_ms") for key in ("load_before", "load_after")]
    return None if None in probes else f"{probes[0]:.1f} / {probes[1]:.1f}"


def memory_table(records: list[dict]) -> pd.DataFrame:
    """LoRA vs QLoRA weights footprint, step time and accuracy."""
    rows = [{"dataset": r["dataset"], "model": r["model"], "LoRA MB": r["lora_memory_mb"],
             "QLoRA MB": r["qlora_memory_mb"], "LoRA step ms": r["lora"]["train"]["step_time_s"]["median_ms"],
             "QLoRA step ms": r["qlora"]["train"]["step_time_s"]["median_ms"],
             "LoRA acc": r["lora"]["val_accuracy"], "QLoRA acc": r["qlora"]["val_accuracy"]}
            for r in records if r.get("qlora")]
    return pd.DataFrame(rows)


def int8_table(records: list[dict]) -> pd.DataFrame:
    """Our trained model in int8 against itself (bench params `int8`): accuracy on the held-out
    examples with exact McNemar, throughput, latency at batch size 1, weights."""
    rows = []
    for r in records:
        for mode, m in (r.get("int8") or {}).items():
            rows.append({"dataset": r["dataset"], "model": r["model"], "seed": r["seed"], "mode": mode,
                         "examples": m["examples"], "acc fp32": m["accuracy_fp32"], "acc int8": m["accuracy"],
                         "points": m["points"], "int8 only / fp32 only": f"{m['int8_only_correct']} / "
                                                                           f"{m['fp32_only_correct']}",
                         "McNemar p": m["p_value"], "speedup": m["speedup"], "batch size": m["batch_size"],
                         "latency ms fp32": m["latency"]["fp32"]["median_ms"],
                         "latency ms int8": m["latency"]["int8"]["median_ms"],
                         "weights MB fp32": m["weights_mb_fp32"], "weights MB int8": m["weights_mb"],
                         "load 1m": m["load"]["before"]["loadavg_1m"],
                         "cross-core ms": m["load"]["before"].get("cross_core_ms")})  # helpers/speed/timing.py
    return pd.DataFrame(rows)


def threads_table(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": r["dataset"], "model": r["model"],
                          **{k: v for k, v in row.items() if not k.startswith("load")},
                          "load 1m": row["load_before"]["loadavg_1m"],
                          "others busy %": row["load_before"]["cpu_busy_percent_others"]}
                         for r in records for row in r["threads_comparison"]])


def scaling_table(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": r["dataset"], "model": r["model"],
                          **{k: v for k, v in row.items() if not k.startswith("load")},
                          "load 1m": row["load_before"]["loadavg_1m"]}
                         for r in records for row in r["scaling"]])


PROFILE_COLUMNS = ("steps", "wall_ms_per_step", "device_busy_ms_per_step", "device_busy_share", "kernels_per_step",
                   "cuda_graph_launches_per_step", "aten_calls_per_step")


def profile_table(records: list[dict]) -> pd.DataFrame:
    """Per profiled training step and inference pass of each path (records of a bench run with
    `profile_steps`): wall ms, device busy ms and share, launches, aten calls, the top operator."""
    rows = []
    for r in records:
        for phase, paths in (r.get("profile") or {}).items():
            for path, found in paths.items():
                head = {"dataset": r["dataset"], "model": r["model"], "phase": phase, "path": path}
                if "error" in found:
                    rows.append({**head, "error": found["error"]})
                    continue
                rows.append({**head, **{key: found[key] for key in PROFILE_COLUMNS},
                             "top operator": found["top"][0]["name"] if found["top"] else None})
    return pd.DataFrame(rows)


def throughput_figure(records: list[dict]) -> Figure:
    """Training real tokens/s and inference samples/s, ours vs the HF Trainer baseline, per dataset and model."""
    table = summary_table(records)
    labels = ["\n".join(map(str, row)) for row in table.index]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (ours, ref, title) in zip(axes, (("train tok/s ours", "train tok/s ref", "training, real tokens/s"),
                                             ("infer samples/s ours", "infer samples/s ref",
                                              "inference, samples/s (best batch size)"))):
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], table[ref], width=0.4, label="HF Trainer baseline (pad to max length)")
        ax.bar([i + 0.2 for i in x], table[ours], width=0.4, label="ours")
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mfu_figure(records: list[dict]) -> Figure:
    """Share of the matmul peak measured in the same run; the dashed line is the 50 % target."""
    table = summary_table(records)[["train MFU", "train MFU ref", "infer MFU", "infer MFU ref"]]
    ax = table.set_axis(["/".join(map(str, row)) for row in table.index]).plot.bar(figsize=(9, 4), rot=0)
    ax.axhline(0.5, linestyle="--", color="grey")
    ax.set_ylabel("MFU (real-token FLOPs / matmul peak)")
    ax.tick_params(axis="x", labelsize=8)
    ax.figure.tight_layout()
    return ax.figure


def batch_size_figure(records: list[dict]) -> Figure:
    """Inference samples/s against batch size, both paths, one panel per dataset."""
    table = inference_table(records)
    datasets = sorted(table["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for (model, path), group in table[table["dataset"] == dataset].groupby(["model", "path"]):
            group = group.sort_values("batch_size")
            ax.errorbar(group["batch_size"], group["samples/s"],
                        yerr=[group["samples/s"] - group["min"], group["max"] - group["samples/s"]],
                        marker="o", linestyle="-" if path == "ours" else "--", label=f"{model} {path}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples/s (median, min-max)")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scaling_figure(records: list[dict]) -> Figure:
    """Wall time against training examples at each max length: how cost grows with work."""
    table = scaling_table(records)
    fig, ax = plt.subplots(figsize=(6, 4))
    if table.empty:  # benched without extras (params/bench-accuracy.yaml)
        ax.text(0.5, 0.5, "no scaling measured (bench params: extras false)", ha="center", va="center")
    else:
        for (model, max_length), group in table.groupby(["model", "max_length"]):
            ax.plot(group["examples"], group["wall_time_s"], marker="o", label=f"{model}, max_length {max_length}")
        ax.legend(fontsize=8)
    ax.set_xlabel("training examples")
    ax.set_ylabel("training wall time (s)")
    fig.tight_layout()
    return fig
