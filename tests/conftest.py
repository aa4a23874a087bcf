"""Shared test setup: runs and reports go to a temporary folder, data comes from the mirror."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="senticompare-tests-"))
os.environ.setdefault("SENTICOMPARE_EXPERIMENTS", str(_TMP / "experiments"))
os.environ.setdefault("SENTICOMPARE_REPORTS", str(_TMP / "reports"))

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SENTICOMPARE_DATA_DIR", PROJECT_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def mirror_path() -> Path:
    if not (MIRROR / "sst2" / "train.jsonl").is_file():
        pytest.fail(f"the local data mirror is missing at {MIRROR}; set SENTICOMPARE_DATA_DIR to ../shared/datasets")
    return MIRROR


@pytest.fixture
def mirror(monkeypatch, mirror_path) -> Path:
    monkeypatch.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    return mirror_path
