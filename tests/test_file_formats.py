"""A user's own file read as it is (`source: file`): without a header row, its columns given by
position (`header: none`); another separator (`sep`); another text encoding (`encoding`). The same
rows as the file with a header, the same checks, and errors that name the file, the key and the fix.
The data: the 1,000 Yelp sentences of the UCI sentiment set, whose original file has no header row."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import pandas as pd
import pytest
import yaml

from helpers import config, data
from helpers.core.io import read_json, write_yaml
from helpers.core.paths import experiments_dir
from helpers.data.records import DataError
from helpers.data.sources import load_standardized

LABELS = ["negative", "positive"]


@pytest.fixture
def sentences(mirror_path) -> pd.DataFrame:
    """Text, then the label's name, as a person would keep them."""
    df = pd.read_json(mirror_path / "uci_sentences" / "yelp.jsonl", lines=True)
    return pd.DataFrame({"text": df["text"], "label": df["label"].map(dict(enumerate(LABELS)))})


def rows(spec: config.DatasetSpec) -> pd.DataFrame:
    return load_standardized(spec).frames["train"]


def headerless(df: pd.DataFrame, sep: str = ",", encoding: str = "utf-8") -> bytes:
    return df.to_csv(sep=sep, header=False, index=False).encode(encoding)


def findings(spec: config.DatasetSpec, check: str) -> list[data.Finding]:
    return [f for f in load_standardized(spec).findings if f.check == check]


def test_a_headerless_file_reads_every_row_by_position(file_dataset, own_data_cache, sentences):
    """Label first, text second, no header: the same 1,000 rows as the file with a header (before,
    the first sentence became the column names)."""
    reference = rows(file_dataset(sentences, name="named.csv"))
    spec = file_dataset(headerless(sentences[["label", "text"]]), name="yelp_labelled.csv", header="none",
                        text_column=2, label_column=1)
    pd.testing.assert_frame_equal(rows(spec), reference)
    assert len(reference) == 1000


@pytest.mark.parametrize("name, sep", [("reviews.csv", ";"), ("reviews.csv", "|"), ("reviews.csv", "\t"),
                                       ("reviews.tsv", ",")])
def test_another_separator(file_dataset, own_data_cache, sentences, name, sep):
    reference = rows(file_dataset(sentences, name="named.csv"))
    spec = file_dataset(sentences.to_csv(sep=sep, index=False).encode(), name=name, sep=sep)
    pd.testing.assert_frame_equal(rows(spec), reference)


def test_a_tsv_without_header_as_uci_ships_it(file_dataset, own_data_cache, sentences):
    spec = file_dataset(headerless(sentences, sep="\t"), name="yelp_labelled.tsv", header="none",
                        text_column=1, label_column=2)
    pd.testing.assert_frame_equal(rows(spec), rows(file_dataset(sentences, name="named.csv")))


def test_a_declared_encoding_reads_what_latin1_would_garble(file_dataset, own_data_cache, sentences):
    """cp1252 (Windows) puts € and curly quotes where latin-1 has control characters: read as
    declared, the texts are right and there is no warning to re-save the file (the same file read
    before without the declaration is not taken from the data cache)."""
    sentences.loc[[0, 1], "text"] = ["Worth every € — really.", "The “best” crêpe in town."]
    cp1252 = headerless(sentences, encoding="cp1252")
    guessed = file_dataset(cp1252, header="none", text_column=1, label_column=2)
    assert findings(guessed, "non_utf8")[0].level == "warning"
    assert "Worth every € — really." not in set(rows(guessed)["text"])
    declared = file_dataset(cp1252, header="none", text_column=1, label_column=2, encoding="cp1252")
    assert {"Worth every € — really.", "The “best” crêpe in town."} <= set(rows(declared)["text"])
    assert not findings(declared, "non_utf8")
    utf16 = file_dataset(sentences.to_csv(index=False).encode("utf-16"), name="utf16.csv", encoding="utf-16")
    pd.testing.assert_frame_equal(rows(utf16), rows(declared))


# What goes wrong, and what the user reads: (file bytes, entry, pattern after the file name or entry).
LOAD_ERRORS = {
    "a wrong declared encoding": (
        "text,label\nfine,positive\nworth every \x80,positive\n".encode("latin-1"), {"encoding": "utf-8"},
        r"reviews[.]csv, line 3: not utf-8 \(byte 0x80: invalid start byte\); fix 'encoding' in "
        r"params/datasets.yaml to the one the file was saved in, or leave it out"),
    "a position past the last column": (
        b"fine,positive\ndull,negative\n", {"header": "none", "text_column": 1, "label_column": 3},
        r"dataset 'mine', split 'train': no column at position\(s\) \[3\]: the file has 2 column\(s\), 1 to 2\. "
        r"Fix label_column in params/datasets.yaml"),
    "a headerless file read with names": (
        b"fine,positive\ndull,negative\n", {},
        r"missing column\(s\) \['text', 'label'\]; the data has \['fine', 'positive'\]\. Fix text_column/"
        r"label_column in params/datasets.yaml\. The file seems to have no header row, so its first row was read "
        r"as the names: set header: none and give the columns by position \(1 is the first\)\."),
    "a headerless file of sentences and 0/1 labels read with names": (
        b"Loved this place and the staff.,1\nCrust is not good.,0\n", {},
        r"the data has \['Loved this place and the staff\.', '1'\]\. .*The file seems to have no header row"),
    "a semicolon file read at commas": (
        b"text;label\nfine;positive\ndull;negative\n", {},
        r"the data has \['text;label'\]\. .*The one column's name holds a semicolon: set sep: ';'"),
    "an unquoted separator in a headerless file": (
        b"fine;positive\ndull;negative\nslow; long;negative\n", {"header": "none", "sep": ";", "text_column": 1,
                                                                 "label_column": 2},
        r"reviews[.]csv, line 3: 3 fields where the first row has 2, so a text there contains an unquoted "
        r"semicolon; quote every text that contains a semicolon"),
    "an empty headerless file": (
        b"\n\n", {"header": "none", "text_column": 1, "label_column": 2},
        r"reviews[.]csv: the file is empty \(no rows\), so the train split is empty"),
}


@pytest.mark.parametrize("case", LOAD_ERRORS)
def test_a_file_that_does_not_fit_its_entry_is_a_clear_error(file_dataset, own_data_cache, case):
    content, entry, pattern = LOAD_ERRORS[case]
    spec = file_dataset(content, **entry)
    with pytest.raises(DataError, match=pattern):
        data.load_splits(spec, dataclasses.replace(config.load_preset("quick"), max_validation=1), seed=1)


def test_a_misnamed_column_of_a_file_with_a_header_gets_no_header_hint(file_dataset, own_data_cache, sentences):
    spec = file_dataset(sentences, text_column="review")
    with pytest.raises(DataError, match=r"missing column\(s\) \['review'\]; the data has \['text', 'label'\]\. Fix "
                                        r"text_column in params/datasets\.yaml\.$"):
        load_standardized(spec)


ENTRY_ERRORS = {
    "an unknown header": ({"header": "no"}, r"header must be one of \['first_row', 'none'\], got 'no'"),
    "names without a header": (
        {"header": "none"},
        r"with header: none the file's columns have no names: give text_column, label_column as positions, 1 for "
        r"the first column; got \{'text_column': 'text', 'label_column': 'label'\}"),
    "position 0": ({"header": "none", "text_column": 0, "label_column": 2},
                   r"column positions count from 1: the first column is 1, the second 2; got \{'text_column': 0\}"),
    "a position with a header": (
        {"text_column": [1, "title"]},
        r"text_column\[0\] given as position\(s\) \{'text_column\[0\]': 1\}: columns are named by the file's "
        r"header row; name them as it does, or set header: none for a file without a header row"),
    "a long separator": ({"sep": ";;"}, r"sep must be one character other than a quote or a line break, e\.g\. ';'"),
    "an unknown encoding": ({"encoding": "utf9"},
                            r"encoding 'utf9' is not a text encoding Python knows; use one such as utf-8, cp1252"),
    "header on JSON lines": ({"header": "none", "text_column": 1, "label_column": 2, "name": "r.jsonl"},
                             r"header is for CSV and TSV files \(\.csv, \.tsv\), and .*r\.jsonl is not one: "
                             r"remove header, or give the file its real suffix"),
    "encoding on Parquet": ({"encoding": "cp1252", "name": "r.parquet"},
                            r"encoding is for text files, and .*r\.parquet is Parquet, which says its own: "
                            r"remove encoding"),
    "sep on a mirror dataset": ({"source": "mirror", "mirror": {"folder": "sst2"}, "sep": ";"},
                                r"sep: only for a file of your own \(source: file\); the 'mirror' source reads its "
                                r"data as it comes, so remove sep"),
}


@pytest.mark.parametrize("case", ENTRY_ERRORS)
def test_a_bad_entry_is_refused_where_it_is_declared(file_dataset, sentences, case):
    entry, pattern = dict(ENTRY_ERRORS[case][0]), ENTRY_ERRORS[case][1]
    name = entry.pop("name", "reviews.csv")
    content = sentences if name.endswith(".jsonl") else b"fine,positive\n"
    with pytest.raises(config.ConfigError, match=rf"datasets[.]yaml: dataset 'mine': {pattern}"):
        file_dataset(content if not name.endswith(".parquet") else b"", name=name, **entry)


@pytest.mark.slow
@pytest.mark.full
def test_a_headerless_semicolon_cp1252_file_runs_a_tiny_study(project_copy, sentences, tmp_path):
    """Registered in the copy's params/datasets.yaml as a user would, loaded by `senticompare data`
    and run end to end by `senticompare run` (its notebooks read the registry in their own kernels)."""
    path = tmp_path / "yelp_labelled.csv"
    path.write_bytes(headerless(sentences[["label", "text"]], sep=";", encoding="cp1252"))
    registry = project_copy / "params" / "datasets.yaml"
    registry.write_text(registry.read_text() + "\n" + yaml.safe_dump({"my_reviews": {
        "source": "file", "path": str(path), "header": "none", "sep": ";", "encoding": "cp1252",
        "text_column": 2, "label_column": 1, "labels": LABELS}}))
    study = write_yaml(tmp_path / "mine.yaml", {
        "name": "mine", "models": ["minilm-l6"], "datasets": ["my_reviews"], "preset": "tiny", "seeds": [1],
        "overrides": {"max_train": 32, "max_test": 24, "train": {"max_steps": 2},
                      "speed": {"warmup": 0, "repeats": 2, "max_examples": 4}}})

    def senticompare(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "helpers.cli", *args], cwd=project_copy, capture_output=True,
                              text=True, timeout=1200)

    card = senticompare("data", "my_reviews", "--preset", "tiny")
    assert card.returncode == 0, card.stderr
    assert re.search(r"^train\s+1000\s+500\s+500$", card.stdout, re.M)  # every row of the file, the first too
    done = senticompare("run", str(study), "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    results = read_json(experiments_dir() / "mine" / "my_reviews" / "minilm-l6" / "results.json")
    assert results["params"]["dataset"]["header"] == "none" and results["params"]["dataset"]["sep"] == ";"
    assert results["data"]["source"] == "file:yelp_labelled.csv"
    assert 0 <= results["accuracy"] <= 1
    folder = experiments_dir() / "mine" / "my_reviews" / "minilm-l6" / "data"
    saved = pd.concat(pd.read_json(p, lines=True, dtype={"text": str}) for p in folder.glob("*.jsonl"))
    assert len(saved) == 32 + 24 + 32 + 32 and set(saved["text"]) <= set(sentences["text"])  # each one whole
