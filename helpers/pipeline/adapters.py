"""Registered adapters as models of a study (a study's `adapters: {name: adapter id}`): a merged
adapter beside its parents, or a run of another study, evaluated and timed on this study's
datasets as they were trained. Nothing trains: 02_train copies the adapter into the run folder and
carries its training record over; 03_evaluate fits the recalibration, conformal q-hat and
thresholds on this run's own validation and calibration splits, as for a trained run; the report
compares it like any model. Labels must match: a head maps its outputs to the labels it was
trained on, so a dataset with other label names is refused (`senticompare evaluate --label-map`
scores an adapter across label names, outside a study)."""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path

from safetensors import safe_open

from helpers import config
from helpers.adapters import registry
from helpers.config import ConfigError
from helpers.core.io import read_json

WEIGHTS = ("adapter_model.safetensors", "model.safetensors")  # a LoRA adapter, or a fully fine-tuned model


def adapter_model(name: str, adapter: str) -> config.ModelSpec:
    """The registry model the adapter was trained from, under the study's name for it."""
    record = registry.finished_run(adapter)
    return dataclasses.replace(config.get_model(record.model), id=name)


def check_fits(adapter: str, dataset: config.DatasetSpec) -> registry.AdapterRecord:
    """The adapter answers what the dataset asks: the same task or label type, the same labels in
    the same order."""
    record = registry.finished_run(adapter)
    wanted = (dataset.task if dataset.task != "classification"
              else registry.SINGLE_LABEL if dataset.label_type == "single" else (dataset.label_type,))
    if record.label_type not in wanted:
        raise ConfigError(f"adapter {adapter!r} answers {record.label_type}, dataset {dataset.id!r} asks for "
                          f"{'/'.join(wanted) if isinstance(wanted, tuple) else wanted}; list it in a study of "
                          f"such datasets")
    if dataset.task == "classification" and list(record.labels) != list(dataset.labels):
        raise ConfigError(f"adapter {adapter!r} was trained on labels {record.labels}, dataset {dataset.id!r} has "
                          f"{list(dataset.labels)}; a study compares an adapter on datasets with its own labels "
                          f"(`senticompare evaluate --adapter {adapter} --dataset {dataset.id} --label-map A=B` "
                          f"scores it across label names)")
    return record


def check_study(study: config.Study) -> None:
    """Every adapter of the study is registered, its run folder there, and fits every dataset."""
    for name, adapter in study.adapters.items():
        for dataset in study.datasets:
            try:
                check_fits(adapter, config.get_dataset(dataset))
            except ConfigError as exc:
                raise ConfigError(f"study {study.name!r}, adapters.{name}: {exc}") from None


def bring_into_run(adapter: str, adapter_dir: Path) -> dict:
    """02_train for an adapter used as trained: its folder copied beside `adapter_dir` and moved in
    whole; the training record of its run, or for a merged adapter (which never trained) one of no
    steps, with its own and its parents' parameter counts. Both say where the adapter came from."""
    from helpers.train import models

    record = registry.finished_run(adapter)
    tmp = adapter_dir.with_name(".adapter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(record.run_dir / "adapter", tmp)
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(tmp, adapter_dir)
    trained = record.run_dir / "stages" / "02_train.json"
    if trained.is_file():
        training = read_json(trained)
    else:
        merge = read_json(record.run_dir / "results.json").get("merge", {})
        parent = registry.finished_run(merge["parents"][0]["id"]) if merge.get("parents") else None
        parent_training = parent.run_dir / "stages" / "02_train.json" if parent else None
        training = {
            "training_time_s": 0.0, "steps": 0, "epochs": 0, "train_samples": 0, "train_tokens": 0,
            "log_history": [], "train_tokens_per_sec": None, "train_samples_per_sec": None,
            "trainable_params": _weights(adapter_dir),
            "total_params": (read_json(parent_training)["total_params"]
                             if parent_training and parent_training.is_file() else None),
            "method": "merge", "quantization": "none", "best_step": None, "best_metric": None,
            "resumed_from_step": None, "merge": merge,
        }
    return {**training, "adapter_from": adapter, "artifact_mb": models.artifact_mb(adapter_dir)}


def _weights(folder: Path) -> int:
    """The number of weights an adapter folder ships (its safetensors' tensors)."""
    total = 0
    for name in WEIGHTS:
        if (folder / name).is_file():
            with safe_open(folder / name, "pt") as tensors:
                total += sum(math.prod(tensors.get_slice(key).get_shape()) for key in tensors.keys())
    return total
