"""Leave-one-group-out: which groups a study holds out, where those runs live, and the table
that sets each held-out group's result beside the in-distribution run's.

A study with `holdout: {dataset: disneyland, groups: all}` runs, besides the usual
`<study>/disneyland/<model>/`, one `<study>/disneyland@holdout-<group>/<model>/` per group,
trained on the other groups and tested on that group alone.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml
from sklearn.metrics import f1_score

from helpers import config
from helpers.config import Study
from helpers.core.io import read_json
from helpers.data.sources import group_values
from helpers.report.escape import md

SEPARATOR = "@holdout-"


def folder_name(dataset: str, group: str) -> str:
    """The dataset folder of a held-out group's runs; the group as a safe file name."""
    return f"{dataset}{SEPARATOR}{re.sub(r'[^A-Za-z0-9_.-]+', '_', group)}"


def groups(study: Study) -> list[str]:
    """The groups the study holds out: those it lists, or every group of the dataset (`all`)."""
    if study.holdout is None:
        return []
    listed = study.holdout.get("groups", "all")
    if listed != "all":
        return list(listed)
    return group_values(config.get_dataset(study.holdout["dataset"]), study.data_dir)


def _group_scores(run_dir: Path, group: str) -> tuple[int, float | None, float | None]:
    """Test rows, accuracy and macro F1 of an in-distribution run on one group's test rows."""
    test = pd.read_json(run_dir / "data" / "test.jsonl", lines=True, dtype={"text": str, "group": str})
    predictions = pd.read_csv(run_dir / "predictions.csv").sort_values("example")
    groups_of_examples = test["group"].to_numpy()[predictions["example"].to_numpy()]
    rows = predictions.loc[groups_of_examples == group]
    if rows.empty:
        return 0, None, None
    labels = list(range(len(read_json(run_dir / "data" / "card.json")["labels"])))
    return (len(rows), float((rows["label"] == rows["prediction"]).mean()),
            float(f1_score(rows["label"], rows["prediction"], labels=labels, average="macro", zero_division=0)))


def table(study_dir: Path, dataset: str) -> pd.DataFrame:
    """One row per held-out group and run: its accuracy and macro F1 next to the in-distribution
    run's on the same group's test rows and on its whole test split (empty without held-out runs)."""
    rows = []
    for folder in sorted(study_dir.glob(f"{dataset}{SEPARATOR}*")):
        for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            inside = study_dir / dataset / run_dir.name
            params = yaml.safe_load((run_dir / "params.yaml").read_text())
            row = {"model": run_dir.name, "group": params["holdout_group"]}
            if (run_dir / "results.json").is_file():
                held = read_json(run_dir / "results.json")
                row.update(status="done", test_rows=held["quality"]["test_examples"], accuracy=held["accuracy"],
                           f1=held["f1"])
            else:
                failed = run_dir / "failed.json"
                row["status"] = f"failed in {read_json(failed)['stage']}" if failed.is_file() else "not run"
            if (inside / "results.json").is_file():
                ours = read_json(inside / "results.json")
                n, accuracy, f1 = _group_scores(inside, row["group"])
                row.update(in_dist_group_rows=n, in_dist_group_accuracy=accuracy, in_dist_group_f1=f1,
                           in_dist_accuracy=ours["accuracy"], in_dist_f1=ours["f1"])
            rows.append(row)
    columns = ["model", "group", "status", "test_rows", "accuracy", "f1", "in_dist_group_rows",
               "in_dist_group_accuracy", "in_dist_group_f1", "in_dist_accuracy", "in_dist_f1"]
    return pd.DataFrame(rows, columns=columns)


def report_markdown(study_dir: Path, dataset: str) -> str | None:
    """The report's leave-one-group-out section for a dataset, or None when it has no held-out runs."""
    found = table(study_dir, dataset)
    if found.empty:
        return None
    view = found.rename(columns={
        "test_rows": "held-out test rows", "accuracy": "accuracy (held out)", "f1": "macro F1 (held out)",
        "in_dist_group_rows": "in-distribution test rows of the group",
        "in_dist_group_accuracy": "accuracy (in-distribution, same group)",
        "in_dist_group_f1": "macro F1 (in-distribution, same group)",
        "in_dist_accuracy": "accuracy (in-distribution, all groups)",
        "in_dist_f1": "macro F1 (in-distribution, all groups)",
    }).round(3)
    return (f"## Leave-one-group-out on {md(dataset)}\n\n"
            f"Each held-out run trains on the other groups and is tested on its group alone; the "
            f"in-distribution run trains on all groups. Its scores on the same group's rows of its own test "
            f"split compare like with like (mind their count). The runs are in "
            f"{md(dataset)}{SEPARATOR}&lt;group&gt;/.\n\n"
            + view.to_html(index=False, na_rep="–", border=0))
