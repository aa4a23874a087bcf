"""Background jobs: a study run (`senticompare run`), a merge (`senticompare merge`) or an
evaluation of more texts than a request holds (`senticompare evaluate`) started by the API, each
the CLI's own command in a subprocess, queued and run `max_parallel` at a time (1 by
default: on a CPU two trainings only slow each other down).

Jobs persist in SQLite (`experiments/.serve/jobs.sqlite`, SENTICOMPARE_EXPERIMENTS moves it), each
with a folder `experiments/.serve/jobs/<id>/` holding its command's output (`log.txt`) and, for a
training, the study file it runs. A server that starts finds the jobs a previous one left queued or
running and marks them `interrupted` (ending a left-over process of theirs, found by pid and start
time); a server that stops ends its running jobs the same way. The stage and progress shown are
read from the log: the study runner's stage bar (`4/8` stages and what runs, e.g.
`sst2/smollm2-135m 02_train · train 3/4`), or the last line a merge printed.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil

from helpers.adapters import registry
from helpers.config import ConfigError
from helpers.core.io import atomic_write_text
from helpers.core.paths import PROJECT_ROOT, experiments_dir
from helpers.core.sqlite import ensure_schema

log = logging.getLogger(__name__)

FOLDER = ".serve"
SCHEMA_VERSION = 1
ACTIVE = ("queued", "running")
STOP_GRACE_S = 10.0  # after SIGTERM, before SIGKILL
TAIL_BYTES = 64 * 1024
TAIL_LINES = 40
# tqdm's line: "<desc>:  50%|█████     | 4/8 [00:30<00:30,  7.50s/stage, <postfix>]"
BAR = re.compile(r"^(?P<desc>.*?):\s+\d+%\|.*?\|\s*(?P<n>\d+)/(?P<total>\d+)\s*\[(?P<info>.*)\]\s*$")
COLUMNS = ("id", "kind", "title", "state", "created", "started", "finished", "argv", "target", "pid",
           "pid_started", "returncode", "error", "adapters", "cancel_requested")
SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, title TEXT, state TEXT, created TEXT, started TEXT,
    finished TEXT, argv TEXT, target TEXT, pid INTEGER, pid_started REAL, returncode INTEGER, error TEXT,
    adapters TEXT, cancel_requested INTEGER)"""


def serve_dir() -> Path:
    return experiments_dir() / FOLDER


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class JobRecord:
    id: int
    kind: str  # train | merge | evaluate
    title: str
    state: str  # queued | running | succeeded | failed | cancelled | interrupted
    created: str
    started: str | None
    finished: str | None
    argv: list[str]
    target: str  # a training's study name; a merge's adapter id; an evaluation's output file
    pid: int | None = None
    pid_started: float | None = None  # the process's start time: a pid alone may be reused
    returncode: int | None = None
    error: str | None = None
    adapters: list[str] = field(default_factory=list)
    cancel_requested: bool = False

    @property
    def folder(self) -> Path:
        return serve_dir() / "jobs" / str(self.id)

    @property
    def log_file(self) -> Path:
        return self.folder / "log.txt"


@dataclass(frozen=True)
class LogView:
    stage: str | None
    progress: float | None
    tail: list[str]


def read_log(path: Path, lines: int = TAIL_LINES) -> LogView:
    """The end of a job's log as a terminal shows it (a bar redrawn with \\r is its last drawing),
    the stage and progress of the runner's bar, else the last line as the stage."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return LogView(None, None, [])
    shown = [line.rstrip("\r").split("\r")[-1] for line in text.split("\n")]
    shown = [line for line in shown if line.strip()]
    stage = progress = None
    for line in reversed(text.replace("\r", "\n").split("\n")):
        bar = BAR.match(line.strip())
        if bar and int(bar["total"]):
            progress = int(bar["n"]) / int(bar["total"])
            info = bar["info"].split(", ", 2)
            stage = info[2] if len(info) == 3 else f"{bar['desc'].strip()} {bar['n']}/{bar['total']}"
            break
    if stage is None and shown:
        stage = shown[-1][:200]
    return LogView(stage, progress, shown[-lines:])


def _error_from(view: LogView, returncode: int) -> str:
    """What went wrong, from the log: the CLI's `error:` line, the failed runs, or the last line."""
    found = [line.strip() for line in view.tail if line.startswith("error:") or line.strip().startswith("FAILED")]
    if found:
        return " | ".join(found)[:2000]
    last = view.tail[-1] if view.tail else "no output"
    return f"exit status {returncode}: {last}"[:2000]


class JobStore:
    """The jobs' SQLite table: one writer at a time, each change its own transaction."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or serve_dir() / "jobs.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            ensure_schema(db, SCHEMA, SCHEMA_VERSION, self.path, "a job store",
                          "delete it (the jobs' run folders and logs stay)")

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path} cannot be opened as the job store ({exc}); delete it") from None

    @staticmethod
    def _record(row: tuple) -> JobRecord:
        values = dict(zip(COLUMNS, row, strict=True))
        values["argv"] = json.loads(values["argv"])
        values["adapters"] = json.loads(values["adapters"] or "[]")
        values["cancel_requested"] = bool(values["cancel_requested"])
        return JobRecord(**values)

    def create(self, kind: str, title: str, argv: list[str], target: str) -> JobRecord:
        with closing(self._connect()) as db, db:
            cursor = db.execute("INSERT INTO jobs (kind, title, state, created, argv, target, adapters, "
                                "cancel_requested) VALUES (?, ?, 'queued', ?, ?, ?, '[]', 0)",
                                (kind, title, now(), json.dumps(argv), target))
            job_id = cursor.lastrowid
        return self.get(job_id)

    def get(self, job_id: int) -> JobRecord | None:
        with closing(self._connect()) as db:
            row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._record(row)

    def list(self, limit: int = 200) -> list[JobRecord]:
        """The newest jobs first."""
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [self._record(row) for row in rows]

    def update(self, job_id: int, **values) -> None:
        for key in ("argv", "adapters"):
            if key in values:
                values[key] = json.dumps(values[key])
        with closing(self._connect()) as db, db:
            db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                       (*values.values(), job_id))

    def in_states(self, *states: str) -> list[JobRecord]:
        """Jobs in these states, the oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE state IN ({', '.join('?' * len(states))}) "
                              f"ORDER BY id", states).fetchall()
        return [self._record(row) for row in rows]


def _process_tree(pid: int | None, started: float | None) -> list[psutil.Process]:
    """The job's process and its descendants (a study's notebook kernels run in sessions of their
    own), if `pid` still is the process that was started then."""
    if pid is None:
        return []
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > 1.0:
            return []
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def end_processes(processes: list[psutil.Process], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL for what is left after `grace_s`."""
    for process in processes:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass


class JobRunner:
    """Starts queued jobs in order, `max_parallel` at a time, and records how each ends."""

    def __init__(self, store: JobStore, max_parallel: int = 1, poll_s: float = 0.5) -> None:
        if max_parallel < 1:
            raise ConfigError(f"--max-jobs {max_parallel}: give 1 or more")
        self.store, self.max_parallel, self.poll_s = store, max_parallel, poll_s
        self._running: dict[int, subprocess.Popen] = {}
        self._cancel_sent: dict[int, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recover(self) -> list[JobRecord]:
        """Mark the jobs a previous server left queued or running as interrupted (ending a process
        of theirs that still runs); returns them."""
        left = self.store.in_states(*ACTIVE)
        for job in left:
            end_processes(_process_tree(job.pid, job.pid_started))
            where = "while it ran" if job.state == "running" else "before it started"
            self.store.update(job.id, state="interrupted", finished=now(),
                              error=f"the server stopped {where}; submit it again")
        return left

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="senticompare-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the running jobs (marked interrupted) and the loop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            running = dict(self._running)
            self._running.clear()
        for job_id, process in running.items():
            end_processes(_process_tree(process.pid, None))
            process.wait()
            self.store.update(job_id, state="interrupted", finished=now(), returncode=process.returncode,
                              error="the server stopped while it ran; submit it again")

    def submit(self, kind: str, title: str, argv: list[str], target: str,
               files: dict[str, str] | None = None) -> JobRecord:
        """Queue `argv` (its `{folder}` replaced by the job's folder, where `files` are written first)."""
        job = self.store.create(kind, title, [], target)
        job.folder.mkdir(parents=True, exist_ok=True)
        for name, text in (files or {}).items():
            atomic_write_text(job.folder / name, text)
        argv = [part.replace("{folder}", str(job.folder)) for part in argv]
        self.store.update(job.id, argv=argv)
        self._wake.set()
        return self.store.get(job.id)

    def cancel(self, job_id: int) -> JobRecord | None:
        """A queued job is cancelled at once; a running one is sent SIGTERM (its process tree) and
        marked cancelled when it has ended."""
        job = self.store.get(job_id)
        if job is None or job.state not in ACTIVE:
            return job
        with self._lock:
            process = self._running.get(job_id)
            if process is None:
                self.store.update(job_id, state="cancelled", finished=now(), cancel_requested=1)
                return self.store.get(job_id)
            self.store.update(job_id, cancel_requested=1)
            for child in _process_tree(process.pid, None):
                try:
                    child.send_signal(signal.SIGTERM)
                except psutil.Error:
                    pass
            self._cancel_sent[job_id] = time.monotonic()
        self._wake.set()
        return self.store.get(job_id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._start_queued()
            except Exception:  # the loop must outlive one bad job: it is logged and shown on the job
                log.exception("job runner")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _start_queued(self) -> None:
        with self._lock:
            free = self.max_parallel - len(self._running)
            for job in self.store.in_states("queued")[:max(free, 0)]:
                if not job.argv:  # submit() has not written its command yet
                    continue
                try:
                    with open(job.log_file, "ab") as out:
                        process = subprocess.Popen(job.argv, stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT,
                                                   env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                                   start_new_session=True)
                except OSError as exc:
                    self.store.update(job.id, state="failed", finished=now(), error=f"could not start: {exc}")
                    continue
                self._running[job.id] = process
                started = psutil.Process(process.pid).create_time() if psutil.pid_exists(process.pid) else None
                self.store.update(job.id, state="running", started=now(), pid=process.pid, pid_started=started)

    def _reap(self) -> None:
        with self._lock:
            for job_id, process in list(self._running.items()):
                sent = self._cancel_sent.get(job_id)
                if process.poll() is None:
                    if sent is not None and time.monotonic() - sent > STOP_GRACE_S:
                        for child in _process_tree(process.pid, None):
                            try:
                                child.kill()
                            except psutil.Error:
                                pass
                    continue
                del self._running[job_id]
                self._cancel_sent.pop(job_id, None)
                self._finish(self.store.get(job_id), process.returncode)

    def _finish(self, job: JobRecord, returncode: int) -> None:
        view = read_log(job.log_file)
        values = {"finished": now(), "returncode": returncode, "adapters": self._adapters_of(job)}
        if job.cancel_requested:
            values.update(state="cancelled", error="cancelled")
        elif returncode == 0:
            values.update(state="succeeded")
        else:
            values.update(state="failed", error=_error_from(view, returncode))
        self.store.update(job.id, **values)

    @staticmethod
    def _adapters_of(job: JobRecord) -> list[str]:
        """A training's registered adapters (its study's); a merge's own; an evaluation registers none."""
        if job.kind == "evaluate":
            return []
        try:
            records = registry.list_adapters()
        except (ConfigError, sqlite3.Error) as exc:
            log.warning("job %s: the registry cannot be read (%s)", job.id, exc)
            return []
        if job.kind == "merge":
            return [r.id for r in records if r.id == job.target]
        return [r.id for r in records if r.study == job.target and r.present]


def cli_command(*args: str) -> list[str]:
    """The CLI (`senticompare ...`) as this interpreter runs it."""
    return [sys.executable, "-m", "helpers.cli", *args]
