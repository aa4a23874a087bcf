"""The records every data module shares: the split names, a data check's finding, a dataset's
splits, and the error a user can act on."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

SPLITS = ("train", "validation", "calibration", "test")
ABSTAIN = -1  # the label of an abstention example (a dataset's abstain_labels), never a class id
ABSTAIN_SPLITS = ("test", "validation", "train")  # where abstention examples go, in the order they are drawn


class DataError(ValueError):
    """The data cannot be had or is unusable; the message says what to do."""


@dataclass
class Finding:
    level: str  # error | warning | info
    check: str
    split: str
    count: int
    message: str


def empty_split() -> pd.DataFrame:
    return pd.DataFrame({"text": pd.Series(dtype=str), "label": pd.Series(dtype=int)})


@dataclass
class DatasetSplits:
    dataset: str
    labels: list[str]
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    source: str
    calibration: pd.DataFrame = field(default_factory=empty_split)  # for conformal prediction
    fingerprint: str = ""
    cache_key: str = ""
    findings: list[Finding] = field(default_factory=list)
    label_type: str = "single"  # single | multi | regression (helpers/labels/)
    # Abstention examples (label ABSTAIN) beside the classes' splits, their `split` column naming
    # which (ABSTAIN_SPLITS); empty unless the entry has abstain_labels (helpers/data/splits.py).
    abstain: pd.DataFrame = field(default_factory=empty_split)

    def split(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    def abstentions(self, name: str) -> pd.DataFrame:
        """The abstention examples drawn for split `name` (none for calibration)."""
        if self.abstain.empty:
            return self.abstain
        return self.abstain.loc[self.abstain["split"] == name].drop(columns="split").reset_index(drop=True)

    def with_abstentions(self, name: str) -> pd.DataFrame:
        """Split `name` with its abstention examples after its rows (what a generator learns from)."""
        extra = self.abstentions(name)
        return self.split(name) if extra.empty else pd.concat([self.split(name), extra], ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """Rows and class balance per split (texts per label for multi-label data, each target's mean
        for regression): the top of the data card."""
        summary = label_summary({name: self.split(name) for name in SPLITS}, self.labels, self.label_type)
        if not self.abstain.empty:
            summary["abstain"] = [len(self.abstentions(name)) for name in summary.index]
        return summary


def label_summary(frames: dict[str, pd.DataFrame], labels: list[str], label_type: str = "single") -> pd.DataFrame:
    """Rows and, per split, texts per class (single), texts carrying each label (multi) or each
    target's mean (regression)."""
    summarize = {"multi": label_counts, "regression": target_means}.get(label_type, class_balance)
    return summarize(frames, labels)


def label_counts(frames: dict[str, pd.DataFrame], labels: list[str]) -> pd.DataFrame:
    """Rows and texts carrying each label per split (a text may carry several, or none)."""
    rows = []
    for name, df in frames.items():
        counts = pd.Series([i for ids in df["label"] for i in ids], dtype=int).value_counts()
        rows.append({"split": name, "rows": len(df),
                     **{label: int(counts.get(i, 0)) for i, label in enumerate(labels)}})
    return pd.DataFrame(rows).set_index("split")


def target_means(frames: dict[str, pd.DataFrame], labels: list[str]) -> pd.DataFrame:
    """Rows and each regression target's mean per split."""
    rows = []
    for name, df in frames.items():
        values = pd.DataFrame(df["label"].tolist(), columns=labels) if len(df) else pd.DataFrame(columns=labels)
        rows.append({"split": name, "rows": len(df), **{f"mean {t}": float(values[t].mean()) for t in labels}})
    return pd.DataFrame(rows).set_index("split")


def class_balance(frames: dict[str, pd.DataFrame], labels: list[str]) -> pd.DataFrame:
    """Rows and rows per class of each split (frames with an integer `label` into `labels`), in SPLITS order."""
    rows = []
    for name in sorted(frames, key=lambda n: SPLITS.index(n) if n in SPLITS else len(SPLITS)):
        counts = frames[name]["label"].value_counts()
        rows.append({"split": name, "rows": len(frames[name]),
                     **{label: int(counts.get(i, 0)) for i, label in enumerate(labels)}})
    return pd.DataFrame(rows).set_index("split")
