"""Each data check with a small bad file, registered as a `file` dataset: a clear error, or a
warning with a count in the findings, never a silent fix."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from helpers import config, data


def preset(**changes) -> config.Preset:
    return dataclasses.replace(config.load_preset("quick"), **{"max_validation": 6, "max_calibration": 6, **changes})


def findings(splits: data.DatasetSplits, check: str) -> list[data.Finding]:
    return [f for f in splits.findings if f.check == check]


def test_missing_column_names_the_columns_and_the_fix(file_dataset, reviews):
    spec = file_dataset(reviews.rename(columns={"text": "body"}))
    with pytest.raises(data.DataError, match=r"missing column\(s\) \['text'\].*'body'.*text_column"):
        data.load_splits(spec, preset(), seed=1)


def test_empty_file_is_a_clear_error(file_dataset, reviews):
    with pytest.raises(data.DataError, match="train split is empty"):
        data.load_splits(file_dataset(reviews.iloc[:0]), preset(), seed=1)


def test_empty_and_whitespace_texts_are_dropped_with_a_warning(file_dataset, reviews):
    reviews.loc[[0, 5], "text"] = "   "
    reviews.loc[7, "text"] = ""  # an empty CSV cell: read as missing
    splits = data.load_splits(file_dataset(reviews), preset(), seed=1)
    (finding,) = findings(splits, "empty_text")
    assert (finding.level, finding.count) == ("warning", 3)
    assert sum(len(splits.split(s)) for s in data.SPLITS) == 57


def test_labels_outside_the_declared_set(file_dataset, reviews):
    reviews.loc[3, "label"] = "neutral"
    with pytest.raises(data.DataError, match=r"1 labels outside.*neutral.*label_map"):
        data.load_splits(file_dataset(reviews), preset(), seed=1)


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.jsonl"])
def test_missing_labels(file_dataset, reviews, name):
    reviews.loc[[1, 2], "label"] = None
    with pytest.raises(data.DataError, match="2 rows have no label; fill in or remove"):
        data.load_splits(file_dataset(reviews, name=name), preset(), seed=1)


def test_single_class_train_is_an_error(file_dataset, reviews):
    with pytest.raises(data.DataError, match=r"only one class \(positive\) in train.*label_map"):
        data.load_splits(file_dataset(reviews.assign(label="positive")), preset(), seed=1)


def test_single_class_in_another_split_is_a_warning(file_dataset, reviews):
    """Held out, the group `b` holds only positive reviews: its test split has one class."""
    grouped = reviews.assign(park=["b" if i % 2 and i < 30 else "a" for i in range(60)])
    splits = data.load_splits(file_dataset(grouped, group_column="park", holdout_group="b"), preset(), seed=1)
    (finding,) = findings(splits, "single_class")
    assert (finding.level, finding.split, finding.count) == ("warning", "test", 15)


def test_duplicate_texts_within_a_split_are_counted(file_dataset, reviews):
    doubled = pd.concat([reviews, reviews], ignore_index=True)
    splits = data.load_splits(file_dataset(doubled), preset(), seed=1)
    counts = {f.split: f.count for f in findings(splits, "duplicates")}
    assert counts["train"] == splits.train["text"].duplicated().sum() > 0
    assert all(f.level == "warning" for f in findings(splits, "duplicates"))


def test_leakage_between_train_and_test_is_counted(file_dataset, reviews):
    df = pd.concat([reviews, reviews.iloc[:20]], ignore_index=True)
    splits = data.load_splits(file_dataset(df), preset(), seed=1)
    leaked = {f.split: f.count for f in findings(splits, "leakage")}
    assert leaked["train"] == splits.train["text"].isin(set(splits.test["text"])).sum() > 0
    assert "drop_leakage: true" in findings(splits, "leakage")[0].message


def test_leakage_is_dropped_from_train_when_the_entry_asks(file_dataset, reviews):
    df = pd.concat([reviews, reviews.iloc[:20]], ignore_index=True)
    splits = data.load_splits(file_dataset(df, drop_leakage=True), preset(), seed=1)
    (dropped,) = findings(splits, "leakage_dropped")
    assert dropped.count > 0 and not findings(splits, "leakage")
    for name in ("train", "validation", "calibration"):
        assert not splits.split(name)["text"].isin(set(splits.test["text"])).any(), name


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.jsonl"])
def test_non_utf8_bytes_are_read_as_latin1_with_a_warning(file_dataset, reviews, tmp_path, name):
    reviews.loc[[4, 9, 13], "text"] = ["café au lait", "crème brûlée", "naïve"]
    file_dataset(reviews, name=name)
    latin1 = (tmp_path / name).read_text(encoding="utf-8").encode("latin-1")
    splits = data.load_splits(file_dataset(latin1, name=name), preset(), seed=1)
    (finding,) = findings(splits, "non_utf8")
    assert (finding.level, finding.count) == ("warning", 3)
    assert "re-save the file as UTF-8" in finding.message
    texts = set(pd.concat([splits.split(s) for s in data.SPLITS])["text"])
    assert {"café au lait", "crème brûlée", "naïve"} <= texts


def test_texts_longer_than_max_length_are_counted_as_truncated(file_dataset, reviews):
    reviews.loc[:9, "text"] = [f"{' '.join(['word'] * 60)} {i}" for i in range(10)]
    splits = data.load_splits(file_dataset(reviews), preset(max_length=48), seed=1)
    truncated = findings(splits, "truncated")
    assert sum(f.count for f in truncated) == 10
    assert all(f.level == "warning" and "max_length" in f.message for f in truncated)
