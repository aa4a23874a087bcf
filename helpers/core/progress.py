"""A running stage's own progress, shown in the runner's terminal.

The Trainer's and the prediction loop's bars belong to the kernel that runs the notebook, so the
terminal used to show which stage runs and then nothing for the minutes a training takes. The
runner names a file in `SENTICOMPARE_PROGRESS` for each stage; the stage's loops write one small
JSON record to it (atomically, at most every half second) and the runner shows the newest record
beside its stage bar, e.g. `finefoods/smollm2-135m 02_train · train 12/72 · loss 0.61 · eta 40 s`.
Without the variable (a notebook in JupyterLab, a reviewer's papermill rerun) nothing is written.
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from helpers.core.io import atomic_write_text

ENV = "SENTICOMPARE_PROGRESS"
MIN_INTERVAL_S = 0.5
_last_write = 0.0
_started: dict[str, float] = {}


def report(task: str, done: int, total: int, **info: Any) -> None:
    """Record `done` of `total` for the runner, if one asked; the last step is always written."""
    global _last_write
    path = os.environ.get(ENV)
    if not path:
        return
    now = time.monotonic()
    if done <= 1 or task not in _started:  # a new loop of this task (prediction runs once per split)
        _started[task] = now
    start = _started[task]
    if done < total and now - _last_write < MIN_INTERVAL_S:
        return
    _last_write = now
    eta = (now - start) / (done - 1) * (total - done) if done > 1 else None  # from the second step on
    atomic_write_text(path, json.dumps({"task": task, "done": done, "total": total, "eta_s": eta, **info}))


def describe(record: dict[str, Any]) -> str:
    """One short line: task, done/total, the extra numbers, eta."""
    parts = [f"{record['task']} {record['done']}/{record['total']}"]
    parts += [f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
              for key, value in record.items() if key not in {"task", "done", "total", "eta_s"}]
    if record.get("eta_s") is not None:
        parts.append(f"eta {record['eta_s']:.0f} s")
    return " · ".join(parts)


@contextmanager
def shown(path: Path, show: Any, interval_s: float = 1.0) -> Iterator[dict[str, str]]:
    """While the enclosed work runs, pass every new record of `path`, as one line, to `show` (e.g. a
    tqdm bar's set_postfix_str) from a background thread. Yields the environment the stage's kernel
    needs to write there: the runner's own environment stays as it is, so several stages can run
    at once, each showing its own progress."""
    path.unlink(missing_ok=True)
    stop = threading.Event()

    def watch() -> None:
        seen = None
        while not stop.wait(interval_s):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            if text != seen:
                seen = text
                show(describe(json.loads(text)))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield {ENV: str(path)}
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)
