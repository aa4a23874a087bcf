"""Loaded, standardized datasets on disk, one folder per fingerprint of where they came from.

A second load of the same source, file contents and dataset entry reads a few parquet files
instead of downloading and parsing again (and works offline). Every file is written
atomically and `meta.json` last, so a folder without it is an interrupted write, never read.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.io import atomic_write_bytes, read_json, write_json
from helpers.core.paths import data_cache_dir

FORMAT = 1  # bump when the standardization changes what a cached frame holds


def key(parts: dict[str, Any]) -> str:
    """A short hash of everything that decides the standardized rows."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read(cache_key: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]] | None:
    """The frames and metadata stored under the key, or None when there are none."""
    folder = data_cache_dir() / cache_key
    if not (folder / "meta.json").is_file():
        return None
    meta = read_json(folder / "meta.json")
    return {split: pd.read_parquet(folder / f"{split}.parquet") for split in meta["splits"]}, meta


def write(cache_key: str, frames: dict[str, pd.DataFrame], meta: dict[str, Any]) -> Path:
    folder = data_cache_dir() / cache_key
    for split, df in frames.items():
        buffer = io.BytesIO()
        df.to_parquet(buffer, index=False)
        atomic_write_bytes(folder / f"{split}.parquet", buffer.getvalue())
    write_json(folder / "meta.json", {**meta, "splits": list(frames)})
    return folder
