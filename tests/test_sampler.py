"""helpers/train/sampler.py: each optimizer step reads the random sampler's examples, longest first."""
from __future__ import annotations

import random

import pytest
from accelerate.data_loader import SeedableRandomSampler

from helpers.train.sampler import SortedStepSampler

LENGTHS = [random.Random(3).randint(5, 256) for _ in range(50)]


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
