import numpy as np
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from helpers.batching import LengthBucketSampler, bucketed_order, length_sorted_batches


def _padded_tokens(order: list[int], lengths: list[int], batch_size: int) -> int:
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


LENGTHS = [int(x) for x in np.random.default_rng(0).permutation(np.arange(5, 5 + 3 * 50, 3))]  # 50 distinct


def test_bucketed_order_is_a_permutation_with_the_short_batch_last():
    order = bucketed_order(LENGTHS, 8, torch.Generator().manual_seed(1))
    assert sorted(order) == list(range(len(LENGTHS)))
    batches = [order[i:i + 8] for i in range(0, len(order), 8)]
    assert [len(b) for b in batches] == [8] * 6 + [2]


def test_small_data_set_is_batched_as_tightly_as_a_full_sort():
    order = bucketed_order(LENGTHS, 4, torch.Generator().manual_seed(1))
    best = _padded_tokens(list(np.argsort(LENGTHS)[::-1]), LENGTHS, 4)
    assert _padded_tokens(order, LENGTHS, 4) == best
    transformers_order = get_length_grouped_indices(LENGTHS, 4, generator=torch.Generator().manual_seed(1))
    assert _padded_tokens(transformers_order, LENGTHS, 4) > best


def test_large_data_set_keeps_buckets_and_mixes_batch_order():
    lengths = list(np.random.default_rng(1).integers(1, 500, size=1000))
    order = bucketed_order(lengths, 4, torch.Generator().manual_seed(2), bucket_batches=10)
    batch_max = [max(lengths[i] for i in order[j:j + 4]) for j in range(0, len(order), 4)]
    assert sorted(order) == list(range(1000))
    assert batch_max != sorted(batch_max, reverse=True)  # no long-to-short curriculum
    assert _padded_tokens(order, lengths, 4) < 1.1 * sum(lengths)


def test_sampler_is_seeded_and_draws_a_new_order_each_epoch():
    first = LengthBucketSampler(LENGTHS, 4, torch.Generator().manual_seed(3))
    second = LengthBucketSampler(LENGTHS, 4, torch.Generator().manual_seed(3))
    epoch1, epoch2 = list(first), list(first)
    assert epoch1 == list(second) and len(first) == len(LENGTHS)
    assert epoch1 != epoch2


def test_inference_batches_are_sorted_by_length():
    batches = length_sorted_batches([5, 1, 4, 2, 3], 2)
    assert [list(b) for b in batches] == [[1, 3], [4, 2], [0]]


def test_training_draws_its_batches_from_length_buckets(tmp_path):
    import datasets
    from transformers import TrainingArguments

    from helpers.training import BucketedTrainer

    dataset = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in LENGTHS], "labels": [0] * len(LENGTHS)})
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, use_cpu=True, report_to="none")
    trainer = BucketedTrainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=dataset)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthBucketSampler) and sampler.batch_size == 4
    assert _padded_tokens(list(sampler), LENGTHS, 4) == _padded_tokens(list(np.argsort(LENGTHS)[::-1]), LENGTHS, 4)
