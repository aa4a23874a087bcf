"""Trainings in one process taking turns, one optimizer step each (`train_order: interleaved`).

Timed one after the other, the two paths' trainings run minutes apart and can meet different
machines: this host's two vCPUs move between near and far cores within seconds or hold one state
for many minutes, which moves an fp32 step by a quarter and the training speed-up with it
(docs/performance.md, "The host's two states"). Taking turns step by step, both paths meet every
state in the same proportion, so their speed-up compares the paths rather than the moments.

Each training runs as a greenlet on the calling thread and hands control back at the end of each
optimizer step: a party's step clock stops before it does (helpers/train/trainer.py `StepClock`),
so no party's steps count another's; its first turn runs from its start (model loading and
tokenizing included) to the end of its first step. At every handoff the party's random state
(Python's, numpy's, torch's CPU and CUDA generators) is saved and the next one's restored, so each
training draws exactly what it would draw alone: taking turns changes when a step runs, not what
it computes (tests/test_bench.py).

Greenlets, not threads: a second thread running torch gets its own OpenMP team, and with more
OpenMP threads than cores libgomp stops spinning between parallel regions, so every one of the
thousands of small regions in a step of our micro-batches waits to be woken. Measured on the
2-core AMD EPYC (SmolLM2-135M, bench-accuracy's steps, the same process, 2026-11-30): our path's
median step took 3.8 s on the main thread and 5.3-5.7 s alone on a second thread, 5.1-5.5 s taking
turns in threads with the baseline; on greenlets 3.7 s alone. Under glibc's default allocator the
baseline's steps still ran 9-16 % slower in turn than alone (the EPYC; the Intel Xeon): its padded
activations, handed back to the kernel when freed, fault in again every step. With the bench's
`allocator: keep-freed` they ran as fast in turn as alone, and the two orders gave the same
speed-up (docs/decisions.md).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from greenlet import greenlet

T = TypeVar("T")


def random_state() -> tuple:
    """Every global random generator a training draws from."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def set_random_state(state: tuple) -> None:
    python, numpy_state, torch_cpu, cuda = state
    random.setstate(python)
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch_cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def run_interleaved(jobs: Mapping[str, Callable[[Callable[[], None]], T]]) -> tuple[dict[str, T], list[str]]:
    """Run every job as a greenlet on the calling thread, taking turns in the mapping's order: each
    job gets the call that ends its turn (its step clock's `between_steps`). Returns each job's
    result and who ran each turn; the first job's error is raised once every other job has ended."""
    if not jobs:
        raise ValueError("turns need at least one job")
    scheduler = greenlet.getcurrent()
    parties = {name: greenlet(lambda job=job: job(scheduler.switch)) for name, job in jobs.items()}
    states: dict[str, tuple] = {}
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    order: list[str] = []
    while parties:
        for name in list(parties):
            party = parties[name]
            if name in states:
                set_random_state(states.pop(name))
            order.append(name)
            try:
                value = party.switch()
            except BaseException as error:  # re-raised below, once the others are done
                errors[name] = error
                del parties[name]
                continue
            if party.dead:
                results[name] = value
                del parties[name]
            else:
                states[name] = random_state()
    if errors:
        name, error = next(iter(errors.items()))
        raise RuntimeError(f"the {name!r} training failed while taking turns: {error}") from error
    return results, order
