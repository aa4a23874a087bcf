"""Turn texts into the question a causal LM answers with one word per label.

The base model is scored zero-/k-shot by the next-token probability of each label's
verbalizer after a prompt that ends where the answer starts. A sequence classifier whose head
rows are those verbalizers' output embeddings computes exactly that, so the baseline reuses the
evaluation path (helpers/train/models.py `verbalizer_ids`).

Fine-tuning reads the plain text with a zero-initialized head: measured on finefoods/quick with
SmolLM2-135M, starting from the verbalizer head (zero-shot AUC 0.54) at lr 1e-3 ended at 59 %
validation accuracy against 66 % majority, its large initial logits making the first steps erratic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from helpers.config import DatasetSpec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PromptFormat:
    question: str
    verbalizers: list[str]  # one answer word per label, in label order
    chat: bool  # wrap in the tokenizer's chat template


class PromptError(ValueError):
    """The prompt cannot tell the labels apart; the message says what to change."""


def prompt_format(spec: DatasetSpec, tokenizer: PreTrainedTokenizerBase) -> PromptFormat:
    """The dataset's question and verbalizers (label names by default); chat when the tokenizer has a template."""
    verbalizers = [spec.verbalizers.get(label, label) for label in spec.labels]
    question = spec.question or f"Which describes this text best: {', '.join(verbalizers)}? Answer with one word."
    return PromptFormat(question=question, verbalizers=verbalizers, chat=bool(tokenizer.chat_template))


def verbalizer_ids(tokenizer: PreTrainedTokenizerBase, fmt: PromptFormat) -> list[int]:
    """First token of each answer as the model would write it (after a space in plain prompts)."""
    prefix = "" if fmt.chat else " "
    ids = [tokenizer(prefix + word, add_special_tokens=False)["input_ids"][0] for word in fmt.verbalizers]
    if len(set(ids)) < len(ids):
        raise PromptError(f"verbalizers {fmt.verbalizers} share a first token in this tokenizer; give the "
                          f"dataset entry `verbalizers:` words that start differently")
    return ids


def truncate(texts: list[str], tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> list[str]:
    """Cut each text to `max_tokens` of its own tokens, so the question after it always fits."""
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens)
    return [tokenizer.decode(ids) if len(ids) == max_tokens else text
            for text, ids in zip(texts, encoded["input_ids"])]


def _turns(text: str, fmt: PromptFormat) -> str:
    return f"{text}\n\n{fmt.question}"


def _without_double_bos(prompt: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """Templates that write the BOS token get a second one from a tokenizer that adds it itself."""
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return prompt[len(bos):] if adds_bos and prompt.startswith(bos) else prompt


def build_prompts(texts: list[str], tokenizer: PreTrainedTokenizerBase, fmt: PromptFormat, max_tokens: int,
                  shots: pd.DataFrame | None = None) -> list[str]:
    """Each text (truncated to `max_tokens`) as a prompt ending where the answer begins;
    `shots` (columns text, label) are answered examples placed before it."""
    shot_texts = truncate(shots["text"].tolist(), tokenizer, max_tokens) if shots is not None else []
    shot_answers = [fmt.verbalizers[label] for label in shots["label"]] if shots is not None else []
    prompts = []
    for text in truncate(texts, tokenizer, max_tokens):
        if fmt.chat:
            messages = []
            for shot, answer in zip(shot_texts, shot_answers):
                messages += [{"role": "user", "content": _turns(shot, fmt)}, {"role": "assistant", "content": answer}]
            messages.append({"role": "user", "content": _turns(text, fmt)})
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompts.append(_without_double_bos(prompt, tokenizer))
        else:
            blocks = [f"{_turns(shot, fmt)}\nAnswer: {answer}\n\n" for shot, answer in zip(shot_texts, shot_answers)]
            prompts.append("".join(blocks) + f"{_turns(text, fmt)}\nAnswer:")
    return prompts


def pick_shots(train: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """k answered examples from train, classes taking turns, the same for every test example."""
    shuffled = [group.sample(frac=1.0, random_state=seed) for _, group in train.groupby("label")]
    longest = max((len(group) for group in shuffled), default=0)
    rows = [group.iloc[i] for i in range(longest) for group in shuffled if i < len(group)][:k]
    shots = pd.DataFrame(rows, columns=train.columns)[["text", "label"]]
    return shots.sample(frac=1.0, random_state=seed).reset_index(drop=True)
