"""Table files (CSV, TSV, JSONL, JSON, Parquet) read into frames, with errors a user can act on.

Users bring their own files, and those break in a handful of known ways: empty, a broken JSON
line, an unquoted separator, another format under a table's suffix, another text encoding than the
one declared. Each is a DataError naming the file, the line where known, and the fix, never a pandas
traceback; the original error stays attached as its cause. A CSV or TSV without a header row reads
with its columns numbered from 1, as a person counts them.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
from pathlib import Path

import pandas as pd

from helpers.data.records import DataError

TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet"}
RECORD_EXAMPLE = '{"text": "...", "label": "..."}'
SEPARATOR_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", " ": "space"}


def read_table(path: Path, split: str = "train", *, header: bool = True, sep: str | None = None,
               encoding: str | None = None) -> tuple[pd.DataFrame, str]:
    """A table file and the text encoding it was read with: `encoding` where given, else UTF-8, else
    latin-1 (as Kaggle ships some CSVs). A CSV/TSV is split at `sep` (default: by suffix); without a
    `header` row its columns are numbered 1, 2, ... A file that cannot be read is a DataError naming
    the file, the line where known, and the fix, not a pandas traceback: users bring their own files,
    and those break in a handful of known ways."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl, .json or .parquet")
    if suffix == ".parquet":
        df, encoding = _read_parquet(path, split), "utf-8"
    else:
        df, encoding = _read_text_table(path, suffix, split, header, sep, encoding)
    if len(df.index) == 0:
        raise _empty_file(path, split)
    return df, encoding


def _empty_file(path: Path, split: str) -> DataError:
    return DataError(f"{path}: the file is empty (no rows), so the {split} split is empty; add one row per "
                     f"text, or point 'path' in params/datasets.yaml at the right file")


def _read_parquet(path: Path, split: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise _empty_file(path, split)
    try:
        return pd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(
            f"{path}: not a readable Parquet file (corrupted, or another format renamed to .parquet); re-save it "
            f"with DataFrame.to_parquet, or give it the suffix of its real format (.csv, .tsv, .jsonl or .json)"
        ) from exc


def _read_text_table(path: Path, suffix: str, split: str, header: bool, sep: str | None,
                     encoding: str | None) -> tuple[pd.DataFrame, str]:
    raw = path.read_bytes()
    text, encoding = _decode(path, raw, encoding)
    if not text.strip():
        raise _empty_file(path, split)
    if suffix == ".jsonl":
        return _read_json_lines(path, text), encoding
    if suffix == ".json":
        return _read_json(path, text), encoding
    return _read_csv(path, text, sep or ("\t" if suffix == ".tsv" else ","), header), encoding


def _decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    """The file's text in the declared encoding (a UTF-8 byte-order mark dropped), else UTF-8, else latin-1."""
    if encoding is None:
        try:
            return raw.decode("utf-8-sig"), "utf-8"
        except UnicodeDecodeError:
            return raw.decode("latin-1"), "latin-1"
    body = raw.removeprefix(codecs.BOM_UTF8) if codecs.lookup(encoding).name == "utf-8" else raw
    try:
        return body.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line = body[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not {encoding} (byte {body[exc.start]:#04x}: {exc.reason}); fix "
                        f"'encoding' in params/datasets.yaml to the one the file was saved in, or leave it out "
                        f"to read UTF-8, else latin-1") from exc


def _read_json_lines(path: Path, text: str) -> pd.DataFrame:
    """pandas names neither the line nor the problem, so on failure each line is parsed on its own
    to find the first bad one."""
    try:
        return pd.read_json(io.StringIO(text), lines=True)
    except (ValueError, TypeError) as exc:  # TypeError: a line that is valid JSON but not an object
        for number, line in enumerate(text.split("\n"), start=1):
            problem = _json_line_problem(line)
            if problem:
                raise DataError(f"{path}, line {number}: {problem}") from exc
        raise DataError(f"{path}: pandas cannot read it as JSON lines ({exc}); make every line one JSON object "
                        f"like {RECORD_EXAMPLE}") from exc


def _json_line_problem(line: str) -> str | None:
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        return f"not valid JSON ({err.msg}: column {err.colno}); fix or remove that line"
    if not isinstance(value, dict):
        return f"a JSON {_json_kind(value)}, not a record; make every line one JSON object like {RECORD_EXAMPLE}"
    return None


def _read_json(path: Path, text: str) -> pd.DataFrame:
    """On failure, parse the text again with json to say where it breaks, or what it holds instead of a table."""
    try:
        return pd.read_json(io.StringIO(text))
    except (ValueError, TypeError) as exc:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}: column {err.colno}); fix "
                            f"the JSON there (often a missing comma, quote or bracket)") from exc
        shape = _json_shape(value) or f"pandas cannot make a table of it ({exc})"
        raise DataError(f"{path}: valid JSON, but {shape}; write it as a list of records like "
                        f"[{RECORD_EXAMPLE}, ...]") from exc


def _json_shape(value: object) -> str | None:
    """What the JSON holds instead of a list of records; None for a list of records."""
    if isinstance(value, list):
        item = next((i for i, v in enumerate(value, start=1) if not isinstance(v, dict)), None)
        if item is None:
            return None
        return f"item {item} of its list is a JSON {_json_kind(value[item - 1])}, not a record"
    if isinstance(value, dict):
        return "a single JSON object, not a list of records"
    return f"a JSON {_json_kind(value)}, not a list of records"


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "list", str: "string", bool: "true/false", int: "number", float: "number"}
    return kinds.get(type(value), "null")


def _read_csv(path: Path, text: str, sep: str, header: bool = True) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None)
    except pd.errors.ParserError as exc:
        raise _csv_problem(path, text, sep, exc, header) from exc
    if not header:
        df.columns = range(1, len(df.columns) + 1)
    return df


def _csv_problem(path: Path, text: str, sep: str, exc: pd.errors.ParserError, header: bool = True) -> DataError:
    """pandas counts records, not file lines, and a quoted text may span lines: the line an editor
    shows comes from reading the records again with the csv module."""
    kind = "TSV" if sep == "\t" else "CSV"
    name = SEPARATOR_NAMES.get(sep, repr(sep))
    too_many = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if too_many:
        expected, line, saw = map(int, too_many.groups())
        line, saw = next(((start, len(row)) for start, row in _csv_records(text, sep) if len(row) > expected),
                         (line, saw))
        quote = {",": 'quote every text that contains a comma ("like, this"), or save the file as TSV',
                 "\t": "quote every text that contains a tab, or replace those tabs with spaces"}.get(
            sep, f'quote every text that contains a {name} ("like{sep} this")')
        first = "the header has" if header else "the first row has"
        return DataError(f"{path}, line {line}: {saw} fields where {first} {expected}, so a text there "
                         f"contains an unquoted {name}; {quote}")
    if "EOF inside string" in str(exc):
        line = max((start for start, _ in _csv_records(text, sep)), default=1)
        return DataError(f"{path}, line {line}: a quote (\") opens a field that never closes; close it, and write "
                         f"a quote inside a quoted text as two (\"\")")
    return DataError(f"{path}: not a readable {kind} ({str(exc).strip()}); check its separators ({name}s) "
                     f"and quotes, and 'sep' in params/datasets.yaml")


def _csv_records(text: str, sep: str) -> list[tuple[int, list[str]]]:
    """Each record with the file line it starts on; none where the csv module fails too."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    records, start = [], 1
    try:
        for row in reader:
            records.append((start, row))
            start = reader.line_num + 1
    except csv.Error:
        return []
    return records
