"""A running stage's progress reaches the runner's terminal line, and nothing is written without a runner."""
from __future__ import annotations

import json
import time

from helpers.core import progress


def test_the_runner_sees_each_new_record_as_one_line(tmp_path, monkeypatch):
    lines = []
    path = tmp_path / ".progress.json"
    with progress.shown(path, lines.append, interval_s=0.05) as kernel_env:
        monkeypatch.setenv(progress.ENV, kernel_env[progress.ENV])  # as the stage's kernel sees it
        progress.report("train", 1, 4, loss=0.71234)
        time.sleep(0.3)
        progress.report("train", 4, 4, loss=0.5)  # the last step is always written
        time.sleep(0.3)
    assert lines[0].startswith("train 1/4 · loss 0.712") and lines[-1].startswith("train 4/4 · loss 0.5")
    assert not path.exists()


def test_nothing_is_written_without_a_runner(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    progress.report("predict", 1, 2)
    assert list(tmp_path.iterdir()) == []


def test_a_record_says_how_long_is_left(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    monkeypatch.setenv(progress.ENV, str(path))
    progress.report("predict", 1, 3)
    time.sleep(0.6)
    progress.report("predict", 2, 3)
    record = json.loads(path.read_text())
    assert record["done"] == 2 and record["eta_s"] > 0
    assert progress.describe(record).endswith(f"eta {record['eta_s']:.0f} s")
