"""The HF Trainer baseline (pad to max length) our path is benchmarked against: every text padded
to max_length, the HF Trainer with its default settings, and `transformers.pipeline` with its
defaults, as the project's original starter code did.

The baseline (keyed `reference` in the bench's JSON files) shares with our path only what decides
accuracy (learning rate, batch size, epochs, warm-up, weight decay, the LoRA adapters, the seed),
so equal accuracy is a fair check and the speed difference comes from how the work is done.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import pandas as pd
from transformers import (PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments,
                          pipeline, set_seed)

from helpers.config import TrainConfig
from helpers.core.device import Precision
from helpers.train.trainer import StepClock, TrainResult


def tokenize_padded(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    """Every example padded to max_length, as the original starter code tokenized."""
    encoded = tokenizer(df["text"].tolist(), truncation=True, max_length=max_length, padding="max_length")
    return datasets.Dataset.from_dict({**encoded, "labels": df["label"].tolist()})


def train_reference(model: PreTrainedModel, train_df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase,
                    cfg: TrainConfig, max_length: int, seed: int, precision: Precision,
                    output_dir: Path, callbacks: Sequence[TrainerCallback] = (),
                    between_steps: Callable[[], None] | None = None) -> TrainResult:
    """Fine-tune in place with the Trainer's defaults (no evaluation, random batches) under the original
    precision table: fp32 on a CPU, bf16/fp16 mixed precision on CUDA, as our path; `callbacks` join
    the step clock (the bench's profiler), which runs `between_steps` between two steps, outside their
    time (the bench's turns)."""
    set_seed(seed)
    train_ds = tokenize_padded(train_df, tokenizer, max_length)
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(math.ceil(len(train_ds) / cfg.batch_size) * cfg.epochs)
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=round(cfg.warmup_ratio * total_steps),
        seed=seed,
        use_cpu=precision.device == "cpu",
        fp16=precision.fp16,
        bf16=precision.bf16,
        report_to="none",
        save_strategy="no",  # not a speed setting: keeps checkpoints off the disk
        include_num_input_tokens_seen="non_padding",  # measurement only
    )
    clock = StepClock(precision.device, between_steps)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, callbacks=[clock, *callbacks])
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    epochs_done = float(trainer.state.epoch or 0.0)
    return TrainResult(
        training_time_s=elapsed,
        steps=trainer.state.global_step,
        epochs=epochs_done,
        train_samples=len(train_ds),
        train_tokens=int(sum(sum(mask) for mask in train_ds["attention_mask"]) * epochs_done),
        log_history=trainer.state.log_history,
        step_seconds=clock.seconds,
        step_tokens=clock.tokens,
        step_threads=clock.threads,
    )


def text_classifier(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, device: str):
    """`pipeline("text-classification")` with its defaults around an already loaded model."""
    return pipeline("text-classification", model=model, tokenizer=tokenizer, device=device)


def classify(classifier, texts: list[str], batch_size: int, max_length: int) -> list:
    """The pipeline's own batching; truncation to the same max_length as ours, so both see the
    same tokens (the pipeline's default would run whole texts)."""
    return classifier(list(texts), batch_size=batch_size, truncation=True, max_length=max_length)
