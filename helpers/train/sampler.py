"""The order training reads its examples in (TrainConfig `sampling`, `micro_batch_size` and
`micro_batch_split`).

Padding every batch to its longest text wastes most of a step on long, varied texts (Fine Foods at
256 tokens: 25,170 real tokens in 288 reviews, about 58,600 once each random batch of 8 is padded to
its longest, 73,728 at max_length). The Trainer's `group_by_length` removes the waste by building
batches of similar lengths, but those are not random draws, and review length goes with the label.
On params/bench-accuracy.yaml (one epoch of 288 reviews, batch 8, 1,000 test reviews) Gemma 3 270M
trained that way was 2.45 points behind the baseline's random batches over two seeds (p = 0.0015);
the same grouped batches in a shuffled order were 2.9 points behind on one seed and 1.9 ahead on
the other: whichever batches a path draws decide a few points, so a path that draws others cannot
be shown equal on one epoch.

`SortedStepSampler` draws the baseline's batches: each optimizer step's examples are the random
sampler's (the same permutation), sorted by length and run as micro-batches (gradient accumulation,
TrainConfig `micro_batch_size`) whose gradients add up to the batch's. Gemma, micro-batches of 2:
0.830 / 0.825 against the baseline's 0.832 / 0.827 on seeds 1337 / 42, with 12 / 14 and 4 / 6
reviews answered differently, in 129 s of training against the baseline's 253 s (whole random
batches padded to their longest: 199 s; micro-batches of 4: 134 s). transformers' own
`batch_rebalance` sampler sorts a step the same way but cuts it into micro-batches of unequal
sizes, and leaves a classification head's batch-mean losses unweighted by size (below).

`LeastPaddingSampler` (`micro_batch_split: least-padding`) cuts the same sorted step into the same
number of micro-batches, of whatever sizes compute the fewest tokens (the Trainer weights each
micro-batch's loss by its share of the step: helpers/train/trainer.py `LeastPaddingTrainer`). On the
bench-accuracy samples (seeds 1337 / 42 / 7, SmolLM2's tokenizer, 36 steps of 8 in 4 micro-batches)
pairs compute 1.12-1.14 tokens per real one, the least-padding cut 1.06, transformers' own
`BatchRebalanceSampler` 1.11-1.12: it evens the cost of the micro-batches across ranks rather than
minimising their sum. Timed on 18 SmolLM2 steps (forward and backward): pairs 63.0 s, the
least-padding cut 59.5 s, one review at a time 69.8 s (no padding, but matmuls too small to run at
the machine's rate), so the count of micro-batches stays the preset's. Whole trainings taking
turns (seed 1337, four fresh processes): 4.3 % less time on the means, less than the host's own
spread of 26 % between those runs (docs/performance.md).

Under DDP the ranks wait at each step's all-reduce for the busiest one, so the fewest tokens in all
is no longer the aim: the least-padding cut dealt by transformers' rule (each slot's costliest
micro-batch to rank 0) left the busiest rank 1.21-1.24 tokens per real one of its share on the
bench-accuracy samples (2 ranks, 2 micro-batches each), more than transformers' own 1.20-1.22.
`least_waiting_cut` searches for the cut whose dealing leaves the busiest rank least: 1.13-1.14
(1.09 computed tokens per real one in all). With one micro-batch a rank it is exact in
transformers' cost model (`evenest_cut`) and lands where transformers' hill climbing does: 1.54-1.58
against 1.53-1.61 on 2 ranks, 1.42-1.43 against 1.43-1.45 on 4 (batch 8).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import BatchRebalanceSampler


class SortedStepSampler(Sampler[int]):
    """A seeded random permutation, each run of `step_size` indices (one optimizer step) sorted by
    length, longest first. Epoch `e` draws `torch.randperm(n)` from seed `seed + e`, as accelerate's
    SeedableRandomSampler does for the Trainer's random batches, so both read the same steps."""

    def __init__(self, lengths: Sequence[int], step_size: int, seed: int):
        if step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size}")
        self.lengths, self.step_size, self.seed, self.epoch = list(lengths), step_size, seed, 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer at each epoch (and when it resumes from a checkpoint)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        self.epoch += 1
        for start in range(0, len(order), self.step_size):
            yield from sorted(order[start:start + self.step_size], key=lambda i: -self.lengths[i])


def best_cut(lengths: Sequence[int], parts: int, cost: Callable[[np.ndarray, np.ndarray], np.ndarray],
             combine: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[int]:
    """The sizes of `parts` non-empty runs, in order, of `lengths` (sorted longest first) whose costs
    `cost(sizes, first lengths)`, a run being padded to its first, `combine` (`np.add`, or
    `np.maximum`) to the least; the first such cut where several tie. Dynamic programming over the
    cut points, each count of runs at once over every (start, end) pair in numpy: 0.1 ms for 64
    examples in 8 micro-batches, 3.7 ms for 256 in 32, where a loop in Python took 1.6 and 95 (a
    DDP step of 256 on 2 ranks, with the search of `least_waiting_cut`: 16 ms, against 366)."""
    n = len(lengths)
    if not 1 <= parts <= n:
        raise ValueError(f"cannot cut {n} examples into {parts} non-empty micro-batches")
    if any(a < b for a, b in zip(lengths, lengths[1:])):
        raise ValueError("lengths must be sorted longest first")
    first = np.arange(n)[:, None]
    size = np.arange(n + 1)[None, :] - first  # the run first..end-1, for every first and end
    run = np.where(size >= 1, cost(np.maximum(size, 1).astype(float), np.asarray(lengths, float)[:, None]), np.inf)
    best = np.full(n + 1, np.inf)  # the least for the first `end` examples in k runs, k = 0 first
    best[0] = 0.0
    starts = []  # for each k, where the last of k runs starts, for every end
    for _ in range(parts):
        totals = combine(best[:n, None], run)
        starts.append(np.argmin(totals, axis=0))
        best = totals[starts[-1], np.arange(n + 1)]
    sizes, end = [], n
    for start in reversed(starts):
        sizes.append(end - int(start[end]))
        end = int(start[end])
    return sizes[::-1]


def least_padding_cut(lengths: Sequence[int], parts: int) -> list[int]:
    """The cut into `parts` micro-batches that computes the fewest tokens (size x first length, added up)."""
    return best_cut(lengths, parts, np.multiply, np.add)


def evenest_cut(lengths: Sequence[int], parts: int, cost: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[int]:
    """The cut into `parts` micro-batches whose costliest costs least (`cost` of sizes and first
    lengths, as arrays): with one micro-batch a rank, the cut that keeps DDP's ranks waiting least."""
    return best_cut(lengths, parts, cost, np.maximum)


def deal(costs: Sequence[float], ranks: int, per_rank: int) -> list[list[int]]:
    """Which micro-batches (positions in `costs`) each rank runs, costliest first: each goes, costliest
    first, to the rank with the least cost so far among those still short of `per_rank` (longest
    processing time first, with each rank's count fixed)."""
    if len(costs) != ranks * per_rank:
        raise ValueError(f"{len(costs)} micro-batches cannot be dealt {per_rank} to each of {ranks} ranks")
    dealt: list[list[int]] = [[] for _ in range(ranks)]
    loads = [0.0] * ranks
    for group in sorted(range(len(costs)), key=costs.__getitem__, reverse=True):
        rank = min((r for r in range(ranks) if len(dealt[r]) < per_rank), key=loads.__getitem__)
        dealt[rank].append(group)
        loads[rank] += costs[group]
    return dealt


def least_waiting_cut(lengths: Sequence[int], ranks: int, per_rank: int, starts: Sequence[Sequence[int]],
                      cost: Callable[[int, int], float]) -> list[int]:
    """The sizes of `ranks x per_rank` runs of `lengths` (sorted longest first) whose `deal` leaves
    the busiest rank the least cost, `cost(size, first length)` a run's, then the least cost in all:
    from the best of the cuts `starts`, one boundary moved by one example at a time while that
    helps (a local search; the test compares it with every cut and every dealing of small steps)."""

    def waiting(sizes: Sequence[int]) -> tuple[float, float]:
        firsts = [sum(sizes[:k]) for k in range(len(sizes))]
        costs = [cost(size, lengths[first]) for size, first in zip(sizes, firsts)]
        return max(sum(costs[g] for g in rank) for rank in deal(costs, ranks, per_rank)), sum(costs)

    best_wait, best = min(((waiting(start), list(start)) for start in starts), key=lambda scored: scored[0])
    while True:
        moves = [best[:k] + [best[k] + shift, best[k + 1] - shift] + best[k + 2:]
                 for k in range(len(best) - 1) for shift in (-1, 1)
                 if best[k] + shift >= 1 and best[k + 1] - shift >= 1]
        wait, candidate = min(((waiting(move), move) for move in moves), key=lambda scored: scored[0],
                              default=(best_wait, best))
        if wait >= best_wait:
            return best
        best_wait, best = wait, candidate


class LeastPaddingSampler(BatchRebalanceSampler):
    """transformers' batch sampler for unequal micro-batches (the same seeded permutation and steps
    as `SortedStepSampler`, each step sorted longest first; the Trainer builds its DataLoader around
    it and keeps accelerate from sharding it twice), with each step cut into `dp_size x grad_accum`
    micro-batches where they pad least (`least_padding_cut`) rather than where their costs even out.
    Under DDP the ranks wait at each step's all-reduce for the busiest one (accelerate skips the
    all-reduce while accumulating, so a rank's whole step counts), and the cut is the one whose
    `deal` leaves the busiest rank the least cost (`least_waiting_cut`, transformers' cost model:
    tokens plus attention's square term). A last step with fewer examples than micro-batches takes
    examples from the epoch's start to fill them (transformers' rule, as DistributedSampler pads)."""

    def _assign(self, indices, lengths):
        """Each rank's `grad_accum` micro-batches of the step, costliest first (on one process the
        order transformers' own deal gives)."""
        pairs = sorted(zip(indices, lengths), key=lambda pair: pair[1], reverse=True)
        ordered = [length for _, length in pairs]
        sizes = least_padding_cut(ordered, self.dp_size * self.grad_accum)
        if self.dp_size > 1:
            starts = [sizes, evenest_cut(ordered, len(sizes), self._cost),
                      [len(group) for group in super()._balance_groups(pairs)]]
            sizes = least_waiting_cut(ordered, self.dp_size, self.grad_accum, starts, self._cost)
        firsts = [sum(sizes[:k]) for k in range(len(sizes))]
        groups = [[index for index, _ in pairs[first:first + size]] for first, size in zip(firsts, sizes)]
        costs = [self._cost(size, ordered[first]) for size, first in zip(sizes, firsts)]
        return [[groups[g] for g in rank] for rank in deal(costs, self.dp_size, self.grad_accum)]
