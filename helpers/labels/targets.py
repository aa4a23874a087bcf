"""A multi-label or regression dataset's labels: read from the source (standardized into the `label`
column as a list per row) and encoded for a head (a multi-hot matrix; standardized targets)."""
from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.data.records import DataError, Finding

LIST_SEPARATORS = ",;|"  # a multi-label cell written as text: "joy,love" or "[1, 5]"
CELL_SEPARATOR = "|"  # label ids in one predictions.csv cell


def _as_list(value) -> list:
    """A multi-label cell as a list: a list or array as it is; text as a Python/JSON list or
    separated values; one scalar as a list of one; an empty cell as no labels."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return list(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                pass
        separator = next((s for s in LIST_SEPARATORS if s in text), None)
        return [v.strip() for v in text.strip("[]").split(separator)] if separator else ([text] if text else [])
    return [value]


def _class_id(value, labels: list[str], label_map: dict) -> int | None | str:
    """A raw label as a class id into `labels` (label_map first), None where label_map drops it, or
    the string "?" where it is unknown."""
    for candidate in (value, str(value)) + ((int(value),) if str(value).lstrip("-").isdigit() else ()):
        if candidate in label_map:
            value = label_map[candidate]
            if value is None:
                return None
            break
    if isinstance(value, str) and value in labels:
        return labels.index(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, (int, float, np.integer)) and float(value).is_integer() and 0 <= int(value) < len(labels):
        return int(value)
    return "?"


def standardize(df: pd.DataFrame, spec, split: str, findings: list[Finding]) -> pd.Series:
    """The `label` column of a multi-label entry (sorted class ids per row; label_map may map
    several raw classes to one, as the Ekman grouping of GoEmotions does, or drop one with null) or
    of a regression entry (the targets as floats per row)."""
    if spec.label_type == "regression":
        columns = spec.label_column if isinstance(spec.label_column, list) else [spec.label_column]
        values = df[columns].apply(pd.to_numeric, errors="coerce")
        bad = values.isna().any(axis=1)
        if bad.any():
            raise DataError(f"dataset {spec.id!r}, split {split!r}: {int(bad.sum())} rows have a missing or "
                            f"non-numeric target in {columns}; fill in or remove those rows in the source file")
        return pd.Series(values.astype(float).values.tolist(), index=df.index)
    unknown: set[str] = set()
    rows = []
    for cell in df[spec.label_column]:
        ids = []
        for value in _as_list(cell):
            found = _class_id(value, spec.labels, spec.label_map)
            if found == "?":
                unknown.add(str(value))
            elif found is not None:
                ids.append(found)
        rows.append(sorted(set(ids)))
    if unknown:
        raise DataError(f"dataset {spec.id!r}, split {split!r}: labels outside {spec.labels}: {sorted(unknown)[:10]}; "
                        f"add them to 'label_map' in params/datasets.yaml (null drops a label)")
    none = sum(1 for ids in rows if not ids)
    if none:
        findings.append(Finding("info", "no_labels", split, none,
                                "rows with no label after label_map (kept: a text may carry none of the labels)"))
    return pd.Series(rows, index=df.index, dtype=object)


def multi_hot(label_lists, n_labels: int) -> np.ndarray:
    """Rows of class ids as a 0/1 matrix (n_rows x n_labels)."""
    matrix = np.zeros((len(label_lists), n_labels), dtype=np.float32)
    for row, ids in enumerate(label_lists):
        matrix[row, list(ids)] = 1.0
    return matrix


def target_matrix(label_lists) -> np.ndarray:
    """Regression targets (n_rows x k) from the per-row lists."""
    return np.asarray([list(v) for v in label_lists], dtype=np.float64)


@dataclass(frozen=True)
class Scaler:
    """Targets standardized with the train split's mean and standard deviation for training;
    predictions are reported back in the targets' own units."""
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, y: np.ndarray) -> Scaler:
        std = y.std(axis=0)
        if np.any(std == 0):
            raise DataError("a regression target is constant on the train split: nothing to learn; check "
                            "label_column in params/datasets.yaml or raise max_train")
        return cls(y.mean(axis=0), std)

    def forward(self, y: np.ndarray) -> np.ndarray:
        return (y - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean


def encode(label_lists, label_type: str, n_labels: int, scaler: Scaler | None = None) -> np.ndarray:
    """What the head learns: multi-hot rows, or standardized targets (float32)."""
    if label_type == "multi":
        return multi_hot(label_lists, n_labels)
    return scaler.forward(target_matrix(label_lists)).astype(np.float32)


def is_listed(df: pd.DataFrame) -> bool:
    """True where the frame's labels are lists (a multi-label or regression dataset)."""
    return len(df) > 0 and "label" in df and isinstance(df["label"].iloc[0], (list, tuple, np.ndarray))


def joined_cells(matrix: np.ndarray) -> list[str]:
    """A 0/1 label matrix as predictions.csv cells of `|`-joined label ids."""
    return [CELL_SEPARATOR.join(str(j) for j in np.flatnonzero(row)) for row in matrix]


def read_label_matrix(cells: pd.Series, n_labels: int) -> np.ndarray:
    """A predictions.csv column of `|`-joined label ids back as a 0/1 matrix."""
    rows = [[int(v) for v in str(cell).split(CELL_SEPARATOR)] if isinstance(cell, str) and cell else []
            for cell in cells.fillna("")]
    return multi_hot(rows, n_labels).astype(int)
