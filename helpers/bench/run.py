"""`senticompare bench`: our training and inference path against the HF Trainer baseline (pad to max
length), in one run on
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

import torch

from helpers import config
from helpers.bench import baseline, measure
from helpers.bench.config import BenchConfig, BenchData
from helpers.bench.targets import MFU as TARGET_MFU
from helpers.bench.targets import accuracy_equal, speedup_for
from helpers.core import allocator
from helpers.core.device import Precision, detect_device, precision_for
from helpers.core.environment import cpu_name, environment
from helpers.core.io import write_json
from helpers.core.paths import experiments_dir, reports_dir
from helpers.data.records import DatasetSplits
from helpers.data.splits import load_splits
from helpers.evaluate.significance import mcnemar_exact
from helpers.speed import flops
from helpers.speed.timing import machine_load
from helpers.train import models, trainer


def device_name(device: str) -> str:
    """A folder name for published results: the GPU's name, or the CPU's with its core count."""
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu {cpu_name()} {torch.get_num_threads()}t"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def bench_splits(bench_data: BenchData, cfg: BenchConfig) -> DatasetSplits:
    """The dataset's own loader and seeded split, capped to what this bench needs."""
    needed = max(bench_data.train_examples, cfg.scaling.examples * max(cfg.scaling.factors, default=1))
    scored_on_test = bench_data.validation_examples if bench_data.accuracy_split == "test" else 0
    preset = config.Preset(name="bench", max_train=needed, max_validation=bench_data.validation_examples,
                           max_test=max(bench_data.infer_examples, scored_on_test), max_length=bench_data.max_length,
                           balance=False, train=cfg.train, speed=config.SpeedConfig())
    return load_splits(config.get_dataset(bench_data.id), preset, cfg.seed, cfg.data_dir, min_test_rows=1)


def chosen(model_id: str, models_listed: list[str]) -> bool:
    return not models_listed or model_id in models_listed


def bench_model(spec: config.ModelSpec, splits: DatasetSplits, bench_data: BenchData, cfg: BenchConfig,
                precision: Precision, scratch: Path) -> dict:
    """Every measurement of one model on one dataset, in one process, one after the other (the two
    timed trainings in the params' `train_order`: taking turns step by step, or one after the other)."""
    device, max_length = precision.device, bench_data.max_length
    tokenizer = models.load_tokenizer(spec)
    train_df = splits.train.head(bench_data.train_examples)
    load_start = machine_load()
    peaks_start = measure.matmul_peaks(cfg, precision)
    peak = max(peaks_start, key=lambda p: p.gflops)

    held_out = measure.scored(splits, bench_data)
    jobs = {
        "reference": lambda between_steps: trained_reference(spec, splits.labels, tokenizer, train_df, cfg, max_length,
                                                             precision, scratch, between_steps),
        "ours": lambda between_steps: trained_ours(spec, splits.labels, tokenizer, train_df, cfg, max_length,
                                                   precision, scratch, between_steps),
    }
    paths, turn_order = measure.train_paths(
        jobs, lambda model: measure.correct(model, tokenizer, held_out, cfg.train.eval_batch_size, max_length, device),
        {"ours"}, cfg.train_order, device)
    ours_model = paths["ours"].model
    n_linear = flops.linear_weights(ours_model)  # the same architecture on both paths
    train_flops = flops.lora_train_flops_per_token(n_linear)
    lora_footprint = ours_model.get_memory_footprint() / 2**20
    trainable, total = models.count_parameters(ours_model)
    ref_result, ours_result = paths["reference"].result, paths["ours"].result
    ref_correct, ours_correct = paths["reference"].correct, paths["ours"].correct
    ref = measure.train_summary(ref_result, cfg.warmup_steps, train_flops, peak.gflops)
    ours = measure.train_summary(ours_result, cfg.warmup_steps, train_flops, peak.gflops)
    padded_tokens = ref_result.train_samples * ref_result.epochs * max_length
    ref.update(padding_share=1.0 - ref_result.train_tokens / padded_tokens)
    for summary, path in ((ref, paths["reference"]), (ours, paths["ours"])):
        summary.update(peak_memory=path.peak_memory, load_before=path.load_before, load_after=path.load_after,
                       val_accuracy=float(path.correct.mean()))
    ours_memory = paths["ours"].peak_memory
    ours_only, ref_only, p_value = mcnemar_exact(ours_correct, ref_correct)
    paired = {"examples": len(ours_correct), "ours_only_correct": ours_only, "reference_only_correct": ref_only,
              "p_value": p_value}
    del paths

    merged = measure.inference_model(ours_model, precision)
    texts = measure.timed_texts(splits, bench_data)
    batch_sizes = sorted({min(bs, len(texts)) for bs in bench_data.batch_sizes})
    infer = measure.bench_inference(merged, tokenizer, texts, batch_sizes, cfg, max_length, n_linear, peak.gflops, device)
    best_ours = infer["by_batch_size"]["ours"][infer["best_batch_size"]["ours"]]
    best_ref = infer["by_batch_size"]["reference"][infer["best_batch_size"]["reference"]]
    int8 = {mode: measure.bench_int8(merged, mode, ours_correct, tokenizer, held_out, texts, infer["best_batch_size"]["ours"],
                                     cfg, max_length, device) for mode in cfg.int8}
    extras = bench_data.extras
    threads = (measure.bench_threads(spec, splits, tokenizer, merged, cfg, bench_data, precision,
                             infer["best_batch_size"]["ours"], n_linear, scratch)
               if extras and device == "cpu" and chosen(spec.id, cfg.threads_models) else [])
    del merged, ours_model
    gc.collect()
    profiled = ({"train": measure.bench_profile(spec, splits, tokenizer, cfg, bench_data, precision, scratch),
                 "infer": infer.pop("profile")} if cfg.profile_steps else None)
    scaling = (measure.bench_scaling(spec, splits, tokenizer, cfg, precision, n_linear, peak.gflops, scratch)
               if extras and chosen(spec.id, cfg.scaling.models) else [])
    qlora = (measure.bench_qlora(spec, splits, tokenizer, cfg, bench_data, precision, n_linear, peak.gflops, scratch)
             if extras and cfg.qlora else None)
    peaks_end = measure.matmul_peaks(cfg, precision)

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
        "train_speedup_interval": measure.speedup_interval(ours, ref),  # steps resampled in pairs
        "train_order": cfg.train_order,
        "train_turns": len(turn_order),  # interleaved: each path's steps and one more each; sequential: 2
        "val_accuracy_ours": ours["val_accuracy"],
        "val_accuracy_reference": ref["val_accuracy"],
        "val_mcnemar": paired,  # exact McNemar between the two paths' answers on the same held-out examples
        "infer_samples_per_sec_ours": best_ours["samples_per_sec"],
        "infer_samples_per_sec_reference": best_ref["samples_per_sec"],
        "infer_speedup": best_ours["samples_per_sec"] / best_ref["samples_per_sec"],
        "infer_agreement": infer["agreement"],  # the share of texts both inference paths label alike
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
        "targets": targets(ours, ref, best_ours, best_ref, paired, device),
        "flops": {"linear_weights": n_linear, "forward_per_token": flops.forward_flops_per_token(n_linear),
                  "lora_train_per_token": train_flops, "trainable_params": trainable, "total_params": total},
        "matmul_peak": {"used": dataclasses.asdict(peak), "start": [dataclasses.asdict(p) for p in peaks_start],
                        "end": [dataclasses.asdict(p) for p in peaks_end]},
        "train": {"ours": ours, "reference": ref},
        "infer": infer,
        "qlora": qlora,
        "int8": int8,  # our merged model in int8 against itself (params: int8)
        "lora": {"memory_mb": lora_footprint, "train_peak_memory": ours_memory, "train": ours,
                 "val_accuracy": ours["val_accuracy"]},
        "profile": profiled,  # torch.profiler per step of each path (params: profile_steps)
        "threads_comparison": threads,
        "scaling": scaling,
        "data": {"source": splits.source, "fingerprint": splits.fingerprint, "train_examples": len(train_df),
                 "validation_examples": len(held_out), "accuracy_split": bench_data.accuracy_split,
                 "infer_examples": len(texts),
                 "mean_real_tokens": ours_result.train_tokens / max(ours_result.epochs, 1e-9) / len(train_df)},
        "load": {"start": load_start, "end": machine_load()},
        "params": dataclasses.asdict(cfg),
        "environment": environment(device),
    }
    return record


def trained_reference(spec: config.ModelSpec, labels: list[str], tokenizer, train_df, cfg: BenchConfig,
                      max_length: int, precision: Precision, scratch: Path, between_steps) -> tuple:
    """The HF Trainer baseline's timed training from a fresh seeded model: (model, TrainResult)."""
    model = measure.lora_model(spec, labels, precision, cfg.train, tokenizer, cfg.seed)
    return model, baseline.train_reference(model, train_df, tokenizer, cfg.train, max_length, cfg.seed, precision,
                                           scratch / "reference", between_steps=between_steps)


def trained_ours(spec: config.ModelSpec, labels: list[str], tokenizer, train_df, cfg: BenchConfig,
                 max_length: int, precision: Precision, scratch: Path, between_steps) -> tuple:
    """Our path's timed training from the same fresh seeded model: (model, TrainResult)."""
    model = measure.lora_model(spec, labels, precision, cfg.train, tokenizer, cfg.seed)
    return model, trainer.train(model, tokenizer, train_df, cfg.train, precision, max_length, cfg.seed,
                                scratch / "ours", between_steps=between_steps)


def targets(ours: dict, ref: dict, best_ours: dict, best_ref: dict, paired: dict, device: str) -> dict[str, bool]:
    """The issue's targets for this device, each true when met (the speed-up's key names its factor)."""
    speedup = speedup_for(device)
    return {
        f"train_speedup_{speedup:g}x": ours["tokens_per_sec"] >= speedup * ref["tokens_per_sec"],
        "train_mfu_50": ours["mfu"] >= TARGET_MFU,
        "val_accuracy_equal": accuracy_equal((ours["val_accuracy"] - ref["val_accuracy"]) * 100,
                                             paired["p_value"], paired["examples"]),
        f"infer_speedup_{speedup:g}x": best_ours["samples_per_sec"] >= speedup * best_ref["samples_per_sec"],
        "infer_mfu_50": best_ours["mfu"] >= TARGET_MFU,
    }


def run_bench(cfg: BenchConfig, model_ids: list[str] | None = None, dataset_ids: list[str] | None = None,
              out_dir: Path | None = None, publish: bool = False, device: str | None = None,
              seed: int | None = None) -> list[Path]:
    """Run every (dataset, model) of the params file; returns the JSON files written.

    `seed` replaces the params' seed (the data sample, the initial weights and the batch order) for
    another draw of the same bench; its files are `<model>.seed<N>.json`, so they sit beside the
    params' seed's `<model>.json` instead of replacing it.
    """
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    allocator.use(cfg.allocator)  # before any model loads: the whole process runs under it
    suffix = f".seed{seed}" if seed is not None else ""
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
            name = Path(bench_data.id) / f"{model_id}{suffix}.json"
            written.append(write_json(out_dir / name, record))
            if publish:
                written.append(write_json(reports_dir() / "benchmarks" / record["device_name"] / name, record))
    return written
