"""How a study's runs execute: a registry of executors, as papermill has engines. The study's
`executor:` (or `senticompare run --executor`) picks one; each takes the runs to do and a function
that executes some stages of one run in a kernel environment, and returns each run's failure.

- `serial` (the default): every stage of one run, then the next run.
- `local`: up to `max_workers` runs at once on this machine, each stage in its own kernel as
  always (the runner's threads only wait on them), then every run's 04_speed one after another,
  so that no latency or throughput is measured while another run trains. On a host with several
  GPUs each worker gets its own (`CUDA_VISIBLE_DEVICES`); on one GPU the workers share it, which
  pays because a small model's training step is bound by the host's kernel launches, not by the
  GPU (docs/performance.md). Each worker's kernels get `SENTICOMPARE_THREADS` = its share of the
  cores unless the user pinned it: with the same pinned count a run's numbers equal the serial
  executor's on CPU (tests/test_executors.py).

A run folder is the same whoever executes it: the executor changes when a stage runs, never what
it is given, so it is not part of a run's parameters and a finished study reruns under another
executor without redoing anything.
"""
from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch

from helpers.core.threads import ENV as THREADS_ENV

Plan = TypeVar("Plan")
SPEED_STAGE = "04_speed"


@dataclass(frozen=True)
class Failure:
    stage: str
    error: str


# Executes `stages` of one run in order with extra kernel environment; the first failure, or None.
StageRunner = Callable[[Plan, Sequence[str], dict[str, str]], "Failure | None"]


def default_workers() -> int:
    """One worker per GPU on a host with several, else one."""
    return max(1, torch.cuda.device_count())


def worker_envs(workers: int) -> list[dict[str, str]]:
    """Each worker's kernel environment: its GPU where the host has several, its share of the
    CPU cores unless SENTICOMPARE_THREADS is set."""
    gpus = torch.cuda.device_count()
    envs = []
    for slot in range(workers):
        env = {}
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
        if not os.environ.get(THREADS_ENV):
            env[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // workers))
        envs.append(env)
    return envs


def serial(plans: Sequence[Plan], run: StageRunner, stages: Sequence[str], max_workers: int | None = None,
           ) -> list[Failure | None]:
    return [run(plan, stages, {}) for plan in plans]


def local(plans: Sequence[Plan], run: StageRunner, stages: Sequence[str], max_workers: int | None = None,
          ) -> list[Failure | None]:
    workers = max(1, min(max_workers or default_workers(), len(plans)))
    before_speed = [stage for stage in stages if stage != SPEED_STAGE]
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for env in worker_envs(workers):
        slots.put(env)

    def in_a_slot(plan: Plan) -> Failure | None:
        env = slots.get()
        try:
            return run(plan, before_speed, env)
        finally:
            slots.put(env)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run") as pool:
        failures = list(pool.map(in_a_slot, plans))
    if SPEED_STAGE in stages:
        failures = [failure or run(plan, [SPEED_STAGE], {}) for plan, failure in zip(plans, failures, strict=True)]
    return failures


EXECUTORS: dict[str, Callable[..., list[Failure | None]]] = {"serial": serial, "local": local}


def get(name: str) -> Callable[..., list[Failure | None]]:
    if name not in EXECUTORS:
        raise KeyError(f"unknown executor {name!r}; use one of {sorted(EXECUTORS)}")
    return EXECUTORS[name]
