"""Context-conditioned inputs: who speaks, in the text the model reads.

A dataset entry's `context_column` (e.g. Disneyland's Reviewer_Location) is kept as the `context`
column of the standardized and saved splits, and the saved `text` stays raw, so every context
mode of a study is tested on the same texts (same data fingerprint). The preset's (or a
`<model>@ctx-*` recipe's) `context_mode` applies only where model inputs are built, by
`model_texts`:

- `none`: the text as it is;
- `description`: a short prefix in words, DESCRIPTION ("Context: Australia. <text>");
- `token`: one special token per context value seen in train, "[ctx:Australia] <text>"; a value
  train never saw (a validation or test row) reads the shared OTHER token. `add_context_tokens`
  adds the tokens to the tokenizer, grows the embeddings (new rows at the mean of the old ones) and
  marks the rows for `add_lora` to train (peft's trainable_token_indices); the trained rows are
  saved with the adapter, and evaluation re-adds the same tokens in the same order (sorted train
  values, then OTHER: `token_values` of the saved splits) before loading it;
- `instruction` (decoders): the context in an instruction line before the text, INSTRUCTION.

`read_splits` marks every saved split with its train split's context values (`mark_known`), so
`model_texts(splits.test, "token")` maps the values train never saw to OTHER by itself.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Collection

import pandas as pd

from helpers.data.records import DataError

if TYPE_CHECKING:
    from helpers.data.records import DatasetSplits

MODES = ("none", "token", "description", "instruction")
DESCRIPTION = "Context: {context}. {text}"
INSTRUCTION = "Keep in mind the context of the writer: {context}.\n{text}"
TOKEN = "[ctx:{}]"
OTHER = "other"  # the shared token of the context values train never saw
KNOWN = "context_values"  # DataFrame.attrs key: the train split's context values (mark_known)


def context_token(value: str) -> str:
    """The special token of one context value: "[ctx:United_Kingdom]" (spaces and brackets as _)."""
    return TOKEN.format(re.sub(r"[\s\[\]]+", "_", str(value).strip()) or "_")


def known_values(train: pd.DataFrame) -> list[str]:
    """The context values a model learns a token for: those of its train split, sorted."""
    return sorted(set(train["context"].astype(str))) if "context" in train else []


def mark_known(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Record the train split's context values on every split (DataFrame.attrs), for `model_texts`."""
    if "train" in frames and "context" in frames["train"]:
        values = known_values(frames["train"])
        for df in frames.values():
            df.attrs[KNOWN] = values
    return frames


def model_texts(df: pd.DataFrame, mode: str, *, known: Collection[str] | None = None) -> list[str]:
    """The texts the model reads for `df`'s rows under a context mode (the module docstring); a
    frame without a `context` column reads its texts as they are. In token mode, a context value
    outside `known` (default: the train values `read_splits` recorded on the frame) reads OTHER."""
    texts = df["text"].astype(str).tolist()
    if mode not in MODES:
        raise ValueError(f"context mode {mode!r} is not one of {list(MODES)}")
    if mode == "none" or "context" not in df:
        return texts
    contexts = df["context"].astype(str).tolist()
    if mode == "token":
        allowed = known if known is not None else df.attrs.get(KNOWN)
        allowed = None if allowed is None else set(allowed)
        return [f"{context_token(c if allowed is None or c in allowed else OTHER)} {t}"
                for c, t in zip(contexts, texts, strict=True)]
    template = DESCRIPTION if mode == "description" else INSTRUCTION
    return [template.format(context=c, text=t) for c, t in zip(contexts, texts, strict=True)]


def token_values(splits: DatasetSplits, mode: str) -> list[str] | None:
    """The context values a token-mode run has tokens for (its saved train split's); None in any
    other mode. Train and evaluation both read them from the same saved split, so they agree."""
    if mode != "token":
        return None
    if "context" not in splits.train:
        raise DataError(f"context_mode token needs a `context` column in the saved splits of {splits.dataset!r}: "
                        f"name a context_column in params/datasets.yaml and rerun notebooks/01_data")
    return known_values(splits.train)


def tokens_for(values: Collection[str]) -> list[str]:
    """The special tokens of `values` in a fixed order (sorted, then OTHER), each once."""
    return list(dict.fromkeys([*(context_token(v) for v in sorted(values)), context_token(OTHER)]))


def add_tokens(tokenizer, values: Collection[str]) -> list[int]:
    """Add the tokens of `values` to the tokenizer (those it has already are kept); their ids."""
    tokens = tokens_for(values)
    tokenizer.add_tokens(tokens, special_tokens=True)
    return tokenizer.convert_tokens_to_ids(tokens)


def add_context_tokens(model, tokenizer, values: list[str]) -> list[int]:
    """Token mode: one special token per context value (and OTHER) in the tokenizer, the model's
    input embeddings grown to hold them, their rows set to the mean of the other rows (an average
    word, not noise); returns their ids, which `add_lora` makes trainable (kept on the model as
    `context_token_ids`). Deterministic: the same values on the same base give the same ids and rows."""
    import torch

    ids = add_tokens(tokenizer, values)
    if getattr(model, "context_token_ids", None) == ids:  # already added to this model: keep its rows
        return ids
    rows = model.get_input_embeddings().weight.shape[0]
    if max(ids) >= rows:
        model.resize_token_embeddings(max(len(tokenizer), max(ids) + 1), mean_resizing=False)
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        others = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
        others[ids] = False
        others[rows:] = False
        weight[ids] = weight[others].mean(dim=0).to(weight.dtype)
    model.context_token_ids = ids
    model.context_values = sorted(set(map(str, values)))  # saved beside the adapter (helpers/train/models.py)
    return ids
