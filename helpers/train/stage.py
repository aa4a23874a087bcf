"""02_train: LoRA / QLoRA fine-tuning on the saved train split (a classification head, or the JSON
answer of a generator: helpers/generate/); the adapter is saved as safetensors."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from helpers.data.context import token_values
from helpers.data.splits import read_splits
from helpers.generate import stage as generation
from helpers.generate import task_stage
from helpers.labels import stage as label_stage
from helpers.pipeline import adapters
from helpers.pipeline.run import Run
from helpers.speed.timing import machine_load, peak_rss_mb
from helpers.train import distributed, models, trainer


def train_model(run: Run) -> dict:
    """02_train: LoRA/QLoRA (or full) fine-tune on the saved train split, save the adapter (or the
    whole model) as safetensors. Under `train.distributed: ddp` every torchrun rank runs this, and
    rank 0 saves the adapter and the record (helpers/train/distributed.py)."""
    cfg = run.preset.train
    if run.adapter is not None:  # a registered adapter used as trained (helpers/pipeline/adapters.py)
        record = adapters.bring_into_run(run.adapter, run.adapter_dir)
        run.write_stage("02_train", record)
        return record
    if cfg.distributed == "ddp" and not distributed.in_rank():
        distributed.launch(run)
        return run.read_stage("02_train")
    splits = read_splits(run.data_folder)
    validation = splits.validation if cfg.eval_strategy != "no" else None

    def fit(output_dir: Path):
        if run.dataset.task != "classification":  # it learns to write the answers (helpers/generate/task_stage.py)
            return task_stage.train(run, splits, validation, output_dir)
        if run.dataset.label_type != "single":  # a multi-label or regression head (helpers/labels/)
            return label_stage.train(run, splits, validation, output_dir)
        if run.model.method == "generate":  # it learns to write the JSON answer (helpers/generate/)
            return generation.train(run, splits, validation, output_dir)
        tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
        model = models.adapt(models.load_base(run.model, splits.labels, run.precision, cfg.quantization,
                                              tokenizer, context_values=token_values(splits, run.preset.context_mode)),
                             run.model, cfg)
        return model, trainer.train(model, tokenizer, splits.train, cfg, run.precision, run.preset.max_length,
                                    run.seed, output_dir, validation, run.tensorboard_dir,
                                    context_mode=run.preset.context_mode)

    if cfg.save_strategy != "no":  # checkpoints stay in the run folder: a killed training resumes from them
        model, result = fit(run.checkpoint_dir)
    else:  # scratch space in the run folder, so a killed training leaves nothing elsewhere (the runner
        # clears `.trainer-*` before the next attempt)
        with tempfile.TemporaryDirectory(prefix=".trainer-", dir=run.run_dir) as scratch:
            model, result = fit(Path(scratch))
    trainable, total = models.count_parameters(model)
    if not distributed.is_main_process():
        return {}
    save_adapter(model, run.adapter_dir)
    record = {
        **dataclasses.asdict(result),
        "train_tokens_per_sec": result.train_tokens / result.training_time_s,
        "train_samples_per_sec": result.train_samples * result.epochs / result.training_time_s,
        "trainable_params": trainable,
        "total_params": total,
        "method": cfg.method,
        "quantization": cfg.quantization,
        "artifact_mb": models.artifact_mb(run.adapter_dir),
        "load": machine_load(),
        "peak_rss_mb": peak_rss_mb(),
        **distributed.describe(),
    }
    run.write_stage("02_train", record)
    return record


def save_adapter(model, adapter_dir: Path) -> Path:
    """Write the adapter beside its place and move it in whole, so a later stage never reads half
    of one (an earlier adapter is replaced only once the new one is complete)."""
    tmp = adapter_dir.with_name(".adapter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True, **models.save_options(model))
    models.save_context_tokens(model, tmp)  # context_mode token: the values its new tokens stand for
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(tmp, adapter_dir)
    return adapter_dir
