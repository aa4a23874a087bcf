"""Batched prediction: sort by length, pad per batch, no autograd. The evaluation path."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from helpers.core import progress
from helpers.core.threads import cpu_threads

if TYPE_CHECKING:  # a run-time import costs seconds in every notebook kernel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[np.ndarray]:
    """Indices in batches of similar length, so padding stays small."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


ACTIVATIONS = {"softmax": lambda x: torch.softmax(x, dim=-1), "sigmoid": torch.sigmoid, "none": lambda x: x}


@torch.inference_mode()
def predict_proba(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                  batch_size: int, max_length: int, device: str, activation: str = "softmax") -> np.ndarray:
    """Class probabilities (n_texts x n_labels) in the order of `texts`, on the CPU threads that
    other processes leave free; with `activation` "sigmoid" each label's own probability (a
    multi-label head), with "none" the head's outputs as they are (a regression head)."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float64)
    batches = length_sorted_batches(lengths, batch_size)
    with cpu_threads(device):
        for done, batch in enumerate(batches, start=1):
            features = [{k: encoded[k][i] for k in encoded.keys()} for i in batch]
            inputs = tokenizer.pad(features, return_tensors="pt").to(device)
            logits = model(**inputs).logits.float()
            probs[batch] = ACTIVATIONS[activation](logits).cpu().numpy()
            progress.report("predict", done, len(batches))
    return probs


def count_tokens(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> int:
    """Real (non-padding) tokens the model sees for these texts after truncation."""
    return sum(len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])
