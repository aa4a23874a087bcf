"""helpers/train/sampler.py: each optimizer step reads the random sampler's examples, longest first, in
micro-batches of one size or of the sizes that pad least."""
from __future__ import annotations

import itertools
import random

import pytest
from accelerate.data_loader import SeedableRandomSampler

from helpers.train.sampler import LeastPaddingSampler, SortedStepSampler, least_padding_cut

LENGTHS = random.Random(3).choices(range(5, 257), k=50)  # one generator: 50 draws, not one draw 50 times


def steps(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


@pytest.mark.parametrize("step_size", [8, 7, 50])
def test_each_step_holds_the_random_samplers_examples_longest_first(step_size):
    ours = SortedStepSampler(LENGTHS, step_size, seed=11)
    trainers = SeedableRandomSampler(range(len(LENGTHS)), data_seed=11)
    for epoch in (0, 1):
        ours.set_epoch(epoch)
        trainers.set_epoch(epoch)
        sorted_order, random_order = list(ours), list(trainers)
        assert sorted(sorted_order) == list(range(len(LENGTHS)))
        for mine, theirs in zip(steps(sorted_order, step_size), steps(random_order, step_size), strict=True):
            assert set(mine) == set(theirs)
            assert [LENGTHS[i] for i in mine] == sorted((LENGTHS[i] for i in mine), reverse=True)


def test_epochs_differ_and_a_seed_repeats_them():
    first, again = SortedStepSampler(LENGTHS, 8, seed=5), SortedStepSampler(LENGTHS, 8, seed=5)
    epoch0, epoch1 = list(first), list(first)  # iterating moves to the next epoch, as accelerate's does
    assert epoch0 != epoch1
    assert list(again) == epoch0
    again.set_epoch(1)  # what the Trainer calls when it resumes a killed training in its second epoch
    assert list(again) == epoch1


def test_a_step_size_below_one_is_refused():
    with pytest.raises(ValueError, match="step_size must be a positive integer, got 0"):
        SortedStepSampler(LENGTHS, 0, seed=0)


def computed_tokens(batches: list[list[int]]) -> int:
    """Tokens a step computes with each micro-batch padded to its longest text."""
    return sum(len(batch) * max(LENGTHS[i] for i in batch) for batch in batches)


@pytest.mark.parametrize("size, parts", [(8, 4), (8, 1), (8, 8), (7, 3), (12, 4)])
def test_the_least_padding_cut_is_the_cheapest_cut(size, parts):
    lengths = sorted(random.Random(size * parts).choices(range(5, 256), k=size), reverse=True)
    sizes = least_padding_cut(lengths, parts)
    assert len(sizes) == parts and sum(sizes) == size and min(sizes) >= 1

    def cost(cut: tuple[int, ...]) -> int:
        return sum((end - start) * lengths[start] for start, end in zip((0, *cut), (*cut, size)))

    cheapest = min(cost(cut) for cut in itertools.combinations(range(1, size), parts - 1))
    starts = list(itertools.accumulate(sizes[:-1]))
    assert cost(tuple(starts)) == cheapest


def test_a_cut_of_unsorted_lengths_or_into_too_many_parts_is_refused():
    with pytest.raises(ValueError, match="lengths must be sorted longest first"):
        least_padding_cut([3, 9, 4], 2)
    with pytest.raises(ValueError, match="cannot cut 3 examples into 4 non-empty micro-batches"):
        least_padding_cut([9, 4, 3], 4)


@pytest.mark.parametrize("step_size, parts", [(8, 4), (10, 2)])
def test_least_padding_reads_the_same_steps_in_micro_batches_that_pad_less(step_size, parts):
    sampler = LeastPaddingSampler(LENGTHS, step_size, dp_size=1, grad_accum=parts, seed=11)
    even = SortedStepSampler(LENGTHS, step_size, seed=11)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        even.set_epoch(epoch)
        batches, sorted_order = list(sampler), list(even)
        assert len(batches) == len(sampler) == len(LENGTHS) // step_size * parts
        cut, evenly = [], []
        for step, theirs in enumerate(steps(sorted_order, step_size)[:len(LENGTHS) // step_size]):
            mine = batches[step * parts:(step + 1) * parts]
            assert sorted(i for batch in mine for i in batch) == sorted(theirs)
            cut.append(computed_tokens(mine))
            evenly.append(computed_tokens(steps(theirs, step_size // parts)))
        assert all(a <= b for a, b in zip(cut, evenly)) and sum(cut) < 0.97 * sum(evenly)
        assert len({len(batch) for batch in batches}) > 1
