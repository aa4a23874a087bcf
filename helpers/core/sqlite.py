"""The project's SQLite files (the adapter registry, the API's job store): a new file gets its table
and schema version; a file of another version is refused with the fix."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers.config import ConfigError


def ensure_schema(db: sqlite3.Connection, schema: str, version: int, path: Path, what: str, fix: str) -> None:
    """Create `schema` in a new database (SQLite's user_version 0) and stamp it `version`; a database
    of another version raises ConfigError naming `what` it should be and the `fix`."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found == 0:
        with db:
            db.execute(schema)
            db.execute(f"PRAGMA user_version = {version}")
    elif found != version:
        raise ConfigError(f"{path} is {what} of schema {found}, this code reads {version}; {fix}")
