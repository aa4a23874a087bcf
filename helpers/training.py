"""LoRA/QLoRA fine-tuning with the Hugging Face Trainer.

Batches are padded per batch (not to max_length) and grouped by length, so the CPU spends
its time on real tokens rather than padding.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from helpers.config import TrainConfig
from helpers.device import Precision


@dataclass
class TrainResult:
    training_time_s: float
    steps: int
    epochs: float
    train_samples: int
    train_tokens: int  # real (non-padding) tokens seen, all epochs
    log_history: list[dict]
    final_val_accuracy: float | None


def tokenize(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    encoded = tokenizer(df["text"].tolist(), truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict({**encoded, "labels": df["label"].tolist()})


def _accuracy(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_df: pd.DataFrame,
          val_df: pd.DataFrame, cfg: TrainConfig, precision: Precision, max_length: int,
          seed: int, output_dir: Path) -> TrainResult:
    """Fine-tune in place; evaluates on validation a few times for the learning curves."""
    set_seed(seed)
    train_ds = tokenize(train_df, tokenizer, max_length)
    val_ds = tokenize(val_df, tokenizer, max_length)
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=round(cfg.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        logging_steps=max(1, total_steps // 20),
        eval_strategy="steps",
        eval_steps=max(1, math.ceil(total_steps / 2)),  # mid-way and at the end: the curve's points
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="group_by_length",
        use_cpu=precision.device == "cpu",
        fp16=precision.fp16,
        bf16=precision.bf16,
        optim="adamw_torch_fused" if precision.device == "cuda" else "adamw_torch",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_accuracy,
    )
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    history = trainer.state.log_history
    evals = [e for e in history if "eval_accuracy" in e]
    if not evals or evals[-1]["step"] != trainer.state.global_step:
        trainer.evaluate()
        evals = [e for e in history if "eval_accuracy" in e]
    epochs_done = trainer.state.epoch or 0.0
    tokens_per_epoch = int(sum(len(ids) for ids in train_ds["input_ids"]))
    return TrainResult(
        training_time_s=elapsed,
        steps=trainer.state.global_step,
        epochs=float(epochs_done),
        train_samples=len(train_ds),
        train_tokens=int(tokens_per_epoch * epochs_done),
        log_history=history,
        final_val_accuracy=evals[-1]["eval_accuracy"],
    )
