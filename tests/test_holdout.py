"""Leave-one-group-out: the runs a study plans, and the report's table beside the in-distribution run."""
from __future__ import annotations

import dataclasses
import logging

import pandas as pd
import pytest
import yaml

from helpers import config
from helpers.core.io import write_json, write_yaml
from helpers.data.sources import value_counts
from helpers.data.splits import load_splits
from helpers.pipeline import holdout
from helpers.pipeline.study import plan_runs
from helpers.report import stitch

STUDY = {"name": "logo", "models": ["minilm-l6"], "datasets": ["disneyland"], "preset": "quick", "seeds": [1]}


def study(tmp_path, **changes) -> config.Study:
    path = tmp_path / "logo.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **changes}))
    return config.load_study(path)


def test_every_group_gets_its_own_folder_and_parameter(tmp_path, mirror):
    plans = plan_runs(study(tmp_path, holdout={"dataset": "disneyland", "groups": "all"}))
    assert [(p.run_dir.parent.name, p.holdout_group) for p in plans] == [
        ("disneyland", None),
        ("disneyland@holdout-Disneyland_California", "Disneyland_California"),
        ("disneyland@holdout-Disneyland_HongKong", "Disneyland_HongKong"),
        ("disneyland@holdout-Disneyland_Paris", "Disneyland_Paris"),
    ]
    assert "holdout_group" not in plans[0].params  # in-distribution runs keep their earlier params.yaml
    assert plans[1].params["holdout_group"] == "Disneyland_California"
    assert plans[1].params["dataset"] == "disneyland"


def test_listed_groups_only(tmp_path):
    plans = plan_runs(study(tmp_path, holdout={"dataset": "disneyland", "groups": ["Disneyland_Paris"]}))
    assert [p.holdout_group for p in plans] == [None, "Disneyland_Paris"]


@pytest.mark.parametrize("holdout, message", [
    ({"dataset": "finefoods"}, r"holdout.dataset 'finefoods' must be one of the study's datasets"),
    ({"dataset": "disneyland", "groups": "some"},
     r"holdout must be \{dataset: <id>, by: group \| context, groups: all"),
    ({"dataset": "disneyland", "groups": [2019]}, r"quoted as strings"),
])
def test_a_bad_holdout_is_a_config_error(tmp_path, holdout, message):
    with pytest.raises(config.ConfigError, match=message):
        study(tmp_path, holdout=holdout)


def fake_run(folder, accuracy, test=None):
    """A finished run's results.json (and, in-distribution, its test split and predictions)."""
    write_json(folder / "results.json", {"accuracy": accuracy, "f1": accuracy - 0.1, "quality": {"test_examples": 4}})
    if test is not None:
        (folder / "data").mkdir()
        test.to_json(folder / "data" / "test.jsonl", orient="records", lines=True)
        write_json(folder / "data" / "card.json", {"labels": ["negative", "positive"]})
        pd.DataFrame({"example": range(len(test)), "label": test["label"],
                      "prediction": [0, 1, 1, 0]}).to_csv(folder / "predictions.csv", index=False)


def test_table_sets_each_held_out_group_beside_the_in_distribution_run(tmp_path):
    (tmp_path / "disneyland" / "minilm-l6").mkdir(parents=True)
    for group in ("A B", "C"):  # as the runner leaves them: params.yaml first, then results or failure
        write_yaml(tmp_path / holdout.folder_name("disneyland", group) / "minilm-l6" / "params.yaml",
                   {"holdout_group": group})
    test = pd.DataFrame({"text": list("wxyz"), "label": [0, 1, 0, 1], "group": ["A B", "A B", "C", "C"]})
    fake_run(tmp_path / "disneyland" / "minilm-l6", 0.5, test=test)
    fake_run(tmp_path / "disneyland@holdout-A_B" / "minilm-l6", 0.25)
    write_json(tmp_path / "disneyland@holdout-C" / "minilm-l6" / "failed.json", {"stage": "02_train", "error": "x"})
    table = holdout.table(tmp_path, "disneyland").set_index("group")
    assert table.loc["A B", ["status", "accuracy", "in_dist_group_rows", "in_dist_group_accuracy",
                             "in_dist_accuracy"]].tolist() == ["done", 0.25, 2, 1.0, 0.5]
    assert table.loc["C", "status"] == "failed in 02_train" and table.loc["C", "in_dist_group_accuracy"] == 0.0
    section = holdout.report_markdown(tmp_path, "disneyland")
    assert section.startswith("## Leave-one-group-out on disneyland") and "<table" in section
    stitched = stitch.stitch(study(tmp_path), tmp_path)
    assert any("Leave-one-group-out" in cell.source for cell in stitched.cells)


def test_no_section_without_held_out_runs(tmp_path):
    (tmp_path / "disneyland").mkdir()
    assert holdout.report_markdown(tmp_path, "disneyland") is None


def test_by_context_holds_out_reviewer_locations(tmp_path, mirror):
    held = study(tmp_path, holdout={"dataset": "disneyland", "by": "context",
                                    "groups": ["Australia", "United Kingdom"]})
    plans = plan_runs(held)
    assert [(p.run_dir.parent.name, p.holdout_group) for p in plans] == [
        ("disneyland", None), ("disneyland@holdout-Australia", "Australia"),
        ("disneyland@holdout-United_Kingdom", "United Kingdom")]
    assert plans[1].params["holdout_by"] == "context" and "holdout_by" not in plans[0].params
    assert holdout.column(study(tmp_path, holdout={"dataset": "disneyland", "by": "Reviewer_Location"})) == "context"
    spec = dataclasses.replace(config.get_dataset("disneyland"), holdout_group="Australia", holdout_by="context")
    splits = load_splits(spec, config.load_preset("quick"), 1)
    assert set(splits.test["context"]) == {"Australia"} and "Australia" not in set(splits.train["context"])
    assert "holdout:context:Australia" in splits.source


def test_all_skips_groups_under_min_group_size_and_says_so(tmp_path, mirror, caplog):
    held = study(tmp_path, holdout={"dataset": "disneyland", "by": "context", "groups": "all", "min_group_size": 150})
    sizes = value_counts(config.get_dataset("disneyland"), "context")
    with caplog.at_level(logging.WARNING):
        chosen = holdout.groups(held)
    assert chosen == sorted(sizes[sizes >= 150].index) and len(chosen) >= 2
    small = holdout.skipped(held)
    assert small and all(n < 150 for n in small.values()) and set(small) | set(chosen) == set(sizes.index)
    assert "under min_group_size 150" in caplog.text
    # the table (and the report) list the skipped groups beside the held-out runs
    folder = tmp_path / "runs"
    write_yaml(folder / holdout.folder_name("disneyland", chosen[0]) / "minilm-l6" / "params.yaml",
               {"holdout_group": chosen[0], "holdout_by": "context"})
    table = holdout.table(folder, "disneyland", held)
    assert table["by"].eq("context").all()
    assert table.loc[table["status"].str.startswith("not held out"), "group"].tolist() == list(small)
    section = holdout.report_markdown(folder, "disneyland", held)
    assert section.startswith("## Leave-one-context-out on disneyland")
    assert "under the holdout's min_group_size" in section


def test_the_table_reads_the_in_distribution_run_by_context(tmp_path):
    (tmp_path / "disneyland" / "minilm-l6").mkdir(parents=True)
    write_yaml(tmp_path / holdout.folder_name("disneyland", "Kenya") / "minilm-l6" / "params.yaml",
               {"holdout_group": "Kenya", "holdout_by": "context"})
    test = pd.DataFrame({"text": list("wxyz"), "label": [0, 1, 0, 1], "group": ["P", "P", "Q", "Q"],
                         "context": ["Kenya", "Peru", "Kenya", "Peru"]})
    fake_run(tmp_path / "disneyland" / "minilm-l6", 0.5, test=test)
    fake_run(tmp_path / "disneyland@holdout-Kenya" / "minilm-l6", 0.75)
    row = holdout.table(tmp_path, "disneyland").iloc[0]
    assert (row["by"], row["in_dist_group_rows"], row["in_dist_group_accuracy"]) == ("context", 2, 0.5)


@pytest.mark.parametrize("hold, message", [
    ({"dataset": "disneyland", "by": "Rating"}, r"holdout.by 'Rating' is not a column dataset 'disneyland' keeps"),
    ({"dataset": "finefoods", "by": "context"}, r"dataset 'finefoods' has no context_column"),
    ({"dataset": "disneyland", "min_group_size": 0}, r"min_group_size must be a positive number of rows"),
    ({"dataset": "disneyland", "size": 3}, r"holdout must be \{dataset: <id>, by: group \| context"),
])
def test_a_bad_by_or_min_group_size_is_a_config_error(tmp_path, hold, message):
    with pytest.raises(config.ConfigError, match=message):
        study(tmp_path, datasets=["disneyland", "finefoods"], holdout=hold)
