"""Latency and throughput measurement: warm-up, repeated timed runs, medians and P99.

Two CPU threads slow down badly when anything else runs, so every measurement records the
machine's load next to the numbers it produced.
"""
from __future__ import annotations

import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import psutil
import torch

from helpers.config import SpeedConfig
from helpers.core.device import synchronize
from helpers.evaluate.inference import count_tokens, predict_proba

if TYPE_CHECKING:  # a run-time import costs seconds in every notebook kernel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class TimingStats:
    n: int
    mean_ms: float
    median_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float


def summarize(times_ms: list[float]) -> TimingStats:
    if not times_ms:
        raise ValueError("no timings to summarize")
    arr = np.asarray(times_ms, dtype=float)
    return TimingStats(
        n=len(arr), mean_ms=float(arr.mean()), median_ms=float(np.median(arr)),
        p99_ms=float(np.percentile(arr, 99)), min_ms=float(arr.min()), max_ms=float(arr.max()),
    )


def time_calls(fn: Callable[[], object], warmup: int, repeats: int, device: str = "cpu") -> list[float]:
    """Milliseconds per call of fn, after `warmup` untimed calls; CUDA work is synchronized."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def time_interleaved(fns: dict[str, Callable[[], object]], warmup: int, repeats: int,
                     device: str = "cpu") -> dict[str, list[float]]:
    """Milliseconds per call of each fn, the fns taking turns in every round, so load that comes
    and goes on a shared machine hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def machine_load() -> dict[str, float | None]:
    """Load average, how busy the CPU is with other processes, and how fast two threads hand data
    to each other (`cross_core_ms`), right now."""
    # This process sleeps during the 0.2 s sample, so the busy share is other processes' load.
    busy = psutil.cpu_percent(interval=0.2)
    load1, load5, _ = os.getloadavg()
    return {"loadavg_1m": load1, "loadavg_5m": load5, "cpu_busy_percent_others": busy, "cpus": psutil.cpu_count(),
            "cross_core_ms": cross_core_ms()}


def cross_core_ms(repeats: int = 5) -> float | None:
    """The median milliseconds of a fixed chain on two threads in which each reads what the other
    wrote: 20 layers of int8 weights widened to fp32 and 64 x 576 activations multiplied by them,
    as weight-only int8 inference runs. None with one CPU.

    A virtual machine's host places its vCPUs on cores of its own choosing. On this project's 2-core
    host the chain takes 7.7-8.8 ms while the two vCPUs share an L3 cache (a core-to-core round
    trip of 50-90 ns) and 15.3-18.9 ms while they do not (310-370 ns). The host moves them from one
    to the other within seconds to minutes, in one process with nothing else running and no steal
    time reported, and batch-1 inference of SmolLM2-135M takes 131 ms a review against 163 in fp32,
    133 against 255 in weight-only int8 (docs/performance.md#the-hosts-two-states)."""
    if (psutil.cpu_count() or 1) < 2:
        return None
    generator = torch.Generator().manual_seed(0)
    activations = torch.randn(64, 576, generator=generator)
    weight = torch.randint(-127, 128, (576, 576), dtype=torch.int8, generator=generator)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        def chain() -> None:
            x = activations
            for _ in range(20):
                x = torch.tanh(x @ weight.to(torch.float32).t() / 2048)

        return float(np.median(time_calls(chain, warmup=1, repeats=repeats)))
    finally:
        torch.set_num_threads(threads)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (the stage's kernel) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def peak_memory(device: str, interval_s: float = 0.02) -> Iterator[dict[str, float]]:
    """Peak memory of the enclosed work, filled in on exit: CUDA max allocated/reserved on a GPU;
    on a CPU the process's resident memory sampled in a background thread (ru_maxrss only ever
    grows, so it cannot tell one phase from the last)."""
    peak: dict[str, float] = {}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield peak
        torch.cuda.synchronize()
        peak.update(allocated_mb=torch.cuda.max_memory_allocated() / 2**20,
                    reserved_mb=torch.cuda.max_memory_reserved() / 2**20)
        return
    process = psutil.Process()
    start = process.memory_info().rss
    samples = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval_s):
            samples.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
        samples.append(process.memory_info().rss)
        peak.update(rss_peak_mb=max(samples) / 2**20, rss_start_mb=start / 2**20,
                    rss_growth_mb=(max(samples) - start) / 2**20)


def measure_inference(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                      cfg: SpeedConfig, max_length: int, device: str) -> dict:
    """Single-example latency (TTFT for a classifier: time until its prediction is ready,
    tokenization included) and batched throughput on the same texts."""
    texts = list(texts)[: cfg.max_examples]
    if not texts:
        raise ValueError("no texts to time")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    load_before = machine_load()
    single = texts[len(texts) // 2]  # a typical example, not the first (often shortest)
    latency = summarize(time_calls(
        lambda: predict_proba(model, tokenizer, [single], 1, max_length, device),
        cfg.warmup, cfg.repeats, device))
    batch_runs = summarize(time_calls(
        lambda: predict_proba(model, tokenizer, texts, cfg.batch_size, max_length, device),
        1, max(3, cfg.repeats // 10), device))
    tokens = count_tokens(tokenizer, texts, max_length)
    batch_s = batch_runs.median_ms / 1000.0
    record = {
        "ttft_mean_ms": latency.mean_ms,
        "latency_median_ms": latency.median_ms,
        "latency_p99_ms": latency.p99_ms,
        "latency_mean_ms": latency.mean_ms,
        "latency_min_ms": latency.min_ms,
        "latency_max_ms": latency.max_ms,
        "latency_example_tokens": count_tokens(tokenizer, [single], max_length),
        "throughput_samples_per_sec": len(texts) / batch_s,
        "throughput_tokens_per_sec": tokens / batch_s,
        "throughput_batch_size": cfg.batch_size,
        "throughput_examples": len(texts),
        "throughput_runs": asdict(batch_runs),
        **resources(model, device, load_before),
    }
    return record


def resources(model: PreTrainedModel, device: str, load_before: dict[str, float]) -> dict:
    """What a speed measurement used and ran beside: CUDA peak memory since the last reset (null on
    a CPU), the model's footprint, the process's peak RSS, the load before and now, the threads."""
    cuda = device == "cuda"
    return {
        "memory_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "memory_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
        "model_memory_mb": model.get_memory_footprint() / 2**20,
        "peak_rss_mb": peak_rss_mb(),
        "load_before": load_before,
        "load_after": machine_load(),
        "threads": torch.get_num_threads(),
    }
