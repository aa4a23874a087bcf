"""What `senticompare bench` measures, phase by phase: training (ours and the HF Trainer baseline)
summarized per step, inference at several batch sizes and single-example latency, 1 vs 2 threads,
scaling with data and length, LoRA vs QLoRA, int8 inference; each against a matmul peak measured in
the same run."""
from __future__ import annotations

import copy
import dataclasses
import gc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers import config
from helpers.bench import baseline, profile, turns
from helpers.bench.config import BenchConfig, BenchData
from helpers.core import threads
from helpers.core.device import Precision
from helpers.data.records import DatasetSplits
from helpers.evaluate import quantize
from helpers.evaluate.inference import count_tokens, predict_proba
from helpers.evaluate.significance import bootstrap_ci, mcnemar_exact
from helpers.pipeline.run import seed_everything
from helpers.speed import flops
from helpers.speed.timing import machine_load, peak_memory, summarize, time_interleaved
from helpers.train import models, trainer


def compute_dtype(precision: Precision) -> torch.dtype:
    """What the matmuls run in: bf16 (fp16) under CUDA mixed precision, else the weights' dtype."""
    if precision.bf16:
        return torch.bfloat16
    if precision.fp16:
        return torch.float16
    return precision.dtype


def lora_model(spec: config.ModelSpec, labels: list[str], precision: Precision, train_cfg: config.TrainConfig,
               tokenizer, seed: int) -> torch.nn.Module:
    """A fresh base with LoRA, seeded so both paths start from the same adapter weights."""
    seed_everything(seed)
    base = models.load_base(spec, labels, precision, train_cfg.quantization, tokenizer)
    return models.add_lora(base, spec, train_cfg)


@dataclasses.dataclass
class PathTraining:
    """One path's timed training: its result, its answers on the held-out examples, and the peak
    memory and machine load around it."""
    result: trainer.TrainResult
    correct: np.ndarray
    peak_memory: dict
    load_before: dict
    load_after: dict
    model: torch.nn.Module | None  # kept for the paths the caller goes on with


def train_paths(jobs: dict[str, Callable], score: Callable[[torch.nn.Module], np.ndarray], keep: set[str],
                order: str, device: str) -> tuple[dict[str, PathTraining], list[str]]:
    """Each job (`between_steps` -> (model, TrainResult)) trained in `order` (params:
    train_order) and scored, with the models in `keep` kept; also who ran each turn (one entry
    per job when sequential). Sequential: one after the other, each model dropped before the next
    loads, each with its own peak memory. Interleaved: one optimizer step each in turn
    (helpers/bench/turns.py), both models loaded, one peak memory and load for both."""
    if order == "sequential":
        done = {}
        for name, job in jobs.items():
            before = machine_load()
            with peak_memory(device) as memory:
                model, result = job(None)
            done[name] = PathTraining(result, score(model), memory, before, machine_load(),
                                      model if name in keep else None)
            del model
            gc.collect()
        return done, list(jobs)
    before = machine_load()
    with peak_memory(device) as memory:
        trained, order_run = turns.run_interleaved(jobs)
    after = machine_load()
    memory["paths"] = sorted(jobs)  # one process-wide peak, both trainings resident
    done = {name: PathTraining(result, score(model), memory, before, after, model if name in keep else None)
            for name, (model, result) in trained.items()}
    del trained
    gc.collect()
    return done, order_run


def train_summary(result: trainer.TrainResult, warmup_steps: int, flops_per_token: int, peak_gflops: float) -> dict:
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
        "step_seconds": [float(x) for x in seconds],  # every step, warm-up included (since 2026-11-30)
        "step_tokens": [int(x) for x in tokens],
    }


def speedup_interval(ours: dict, reference: dict, confidence: float = 0.95, n_resamples: int = 2000,
                     seed: int = 0) -> dict | None:
    """The training speed-up with a bootstrap interval over the steady steps, resampled in pairs.

    Both paths read the same random batches (helpers/train/sampler.py), so step i of one computes
    the real tokens of step i of the other and the speed-up is the ratio of their summed step times.
    Resampling the steps in pairs (the studies' percentile bootstrap, helpers/evaluate/significance.py)
    says how much that ratio rests on which steps were drawn. It does not see what moves a whole
    training (the host's state between two trainings run one after the other); taking turns
    (`train_order: interleaved`) times step i of both paths seconds apart, where the pairing also
    cancels the host's drift. None for summaries without step times (files before 2026-11-30) or
    whose steps do not pair (other batches)."""
    if "step_seconds" not in ours or "step_seconds" not in reference:
        return None
    if ours["step_tokens"] != reference["step_tokens"]:
        return None
    skip = max(ours["warmup_steps"], reference["warmup_steps"])
    mine, theirs = np.asarray(ours["step_seconds"][skip:]), np.asarray(reference["step_seconds"][skip:])
    if len(mine) < 2:
        return None

    def ratio(ours_s: np.ndarray, reference_s: np.ndarray, axis: int = -1) -> np.ndarray:
        return reference_s.sum(axis=axis) / ours_s.sum(axis=axis)

    low, high = bootstrap_ci(mine, theirs, ratio, n_resamples, confidence, seed, vectorized=True)
    steps = theirs / mine
    return {"speedup": float(ratio(mine, theirs)), "low": low, "high": high, "confidence": confidence,
            "steps": len(mine), "step_ratio_median": float(np.median(steps)), "step_ratio_min": float(steps.min()),
            "step_ratio_max": float(steps.max())}


def scored(splits: DatasetSplits, bench_data: BenchData) -> pd.DataFrame:
    """The held-out examples both paths' accuracy is scored on (BenchData.accuracy_split)."""
    return splits.test if bench_data.accuracy_split == "test" else splits.validation


def timed_texts(splits: DatasetSplits, bench_data: BenchData) -> list[str]:
    """The test texts inference is timed on: the first `infer_examples` (the split may hold more to score)."""
    return splits.test["text"].head(bench_data.infer_examples).tolist()


def correct(model, tokenizer, df: pd.DataFrame, batch_size: int, max_length: int, device: str) -> np.ndarray:
    """Right or wrong on each held-out example, through the same prediction code for every path."""
    probs = predict_proba(model, tokenizer, df["text"].tolist(), batch_size, max_length, device)
    return probs.argmax(axis=1) == df["label"].to_numpy()


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


def compiled(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`model` under torch.compile in `mode` (one of COMPILE_MODES), or as it is for "none"."""
    if mode == "none":
        return model
    return torch.compile(model, mode=None if mode == "default" else mode)


def agreement(model, ours_probs, pipeline_out: list) -> float:
    """The share of texts where our argmax is the pipeline's label: the same model must answer the
    same through both paths, whatever the padding, compilation or batch."""
    label2id = model.config.label2id
    theirs = np.array([label2id[out["label"]] for out in pipeline_out])
    return float((np.asarray(ours_probs).argmax(axis=1) == theirs).mean())


def bench_inference(model, tokenizer, texts: list[str], batch_sizes: list[int], cfg: BenchConfig, max_length: int,
                    n_linear: int, peak_gflops: float, device: str) -> dict:
    """The pipeline's defaults against our length-sorted path at each batch size, plus
    single-example latency of both; the two paths take turns so the load hits both alike. Ours runs
    the model compiled in `cfg.infer.compile` (every batch size then warmed up: each shape compiles);
    `agreement` is the share of texts both paths label alike, at the best batch sizes."""
    classifier = baseline.text_classifier(model, tokenizer, device)
    ours_model = compiled(model, cfg.infer.compile)
    warm_every_size = cfg.infer.compile != "none"
    n_tokens = count_tokens(tokenizer, texts, max_length)
    forward = flops.forward_flops_per_token(n_linear)
    runs: dict[str, dict] = {"ours": {}, "reference": {}}
    load = {"before": machine_load()}
    for i, bs in enumerate(batch_sizes):
        times = time_interleaved({
            "ours": lambda bs=bs: predict_proba(ours_model, tokenizer, texts, bs, max_length, device),
            "reference": lambda bs=bs: baseline.classify(classifier, texts, bs, max_length),
        }, cfg.infer.warmup if i == 0 or warm_every_size else 0, cfg.infer.repeats, device)
        for path, ms in times.items():
            runs[path][bs] = throughput(ms, len(texts), n_tokens, forward, peak_gflops)
    single = texts[len(texts) // 2]
    times = time_interleaved({
        "ours": lambda: predict_proba(ours_model, tokenizer, [single], 1, max_length, device),
        "reference": lambda: baseline.classify(classifier, [single], 1, max_length),
    }, cfg.infer.warmup, cfg.infer.latency_repeats, device)
    lat = {path: latency(ms) for path, ms in times.items()}
    lat["example_tokens"] = count_tokens(tokenizer, [single], max_length)
    load["after"] = machine_load()
    best = {path: max(r, key=lambda bs: r[bs]["samples_per_sec"]) for path, r in runs.items()}
    passes = {"ours": lambda: predict_proba(ours_model, tokenizer, texts, best["ours"], max_length, device),
              "reference": lambda: baseline.classify(classifier, texts, best["reference"], max_length)}
    record = {"by_batch_size": runs, "best_batch_size": best, "latency": lat, "texts": len(texts),
              "real_tokens": n_tokens, "load": load, "compile": cfg.infer.compile,
              "agreement": agreement(model, passes["ours"](), passes["reference"]())}
    if cfg.profile_steps:
        record["profile"] = {path: guarded(profile.profile_calls, fn, device, cfg.profile_steps)
                             for path, fn in passes.items()}
    return record


def bench_int8(model, mode: str, fp32_correct: np.ndarray, tokenizer, held_out: pd.DataFrame, texts: list[str],
               batch_size: int, cfg: BenchConfig, max_length: int, device: str) -> dict:
    """Our merged model against an int8 copy of itself (`mode`, helpers/evaluate/quantize.py): the
    held-out examples each gets right (exact McNemar against the unquantized model's answers),
    single-example latency and throughput over `texts` at `batch_size` (the two taking turns), and
    the weights' size."""
    quantized = quantize.quantize_int8(copy.deepcopy(model), mode)
    load = {"before": machine_load()}
    right = correct(quantized, tokenizer, held_out, cfg.train.eval_batch_size, max_length, device)
    int8_only, fp32_only, p_value = mcnemar_exact(right, fp32_correct)
    single = texts[len(texts) // 2]
    passes = {name: (lambda m=m: predict_proba(m, tokenizer, texts, batch_size, max_length, device))
              for name, m in (("fp32", model), ("int8", quantized))}
    singles = {name: (lambda m=m: predict_proba(m, tokenizer, [single], 1, max_length, device))
               for name, m in (("fp32", model), ("int8", quantized))}
    n_tokens = count_tokens(tokenizer, texts, max_length)
    pass_ms = time_interleaved(passes, cfg.infer.warmup, cfg.infer.repeats, device)
    single_ms = time_interleaved(singles, cfg.infer.warmup, cfg.infer.latency_repeats, device)
    load["after"] = machine_load()
    rates = {name: len(texts) / (summarize(ms).median_ms / 1000.0) for name, ms in pass_ms.items()}
    return {
        "mode": mode, "examples": len(right), "accuracy": float(right.mean()),
        "accuracy_fp32": float(fp32_correct.mean()), "int8_only_correct": int8_only, "fp32_only_correct": fp32_only,
        "p_value": p_value, "points": float(right.mean() - fp32_correct.mean()) * 100,
        "samples_per_sec": rates["int8"], "samples_per_sec_fp32": rates["fp32"], "speedup": rates["int8"] / rates["fp32"],
        "batch_size": batch_size, "texts": len(texts), "real_tokens": n_tokens,
        "latency": {name: latency(ms) for name, ms in single_ms.items()},
        "weights_mb": quantize.weights_mb(quantized), "weights_mb_fp32": quantize.weights_mb(model), "load": load,
    }


def guarded(measurement, *args, **kwargs) -> dict:
    """A profile, or the error that stopped it: a profiler that fails on a machine (CUPTI missing,
    say) must not cost the bench's other numbers."""
    try:
        return measurement(*args, **kwargs)
    except Exception as error:  # recorded in the result, not swallowed
        return {"error": f"{type(error).__name__}: {error}"}


def _profiled_training(path: str, spec, splits: DatasetSplits, tokenizer, cfg: BenchConfig, bench_data: BenchData,
                       precision: Precision, scratch: Path) -> dict:
    short = dataclasses.replace(cfg.train, max_steps=cfg.warmup_steps + 1 + cfg.profile_steps)
    profiler = profile.StepProfiler(precision.device, cfg.warmup_steps, cfg.profile_steps)
    model = lora_model(spec, splits.labels, precision, short, tokenizer, cfg.seed)
    train_df = splits.train.head(bench_data.train_examples)
    try:
        if path == "ours":
            trainer.train(model, tokenizer, train_df, short, precision, bench_data.max_length, cfg.seed,
                          scratch / f"profile-{path}", callbacks=[profiler])
        else:
            baseline.train_reference(model, train_df, tokenizer, short, bench_data.max_length, cfg.seed, precision,
                                     scratch / f"profile-{path}", callbacks=[profiler])
    finally:
        del model
        gc.collect()
    return profiler.summary


def bench_profile(spec, splits: DatasetSplits, tokenizer, cfg: BenchConfig, bench_data: BenchData,
                  precision: Precision, scratch: Path) -> dict:
    """`cfg.profile_steps` optimizer steps of each path's training under torch.profiler, in a short
    fresh training after the warm-up steps (the timed trainings stay unprofiled)."""
    return {path: guarded(_profiled_training, path, spec, splits, tokenizer, cfg, bench_data, precision, scratch)
            for path in ("ours", "reference")}


def bench_threads(spec, splits, tokenizer, merged, cfg: BenchConfig, bench_data: BenchData, precision: Precision,
                  best_bs: int, n_linear: int, scratch: Path) -> list[dict]:
    """Our paths pinned to each thread count, each against a matmul peak at that thread count."""
    before = torch.get_num_threads()
    texts = timed_texts(splits, bench_data)
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
                result = trainer.train(model, tokenizer, splits.train, short, precision,
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
            result = trainer.train(model, tokenizer, splits.train.head(n), cfg.train,
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
        result = trainer.train(model, tokenizer, splits.train.head(bench_data.train_examples), qcfg, precision,
                                bench_data.max_length, cfg.seed, scratch / "qlora")
    summary = train_summary(result, cfg.warmup_steps, flops.lora_train_flops_per_token(n_linear), peak_gflops)
    acc = float(correct(model, tokenizer, scored(splits, bench_data), cfg.train.eval_batch_size,
                        bench_data.max_length, precision.device).mean())
    del model
    gc.collect()
    return {"memory_mb": footprint, "train_peak_memory": memory, "train": summary, "val_accuracy": acc,
            "compute_dtype": str(precision.qlora_compute_dtype).removeprefix("torch."),
            "load_before": load, "load_after": machine_load()}


