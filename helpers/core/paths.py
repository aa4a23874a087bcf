"""Where things live. Everything is relative to the project root, not to the working
directory, so a notebook opened from notebooks/ in JupyterLab finds the same files as the
study runner started from the root."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # helpers/core/paths.py
PARAMS_DIR = PROJECT_ROOT / "params"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


def cache_dir() -> Path:
    """Converted model weights and loaded datasets; SENTICOMPARE_CACHE moves it."""
    return Path(os.environ.get("SENTICOMPARE_CACHE", PROJECT_ROOT / ".cache"))


def data_cache_dir() -> Path:
    """Loaded, standardized datasets; SENTICOMPARE_DATA_CACHE moves it (the tests use a temporary folder)."""
    return Path(os.environ.get("SENTICOMPARE_DATA_CACHE", cache_dir() / "data"))


def experiments_dir() -> Path:
    """Run folders; SENTICOMPARE_EXPERIMENTS moves them (the tests use a temporary folder)."""
    return Path(os.environ.get("SENTICOMPARE_EXPERIMENTS", PROJECT_ROOT / "experiments"))


def reports_dir() -> Path:
    return Path(os.environ.get("SENTICOMPARE_REPORTS", PROJECT_ROOT / "reports"))


def bench_notebook(study_dir: Path, folder: str | os.PathLike) -> Path:
    """Where a study keeps its rendering of one `senticompare bench` result folder."""
    return Path(study_dir) / "bench" / f"{Path(folder).name}.ipynb"


def resolve(path: str | os.PathLike) -> Path:
    """A path from params or the command line: absolute as given, else under the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def display_path(path: Path) -> str:
    """Relative to the project root where it lies inside it (portable params), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)
