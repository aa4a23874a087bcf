"""Studies (params/studies/*.yaml): models x datasets x seeds under one preset, checked against
the registries before anything runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import metrics
from helpers.config.base import ID_RULE, ConfigError, as_mapping, build, check, is_id, one_of, read_yaml, unique
from helpers.config.dataset import HOLDOUT_COLUMNS, DatasetSpec, load_datasets
from helpers.config.model import get_model, recipe_overrides
from helpers.config.preset import TRACKERS, apply_overrides, check_context_mode, load_preset
from helpers.core.paths import PARAMS_DIR, resolve
from helpers.pipeline.executors import EXECUTORS


RESULTS = {"shared", "copy"}  # where a Ray task's run folder lands (helpers/pipeline/executors.py)


@dataclass(frozen=True)
class RayConfig:
    """A study's `ray:` settings, for `executor: ray` (docs/scale.md)."""
    address: str | None = None  # ray.init's: null starts Ray on this machine; "auto" or "ray://<head>:10001"
    num_cpus: float = 1  # per run; its kernels get as many threads (SENTICOMPARE_THREADS) unless it is set
    num_gpus: float | None = None  # per run; null: 1 on a cluster with GPUs, else 0; 0.33 shares one by three
    # shared: every worker sees the study's experiments/ (one machine, or a shared filesystem);
    # copy: each task gets its run folder through Ray's object store and sends it back the same way.
    results: str = "shared"

    def __post_init__(self) -> None:
        check(self, [
            ("address", "null (start Ray here), 'auto' or a Ray address such as ray://<head>:10001",
             lambda v: v is None or bool(v.strip())),
            ("num_cpus", "a positive number", lambda v: v > 0),
            ("num_gpus", "null or a non-negative number", lambda v: v is None or v >= 0),
            ("results", *one_of(RESULTS)),
        ])


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
    # Per dataset, over `overrides`: {<dataset id>: {train: {batch_size: 256}}}. One preset serves
    # data sets of very different sizes (SST-2's 67,349 sentences beside 2,500 reviews).
    dataset_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Leave-one-group-out: {dataset: <id>, by: group | context (or the column's name; default group),
    # groups: all | [<value>, ...], min_group_size: 50 (with all: smaller groups are not held out)}
    holdout: dict[str, Any] | None = None
    # Registered adapters compared as models, used as trained: {name: adapter id} (`senticompare
    # adapters list`), e.g. a merged adapter beside its parents. Each is evaluated and timed on every
    # dataset of the study under `name`, its recalibration fitted there; nothing trains
    # (helpers/pipeline/adapters.py). The datasets' labels must be the adapter's.
    adapters: dict[str, str] = field(default_factory=dict)
    benchmarks: list[str] = field(default_factory=list)  # `senticompare bench` result folders shown in the report
    tracking: list[str] = field(default_factory=list)  # tensorboard | mlflow, for every run (train.report_to)
    # How the runs execute (helpers/pipeline/executors.py): serial | local | ray; max_workers: runs
    # at once (local's default: one per GPU on a host with several, else 1; ray's: as many as the
    # cluster fits); `ray:` the cluster and each run's resources. Never part of a run's parameters.
    executor: str = "serial"
    max_workers: int | None = None
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        check(self, [
            ("name", f"{ID_RULE}: it names the study's folder under experiments/ and its report", is_id),
            ("models", "a list of model ids, each once (at least one, or some adapters)",
             lambda v: (bool(v) or bool(self.adapters)) and unique(v)),
            ("adapters", f"a mapping from names ({ID_RULE}, none a model of the study) to registered adapter ids",
             lambda v: all(is_id(k) and k not in self.models and isinstance(i, str) and i for k, i in v.items())),
            ("datasets", "a list of at least one dataset id, each once", lambda v: bool(v) and unique(v)),
            ("seeds", "a list of at least one integer seed, each once", lambda v: bool(v) and unique(v)),
            ("tracking", f"a list of trackers from {sorted(TRACKERS)}", lambda v: set(v) <= TRACKERS),
            ("executor", *one_of(EXECUTORS)),
            ("max_workers", "null or a positive integer", lambda v: v is None or v >= 1),
            ("dataset_overrides", "a mapping from the study's dataset ids to overrides",
             lambda v: set(v) <= set(self.datasets)),
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
    datasets = load_datasets()
    for name in study.models:
        try:
            get_model(name)  # a registry model, or <model>@<recipe> (params/recipes.yaml)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for name in study.datasets:
        if name not in datasets:
            raise ConfigError(f"{path}: unknown dataset id {name!r}; add it to params/datasets.yaml or use one of "
                              f"{sorted(datasets)}")
    if study.holdout is not None:
        _check_holdout(study, datasets, path)
    for folder in study.benchmarks:
        if not any(resolve(folder).glob("*/*.json")):
            raise ConfigError(f"{path}: benchmarks entry {folder!r} holds no <dataset>/<model>.json; run "
                              f"`senticompare bench --publish` to make one (reports/benchmarks/<device>/) or remove it")
    for dataset in study.datasets:
        where = f"{path}: dataset_overrides.{dataset}" if dataset in study.dataset_overrides else f"{path}: overrides"
        apply_overrides(load_preset(study.preset), run_overrides(study, dataset), where)
    _check_context_modes(study, datasets, path)
    return study


def run_overrides(study: Study, dataset: str | None = None) -> dict[str, Any]:
    """What a run of `dataset` changes in the preset: the study's overrides, then the dataset's
    own (section by section: a dataset's `train: {batch_size: 256}` keeps the study's other train
    keys), with the study's `tracking:` as train.report_to."""
    merged = _merge(study.overrides, study.dataset_overrides.get(dataset, {}) if dataset else {})
    if study.tracking:
        merged = _merge(merged, {"train": {"report_to": list(study.tracking)}})
    return merged


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both else value
    return merged


HOLDOUT_KEYS = {"dataset", "by", "groups", "min_group_size"}
MIN_GROUP_SIZE = 50  # holdout groups: all leaves smaller groups out of the held-out list (and says so)


def holdout_column(by: Any, spec: DatasetSpec) -> str:
    """The standardized column a holdout's `by` names (group | context): the key itself, its entry
    key (group_column) or the column's name in the data (e.g. Reviewer_Location)."""
    for column, key in HOLDOUT_COLUMNS.items():
        if by in (column, key) or (getattr(spec, key) is not None and by == getattr(spec, key)):
            if getattr(spec, key) is None:
                raise ConfigError(f"holdout.by {by!r}: dataset {spec.id!r} has no {key}; name one in "
                                  f"params/datasets.yaml, or hold out by one of {_held_columns(spec)}")
            return column
    raise ConfigError(f"holdout.by {by!r} is not a column dataset {spec.id!r} keeps; use one of "
                      f"{_held_columns(spec)} (or the column's name)")


def _held_columns(spec: DatasetSpec) -> list[str]:
    return [column for column, key in HOLDOUT_COLUMNS.items() if getattr(spec, key) is not None]


def _check_holdout(study: Study, datasets: dict[str, DatasetSpec], path: Path) -> None:
    """holdout names one of the study's datasets, a column it keeps (`by`, default group), `all` or a
    list of that column's values, and a positive min_group_size."""
    hold = as_mapping(study.holdout, f"{path}: holdout")
    groups = hold.get("groups", "all")
    size = hold.get("min_group_size", MIN_GROUP_SIZE)
    if set(hold) - HOLDOUT_KEYS or not (
            groups == "all" or (isinstance(groups, list) and groups and all(isinstance(g, str) for g in groups))):
        raise ConfigError(f"{path}: holdout must be {{dataset: <id>, by: group | context, groups: all | "
                          f"[<group>, ...], min_group_size: <rows>}} (group names quoted as strings), got {hold}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"{path}: holdout.min_group_size must be a positive number of rows, got {size!r}")
    name = hold.get("dataset")
    if name not in study.datasets or not _held_columns(datasets[name]):
        grouped = [d for d in study.datasets if _held_columns(datasets[d])]
        raise ConfigError(f"{path}: holdout.dataset {name!r} must be one of the study's datasets with a "
                          f"group_column or context_column: {grouped}")
    try:
        holdout_column(hold.get("by", "group"), datasets[name])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _check_context_modes(study: Study, datasets: dict[str, DatasetSpec], path: Path) -> None:
    """Every model x dataset's context_mode (the preset's, the overrides', a recipe's) fits its dataset
    and model, before anything runs (open_run checks it again per run)."""
    for dataset in study.datasets:
        preset = apply_overrides(load_preset(study.preset), run_overrides(study, dataset))
        for name in study.models:
            model = get_model(name)
            try:
                check_context_mode(apply_overrides(preset, recipe_overrides(model.recipe)).context_mode,
                                   datasets[dataset], model)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {name} on {dataset}: {exc}") from None
