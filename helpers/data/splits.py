"""Reproducible splits: same entry, preset and seed give the same rows anywhere.

Splits the source lacks are carved from train, stratified (test, then validation, then the
calibration split conformal prediction needs); caps and balancing follow the preset. Abstention
examples (an entry's abstain_labels) are held apart and drawn beside the test, validation and
train splits in the share the source has them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from helpers.config import DatasetSpec, Preset
from helpers.core.io import atomic_write_text, read_json, write_json
from helpers.data.checks import MIN_TEST_ROWS, check_splits, long_texts
from helpers.data.context import mark_known
from helpers.data.records import ABSTAIN, ABSTAIN_SPLITS, SPLITS, DataError, DatasetSplits, Finding, empty_split
from helpers.data.sources import groups_of, load_standardized
from helpers.data.tasks import load_task_splits
from helpers.labels import targets


def _strata(df: pd.DataFrame, n: int) -> pd.Series | None:
    """The labels to stratify by, when every class has two rows and both parts can hold every class
    (a multi-label or regression split is drawn at random)."""
    if targets.is_listed(df):
        return None
    counts = df["label"].value_counts()
    return df["label"] if counts.min() >= 2 and min(n, len(df) - n) >= len(counts) else None


def sample(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """A stratified subsample of n rows (all rows when n is None or larger)."""
    if n is None or len(df) <= n:
        return df.reset_index(drop=True)
    kept, _ = train_test_split(df, train_size=n, stratify=_strata(df, n), random_state=seed)
    return kept.reset_index(drop=True)


def _carve(df: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rest, carved = train_test_split(df, test_size=n, stratify=_strata(df, n), random_state=seed)
    return rest.reset_index(drop=True), carved.reset_index(drop=True)


def _carve_size(cap: int | None, pool: int) -> int:
    """The cap (else a tenth of the pool), but never more than a fifth of the pool."""
    return min(cap or max(1, round(0.1 * pool)), pool // 5 or 1)


def _balance(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    smallest = df["label"].value_counts().min()
    return (df.groupby("label", group_keys=False).sample(n=smallest, random_state=seed)
            .sample(frac=1, random_state=seed).reset_index(drop=True))


def as_drawn(splits: DatasetSplits, preset: Preset) -> pd.DataFrame:
    """The labelled split whose classes keep the data's shares, for the majority-class baseline:
    train, or under `balance` (a train split balanced by construction, whose "majority" is a tie)
    validation, drawn from the data as it is."""
    return splits.validation if preset.balance else splits.train


def calibration_cap(preset: Preset) -> int | None:
    return preset.max_validation if preset.max_calibration is None else preset.max_calibration


def fingerprint(splits: DatasetSplits, columns: tuple[str, ...] = ("text", "label")) -> str:
    """A hash of exactly the rows each split holds (those of `columns` it has): same fingerprint,
    same data. Empty splits are left out, so run folders saved before the calibration split keep
    their fingerprint."""
    digest = hashlib.sha256(splits.source.encode())
    for name in (*SPLITS, "abstain"):
        df = splits.split(name)
        if df.empty:
            continue
        digest.update(name.encode())
        hashed = df[[c for c in (*columns, "split") if c in df]]
        if "label" in hashed and targets.is_listed(df):  # lists are not hashable: their JSON text is
            hashed = hashed.assign(label=hashed["label"].map(lambda v: json.dumps(np.asarray(v).tolist())))
        digest.update(pd.util.hash_pandas_object(hashed, index=False).values.tobytes())
    return digest.hexdigest()[:16]


def _hold_apart(frames: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The source's splits without their abstention examples, and those examples by source split."""
    held = {name: df.loc[df["label"] == ABSTAIN] for name, df in frames.items()}
    return ({name: df.loc[df["label"] != ABSTAIN].reset_index(drop=True) for name, df in frames.items()},
            {name: df for name, df in held.items() if len(df)})


def _draw_abstentions(held: dict[str, pd.DataFrame], sizes: dict[str, int], share: float, seed: int) -> pd.DataFrame:
    """Abstention examples for test, validation and train, as many per split as the source has per
    labelled row (`share`), without overlap: a split the source has takes its own abstentions, a
    split carved from train takes them from the train split's."""
    pool = held.get("train", empty_split()).sample(frac=1, random_state=seed)
    drawn = []
    for name in ABSTAIN_SPLITS:
        n = round(sizes[name] * share)
        if name != "train" and name in held:
            part = held[name].sample(n=min(n, len(held[name])), random_state=seed)
        else:
            part, pool = pool.iloc[:n], pool.iloc[n:]
        drawn.append(part.assign(split=name))
    return pd.concat(drawn, ignore_index=True)


def _hold_out(frames: dict[str, pd.DataFrame], spec: DatasetSpec) -> dict[str, pd.DataFrame]:
    """Leave one group out: every source row of the group (a value of the `holdout_by` column,
    group or context) is test, the other groups are train."""
    groups = groups_of(frames, spec.holdout_by)
    if spec.holdout_group not in groups:
        raise DataError(f"dataset {spec.id!r}: cannot hold out {spec.holdout_by} {spec.holdout_group!r}; "
                        f"name one of {groups} (values of its {spec.holdout_by}_column) in the study's holdout.groups")
    pool = pd.concat(frames.values(), ignore_index=True)
    held = pool[spec.holdout_by] == spec.holdout_group
    return {"train": pool.loc[~held].reset_index(drop=True), "test": pool.loc[held].reset_index(drop=True)}


def load_splits(spec: DatasetSpec, preset: Preset, seed: int, data_dir: str | None = None,
                min_test_rows: int = MIN_TEST_ROWS) -> DatasetSplits:
    """Load, standardize, split and cap a dataset; same inputs give the same rows anywhere.
    Splits the source lacks are carved from train, stratified: test, validation, calibration.
    A task dataset (instruction, sql) is split by helpers/data/tasks.py."""
    if spec.task != "classification":
        return load_task_splits(spec, preset, seed, data_dir, min_test_rows)
    loaded = load_standardized(spec, data_dir)
    findings, frames, source = list(loaded.findings), loaded.frames, loaded.source
    if spec.holdout_group is not None:
        frames = _hold_out(frames, spec)
        by = "" if spec.holdout_by == "group" else f"{spec.holdout_by}:"  # a group's keeps its earlier fingerprint
        source = f"{source} holdout:{by}{spec.holdout_group}"
        column = getattr(spec, f"{spec.holdout_by}_column")
        findings.append(Finding("info", "holdout", "test", len(frames["test"]),
                                f"rows of {spec.holdout_by} {spec.holdout_group!r} ({column}), the test split before "
                                f"the max_test cap; train, validation and calibration come from the other groups"))
    frames, held = _hold_apart(frames) if spec.abstain_labels else (frames, {})
    abstain_share = sum(map(len, held.values())) / max(1, sum(map(len, frames.values())))  # per labelled row
    train = frames["train"]
    if "test" not in frames:
        train, frames["test"] = _carve(train, max(1, round(0.2 * len(train))), seed)
    test = sample(frames["test"], preset.max_test, seed)
    if spec.drop_leakage:
        leaked = train["text"].isin(set(test["text"]))
        if leaked.any():
            findings.append(Finding("info", "leakage_dropped", "train", int(leaked.sum()),
                                    "train rows whose text is in test were dropped (drop_leakage)"))
            train = train.loc[~leaked]
    if "validation" not in frames:
        train, frames["validation"] = _carve(train, _carve_size(preset.max_validation, len(train)), seed)
    if "calibration" not in frames:
        train, frames["calibration"] = _carve(train, _carve_size(calibration_cap(preset), len(train)), seed)
    if preset.balance and spec.label_type != "single":
        findings.append(Finding("warning", "not_balanced", "train", len(train),
                                f"balance is for single-label data; a {spec.label_type} train split is kept as drawn"))
    elif preset.balance:
        train = _balance(train, seed)
    splits = DatasetSplits(
        dataset=spec.id,
        labels=list(spec.labels),
        train=sample(train, preset.max_train, seed),
        validation=sample(frames["validation"], preset.max_validation, seed),
        calibration=sample(frames["calibration"], calibration_cap(preset), seed),
        test=test,
        source=source,
        cache_key=loaded.cache_key,
        label_type=spec.label_type,
    )
    if held:
        splits.abstain = _draw_abstentions(held, {name: len(splits.split(name)) for name in ABSTAIN_SPLITS},
                                           abstain_share, seed)
    splits.findings = findings + check_splits(splits, min_test_rows) + long_texts(splits, preset.max_length)
    splits.fingerprint = fingerprint(splits)
    return splits


def save_splits(splits: DatasetSplits, folder: Path) -> None:
    for name in SPLITS:
        atomic_write_text(folder / f"{name}.jsonl", splits.split(name).to_json(orient="records", lines=True, force_ascii=False))
    if not splits.abstain.empty:
        atomic_write_text(folder / "abstain.jsonl", splits.abstain.to_json(orient="records", lines=True,
                                                                           force_ascii=False))
    write_json(folder / "card.json", {
        "dataset": splits.dataset, "labels": splits.labels, "label_type": splits.label_type, "source": splits.source,
        "fingerprint": splits.fingerprint, "cache_key": splits.cache_key,
        "findings": [f.__dict__ for f in splits.findings],
    })


def read_splits(folder: Path) -> DatasetSplits:
    """The splits a 01_data run saved, so later stages use exactly those rows (a folder saved
    before the calibration split existed reads with an empty one)."""
    card_path = folder / "card.json"
    if not card_path.is_file():
        raise DataError(f"{folder} holds no saved splits; run notebooks/01_data first for this run_dir")
    card = read_json(card_path)
    text_columns = {"text": str, "group": str, "context": str, "rationale": str, "target": str, "schema": str}
    frames = {name: pd.read_json(folder / f"{name}.jsonl", lines=True, dtype=text_columns)
              if (folder / f"{name}.jsonl").is_file() else empty_split() for name in (*SPLITS, "abstain")}
    mark_known(frames)  # the train split's context values, for context_mode token (helpers/data/context.py)
    return DatasetSplits(
        dataset=card["dataset"], labels=card["labels"], source=card["source"], fingerprint=card["fingerprint"],
        cache_key=card.get("cache_key", ""), findings=[Finding(**f) for f in card["findings"]],
        label_type=card.get("label_type", "single"), **frames,
    )
