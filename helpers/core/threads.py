"""CPU threads for the cores other processes leave free.

Measured on the 2-core machine while other sessions trained beside us: a LoRA training step ran
about 2.2x faster on 1 thread than on 2 (OpenMP's threads wait on each other when one of them
is descheduled), and on an idle machine 2 threads win. With SENTICOMPARE_THREADS=auto our paths
pick the thread count from the load each time they start work, and give the caller's setting
back afterwards; SENTICOMPARE_THREADS=<n> pins the count (the benchmark's 1-vs-2 comparison uses
it). Unset, torch's own setting stays: a thread count that follows the load changes the order of
floating-point sums from run to run, and a reviewer's rerun must give the same numbers.
torch is imported where it is used: the runner, the CLI and 05_compare read ENV without loading
it (about 3 s of a kernel's start on the 2-core machine).
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

import psutil

ENV = "SENTICOMPARE_THREADS"
_FIRST_SAMPLE_S = 0.05
_last: tuple[float, float, float] | None = None  # (system busy CPU s, own CPU s, wall s)


def _sample() -> tuple[float, float, float]:
    system = psutil.cpu_times()
    own = psutil.Process().cpu_times()
    busy = system.user + system.system + getattr(system, "nice", 0.0) + getattr(system, "irq", 0.0) + getattr(
        system, "softirq", 0.0) + getattr(system, "steal", 0.0)
    return busy, own.user + own.system, time.monotonic()


def others_busy_cores() -> float:
    """Cores' worth of CPU other processes used since the last call (a short sample the first
    time), without sleeping afterwards: cheap enough to ask before every batch."""
    global _last
    if _last is None:
        _last = _sample()
        time.sleep(_FIRST_SAMPLE_S)
    now = _sample()
    previous, _last = _last, now
    wall = now[2] - previous[2]
    if wall <= 0:
        return 0.0
    return max(0.0, ((now[0] - previous[0]) - (now[1] - previous[1])) / wall)


def free_core_threads() -> int:
    """The pinned count; with `auto` the cores not busy with other processes (at least one);
    else torch's current setting."""
    import torch

    pinned = os.environ.get(ENV, "")
    if not pinned:
        return torch.get_num_threads()
    if pinned != "auto":
        return max(1, int(pinned))
    cores = psutil.cpu_count() or 1
    return int(min(cores, max(1, round(cores - others_busy_cores()))))


@contextmanager
def cpu_threads(device: str) -> Iterator[int]:
    """Run the enclosed work on free_core_threads() threads when it runs on the CPU."""
    import torch

    before = torch.get_num_threads()
    threads = free_core_threads() if device == "cpu" else before
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


@contextmanager
def pinned(threads: int) -> Iterator[None]:
    """Pin our paths to a thread count for the enclosed work (SENTICOMPARE_THREADS)."""
    before = os.environ.get(ENV)
    os.environ[ENV] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
