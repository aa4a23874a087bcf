"""LoRA/QLoRA fine-tuning with the Hugging Face Trainer.

Batches are padded per batch (not to max_length); `train.micro_batch_size` runs each random batch
sorted by length in micro-batches (helpers/train/sampler.py; `micro_batch_split: least-padding` cuts
them where they pad least), so the CPU spends its time on real tokens rather than padding without
giving up random batches; and on a CPU dropout masks are drawn by numpy
(helpers/train/dropout.py: torch's CPU sampler took 13 % of a LoRA step). On CUDA, where these small
models are bound by the host's kernel launches rather than by the GPU, two more things pay
(measured on an H100, SmolLM2-135M, Fine Foods: median step 342 -> 206 ms): batch lengths
rounded up to a multiple of 64, because SDPA's cuDNN backend builds a new attention plan
(~2.7 ms of host time per call) for every new sequence length; and the frozen weights stored in
the compute dtype, because autocast otherwise re-casts every fp32 base weight on every forward.
What launches remain, `train.compile: reduce-overhead` replays as CUDA graphs (one per padded batch
shape); tests/test_bench.py checks on a CPU that the compiled step is the eager one in whole graphs.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from transformers import (DataCollatorWithPadding, EarlyStoppingCallback, EvalPrediction, PreTrainedModel,
                          PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments, set_seed)

from helpers.config import TrainConfig
from helpers.core import progress
from helpers.core.device import Precision, pad_multiple, synchronize
from helpers.core.threads import free_core_threads
from helpers.data.context import model_texts
from helpers.train import distributed
from helpers.train.dropout import use_numpy_dropout
from helpers.train.sampler import LeastPaddingSampler, SortedStepSampler


@dataclass
class TrainResult:
    training_time_s: float
    steps: int
    epochs: float
    train_samples: int
    train_tokens: int  # real (non-padding) tokens seen, all epochs
    log_history: list[dict]
    step_seconds: list[float] = field(default_factory=list)  # per optimizer step, logging excluded
    step_tokens: list[int] = field(default_factory=list)  # real tokens per optimizer step
    step_threads: list[int] = field(default_factory=list)  # CPU threads each step ran on
    resumed_from_step: int | None = None  # the checkpoint a killed training resumed from
    best_step: int | None = None  # the step of the best validation checkpoint (load_best_model_at_end)
    best_metric: float | None = None  # its validation metric_for_best_model


class StepClock(TrainerCallback):
    """Wall time and real tokens of every optimizer step, batch loading included and logging
    excluded; CUDA work is synchronized before each clock read. `between_steps` runs after each
    step's clock read and before the next step's clock starts (the bench's turns, helpers/bench/turns.py)."""

    def __init__(self, device: str, between_steps: Callable[[], None] | None = None):
        self.device = device
        self.between_steps = between_steps
        self.seconds: list[float] = []
        self.tokens: list[int] = []
        self.threads: list[int] = []
        self._start = 0.0
        self._seen = 0

    def _restart(self, state) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()
        self._seen = state.num_input_tokens_seen

    def on_train_begin(self, args, state, control, **kwargs):
        self._restart(state)

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)
        self.seconds.append(time.perf_counter() - self._start)
        self.tokens.append(int(state.num_input_tokens_seen - self._seen))
        self.threads.append(torch.get_num_threads())
        if self.between_steps is not None:
            self.between_steps()
        self._restart(state)

    def on_log(self, args, state, control, **kwargs):
        self._restart(state)


class ThreadGovernor(TrainerCallback):
    """Before every step, the CPU threads other processes leave free (helpers.threads); the
    caller's setting is given back when training ends."""

    def __init__(self, device: str):
        self.device = device
        self._before = torch.get_num_threads()

    def on_train_begin(self, args, state, control, **kwargs):
        self._before = torch.get_num_threads()

    def on_step_begin(self, args, state, control, **kwargs):
        if self.device == "cpu":
            torch.set_num_threads(free_core_threads())

    def on_train_end(self, args, state, control, **kwargs):
        torch.set_num_threads(self._before)


class ProgressReporter(TrainerCallback):
    """Steps done, the last logged loss and validation F1 for the runner's terminal (helpers/core/progress.py)."""

    def __init__(self) -> None:
        self.shown: dict[str, float] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key, label in (("loss", "loss"), ("eval_f1", "validation F1")):
            if logs and key in logs:
                self.shown[label] = float(logs[key])

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # one line for a training on several processes
            progress.report("train", state.global_step, state.max_steps, **self.shown)


DYNAMO_ENV = "ACCELERATE_DYNAMO_"


def freeze_in_compute_dtype(model: torch.nn.Module, precision: Precision) -> int:
    """Store the frozen floating-point weights in the mixed-precision compute dtype (bf16/fp16),
    keeping trainable ones (LoRA, the head) in fp32; returns how many tensors were cast. Under
    full precision, or with quantized weights (QLoRA keeps its norms in fp32 on purpose), nothing."""
    half = torch.bfloat16 if precision.bf16 else torch.float16 if precision.fp16 else None
    if half is None or getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_quantized", False):
        return 0
    cast = 0
    for param in model.parameters():
        if not param.requires_grad and param.dtype == torch.float32:
            param.data = param.data.to(half)
            cast += 1
    return cast


def tokenize(df: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int,
             context_mode: str = "none") -> datasets.Dataset:
    """The model's inputs: each row's text under the context mode (helpers/data/context.py), tokenized."""
    encoded = tokenizer(model_texts(df, context_mode), truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict({**encoded, "labels": df["label"].tolist()})


def validation_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """Accuracy and macro F1 of the argmax on the validation split, for evaluation during training."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    predicted, labels = np.asarray(logits).argmax(axis=-1), np.asarray(prediction.label_ids)
    return {"accuracy": float((predicted == labels).mean()),
            "f1": float(f1_score(labels, predicted, average="macro", zero_division=0))}


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-<step>` folder a killed training left, or None."""
    found = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return found[-1] if found else None


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_df: pd.DataFrame,
          cfg: TrainConfig, precision: Precision, max_length: int,
          seed: int, output_dir: Path, validation_df: pd.DataFrame | None = None,
          logging_dir: Path | None = None, context_mode: str = "none",
          callbacks: Sequence[TrainerCallback] = (), between_steps: Callable[[], None] | None = None) -> TrainResult:
    """Fine-tune in place (each text read under `context_mode`, helpers/data/context.py). With
    `cfg.eval_strategy` the validation split is scored while training (loss, accuracy, macro F1);
    with `cfg.save_strategy` checkpoints go to `output_dir`, and a training that finds one there (it
    was killed) resumes from it: same seed, same batch order, so it ends where an uninterrupted one would.
    `callbacks` join the Trainer's own (the bench's profiler); `between_steps` runs between two
    steps, outside their clock (`StepClock`)."""
    evaluating = cfg.eval_strategy != "no"
    if evaluating and (validation_df is None or validation_df.empty):
        raise ValueError("eval_strategy needs a validation split to evaluate on")
    return fit(model, tokenize(train_df, tokenizer, max_length, context_mode),
               tokenize(validation_df, tokenizer, max_length, context_mode) if evaluating else None,
               DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(precision.device)),
               cfg, precision, seed, output_dir, logging_dir, validation_metrics, callbacks,
               between_steps=between_steps)


def fit(model: PreTrainedModel, train_ds: datasets.Dataset, eval_ds: datasets.Dataset | None, collator,
        cfg: TrainConfig, precision: Precision, seed: int, output_dir: Path, logging_dir: Path | None = None,
        compute_metrics=None, callbacks: Sequence[TrainerCallback] = (), token_loss: bool = False,
        between_steps: Callable[[], None] | None = None) -> TrainResult:
    """The training loop of `train` on tokenized data with its collator: classification (above) and
    supervised fine-tuning of a generator (helpers/generate/sft.py, `token_loss`) share it. Without
    `compute_metrics`, the validation loss is the only validation metric and picks the best checkpoint.

    A step of several batches (gradient accumulation, micro-batches) takes the mean loss over the
    step's examples: a classification head's loss is its batch's mean, divided by the batches in the
    step (transformers would add the means up for a head that takes loss kwargs without using them,
    BERT's among them); a generator's loss is summed over the step's answer tokens and divided by
    their count (`num_items_in_batch`), whatever batch they fall in."""
    set_seed(seed)
    freeze_in_compute_dtype(model, precision)
    if precision.device == "cpu" and cfg.compile == "none":  # numpy would break a compiled graph
        use_numpy_dropout(model)
    evaluating = cfg.eval_strategy != "no"
    if evaluating and eval_ds is None:
        raise ValueError("eval_strategy needs a validation split to evaluate on")
    best_metric = cfg.metric_for_best_model if compute_metrics is not None else "loss"
    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * cfg.gradient_accumulation_steps))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    processes = distributed.world_size()  # batch_size is the global batch (helpers/train/distributed.py)
    per_process = cfg.batch_size // processes
    micro = cfg.micro_batch_size or per_process
    dynamo_environment = _dynamo_environment()
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=micro,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=round(cfg.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        logging_steps=max(1, total_steps // 20),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps * (per_process // micro),
        gradient_checkpointing=cfg.gradient_checkpointing,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy=cfg.eval_strategy,
        eval_steps=cfg.eval_steps,
        per_device_eval_batch_size=cfg.eval_batch_size,
        save_strategy=cfg.save_strategy,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=cfg.load_best_model_at_end,
        metric_for_best_model=best_metric if evaluating else None,
        greater_is_better=best_metric != "loss" if evaluating else None,
        report_to=[t for t in cfg.report_to if t == "tensorboard"] or "none",  # MLflow: helpers/pipeline/tracking.py
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="group_by_length" if cfg.sampling == "length-grouped" else "random",
        use_cpu=precision.device == "cpu",
        fp16=precision.fp16,
        bf16=precision.bf16,
        optim="adamw_torch_fused" if precision.device == "cuda" else "adamw_torch",
        torch_compile=cfg.compile != "none",
        torch_compile_mode=None if cfg.compile in ("none", "default") else cfg.compile,
        dataloader_num_workers=0,
        ddp_backend="gloo" if precision.device == "cpu" and processes > 1 else None,
        disable_tqdm=bool(os.environ.get("TQDM_DISABLE")),  # set for the runner's kernels: no bar in the report
        include_num_input_tokens_seen="non_padding",
    )
    clock = StepClock(precision.device, between_steps)
    if logging_dir is not None and "tensorboard" in cfg.report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(logging_dir)  # read by transformers' TensorBoardCallback
    callbacks = [clock, ThreadGovernor(precision.device), ProgressReporter(), *callbacks]
    if cfg.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    sorted_steps = cfg.sampling == "random" and micro < per_process
    least_padding = cfg.sampling == "random" and cfg.micro_batch_split == "least-padding"  # micro_batch_size < batch
    trainer = (LeastPaddingTrainer if least_padding else SortedStepTrainer if sorted_steps else Trainer)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if evaluating else None,
        compute_metrics=compute_metrics if evaluating else None,
        data_collator=collator,
        callbacks=callbacks,
    )
    _restore_dynamo_environment(dynamo_environment)  # the Trainer has read it
    trainer.model_accepts_loss_kwargs = token_loss
    resume = last_checkpoint(output_dir) if cfg.save_strategy != "no" else None
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    elapsed = time.perf_counter() - start
    history = trainer.state.log_history
    epochs_done = trainer.state.epoch or 0.0
    tokens_per_epoch = int(sum(len(ids) for ids in train_ds["input_ids"]))
    return TrainResult(
        training_time_s=elapsed,
        steps=trainer.state.global_step,
        epochs=float(epochs_done),
        train_samples=len(train_ds),
        train_tokens=int(tokens_per_epoch * epochs_done),
        log_history=history,
        step_seconds=clock.seconds,
        step_tokens=clock.tokens,
        step_threads=clock.threads,
        resumed_from_step=int(resume.name.split("-")[-1]) if resume else None,
        best_step=_step_of(trainer.state.best_model_checkpoint),
        best_metric=trainer.state.best_metric,
    )


class SortedStepTrainer(Trainer):
    """The Trainer reading each optimizer step's random examples longest first, so that the step's
    micro-batches (its gradient accumulation) each pad to a similar length (helpers/train/sampler.py)."""

    def _get_train_sampler(self, train_dataset=None) -> SortedStepSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        step = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        return SortedStepSampler([len(ids) for ids in dataset["input_ids"]], step, self.args.data_seed)


class LeastPaddingTrainer(Trainer):
    """The Trainer reading each optimizer step's random examples cut into micro-batches of the sizes
    that pad least (helpers/train/sampler.py `LeastPaddingSampler`), dealt to the DDP ranks so that
    they wait least on each other. A classification head's loss is its micro-batch's mean, which
    the Trainer divides by the rank's count of micro-batches and DDP averages over the ranks:
    weighted here by the micro-batch's share of the step's examples on all ranks (one all-reduce of
    a count a step under DDP), so the step takes the mean over its examples, as with micro-batches
    of one size. A generator's token loss (`num_items_in_batch`) is the step's mean over its answer
    tokens already."""

    _step_examples = 0

    def _get_train_sampler(self, train_dataset=None) -> LeastPaddingSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        accumulation, ranks = self.args.gradient_accumulation_steps, self.args.world_size
        lengths = [len(ids) for ids in dataset["input_ids"]]
        return LeastPaddingSampler(lengths, self.args.train_batch_size * accumulation * ranks, dp_size=ranks,
                                   grad_accum=accumulation, seed=self.args.data_seed, rank=self.args.process_index,
                                   drop_last=self.args.dataloader_drop_last)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, items = super().get_batch_samples(epoch_iterator, num_batches, device)
        examples = sum(len(batch["labels"]) for batch in batches)
        if self.args.world_size > 1:
            examples = int(self.accelerator.reduce(torch.tensor(examples, device=device), reduction="sum"))
        self._step_examples = examples
        return batches, items

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        share = (len(inputs["labels"]) * self.current_gradient_accumulation_steps * self.args.world_size
                 / self._step_examples) if model.training and not self.model_accepts_loss_kwargs else 1.0
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return (result[0] * share, *result[1:]) if return_outputs else result * share


def _dynamo_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(DYNAMO_ENV)}


def _restore_dynamo_environment(before: dict[str, str]) -> None:
    """TrainingArguments(torch_compile=True) leaves ACCELERATE_DYNAMO_* in the environment, where every
    later Trainer of the process (the benchmark's baseline, its QLoRA run) would read it and compile
    too: put back as it was once this training's Trainer has read it."""
    for key in [k for k in os.environ if k.startswith(DYNAMO_ENV)]:
        del os.environ[key]
    os.environ.update(before)


def _step_of(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.split("-")[-1]) if checkpoint else None
