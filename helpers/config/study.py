"""Studies (params/studies/*.yaml): models x datasets x seeds under one preset, checked against
the registries before anything runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import metrics
from helpers.config.base import ID_RULE, ConfigError, as_mapping, build, check, is_id, read_yaml, unique
from helpers.config.dataset import DatasetSpec, load_datasets
from helpers.config.model import load_models
from helpers.config.preset import TRACKERS, apply_overrides, load_preset
from helpers.core.paths import PARAMS_DIR, resolve


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
    tracking: list[str] = field(default_factory=list)  # tensorboard | mlflow, for every run (train.report_to)

    def __post_init__(self) -> None:
        check(self, [
            ("name", f"{ID_RULE}: it names the study's folder under experiments/ and its report", is_id),
            ("models", "a list of at least one model id, each once", lambda v: bool(v) and unique(v)),
            ("datasets", "a list of at least one dataset id, each once", lambda v: bool(v) and unique(v)),
            ("seeds", "a list of at least one integer seed, each once", lambda v: bool(v) and unique(v)),
            ("tracking", f"a list of trackers from {sorted(TRACKERS)}", lambda v: set(v) <= TRACKERS),
            ("weights", "null or non-negative weights of registered metrics that sum to more than 0",
             lambda v: v is None or (all(w >= 0 for w in v.values()) and sum(v.values()) > 0)),
        ])
        unknown = sorted(set(self.weights or {}) - set(metrics.METRICS))
        if unknown:
            raise ConfigError(f"weights name unknown metric(s) {unknown}; use keys of helpers/metrics.py, e.g. "
                              f"{metrics.keys(source='top')}")


def study_path(name_or_path: str | Path) -> Path:
    """A study's file: a path to a YAML file, or the name of one in params/studies/ (`default`)."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix in {".yaml", ".yml"}:
        return path
    named = PARAMS_DIR / "studies" / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in (PARAMS_DIR / "studies").glob("*.yaml"))
    raise ConfigError(f"no study file {str(name_or_path)!r}; give a path to a study YAML or one of the studies in "
                      f"params/studies/: {known}")


def load_study(path: str | Path) -> Study:
    """Read a study (a path, or a name from params/studies/) and check every name in it against the
    registries, and its overrides against its preset."""
    path = study_path(path)
    study = build(Study, as_mapping(read_yaml(path), str(path)), str(path))
    models, datasets = load_models(), load_datasets()
    for kind, names, registry, file in (
        ("model", study.models, models, "params/models.yaml"),
        ("dataset", study.datasets, datasets, "params/datasets.yaml"),
    ):
        for name in names:
            if name not in registry:
                raise ConfigError(
                    f"{path}: unknown {kind} id {name!r}; add it to {file} or use one of {sorted(registry)}"
                )
    if study.holdout is not None:
        _check_holdout(study, datasets, path)
    for folder in study.benchmarks:
        if not any(resolve(folder).glob("*/*.json")):
            raise ConfigError(f"{path}: benchmarks entry {folder!r} holds no <dataset>/<model>.json; run "
                              f"`senticompare bench --publish` to make one (reports/benchmarks/<device>/) or remove it")
    apply_overrides(load_preset(study.preset), run_overrides(study), f"{path}: overrides")
    return study


def run_overrides(study: Study) -> dict[str, Any]:
    """The study's overrides with its `tracking:` as every run's train.report_to."""
    if not study.tracking:
        return study.overrides
    train = {**study.overrides.get("train", {}), "report_to": list(study.tracking)}
    return {**study.overrides, "train": train}


def _check_holdout(study: Study, datasets: dict[str, DatasetSpec], path: Path) -> None:
    """holdout names one of the study's grouped datasets and `all` or a list of its groups."""
    hold = as_mapping(study.holdout, f"{path}: holdout")
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
