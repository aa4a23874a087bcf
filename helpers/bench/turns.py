"""Trainings in one process taking turns, one optimizer step each (`train_order: interleaved`).

Timed one after the other, the two paths' trainings run minutes apart and can meet different
machines: this host's two vCPUs move between near and far cores within seconds or hold one state
for many minutes, which moves an fp32 step by a quarter and the training speed-up with it
(docs/performance.md, "The host's two states"). Taking turns step by step, both paths meet every
state in the same proportion, so their speed-up compares the paths rather than the moments.

Each training runs in its own thread, but only the holder of the baton runs; the others wait on
a condition without using the CPU. Each party holds the baton from its start (model loading and
tokenizing included) to the end of its first optimizer step, then from one step's end to the
next: a party's step clock stops before it hands the baton on (helpers/train/trainer.py
`StepClock`), so no party's steps count another's. At every handoff the party's random state
(Python's, numpy's, torch's CPU and CUDA generators) is saved and the next one's restored, so each
training draws exactly what it would draw alone: taking turns changes when a step runs, not what
it computes (tests/test_bench.py).
"""
from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

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


class Turns:
    """A baton passed round-robin among named parties; a party that leaves drops out of the round."""

    def __init__(self, names: Sequence[str]):
        if not names or len(set(names)) != len(names):
            raise ValueError(f"turns need distinct party names, got {list(names)}")
        self._parties = list(names)
        self._holder: str | None = self._parties[0]
        self._states: dict[str, tuple] = {}
        self._condition = threading.Condition()
        self.order: list[str] = []  # who ran each turn, in turn (a party's first turn included)

    def take(self, name: str) -> None:
        """Wait for `name`'s turn, then give it back its random state."""
        with self._condition:
            self._condition.wait_for(lambda: self._holder == name)
            self.order.append(name)
        if name in self._states:
            set_random_state(self._states.pop(name))

    def pass_on(self, name: str) -> None:
        """`name` hands the baton to the next party still running and waits for its next turn."""
        self._states[name] = random_state()
        with self._condition:
            self._holder = self._next(name)
            self._condition.notify_all()
        self.take(name)

    def leave(self, name: str) -> None:
        """`name` is done (or failed): the others go on without it."""
        with self._condition:
            following = self._next(name)
            self._parties.remove(name)
            if self._holder == name:
                self._holder = following if following != name else None
            self._condition.notify_all()

    def _next(self, name: str) -> str:
        at = self._parties.index(name)
        return self._parties[(at + 1) % len(self._parties)]


def run_interleaved(jobs: Mapping[str, Callable[[Callable[[], None]], T]]) -> tuple[dict[str, T], list[str]]:
    """Run every job in its own thread, taking turns in the mapping's order: each job gets the
    call that ends its turn (its step clock's `between_steps`). Returns each job's result and who
    ran each turn; the first job's error is raised once every job has ended."""
    turns = Turns(list(jobs))
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def party(name: str, job: Callable[[Callable[[], None]], T]) -> None:
        turns.take(name)
        try:
            results[name] = job(lambda: turns.pass_on(name))
        except BaseException as error:  # re-raised in the caller's thread below
            errors[name] = error
        finally:
            turns.leave(name)

    threads = [threading.Thread(target=party, args=(name, job), name=f"turns-{name}") for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        name, error = next(iter(errors.items()))
        raise RuntimeError(f"the {name!r} training failed while taking turns: {error}") from error
    return results, turns.order
