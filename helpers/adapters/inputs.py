"""Texts to predict, read from a user's file (.csv, .jsonl, .json, .txt) in their order, with every
row that holds no text (empty, missing the column, not a string, a broken line) reported, not dropped."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import ConfigError

FORMATS = (".csv", ".jsonl", ".json", ".txt")


@dataclass(frozen=True)
class BadRow:
    row: int  # the line of a .txt or .jsonl file, the line a .csv record ends on (the header is line 1),
    # the item (from 1) of a .json list
    reason: str


@dataclass
class InputTexts:
    path: Path
    rows: list[int] = field(default_factory=list)  # where each text stands in the file (as BadRow.row)
    texts: list[str] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    def add(self, row: int, value: object, column: str) -> None:
        """Keep a text, or report why this row has none."""
        if value is None:
            self.bad.append(BadRow(row, f"no {column!r} field"))
        elif not isinstance(value, str):
            self.bad.append(BadRow(row, f"{column!r} is not a text: {repr(value)[:40]}"))
        elif not value.strip():
            self.bad.append(BadRow(row, "empty text"))
        else:
            self.rows.append(row)
            self.texts.append(value)


def _csv(path: Path, column: str, found: InputTexts) -> None:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise ConfigError(f"{path} has no column {column!r} (its header: {reader.fieldnames or 'none'}); "
                              f"name the text column with --column")
        for record in reader:
            if None in record:  # more cells than the header: an unquoted comma has split the row
                found.bad.append(BadRow(reader.line_num, f"{len(reader.fieldnames) + len(record[None])} cells, "
                                                         f"the header has {len(reader.fieldnames)}"))
                continue
            found.add(reader.line_num, record[column], column)


def _record(found: InputTexts, row: int, item: object, column: str) -> None:
    if isinstance(item, str):
        found.add(row, item, column)
    elif isinstance(item, dict):
        found.add(row, item.get(column), column)
    else:
        found.bad.append(BadRow(row, f"not an object with a {column!r} field: {repr(item)[:40]}"))


def _jsonl(path: Path, column: str, found: InputTexts) -> None:
    with open(path, encoding="utf-8-sig") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                found.bad.append(BadRow(line_number, "empty line"))
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                found.bad.append(BadRow(line_number, f"not JSON ({exc.msg})"))
                continue
            _record(found, line_number, item, column)


def _json(path: Path, column: str, found: InputTexts) -> None:
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON ({exc}); give a list of {{\"{column}\": ...}} objects, or one object "
                          f"per line in a .jsonl file") from None
    if not isinstance(items, list):
        raise ConfigError(f"{path} holds a JSON {type(items).__name__}; give a list of {{\"{column}\": ...}} objects")
    for number, item in enumerate(items, start=1):
        _record(found, number, item, column)


def _txt(path: Path, column: str, found: InputTexts) -> None:
    with open(path, encoding="utf-8-sig") as f:
        for line_number, line in enumerate(f, start=1):
            found.add(line_number, line.rstrip("\r\n"), column)


READERS = {".csv": _csv, ".jsonl": _jsonl, ".json": _json, ".txt": _txt}


def read_texts(path: str | Path, column: str = "text") -> InputTexts:
    """The texts of a file in its order, and the rows that hold none. A .txt file is one text per
    line; .csv, .jsonl and .json (a list) hold it in `column` (JSON items may also be bare strings)."""
    path = Path(path)
    if path.suffix.lower() not in READERS:
        raise ConfigError(f"{path}: predict reads {', '.join(FORMATS)} files; rename it or convert it to one of them")
    if not path.is_file():
        raise ConfigError(f"{path} not found; give the file of texts to predict")
    found = InputTexts(path)
    try:
        READERS[path.suffix.lower()](path, column, found)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except csv.Error as exc:
        raise ConfigError(f"{path} cannot be read as CSV ({exc}); check its quoting") from None
    return found
