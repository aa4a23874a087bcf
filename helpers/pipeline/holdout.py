"""Leave-one-group-out: which groups a study holds out, where those runs live, and the table
that sets each held-out group's result beside the in-distribution run's.

A study with `holdout: {dataset: disneyland, groups: all}` runs, besides the usual
`<study>/disneyland/<model>/`, one `<study>/disneyland@holdout-<group>/<model>/` per group,
trained on the other groups and tested on that group alone. `by: context` holds out values of the
entry's context_column instead (leave-one-context-out, e.g. a reviewer's location); with `groups:
all`, groups of fewer than `min_group_size` rows are not held out, with a warning and a line each
in the table.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import yaml
from sklearn.metrics import f1_score

from helpers import config
from helpers.config import Study
from helpers.core.io import read_json
from helpers.config.study import MIN_GROUP_SIZE, holdout_column
from helpers.data.records import DataError
from helpers.data.sources import value_counts
from helpers.report.escape import md

log = logging.getLogger(__name__)
SEPARATOR = "@holdout-"


def folder_name(dataset: str, group: str) -> str:
    """The dataset folder of a held-out group's runs; the group as a safe file name."""
    return f"{dataset}{SEPARATOR}{re.sub(r'[^A-Za-z0-9_.-]+', '_', group)}"


def column(study: Study) -> str:
    """The standardized column the study holds out values of: group (the default) or context."""
    return holdout_column(study.holdout.get("by", "group"), config.get_dataset(study.holdout["dataset"]))


def _sizes(study: Study) -> pd.Series:
    return value_counts(config.get_dataset(study.holdout["dataset"]), column(study), study.data_dir)


def skipped(study: Study) -> dict[str, int]:
    """With `groups: all`, the groups too small to hold out (under min_group_size rows): group -> rows."""
    if study.holdout is None or study.holdout.get("groups", "all") != "all":
        return {}
    sizes = _sizes(study)
    small = sizes[sizes < study.holdout.get("min_group_size", MIN_GROUP_SIZE)]
    return {str(group): int(rows) for group, rows in sorted(small.items())}


def groups(study: Study) -> list[str]:
    """The groups the study holds out: those it lists, or every group of the dataset's `by` column
    (`all`) with at least min_group_size rows (the smaller ones are named in a warning)."""
    if study.holdout is None:
        return []
    listed = study.holdout.get("groups", "all")
    if listed != "all":
        return list(listed)
    small = skipped(study)
    if small:
        log.warning("holdout on %s by %s: %d group(s) under min_group_size %d rows are not held out: %s",
                    study.holdout["dataset"], column(study), len(small),
                    study.holdout.get("min_group_size", MIN_GROUP_SIZE), small)
    return sorted(str(group) for group in _sizes(study).index if str(group) not in small)


def _group_scores(run_dir: Path, group: str, by: str = "group") -> tuple[int, float | None, float | None]:
    """Test rows, accuracy and macro F1 of an in-distribution run on one group's test rows (`by`:
    the column the group is a value of)."""
    test = pd.read_json(run_dir / "data" / "test.jsonl", lines=True, dtype={"text": str, by: str})
    predictions = pd.read_csv(run_dir / "predictions.csv").sort_values("example")
    groups_of_examples = test[by].to_numpy()[predictions["example"].to_numpy()]
    rows = predictions.loc[groups_of_examples == group]
    if rows.empty:
        return 0, None, None
    labels = list(range(len(read_json(run_dir / "data" / "card.json")["labels"])))
    return (len(rows), float((rows["label"] == rows["prediction"]).mean()),
            float(f1_score(rows["label"], rows["prediction"], labels=labels, average="macro", zero_division=0)))


def table(study_dir: Path, dataset: str, study: Study | None = None) -> pd.DataFrame:
    """One row per held-out group and run: its accuracy and macro F1 next to the in-distribution
    run's on the same group's test rows and on its whole test split (empty without held-out runs).
    Given the study, each group `groups: all` left out as too small adds a row that says so."""
    rows = []
    for folder in sorted(study_dir.glob(f"{dataset}{SEPARATOR}*")):
        for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            inside = study_dir / dataset / run_dir.name
            params = yaml.safe_load((run_dir / "params.yaml").read_text())
            by = params.get("holdout_by", "group")
            row = {"model": run_dir.name, "by": by, "group": params["holdout_group"]}
            if (run_dir / "results.json").is_file():
                held = read_json(run_dir / "results.json")
                row.update(status="done", test_rows=held["quality"]["test_examples"], accuracy=held["accuracy"],
                           f1=held["f1"])
            else:
                failed = run_dir / "failed.json"
                row["status"] = f"failed in {read_json(failed)['stage']}" if failed.is_file() else "not run"
            if (inside / "results.json").is_file():
                ours = read_json(inside / "results.json")
                n, accuracy, f1 = _group_scores(inside, row["group"], by)
                row.update(in_dist_group_rows=n, in_dist_group_accuracy=accuracy, in_dist_group_f1=f1,
                           in_dist_accuracy=ours["accuracy"], in_dist_f1=ours["f1"])
            rows.append(row)
    if rows and study is not None and study.holdout is not None and study.holdout["dataset"] == dataset:
        size = study.holdout.get("min_group_size", MIN_GROUP_SIZE)
        try:
            small = skipped(study)
        except DataError as exc:  # the data cannot be read here: the table without the note
            log.warning("holdout table of %s: the groups too small to hold out are not listed: %s", dataset, exc)
            small = {}
        rows += [{"model": "–", "by": column(study), "group": group,
                  "status": f"not held out: {n} rows, under min_group_size {size}"}
                 for group, n in small.items()]
    columns = ["model", "by", "group", "status", "test_rows", "accuracy", "f1", "in_dist_group_rows",
               "in_dist_group_accuracy", "in_dist_group_f1", "in_dist_accuracy", "in_dist_f1"]
    return pd.DataFrame(rows, columns=columns)


def report_markdown(study_dir: Path, dataset: str, study: Study | None = None) -> str | None:
    """The report's leave-one-group-out (or -context-out) section for a dataset, or None when it has
    no held-out runs."""
    found = table(study_dir, dataset, study)
    if found.empty:
        return None
    by = found["by"].iloc[0]
    view = found.rename(columns={
        "test_rows": "held-out test rows", "accuracy": "accuracy (held out)", "f1": "macro F1 (held out)",
        "in_dist_group_rows": "in-distribution test rows of the group",
        "in_dist_group_accuracy": "accuracy (in-distribution, same group)",
        "in_dist_group_f1": "macro F1 (in-distribution, same group)",
        "in_dist_accuracy": "accuracy (in-distribution, all groups)",
        "in_dist_f1": "macro F1 (in-distribution, all groups)",
    }).round(3)
    small = found["status"].str.startswith("not held out").sum()
    note = (f" {small} {by} value(s) under the holdout's min_group_size are too small to test on alone: they "
            f"are listed as not held out (and stay in every training split)." if small else "")
    return (f"## Leave-one-{md(by)}-out on {md(dataset)}\n\n"
            f"Each held-out run trains on the other groups (values of its {md(by)} column) and is tested on its "
            f"group alone; the in-distribution run trains on all groups. Its scores on the same group's rows of its "
            f"own test split compare like with like (mind their count). The runs are in "
            f"{md(dataset)}{SEPARATOR}&lt;group&gt;/.{note}\n\n"
            + view.to_html(index=False, na_rep="–", border=0))
