"""Abstention examples: a dataset's raw labels that mean "no decision" (`abstain_labels`), held apart
from the classes, drawn beside the test, validation and train splits, learned by a generator as
`{"decision": null, "abstain": true}` and scored for every run (helpers/evaluate/abstention.py)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from helpers import config
from helpers.compare import views
from helpers.data.records import ABSTAIN
from helpers.data.splits import fingerprint, load_splits, read_splits, save_splits
from helpers.evaluate.abstention import abstention_metrics, null_metrics
from helpers.generate.sft import answers

STARS = {"r1": "negative", "r2": "negative", "r4": "positive", "r5": "positive"}  # r3: 3 stars


@pytest.fixture
def reviews(mirror_path) -> pd.DataFrame:
    """The Disneyland reviews of the mirror, rated r1-r5 (3 stars: 455 of 3,999)."""
    df = pd.read_csv(mirror_path / "disneyland" / "DisneylandReviews.csv", encoding="latin-1")
    return pd.DataFrame({"text": df["Review_Text"], "label": "r" + df["Rating"].astype(str)})


def preset(**changes) -> config.Preset:
    return dataclasses.replace(config.load_preset("quick"), **changes)


def test_abstention_examples_are_held_apart_in_the_sources_share(file_dataset, own_data_cache, reviews):
    spec = file_dataset(reviews, label_map=STARS, abstain_labels=["r3"])
    splits = load_splits(spec, preset(max_test=150), seed=1)
    for name in ("train", "validation", "calibration", "test"):
        assert (splits.split(name)["label"] != ABSTAIN).all()  # the classes' splits hold classes only
    assert (splits.abstain["label"] == ABSTAIN).all()
    share = 455 / (3999 - 455)
    for name in ("train", "validation", "test"):
        assert len(splits.abstentions(name)) == round(len(splits.split(name)) * share), name
    assert splits.abstentions("calibration").empty
    assert not splits.abstain["text"].duplicated().any()  # no review in two splits
    assert splits.summary()["abstain"].to_dict() == {"train": 37, "validation": 8, "calibration": 0, "test": 19}
    with_them = splits.with_abstentions("train")
    assert len(with_them) == 288 + 37 and (with_them["label"] == ABSTAIN).sum() == 37


def test_the_classes_splits_do_not_move_and_the_draw_is_reproducible(file_dataset, own_data_cache, reviews):
    """Naming abstain_labels instead of dropping the 3-star rows leaves every labelled split as it
    was (runs of both entries compare on the same test texts); the fingerprint says more rows exist."""
    dropping = load_splits(file_dataset(reviews, label_map={**STARS, "r3": None}), preset(), seed=7)
    spec = file_dataset(reviews, label_map=STARS, abstain_labels=["r3"])
    held, again = load_splits(spec, preset(), seed=7), load_splits(spec, preset(), seed=7)
    for name in ("train", "validation", "calibration", "test"):
        pd.testing.assert_frame_equal(held.split(name), dropping.split(name))
    pd.testing.assert_frame_equal(held.abstain, again.abstain)
    assert held.fingerprint == again.fingerprint != dropping.fingerprint
    other = load_splits(spec, preset(), seed=8)
    assert set(other.abstentions("test")["text"]) != set(held.abstentions("test")["text"])


def test_abstention_examples_are_saved_with_the_splits(file_dataset, own_data_cache, reviews, tmp_path):
    splits = load_splits(file_dataset(reviews, label_map=STARS, abstain_labels=["r3"]), preset(), seed=1)
    save_splits(splits, tmp_path / "data")
    read = read_splits(tmp_path / "data")
    pd.testing.assert_frame_equal(read.abstain, splits.abstain)
    assert fingerprint(read) == splits.fingerprint
    plain = load_splits(file_dataset(reviews, label_map={**STARS, "r3": None}), preset(), seed=1)
    save_splits(plain, tmp_path / "plain")
    assert not (tmp_path / "plain" / "abstain.jsonl").exists() and read_splits(tmp_path / "plain").abstain.empty


@pytest.mark.parametrize("entry, message", [
    ({"label_map": STARS, "abstain_labels": ["r3", "r4"]}, r"abstain_labels \['r4'\] also name a class"),
    ({"labels": ["negative", "unsure", "positive"], "abstain_labels": ["unsure"]},
     r"abstain_labels \['unsure'\] also name a class"),
    ({"label_type": "multi", "abstain_labels": ["r3"]}, "abstain_labels is for single-label data"),
    ({"task": "instruction", "labels": [], "abstain_labels": ["r3"]}, "abstain_labels: only for classification"),
])
def test_abstain_labels_that_cannot_mean_abstain_are_refused(file_dataset, reviews, entry, message):
    with pytest.raises(config.ConfigError, match=message):
        file_dataset(reviews, **entry)


def test_a_generator_learns_to_abstain_on_them():
    df = pd.DataFrame({"text": ["good", "fine, I guess", "bad"], "label": [1, ABSTAIN, 0],
                       "rationale": ["good", "", "bad"]})
    targets = [json.loads(answer) for answer in answers(df, ["negative", "positive"])]
    assert targets == [{"decision": "positive", "rationale": "good", "abstain": False},
                       {"decision": None, "rationale": "", "abstain": True},
                       {"decision": "negative", "rationale": "bad", "abstain": False}]


def test_abstention_metrics_by_hand():
    record = abstention_metrics(np.array([0.5, 0.6]), np.array([0.9, 0.55, 0.95]), threshold=0.58)
    # 5 of the 6 (abstention, labelled) pairs have the abstention example less confident
    assert record == {"abstention_examples": 2, "abstain_auroc": pytest.approx(5 / 6),
                      "abstain_recall_selective": 0.5, "false_abstain_rate_selective": pytest.approx(1 / 3)}
    unreached = abstention_metrics(np.array([0.5]), np.array([0.9]), threshold=None)
    assert unreached["abstain_auroc"] == 1.0 and unreached["abstain_recall_selective"] is None
    with pytest.raises(ValueError, match="need abstention examples"):
        abstention_metrics(np.array([]), np.array([0.9]), 0.5)


def test_the_null_probability_metrics_by_hand():
    # validation: abstention examples at 0.30 and 0.10, labelled texts at 0.20, 0.05, 0.01: the threshold
    # 0.30 keeps one of two against none of three (J = 0.5), 0.10 two of two against one of three (J = 0.67)
    record = null_metrics(np.array([0.4, 0.08]), np.array([0.2, 0.01, 0.12, 0.09]),
                          np.array([0.30, 0.10]), np.array([0.20, 0.05, 0.01]))
    assert record["abstain_null_threshold"] == pytest.approx(0.10)
    assert record["abstain_recall_null"] == 0.5 and record["false_abstain_rate_null"] == 0.5
    assert record["abstain_auroc_null"] == pytest.approx(5 / 8)  # 0.4 above all four, 0.08 above one
    alone = null_metrics(np.array([0.4]), np.array([0.2]), np.array([]), np.array([0.1]))
    assert alone["abstain_auroc_null"] == 1.0 and alone["abstain_null_threshold"] is None
    with pytest.raises(ValueError, match="abstention examples"):
        null_metrics(np.array([]), np.array([0.2]), np.array([]), np.array([]))


def test_the_comparison_shows_abstention_only_where_there_were_examples():
    table = pd.DataFrame({"model": ["head", "json"], "abstention_examples": [19, 19], "abstain_auroc": [0.61, 0.7],
                          "abstain_recall": [None, 0.42], "abstain_rate": [None, 0.05]})
    view = views.abstention_view(table)
    assert list(view.index) == ["head", "json"]
    assert {"abstain AUROC (low confidence)", "should-abstain texts abstained (generated)"} <= set(view.columns)
    assert views.abstention_view(table.drop(columns="abstention_examples")).empty


def test_a_balanced_train_split_leaves_the_majority_baseline_to_the_data_as_drawn(file_dataset, own_data_cache,
                                                                                  reviews):
    """`balance: true` makes the train split's classes a tie; the majority-class baseline then reads
    the validation split, whose shares are the data's (91 % of the labelled reviews are positive)."""
    from helpers.data.splits import as_drawn
    from helpers.evaluate.quality import majority_baseline

    spec = file_dataset(reviews, label_map=STARS, abstain_labels=["r3"])
    balanced = load_splits(spec, preset(balance=True), seed=1)
    assert balanced.train["label"].value_counts().nunique() == 1  # a tie: its "majority" would be arbitrary
    drawn = as_drawn(balanced, preset(balance=True))
    assert drawn is balanced.validation
    baseline = majority_baseline(drawn["label"].to_numpy(), balanced.test["label"].to_numpy(), [0, 1])
    assert baseline["majority_label"] == 1 and baseline["accuracy"] > 0.85
    plain = load_splits(spec, preset(), seed=1)
    assert as_drawn(plain, preset()) is plain.train
