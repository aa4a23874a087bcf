"""`senticompare bench`: our training and inference path against the seeds' recipe, in one run on
the same machine, model, data and seed, as a share of a matmul peak measured in the same run.

One JSON per dataset and model under experiments/bench/<name>/ (and, with publish, under
reports/benchmarks/<device>/ for committed reference results). Every phase records the
machine's load beside its numbers: two CPU threads slow down badly when anything else runs.
"""
from __future__ import annotations

import dataclasses
import gc
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers import config, data, flops, models, reference, threads, training
from helpers.benchconfig import BenchConfig, BenchData
from helpers.device import Precision, detect_device, precision_for
from helpers.environment import cpu_name, environment
from helpers.inference import count_tokens, predict_proba
from helpers.io import write_json
from helpers.paths import experiments_dir, reports_dir
from helpers.run import seed_everything
from helpers.timing import machine_load, peak_memory, summarize, time_interleaved

TARGET_SPEEDUP = 2.0
TARGET_MFU = 0.5
TARGET_ACCURACY_POINTS = 0.5


def compute_dtype(precision: Precision) -> torch.dtype:
    """What the matmuls run in: bf16 (fp16) under CUDA mixed precision, else the weights' dtype."""
    if precision.bf16:
        return torch.bfloat16
    if precision.fp16:
        return torch.float16
    return precision.dtype


def device_name(device: str) -> str:
    """A folder name for published results: the GPU's name, or the CPU's with its core count."""
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu {cpu_name()} {torch.get_num_threads()}t"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def bench_splits(bench_data: BenchData, cfg: BenchConfig) -> data.DatasetSplits:
    """The dataset's own loader and seeded split, capped to what this bench needs."""
    needed = max(bench_data.train_examples, cfg.scaling.examples * max(cfg.scaling.factors, default=1))
    preset = config.Preset(name="bench", max_train=needed, max_validation=bench_data.validation_examples,
                           max_test=bench_data.infer_examples, max_length=bench_data.max_length, balance=False,
                           train=cfg.train, speed=config.SpeedConfig())
    return data.load_splits(config.get_dataset(bench_data.id), preset, cfg.seed, cfg.data_dir)


def lora_model(spec: config.ModelSpec, labels: list[str], precision: Precision, train_cfg: config.TrainConfig,
               tokenizer, seed: int) -> torch.nn.Module:
    """A fresh base with LoRA, seeded so both paths start from the same adapter weights."""
    seed_everything(seed)
    base = models.load_base(spec, labels, precision, train_cfg.quantization, tokenizer)
    return models.add_lora(base, spec, train_cfg)


def train_summary(result: training.TrainResult, warmup_steps: int, flops_per_token: int, peak_gflops: float) -> dict:
    """Steady-state real tokens/s (the first warm-up steps left out), per-step median/min/max,
    samples/s and wall time per epoch (evaluation excluded)."""
    seconds, tokens = np.asarray(result.step_seconds, float), np.asarray(result.step_tokens, float)
    skip = warmup_steps if len(seconds) > warmup_steps else 0
    steady_s, steady_tokens = seconds[skip:], tokens[skip:]
    rates = steady_tokens / steady_s
    tokens_per_sec = float(steady_tokens.sum() / steady_s.sum())
    wall = float(seconds.sum())
    return {
        "tokens_per_sec": tokens_per_sec,
        "tokens_per_sec_median_step": float(np.median(rates)),
        "tokens_per_sec_min_step": float(rates.min()),
        "tokens_per_sec_max_step": float(rates.max()),
        "tokens_per_sec_all_steps": float(tokens.sum() / wall),
        "samples_per_sec": result.train_samples * result.epochs / wall,
        "wall_time_per_epoch_s": wall / max(result.epochs, 1e-9),
        "step_time_s": dataclasses.asdict(summarize(list(seconds[skip:] * 1000.0))),
        "steps": result.steps,
        "warmup_steps": skip,
        "threads_per_step": {str(n): result.step_threads.count(n) for n in sorted(set(result.step_threads))},
        "epochs": result.epochs,
        "train_samples": result.train_samples,
        "train_tokens": result.train_tokens,
        "mfu": flops.mfu(tokens_per_sec, flops_per_token, peak_gflops),
    }


def accuracy(model, tokenizer, df: pd.DataFrame, batch_size: int, max_length: int, device: str) -> float:
    """Validation accuracy through the same prediction code for every path."""
    probs = predict_proba(model, tokenizer, df["text"].tolist(), batch_size, max_length, device)
    return float((probs.argmax(axis=1) == df["label"].to_numpy()).mean())


def matmul_peaks(cfg: BenchConfig, precision: Precision) -> list[flops.MatmulPeak]:
    """The matmul peak at each thread count of the params (one on a GPU)."""
    counts = cfg.threads if precision.device == "cpu" else [torch.get_num_threads()]
    before = torch.get_num_threads()
    try:
        peaks = []
        for count in counts:
            torch.set_num_threads(count)
            peaks.append(flops.matmul_peak(precision.device, compute_dtype(precision), cfg.matmul.size,
                                           cfg.matmul.warmup, cfg.matmul.repeats))
        return peaks
    finally:
        torch.set_num_threads(before)


def throughput(times_ms: list[float], n_texts: int, n_tokens: int, forward_flops: int, peak_gflops: float) -> dict:
    """Samples/s and real tokens/s of repeated passes over the same texts: median, min, max."""
    stats = summarize(times_ms)
    per_s = {name: n_texts / (ms / 1000.0) for name, ms in
             (("median", stats.median_ms), ("min", stats.max_ms), ("max", stats.min_ms))}
    tokens_per_sec = n_tokens / (stats.median_ms / 1000.0)
    return {
        "samples_per_sec": per_s["median"], "samples_per_sec_min": per_s["min"], "samples_per_sec_max": per_s["max"],
        "tokens_per_sec": tokens_per_sec, "pass_ms": dataclasses.asdict(stats),
        "mfu": flops.mfu(tokens_per_sec, forward_flops, peak_gflops),
    }


def latency(times_ms: list[float]) -> dict:
    stats = summarize(times_ms)
    return {"median_ms": stats.median_ms, "p99_ms": stats.p99_ms, "min_ms": stats.min_ms, "max_ms": stats.max_ms,
            "n": stats.n}


def inference_model(model: torch.nn.Module, precision: Precision) -> torch.nn.Module:
    """The merged model both inference paths run; in the compute dtype under CUDA mixed precision."""
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    return merged.to(compute_dtype(precision)).eval()


def bench_inference(model, tokenizer, texts: list[str], batch_sizes: list[int], cfg: BenchConfig, max_length: int,
                    n_linear: int, peak_gflops: float, device: str) -> dict:
    """The pipeline's defaults against our length-sorted path at each batch size, plus
    single-example latency of both; the two paths take turns so the load hits both alike."""
    classifier = reference.text_classifier(model, tokenizer, device)
    n_tokens = count_tokens(tokenizer, texts, max_length)
    forward = flops.forward_flops_per_token(n_linear)
    runs: dict[str, dict] = {"ours": {}, "reference": {}}
    load = {"before": machine_load()}
    for i, bs in enumerate(batch_sizes):
        times = time_interleaved({
            "ours": lambda: predict_proba(model, tokenizer, texts, bs, max_length, device),
            "reference": lambda: reference.classify(classifier, texts, bs, max_length),
        }, cfg.infer.warmup if i == 0 else 0, cfg.infer.repeats, device)
        for path, ms in times.items():
            runs[path][bs] = throughput(ms, len(texts), n_tokens, forward, peak_gflops)
    single = texts[len(texts) // 2]
    times = time_interleaved({
        "ours": lambda: predict_proba(model, tokenizer, [single], 1, max_length, device),
        "reference": lambda: reference.classify(classifier, [single], 1, max_length),
    }, cfg.infer.warmup, cfg.infer.latency_repeats, device)
    lat = {path: latency(ms) for path, ms in times.items()}
    lat["example_tokens"] = count_tokens(tokenizer, [single], max_length)
    load["after"] = machine_load()
    best = {path: max(r, key=lambda bs: r[bs]["samples_per_sec"]) for path, r in runs.items()}
    return {"by_batch_size": runs, "best_batch_size": best, "latency": lat, "texts": len(texts),
            "real_tokens": n_tokens, "load": load}


def bench_threads(spec, splits, tokenizer, merged, cfg: BenchConfig, bench_data: BenchData, precision: Precision,
                  best_bs: int, n_linear: int, scratch: Path) -> list[dict]:
    """Our paths pinned to each thread count, each against a matmul peak at that thread count."""
    before = torch.get_num_threads()
    texts = splits.test["text"].tolist()
    n_tokens = count_tokens(tokenizer, texts, bench_data.max_length)
    rows = []
    try:
        for count in cfg.threads:
            torch.set_num_threads(count)
            load = machine_load()
            peak = flops.matmul_peak(precision.device, compute_dtype(precision), cfg.matmul.size, cfg.matmul.warmup,
                                     cfg.matmul.repeats)
            with threads.pinned(count):
                times = time_interleaved({"ours": lambda: predict_proba(merged, tokenizer, texts, best_bs,
                                                                        bench_data.max_length, precision.device)},
                                         cfg.infer.warmup, cfg.infer.repeats, precision.device)
                infer = throughput(times["ours"], len(texts), n_tokens, flops.forward_flops_per_token(n_linear),
                                   peak.gflops)
                short = dataclasses.replace(cfg.train, max_steps=cfg.threads_train_steps + cfg.warmup_steps)
                model = lora_model(spec, splits.labels, precision, short, tokenizer, cfg.seed)
                result = training.train(model, tokenizer, splits.train, short, precision,
                                        bench_data.max_length, cfg.seed, scratch / f"threads-{count}")
            train = train_summary(result, cfg.warmup_steps, flops.lora_train_flops_per_token(n_linear), peak.gflops)
            rows.append({"threads": count, "matmul_peak_gflops": peak.gflops,
                         "infer_samples_per_sec": infer["samples_per_sec"], "infer_mfu": infer["mfu"],
                         "train_tokens_per_sec": train["tokens_per_sec"], "train_mfu": train["mfu"],
                         "infer_batch_size": best_bs, "load_before": load, "load_after": machine_load()})
            del model
            gc.collect()
    finally:
        torch.set_num_threads(before)
    return rows


def bench_scaling(spec, splits, tokenizer, cfg: BenchConfig, precision: Precision, n_linear: int, peak_gflops: float,
                  scratch: Path) -> list[dict]:
    """Our training at 1x, 2x, 4x the examples and at each max length: how cost grows with work."""
    rows = []
    for max_length in cfg.scaling.max_lengths:
        for factor in cfg.scaling.factors:
            n = cfg.scaling.examples * factor
            model = lora_model(spec, splits.labels, precision, cfg.train, tokenizer, cfg.seed)
            load = machine_load()
            result = training.train(model, tokenizer, splits.train.head(n), cfg.train,
                                    precision, max_length, cfg.seed, scratch / f"scaling-{max_length}-{n}")
            summary = train_summary(result, cfg.warmup_steps, flops.lora_train_flops_per_token(n_linear), peak_gflops)
            rows.append({"max_length": max_length, "factor": factor, "examples": n,
                         "real_tokens": result.train_tokens, "wall_time_s": float(sum(result.step_seconds)),
                         "tokens_per_sec": summary["tokens_per_sec_all_steps"], "mfu": summary["mfu"],
                         "load_before": load, "load_after": machine_load()})
            del model
            gc.collect()
    return rows


def bench_qlora(spec, splits, tokenizer, cfg: BenchConfig, bench_data: BenchData, precision: Precision,
                n_linear: int, peak_gflops: float, scratch: Path) -> dict:
    """The same training with the body in 4-bit NF4 (QLoRA): footprint, step time, accuracy."""
    qcfg = dataclasses.replace(cfg.train, quantization="4bit")
    model = lora_model(spec, splits.labels, precision, qcfg, tokenizer, cfg.seed)
    footprint = model.get_memory_footprint() / 2**20
    load = machine_load()
    with peak_memory(precision.device) as memory:
        result = training.train(model, tokenizer, splits.train.head(bench_data.train_examples), qcfg, precision,
                                bench_data.max_length, cfg.seed, scratch / "qlora")
    summary = train_summary(result, cfg.warmup_steps, flops.lora_train_flops_per_token(n_linear), peak_gflops)
    acc = accuracy(model, tokenizer, splits.validation, cfg.train.eval_batch_size, bench_data.max_length,
                   precision.device)
    del model
    gc.collect()
    return {"memory_mb": footprint, "train_peak_memory": memory, "train": summary, "val_accuracy": acc,
            "compute_dtype": str(precision.qlora_compute_dtype).removeprefix("torch."),
            "load_before": load, "load_after": machine_load()}


def chosen(model_id: str, models_listed: list[str]) -> bool:
    return not models_listed or model_id in models_listed


def bench_model(spec: config.ModelSpec, splits: data.DatasetSplits, bench_data: BenchData, cfg: BenchConfig,
                precision: Precision, scratch: Path) -> dict:
    """Every measurement of one model on one dataset, in one process, one after the other."""
    device, max_length = precision.device, bench_data.max_length
    tokenizer = models.load_tokenizer(spec)
    train_df = splits.train.head(bench_data.train_examples)
    load_start = machine_load()
    peaks_start = matmul_peaks(cfg, precision)
    peak = max(peaks_start, key=lambda p: p.gflops)

    ref_model = lora_model(spec, splits.labels, precision, cfg.train, tokenizer, cfg.seed)
    n_linear = flops.linear_weights(ref_model)
    train_flops = flops.lora_train_flops_per_token(n_linear)
    load_ref = machine_load()
    with peak_memory(device) as ref_memory:
        ref_result = reference.train_reference(ref_model, train_df, tokenizer, cfg.train, max_length, cfg.seed,
                                                precision, scratch / "reference")
    ref = train_summary(ref_result, cfg.warmup_steps, train_flops, peak.gflops)
    padded_tokens = ref_result.train_samples * ref_result.epochs * max_length
    ref.update(padding_share=1.0 - ref_result.train_tokens / padded_tokens, peak_memory=ref_memory,
               load_before=load_ref, load_after=machine_load(),
               val_accuracy=accuracy(ref_model, tokenizer, splits.validation, cfg.train.eval_batch_size, max_length,
                                     device))
    del ref_model
    gc.collect()

    ours_model = lora_model(spec, splits.labels, precision, cfg.train, tokenizer, cfg.seed)
    lora_footprint = ours_model.get_memory_footprint() / 2**20
    trainable, total = models.count_parameters(ours_model)
    load_ours = machine_load()
    with peak_memory(device) as ours_memory:
        ours_result = training.train(ours_model, tokenizer, train_df, cfg.train, precision,
                                     max_length, cfg.seed, scratch / "ours")
    ours = train_summary(ours_result, cfg.warmup_steps, train_flops, peak.gflops)
    ours.update(peak_memory=ours_memory, load_before=load_ours, load_after=machine_load(),
                val_accuracy=accuracy(ours_model, tokenizer, splits.validation, cfg.train.eval_batch_size,
                                      max_length, device))

    merged = inference_model(ours_model, precision)
    texts = splits.test["text"].tolist()
    batch_sizes = sorted({min(bs, len(texts)) for bs in bench_data.batch_sizes})
    infer = bench_inference(merged, tokenizer, texts, batch_sizes, cfg, max_length, n_linear, peak.gflops, device)
    best_ours = infer["by_batch_size"]["ours"][infer["best_batch_size"]["ours"]]
    best_ref = infer["by_batch_size"]["reference"][infer["best_batch_size"]["reference"]]
    extras = bench_data.extras
    threads = (bench_threads(spec, splits, tokenizer, merged, cfg, bench_data, precision,
                             infer["best_batch_size"]["ours"], n_linear, scratch)
               if extras and device == "cpu" and chosen(spec.id, cfg.threads_models) else [])
    del merged, ours_model
    gc.collect()
    scaling = (bench_scaling(spec, splits, tokenizer, cfg, precision, n_linear, peak.gflops, scratch)
               if extras and chosen(spec.id, cfg.scaling.models) else [])
    qlora = (bench_qlora(spec, splits, tokenizer, cfg, bench_data, precision, n_linear, peak.gflops, scratch)
             if extras and cfg.qlora else None)
    peaks_end = matmul_peaks(cfg, precision)

    record = {
        "model": spec.id,
        "dataset": bench_data.id,
        "seed": cfg.seed,
        "max_length": max_length,
        "device": device,
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "train_tokens_per_sec_ours": ours["tokens_per_sec"],
        "train_tokens_per_sec_reference": ref["tokens_per_sec"],
        "train_speedup": ours["tokens_per_sec"] / ref["tokens_per_sec"],
        "val_accuracy_ours": ours["val_accuracy"],
        "val_accuracy_reference": ref["val_accuracy"],
        "infer_samples_per_sec_ours": best_ours["samples_per_sec"],
        "infer_samples_per_sec_reference": best_ref["samples_per_sec"],
        "infer_speedup": best_ours["samples_per_sec"] / best_ref["samples_per_sec"],
        "latency_median_ms_ours": infer["latency"]["ours"]["median_ms"],
        "latency_p99_ms_ours": infer["latency"]["ours"]["p99_ms"],
        "latency_median_ms_reference": infer["latency"]["reference"]["median_ms"],
        "latency_p99_ms_reference": infer["latency"]["reference"]["p99_ms"],
        "matmul_peak_gflops": peak.gflops,
        "train_mfu": ours["mfu"],
        "train_mfu_reference": ref["mfu"],
        "infer_mfu": best_ours["mfu"],
        "infer_mfu_reference": best_ref["mfu"],
        "lora_memory_mb": lora_footprint,
        "qlora_memory_mb": qlora["memory_mb"] if qlora else None,
        "targets": targets(ours, ref, best_ours, best_ref),
        "flops": {"linear_weights": n_linear, "forward_per_token": flops.forward_flops_per_token(n_linear),
                  "lora_train_per_token": train_flops, "trainable_params": trainable, "total_params": total},
        "matmul_peak": {"used": dataclasses.asdict(peak), "start": [dataclasses.asdict(p) for p in peaks_start],
                        "end": [dataclasses.asdict(p) for p in peaks_end]},
        "train": {"ours": ours, "reference": ref},
        "infer": infer,
        "qlora": qlora,
        "lora": {"memory_mb": lora_footprint, "train_peak_memory": ours_memory, "train": ours,
                 "val_accuracy": ours["val_accuracy"]},
        "threads_comparison": threads,
        "scaling": scaling,
        "data": {"source": splits.source, "fingerprint": splits.fingerprint, "train_examples": len(train_df),
                 "validation_examples": len(splits.validation), "infer_examples": len(splits.test),
                 "mean_real_tokens": ours_result.train_tokens / max(ours_result.epochs, 1e-9) / len(train_df)},
        "load": {"start": load_start, "end": machine_load()},
        "params": dataclasses.asdict(cfg),
        "environment": environment(device),
    }
    return record


def targets(ours: dict, ref: dict, best_ours: dict, best_ref: dict) -> dict[str, bool]:
    """The issue's targets, each true when met."""
    return {
        "train_speedup_2x": ours["tokens_per_sec"] >= TARGET_SPEEDUP * ref["tokens_per_sec"],
        "train_mfu_50": ours["mfu"] >= TARGET_MFU,
        "val_accuracy_within_half_point": abs(ours["val_accuracy"] - ref["val_accuracy"]) * 100
        <= TARGET_ACCURACY_POINTS,
        "infer_speedup_2x": best_ours["samples_per_sec"] >= TARGET_SPEEDUP * best_ref["samples_per_sec"],
        "infer_mfu_50": best_ours["mfu"] >= TARGET_MFU,
    }


def run_bench(cfg: BenchConfig, model_ids: list[str] | None = None, dataset_ids: list[str] | None = None,
              out_dir: Path | None = None, publish: bool = False, device: str | None = None) -> list[Path]:
    """Run every (dataset, model) of the params file; returns the JSON files written."""
    precision = precision_for(detect_device(device))
    out_dir = out_dir or experiments_dir() / "bench" / cfg.name
    written = []
    for bench_data in cfg.datasets:
        if dataset_ids and bench_data.id not in dataset_ids:
            continue
        splits = bench_splits(bench_data, cfg)
        for model_id in model_ids or cfg.models:
            with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
                record = bench_model(config.get_model(model_id), splits, bench_data, cfg, precision, Path(scratch))
            name = Path(bench_data.id) / f"{model_id}.json"
            written.append(write_json(out_dir / name, record))
            if publish:
                written.append(write_json(reports_dir() / "benchmarks" / record["device_name"] / name, record))
    return written
