"""One run: a model x dataset x seed, its parameters and its folder.

A run folder holds everything a reviewer needs to rerun any stage: `params.yaml` (the
papermill parameters), the saved splits, the adapter, each stage's JSON and notebook.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helpers import config
from helpers.metrics import LABEL_TYPE_HEADLINE
from helpers.adapters.registry import register_finished
from helpers.config import DatasetSpec, ModelSpec, Preset
from helpers.config.model import recipe_overrides
from helpers.config.preset import check_context_mode
from helpers.core.device import Precision, detect_device, precision_for
from helpers.core.environment import environment
from helpers.core.io import read_json, write_json
from helpers.core.paths import resolve
from helpers.pipeline import adapters
from helpers.pipeline.recorded import check_rerun

STAGES = ("01_data", "02_train", "03_evaluate", "04_speed")
SCRATCH = "scratch"  # the notebooks' default study: throwaway runs, rerun with any parameters


@dataclass
class Run:
    study: str
    model: ModelSpec
    dataset: DatasetSpec
    preset: Preset
    seed: int
    run_dir: Path
    data_dir: str | None
    precision: Precision
    adapter: str | None = None  # a registered adapter used as trained (a study's `adapters:`): nothing trains

    @property
    def data_folder(self) -> Path:
        return self.run_dir / "data"

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / "adapter"

    @property
    def checkpoint_dir(self) -> Path:
        """Training checkpoints (a preset's save_strategy); a killed training resumes from the last."""
        return self.run_dir / "checkpoints"

    @property
    def tensorboard_dir(self) -> Path:
        return self.run_dir / "tensorboard"

    @property
    def device(self) -> str:
        return self.precision.device

    def stage_file(self, stage: str) -> Path:
        return self.run_dir / "stages" / f"{stage}.json"

    def write_stage(self, stage: str, record: dict[str, Any]) -> Path:
        return write_json(self.stage_file(stage), record)

    def read_stage(self, stage: str) -> dict[str, Any]:
        path = self.stage_file(stage)
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: run notebooks/{stage} for this run_dir first")
        return read_json(path)


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (all devices) RNGs; transformers.set_seed does the same but
    importing it pulls in the Trainer (~10 s per notebook kernel)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def open_run(model: str, dataset: str, preset: str, seed: int, run_dir: str, data_dir: str | None = None,
             overrides: dict | None = None, study: str = SCRATCH, device: str | None = None,
             holdout_group: str | None = None, holdout_by: str = "group", adapter: str | None = None,
             check_record: bool = True) -> Run:
    """Resolve a stage notebook's parameters into checked records and seed every RNG.
    Training settings: the preset's, then the model's own recipe, then the study's overrides, then
    a `<model>@<recipe>` variant's recipe (the thing the study compares, so it has the last word).
    A holdout_group makes the run leave that group (a value of the `holdout_by` column: group, or
    context) out of training and test on it alone. The resolved context_mode is checked against the
    dataset and model here, where they first meet. With `adapter` (a registered adapter's id), `model`
    is the study's name for it and the model is the one it was trained from (helpers/pipeline/adapters.py).
    A run_dir that holds a finished run must resolve to the settings its results.json recorded
    (helpers/pipeline/recorded.py), except in the scratch study; readers of its adapter open it
    with `reopen_run`, which minds only what they read."""
    seed_everything(seed)
    spec = config.get_model(model) if adapter is None else adapters.adapter_model(model, adapter)
    resolved = config.apply_overrides(config.load_preset(preset), {"train": spec.train})
    dataset_spec = config.get_dataset(dataset)
    if holdout_group is not None:
        dataset_spec = dataclasses.replace(dataset_spec, holdout_group=holdout_group, holdout_by=holdout_by)
    final = config.apply_overrides(config.apply_overrides(resolved, overrides or {}), recipe_overrides(spec.recipe),
                                   f"recipe of {spec.id}")
    check_context_mode(final.context_mode, dataset_spec, spec)
    if adapter is not None:
        adapters.check_fits(adapter, dataset_spec)
    run = Run(
        study=study,
        model=spec,
        dataset=dataset_spec,
        preset=final,
        seed=seed,
        run_dir=resolve(run_dir),
        data_dir=data_dir,
        precision=precision_for(detect_device(device)),
        adapter=adapter,
    )
    if check_record and study != SCRATCH:
        check_rerun(run.run_dir, run_params(run))
    return run


def reopen_run(run_dir: str | Path) -> Run:
    """A recorded run from its folder's params.yaml, at the place the folder lies now (it may have
    been moved or copied since it ran), to read its adapter: the settings a reader takes from today's
    resolution must be the ones its results.json recorded (helpers/pipeline/recorded.py READ)."""
    params_file = Path(run_dir) / "params.yaml"
    if not params_file.is_file():
        raise config.ConfigError(f"{params_file} not found: give the folder of a recorded run "
                                 f"(experiments/<study>/<dataset>/<model>/)")
    run = open_run(**{**config.read_yaml(params_file), "run_dir": str(Path(run_dir).resolve())}, check_record=False)
    check_rerun(run.run_dir, run_params(run), reading=True)
    return run


def run_params(run: Run) -> dict[str, Any]:
    """The resolved settings of a run, recorded beside every result."""
    return {
        "study": run.study,
        "model": dataclasses.asdict(run.model),
        "dataset": dataclasses.asdict(run.dataset),
        "preset": dataclasses.asdict(run.preset),
        "seed": run.seed,
        "data_dir": run.data_dir,
        "device": run.device,
        **({"adapter": run.adapter} if run.adapter else {}),
    }


def assemble_results(run: Run) -> dict[str, Any]:
    """Merge the stage records into the run's results.json (the seed's result format) and register
    the run's adapter (helpers/adapters/registry.py)."""
    data, train, evaluate, speed = (run.read_stage(stage) for stage in STAGES)
    results = {
        "model_name": run.model.id,
        "dataset": run.dataset.id,
        "seed": run.seed,
        **{k: evaluate[k] for k in ("accuracy", "f1", "precision", "recall") if k in evaluate},
        **{k: evaluate[k] for k in ("task", "accuracy_is") if k in evaluate},  # a task run: no F1, precision, recall
        **{k: evaluate[k] for k in ("label_type", *LABEL_TYPE_HEADLINE.get(evaluate.get("label_type"), ()))
           if k in evaluate},  # a multi-label or regression run: its headline metrics
        **{k: speed[k] for k in ("ttft_mean_ms", "latency_median_ms", "latency_p99_ms",
                                 "throughput_tokens_per_sec", "throughput_samples_per_sec",
                                 "memory_allocated_mb", "memory_reserved_mb", "peak_rss_mb")},
        **{k: speed[k] for k in ("ttft_ms", "decode_tokens_per_sec") if k in speed},  # generators only
        **{k: speed[k] for k in ("inference_mfu",) if k in speed},  # runs since 2026-11-27
        "training_time_hours": train["training_time_s"] / 3600.0,
        "artifact_mb": train.get("artifact_mb"),  # recorded since train.method full
        "trainable_params": train["trainable_params"],
        "total_params": train["total_params"],
        "quality": evaluate,
        "training": train,
        "speed": speed,
        "data": data,
        "data_fingerprint": data["fingerprint"],
        "params": run_params(run),
        "environment": environment(run.device),
    }
    if "mlflow" in run.preset.train.report_to:
        from helpers.pipeline.tracking import log_to_mlflow

        results["tracking"] = {"mlflow": log_to_mlflow(run, results)}
    write_json(run.run_dir / "results.json", results)
    register_finished(run.run_dir)
    return results
