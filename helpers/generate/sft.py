"""Supervised fine-tuning of a generator on JSON decisions: LoRA (or QLoRA) on a causal LM, the
loss on the answer tokens only (helpers/generate/chat.py masks the prompt), through the same
training loop as the classifiers (helpers/train/trainer.py `fit`: checkpoints, resume, early
stopping, progress, TensorBoard)."""
from __future__ import annotations

from pathlib import Path

import datasets
import pandas as pd
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase

from helpers.config import TrainConfig
from helpers.core.device import Precision
from helpers.generate import chat
from helpers.generate.schema import render_answer
from helpers.train.trainer import TrainResult, fit, pad_multiple


def answers(df: pd.DataFrame, labels: list[str]) -> list[str]:
    """The target answer of every row: its label, its human rationale where the split has one."""
    rationales = df["rationale"].fillna("").astype(str) if "rationale" in df else [""] * len(df)
    return [render_answer(labels[label], rationale) for label, rationale in zip(df["label"], rationales, strict=True)]


def sft_dataset(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, labels: list[str], question: str | None,
                max_length: int) -> datasets.Dataset:
    examples = chat.sft_examples(tokenizer, df["text"].tolist(), answers(df, labels), labels, question, max_length)
    return datasets.Dataset.from_list(examples)


def train_sft(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_df: pd.DataFrame, labels: list[str],
              question: str | None, cfg: TrainConfig, precision: Precision, max_length: int, seed: int,
              output_dir: Path, validation_df: pd.DataFrame | None = None,
              logging_dir: Path | None = None) -> TrainResult:
    """Fine-tune in place on the answers of `train_df` (validation loss on `validation_df` while
    training when the preset evaluates; it then picks the best checkpoint)."""
    evaluating = cfg.eval_strategy != "no"
    if evaluating and (validation_df is None or validation_df.empty):
        raise ValueError("eval_strategy needs a validation split to evaluate on")
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=chat.IGNORE, padding=True,
                                      pad_to_multiple_of=pad_multiple(precision.device))
    return fit(model, sft_dataset(train_df, tokenizer, labels, question, max_length),
               sft_dataset(validation_df, tokenizer, labels, question, max_length) if evaluating else None,
               collator, cfg, precision, seed, output_dir, logging_dir)
