"""One runner per study at a time.

A second `senticompare run` of the same study used to delete the first one's stage records mid-run.
The runner now holds an exclusive `flock` on `experiments/<study>/.lock` while it runs. The kernel
drops the lock when its holder exits for any reason (kill -9 and power cuts included), so a lock
left by a dead process is simply taken over; the file itself only says who holds or last held it.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class StudyLocked(RuntimeError):
    """Another process runs the study; the message names it and what to do."""


@contextmanager
def study_lock(folder: Path, study: str) -> Iterator[Path]:
    """Hold the study's lock for the enclosed work, or refuse at once naming the holder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "another process"
            raise StudyLocked(f"study {study!r} is being run by {holder} ({path}); wait for it to finish, or stop "
                              f"that process and run again (a killed runner's lock is taken over)") from None
        previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if previous:
            log.info("taking over %s, last held by %s (no longer running)", path, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                  .encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
