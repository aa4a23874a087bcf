"""Every registered dataset through its real loader, offline: the mirror, kagglehub and the hub
(their download functions pointed at the mirror so the real parsing code runs)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from helpers import config, data
from helpers.data import sources

MIRRORED = ["sst2", "imdb", "disneyland", "disneyland_3class", "uci_yelp", "uci_amazon", "uci_imdb",
            "tweet_eval_emotion"]


def preset(**changes):
    caps = {"max_train": 200, "max_validation": 50, "max_test": 50, **changes}
    return dataclasses.replace(config.load_preset("quick"), **caps)


@pytest.mark.parametrize("dataset_id", MIRRORED)
def test_mirrored_dataset_loads_with_every_class(mirror, dataset_id):
    spec = config.get_dataset(dataset_id)
    splits = data.load_splits(spec, preset(), seed=1)
    assert splits.source.startswith("mirror:")
    for name in data.SPLITS:
        df = splits.split(name)
        assert len(df) > 0 and df["text"].str.strip().ne("").all()
        assert set(df["label"]) == set(range(len(spec.labels))), name


def test_tweet_eval_keeps_its_four_classes_and_official_splits(mirror):
    splits = data.load_splits(config.get_dataset("tweet_eval_emotion"), preset(max_test=None), seed=1)
    assert splits.labels == ["anger", "joy", "optimism", "sadness"]
    assert len(splits.test) == 1421  # the official test split, uncapped


def test_disneyland_drops_three_stars_or_keeps_them_as_neutral(mirror):
    raw = pd.read_csv(mirror / "disneyland" / "DisneylandReviews.csv")
    two = data.load_splits(config.get_dataset("disneyland"), preset(max_train=None, max_test=None), seed=1)
    three = data.load_splits(config.get_dataset("disneyland_3class"), preset(max_train=None, max_test=None), seed=1)
    rows = lambda s: sum(len(s.split(n)) for n in data.SPLITS)  # noqa: E731
    assert rows(two) == (raw["Rating"] != 3).sum()
    assert rows(three) == len(raw)
    assert next(f for f in two.findings if f.check == "dropped_label").count == (raw["Rating"] == 3).sum()
    assert set(two.train["group"]) == set(raw["Branch"])


def test_kaggle_download_parses_latin1_as_kaggle_ships_it(mirror, tmp_path, monkeypatch, own_data_cache):
    """kagglehub's download pointed at a latin-1 copy of the mirror file: the real parser runs."""
    import kagglehub

    folder = tmp_path / "kaggle"
    folder.mkdir()
    text = (mirror / "disneyland" / "DisneylandReviews.csv").read_text(encoding="utf-8")  # plain ASCII
    text = text.replace(" cafe ", " café ")  # as the original reviews spell it
    (folder / "DisneylandReviews.csv").write_bytes(text.encode("latin-1"))
    calls = []
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle, **kw: calls.append(handle) or str(folder))
    monkeypatch.setattr(sources, "kaggle_reachable", lambda: True)
    monkeypatch.delenv("SENTICOMPARE_DATA_DIR")
    splits = data.load_splits(config.get_dataset("disneyland"), preset(), seed=1)
    assert calls == ["arushchillar/disneyland-reviews"]
    assert splits.source == "kaggle:arushchillar/disneyland-reviews"
    assert len(splits.train) == 200
    with_accent = pd.read_csv(mirror / "disneyland" / "DisneylandReviews.csv")["Review_Text"].str.contains(" cafe ")
    assert next(f for f in splits.findings if f.check == "non_utf8").count == with_accent.sum()
    monkeypatch.setattr(sources, "kaggle_reachable", lambda: False)  # offline now: the cache serves it
    assert data.load_splits(config.get_dataset("disneyland"), preset(), seed=1).fingerprint == splits.fingerprint
    assert len(calls) == 1


def test_kaggle_without_network_fails_fast(monkeypatch, own_data_cache):
    monkeypatch.delenv("SENTICOMPARE_DATA_DIR", raising=False)
    monkeypatch.setattr(sources, "KAGGLE_HOST", ("unreachable.invalid", 443))
    with pytest.raises(data.DataError, match="SENTICOMPARE_DATA_DIR"):
        data.load_splits(config.get_dataset("disneyland"), preset(), seed=1)


def test_hub_loader_parses_what_load_dataset_returns(mirror, monkeypatch, own_data_cache):
    """datasets.load_dataset pointed at the mirror's files: the hub code path runs for real."""
    import datasets

    real_load_dataset = datasets.load_dataset

    def load_dataset(hub_id, config_name=None):
        assert (hub_id, config_name) == ("cardiffnlp/tweet_eval", "emotion")
        files = {s: str(mirror / "tweet_eval_emotion" / f"{s}.jsonl") for s in ("train", "validation", "test")}
        return real_load_dataset("json", data_files=files)

    monkeypatch.delenv("SENTICOMPARE_DATA_DIR")
    monkeypatch.setattr(sources, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    splits = data.load_splits(config.get_dataset("tweet_eval_emotion"), preset(), seed=1)
    assert splits.source == "hub:cardiffnlp/tweet_eval"
    assert set(splits.test["label"]) == {0, 1, 2, 3}


def test_joined_text_columns(tmp_path):
    path = tmp_path / "amazon.jsonl"
    pd.DataFrame({"title": ["Great", "Awful"] * 30, "content": ["works well", "broke in a day"] * 30,
                  "label": [1, 0] * 30}).to_json(path, orient="records", lines=True)
    spec = dataclasses.replace(config.get_dataset("amazon_polarity"), source="file", path=str(path))
    splits = data.load_splits(spec, preset(max_validation=4), seed=1)
    assert set(splits.train["text"]) == {"Great. works well", "Awful. broke in a day"}
