"""Malformed user files registered as `file` datasets: a DataError naming the file, the line where
known, what is wrong and the fix, never a raw pandas traceback. Good files read as before."""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pandas as pd
import pytest

from helpers import config, data
from helpers.data.records import DataError
from helpers.data.files import read_table

EMPTY = r"the file is empty \(no rows\), so the train split is empty; add one row per text"
ROWS = b'{"text": "fine film", "label": "positive"}\n{"text": "dull film", "label": "negative"}\n'

# (file name, its bytes, what the message must say after the file name)
CASES = {
    "empty csv": ("reviews.csv", b"", rf": {EMPTY}"),
    "whitespace csv": ("reviews.csv", b"  \n\n \n", rf": {EMPTY}"),
    "header-only csv": ("reviews.csv", b"text,label\n", rf": {EMPTY}"),
    "bom-only csv": ("reviews.csv", b"\xef\xbb\xbf\n", rf": {EMPTY}"),
    "empty jsonl": ("reviews.jsonl", b"\n\n", rf": {EMPTY}"),
    "empty json list": ("reviews.json", b"[]", rf": {EMPTY}"),
    "empty parquet": ("reviews.parquet", b"", rf": {EMPTY}"),
    "truncated jsonl line": ("reviews.jsonl", ROWS + b'{"text": "so-so", "lab\n' + ROWS,
                             (r", line 3: not valid JSON \(Unterminated string starting at: column 19\); "
                              r"fix or remove that line")),
    "jsonl line not an object": ("reviews.jsonl", ROWS + b"42\n",
                                 r", line 3: a JSON number, not a record; make every line one JSON object"),
    "invalid json": ("reviews.json", b'[\n {"text": "fine", "label": "positive"},\n {"text": "dull" "label": 0}\n]',
                     r", line 3: not valid JSON \(Expecting ',' delimiter: column 18\); fix the JSON there"),
    "json object": ("reviews.json", b'{"text": "fine", "label": "positive"}',
                    r": valid JSON, but a single JSON object, not a list of records; write it as a list of records"),
    "json scalar": ("reviews.json", b'"fine film"',
                    r": valid JSON, but a JSON string, not a list of records; write it as a list of records"),
    "json list with a non-record": ("reviews.json", b'[{"text": "fine", "label": "positive"}, 3]',
                                    r": valid JSON, but item 2 of its list is a JSON number, not a record"),
    "unquoted comma": ("reviews.csv", b"text,label\nfine,positive\ndull,negative\nok,positive\nslow, long,negative\n",
                       (r", line 5: 3 fields where the header has 2, so a text there contains an unquoted comma; "
                        r"quote every text that contains a comma \(\"like, this\"\), or save the file as TSV")),
    # pandas counts records and would say line 4: the message gives the line an editor shows
    "unquoted comma after a quoted multi-line text": (
        "reviews.csv", b'text,label\n"fine\nand fun",positive\ndull,negative\nslow, long,negative\n',
        r", line 5: 3 fields where the header has 2, so a text there contains an unquoted comma"),
    "unquoted tab": ("reviews.tsv", b"text\tlabel\nfine\tpositive\nslow\tlong\tnegative\n",
                     (r", line 3: 3 fields where the header has 2, so a text there contains an unquoted tab; "
                      r"quote every text that contains a tab")),
    "unclosed quote": ("reviews.csv", b'text,label\nfine,positive\n"dull,negative\nok,positive\n',
                       r", line 3: a quote \(\"\) opens a field that never closes; close it"),
    "text renamed to parquet": ("reviews.parquet", b"text,label\nfine,positive\n",
                                (r": not a readable Parquet file \(corrupted, or another format renamed to "
                                 r"\.parquet\); re-save it with DataFrame\.to_parquet")),
}


def preset(**changes) -> config.Preset:
    return dataclasses.replace(config.load_preset("quick"), **{"max_validation": 6, "max_calibration": 6, **changes})


def expected(name: str, pattern: str) -> str:
    return rf"{name.replace('.', r'[.]')}{pattern}"


@pytest.mark.parametrize("case", CASES)
def test_malformed_file_is_a_clear_error_when_loading(file_dataset, own_data_cache, case):
    name, content, pattern = CASES[case]
    spec = file_dataset(content, name=name)
    with pytest.raises(DataError, match=expected(name, pattern)) as raised:
        data.load_splits(spec, preset(), seed=1)
    if EMPTY not in pattern:  # the parser's own error stays attached
        assert isinstance(raised.value.__cause__, (ValueError, TypeError))


@pytest.mark.parametrize("case", CASES)
def test_malformed_file_is_a_clear_error_when_read(tmp_path, case):
    """What `data <id>` in the CLI and every other reader get: the reader itself raises."""
    name, content, pattern = CASES[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{str(tmp_path).replace('.', '[.]')}/{expected(name, pattern)}"):
        read_table(path)


def test_a_split_other_than_train_is_named(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"test[.]jsonl: the file is empty \(no rows\), so the test split is empty"):
        read_table(path, "test")


def test_rows_all_dropped_names_the_file_and_why(file_dataset, own_data_cache, reviews):
    spec = file_dataset(reviews, label_map={"negative": None, "positive": None})
    with pytest.raises(DataError, match=r"the train split is empty \(from .*reviews[.]csv\): 60 rows whose label "
                                        r"the entry's label_map drops"):
        data.load_splits(spec, preset(), seed=1)


def _parquet(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


GOOD = pd.DataFrame({"text": ["fine, and fun", "dull\nand slow", "café"],
                     "label": ["positive", "negative", "positive"]})


@pytest.mark.parametrize("name, content, encoding", [
    ("reviews.csv", GOOD.to_csv(index=False).encode("utf-8"), "utf-8"),
    ("reviews.csv", b"\xef\xbb\xbf" + GOOD.to_csv(index=False).encode("utf-8"), "utf-8"),
    ("reviews.csv", GOOD.to_csv(index=False).encode("latin-1"), "latin-1"),
    ("reviews.tsv", GOOD.to_csv(index=False, sep="\t").encode("utf-8"), "utf-8"),
    ("reviews.jsonl", GOOD.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8"), "utf-8"),
    ("reviews.json", GOOD.to_json(orient="records", force_ascii=False).encode("utf-8"), "utf-8"),
    ("reviews.parquet", _parquet(GOOD), "utf-8"),
])
def test_good_files_read_as_before(tmp_path: Path, name, content, encoding):
    path = tmp_path / name
    path.write_bytes(content)
    df, used = read_table(path)
    assert used == encoding
    pd.testing.assert_frame_equal(df, GOOD, check_dtype=False)
