"""Shared test setup: runs, reports and the data cache go to a temporary folder, data comes from the mirror."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from helpers import config
from helpers.core.io import write_yaml
from helpers.core.paths import cache_dir

# `make test` runs pytest-xdist workers, each with its own temporary folders (below). On the 2-core
# machine each worker and the kernels it starts take their share of the cores: two workers on two
# threads each stall each other (threads.py). Set before torch is imported here or in a kernel.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

_TMP = Path(tempfile.mkdtemp(prefix="senticompare-tests-"))
os.environ.setdefault("SENTICOMPARE_EXPERIMENTS", str(_TMP / "experiments"))
os.environ.setdefault("SENTICOMPARE_REPORTS", str(_TMP / "reports"))
os.environ.setdefault("SENTICOMPARE_DATA_CACHE", str(_TMP / "data-cache"))

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SENTICOMPARE_DATA_DIR", PROJECT_ROOT.parent / "shared" / "datasets"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with `slow` tests (those that run studies, 1-5 minutes of module fixture each)
    first, each file's tests kept together: xdist's `--dist loadfile --no-loadscope-reorder` hands
    files out in this order, so the long ones start at once and the short ones fill the end
    (docs/decisions.md, the CI budget)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def mirror_path() -> Path:
    if not (MIRROR / "sst2" / "train.jsonl").is_file():
        pytest.fail(f"the local data mirror is missing at {MIRROR}; set SENTICOMPARE_DATA_DIR to ../shared/datasets")
    return MIRROR


@pytest.fixture
def mirror(monkeypatch, mirror_path) -> Path:
    monkeypatch.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    return mirror_path


@pytest.fixture
def reviews() -> pd.DataFrame:
    """60 short reviews, alternating negative and positive, every text distinct."""
    return pd.DataFrame({"text": [f"review number {i} {'good' if i % 2 else 'bad'}" for i in range(60)],
                         "label": ["positive" if i % 2 else "negative" for i in range(60)]})


@pytest.fixture
def file_dataset(tmp_path):
    """Write a table (a frame, or raw bytes) to tmp_path and register it as the `file` dataset
    `mine` in a temporary params/datasets.yaml, so the registry's own checks run on it too."""
    def register(table: pd.DataFrame | bytes, name: str = "reviews.csv", **entry) -> config.DatasetSpec:
        path = tmp_path / name
        if isinstance(table, bytes):
            path.write_bytes(table)
        elif name.endswith(".jsonl"):
            table.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            table.to_csv(path, index=False)
        fields = {"source": "file", "path": str(path), "text_column": "text", "label_column": "label",
                  "labels": ["negative", "positive"], **entry}
        registry = write_yaml(tmp_path / "datasets.yaml", {"mine": fields})
        return config.load_datasets(registry)["mine"]

    return register


@pytest.fixture
def own_data_cache(monkeypatch, tmp_path) -> Path:
    """An empty data cache for this test alone: for tests that must see the source itself read."""
    monkeypatch.setenv("SENTICOMPARE_DATA_CACHE", str(tmp_path / "data-cache"))
    return tmp_path / "data-cache"


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the project's code, params, notebooks and the published CPU benchmark, as a user's
    checkout: kernels and commands started with this environment import `helpers` from the copy
    (PYTHONPATH), so its PROJECT_ROOT is the copy. For tests that add to params/ or write where a
    notebook's default parameters point, leaving this checkout as it is. Model weights come from
    this checkout's cache."""
    root = tmp_path / "project"
    for name in ("helpers", "params", "notebooks", "reports/benchmarks/cpu-amd-epyc-2t"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("SENTICOMPARE_CACHE", str(cache_dir()))
    return root


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live_server():
    """`senticompare serve`'s app under uvicorn on a free loopback port, in a thread of this process
    (the same experiments folder and adapter registry as the test)."""
    import socket
    import threading
    import time

    import uvicorn

    from helpers.serve.app import ServeSettings, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(create_app(ServeSettings(port=port)), host="127.0.0.1", port=port,
                                             log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert instance.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=60)


@pytest.fixture
def browser_page():
    """A page of headless Debian chromium driven by Playwright (`executable_path`: Playwright's own
    browser download is not used), and the list of script errors the page raised."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (`make setup` installs it with apt-get); the browser tests "
                    "drive it through Playwright's executable_path")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"] if os.geteuid() == 0 else [])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page, errors
        browser.close()
