"""Greedy generation of answers, and the labels' probabilities at the decision position.

The probabilities are what every classification evaluation reads (calibration, selective
prediction, conformal sets, McNemar): after the prompt and `{"decision": "`, the LM's next-token
distribution restricted to each label's first token and normalized over the labels. Greedy
decoding that writes the schema's prefix picks the argmax of the same distribution, so the
generated decision and the probabilities' argmax agree (helpers/generate/metrics.py counts it).
Decoding is free (the parser reads what comes out) or constrained to the answer's JSON schema.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from helpers.core import progress
from helpers.core.threads import cpu_threads
from helpers.generate.schema import DECISION_PREFIX, NULL_DECISION

END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>")


class LabelTokenError(ValueError):
    """Two labels start with the same token, so one position cannot tell them apart."""


def stop_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS and the end-of-turn tokens this vocabulary has: generation stops at any of them."""
    vocab = tokenizer.get_vocab()
    return sorted({tokenizer.eos_token_id, *(vocab[t] for t in END_OF_TURN if t in vocab)} - {None})


def label_token_ids(tokenizer: PreTrainedTokenizerBase, labels: list[str]) -> list[int]:
    """Each label's first token as it follows the decision prefix in an answer."""
    prefix = tokenizer(DECISION_PREFIX, add_special_tokens=False)["input_ids"]
    ids = []
    for label in labels:
        full = tokenizer(DECISION_PREFIX + label, add_special_tokens=False)["input_ids"]
        if full[:len(prefix)] != prefix:
            raise LabelTokenError(f"label {label!r} merges with the quote before it in this tokenizer; rename it in "
                                  f"the dataset entry's labels")
        ids.append(full[len(prefix)])
    if len(set(ids)) < len(ids):
        raise LabelTokenError(f"labels {labels} share a first token in this tokenizer; rename them in the dataset "
                              f"entry so that they start differently")
    return ids


def _batches(n: int, batch_size: int) -> list[range]:
    return [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _left_padded(tokenizer: PreTrainedTokenizerBase, texts: list[str], device: str) -> dict[str, torch.Tensor]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the next token of every row at the last position
    try:
        return tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)
    finally:
        tokenizer.padding_side = side


def abstain_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[str, int, int]:
    """The decision key as text ('{"decision":'), then the token that opens a label there (the
    quote) and the token that writes null (an abstention, helpers/generate/schema.py)."""
    quoted = tokenizer(DECISION_PREFIX, add_special_tokens=False)["input_ids"]
    null = tokenizer(NULL_DECISION, add_special_tokens=False)["input_ids"]
    key = len(quoted) - 1
    if len(null) != len(quoted) or quoted[:key] != null[:key]:
        raise LabelTokenError(f"this tokenizer does not split {DECISION_PREFIX!r} and {NULL_DECISION!r} after the "
                              f"same key: the abstention probability cannot be read at one position")
    return tokenizer.decode(quoted[:key]), quoted[key], null[key]


@torch.no_grad()
def _next_token_probabilities(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                              token_ids: list[int], batch_size: int, device: str, what: str) -> np.ndarray:
    """(n, tokens): the next-token distribution after each text, restricted to `token_ids` and
    normalized over them."""
    ids = torch.tensor(token_ids, device=device)
    model.eval()
    out = []
    batches = _batches(len(texts), batch_size)
    with cpu_threads(device):
        for done, batch in enumerate(batches, start=1):
            inputs = _left_padded(tokenizer, [texts[i] for i in batch], device)
            logits = model(**inputs, logits_to_keep=1).logits[:, -1, :].float()  # the last position's only
            out.append(torch.softmax(logits[:, ids], dim=-1).cpu().numpy())
            progress.report(what, done, len(batches))
    return np.concatenate(out) if out else np.zeros((0, len(token_ids)))


def label_probabilities(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                        labels: list[str], batch_size: int, device: str) -> np.ndarray:
    """(n, labels) probabilities of each label's first token after prompt + decision prefix."""
    return _next_token_probabilities(model, tokenizer, [p + DECISION_PREFIX for p in prompts],
                                     label_token_ids(tokenizer, labels), batch_size, device, "label probabilities")


def abstain_probabilities(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                          batch_size: int, device: str) -> np.ndarray:
    """(n,) the probability of writing null rather than opening a label at the decision, after
    prompt + '{"decision":', normalized over the two: greedy decoding abstains where it is above
    0.5, and it ranks the texts by how near the model came to abstaining."""
    key, quote, null = abstain_token_ids(tokenizer)
    return _next_token_probabilities(model, tokenizer, [p + key for p in prompts], [quote, null], batch_size,
                                     device, "abstain probabilities")[:, 1]


def schema_constraint(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, schema: dict):
    """A fresh logits processor that lets only tokens continuing a JSON value of `schema` through,
    written with the separators the training answers use (xgrammar; one per generate call: it keeps
    each row's parse state)."""
    import xgrammar

    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=model.config.vocab_size)
    compiled = xgrammar.GrammarCompiler(info).compile_json_schema(json.dumps(schema), any_whitespace=False,
                                                                  separators=(", ", ": "))
    return xgrammar.contrib.hf.LogitsProcessor(compiled)


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int,
             batch_size: int, device: str, schema: dict | None = None) -> list[str]:
    """Greedy answers (KV cache on), decoded without special tokens; each stops at EOS or end of turn.
    With `schema`, decoding is constrained to it (`schema_constraint`)."""
    model.eval()
    answers = []
    batches = _batches(len(prompts), batch_size)
    with cpu_threads(device):
        for done, batch in enumerate(batches, start=1):
            inputs = _left_padded(tokenizer, [prompts[i] for i in batch], device)
            constraint = {"logits_processor": [schema_constraint(model, tokenizer, schema)]} if schema else {}
            output = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, use_cache=True,
                                    eos_token_id=stop_ids(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                    **constraint)
            new = output[:, inputs["input_ids"].shape[1]:]
            answers += tokenizer.batch_decode(new, skip_special_tokens=True)
            progress.report("generate", done, len(batches))
    return answers
