"""Batched prediction: sort by length, pad per batch, no autograd. The evaluation path."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

from helpers.core import progress
from helpers.core.device import pad_multiple
from helpers.core.threads import cpu_threads

if TYPE_CHECKING:  # a run-time import costs seconds in every notebook kernel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[np.ndarray]:
    """Indices in batches of similar length, so padding stays small."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` in evaluation mode (no dropout) for the block, and back in training mode after it if
    it came in training: a model scored straight after `Trainer.train()` is still in training mode,
    and the bench scored its trained models so, with LoRA's dropout drawing fresh masks from torch's
    generator on every pass, until 2026-11-30. Only the root's flag is read: `train()` and `eval()`
    set every submodule alike."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


ACTIVATIONS = {"softmax": lambda x: torch.softmax(x, dim=-1), "sigmoid": torch.sigmoid, "none": lambda x: x}


def pad_values(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """What `tokenizer.pad` fills each input with: the pad token, a zero mask, the pad type id."""
    if tokenizer.pad_token_id is None:
        raise ValueError(f"{type(tokenizer).__name__} has no pad token: load it with "
                         "helpers.train.models.load_tokenizer, which sets one")
    return {"input_ids": tokenizer.pad_token_id, "attention_mask": 0,
            "token_type_ids": tokenizer.pad_token_type_id, "special_tokens_mask": 1}


def padded_batch(encoded, rows: np.ndarray, pad_with: dict[str, int], side: str,
                 multiple: int | None = None, cap: int | None = None) -> dict[str, torch.Tensor]:
    """Rows `rows` of a tokenizer's output padded on `side` to their longest, rounded up to
    `multiple` (but not past `cap`): the tensors `tokenizer.pad` builds (tests/test_bench.py), from
    one numpy array per input instead of a dict per row."""
    sequences = {key: [encoded[key][i] for i in rows] for key in encoded.keys()}
    longest = max(len(ids) for ids in sequences["input_ids"])
    if multiple:
        longest = max(longest, min(-(-longest // multiple) * multiple, cap or longest))
    batch = {}
    for key, rows_of_key in sequences.items():
        if key not in pad_with:
            raise ValueError(f"cannot pad the tokenizer output {key!r}: known inputs are {sorted(pad_with)}")
        array = np.full((len(rows_of_key), longest), pad_with[key], dtype=np.int64)
        for j, values in enumerate(rows_of_key):
            if side == "left":
                array[j, longest - len(values):] = values
            else:
                array[j, :len(values)] = values
        batch[key] = torch.from_numpy(array)
    return batch


@torch.inference_mode()
def predict_proba(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                  batch_size: int, max_length: int, device: str, activation: str = "softmax") -> np.ndarray:
    """Class probabilities (n_texts x n_labels) in the order of `texts`, in evaluation mode whatever
    mode `model` comes in (`evaluating`), on the CPU threads that other processes leave free; with
    `activation` "sigmoid" each label's own probability (a multi-label head), with "none" the head's
    outputs as they are (a regression head).

    The host work per batch is kept small because on a GPU a small model waits for it: padding with
    numpy instead of `tokenizer.pad` (a dict per row) took the host time for 256 Fine Foods reviews
    at 256 tokens with SmolLM2's tokenizer from 48-80 ms to 35-49 ms at batch sizes 16-256, about
    the tokenizer's own 38-43 ms (SST-2 with MiniLM's: 20-34 to 13-20 ms; 2 CPU cores, docs/performance.md).
    On CUDA lengths are rounded up to a multiple of 64 (a few shapes, so a model compiled with
    "reduce-overhead" replays a few CUDA graphs), inputs go through pinned memory without blocking,
    and the probabilities stay on the device until the one copy back at the end."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    pad_with, multiple, cuda = pad_values(tokenizer), pad_multiple(device), device == "cuda"
    probs = torch.zeros((len(texts), model.config.num_labels), dtype=torch.float32, device=device)
    batches = length_sorted_batches(lengths, batch_size)
    with cpu_threads(device), evaluating(model):
        for done, rows in enumerate(batches, start=1):
            inputs = padded_batch(encoded, rows, pad_with, tokenizer.padding_side, multiple, max_length)
            if cuda:
                torch.compiler.cudagraph_mark_step_begin()  # the graphs' outputs of the last batch are copied already
                inputs = {key: value.pin_memory() for key, value in inputs.items()}
            inputs = {key: value.to(device, non_blocking=cuda) for key, value in inputs.items()}
            logits = model(**inputs).logits.float()
            probs[torch.from_numpy(rows).to(device)] = ACTIVATIONS[activation](logits)
            progress.report("predict", done, len(batches))
    return probs.cpu().numpy().astype(np.float64)


def count_tokens(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> int:
    """Real (non-padding) tokens the model sees for these texts after truncation."""
    return sum(len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])
