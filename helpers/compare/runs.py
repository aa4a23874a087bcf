"""A dataset's finished runs read back for comparison: their results.json as one table, their
predictions for paired tests, reliability diagrams and risk-coverage curves.

Which columns the table has comes from the metric registry (helpers/metrics.py): a registered
metric is read from the top level of results.json or from its `quality` block. Calibration,
selective prediction, conformal sets, base-model baselines and per-group numbers are read where a
run recorded them (older runs simply leave those cells empty).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import metrics
from helpers.core.io import read_json
from helpers.evaluate import calibration, selective, significance
from helpers.labels import compare as label_compare

GROUP_METRICS = ("accuracy", "f1", "ece")
BASELINE_COLUMN = re.compile(r"^baseline_(?P<setting>\d+-shot)_(?P<metric>.+)$")  # e.g. baseline_0-shot_f1
RUN_COLUMNS = ["model", "seed", "run"]


def _derived_columns(quality: dict) -> dict:
    """The comparison's own columns (metric registry source `comparison`) from a run's quality block."""
    return {
        "accuracy_ci95": quality.get("accuracy_ci95"),
        "f1_ci95": quality.get("f1_ci95"),
        "baseline_accuracy": (quality.get("baseline_majority") or {}).get("accuracy"),
        "p_vs_majority": (quality.get("vs_majority") or {}).get("p_value"),
        "accuracy_raw_argmax": (quality.get("raw_argmax") or {}).get("accuracy"),
        "f1_raw_argmax": (quality.get("raw_argmax") or {}).get("f1"),
        # multi-label and regression runs (helpers/labels/): their CIs and trivial baselines
        **{f"{key}_ci95": quality.get(f"{key}_ci95") for key in ("micro_f1", "macro_f1", "mae", "r2")},
        "baseline_micro_f1": max((b.get("micro_f1", 0.0) for b in (quality.get("baselines") or {}).values()),
                                 default=None) if quality.get("label_type") == "multi" else None,
        "baseline_mae": ((quality.get("baselines") or {}).get("train_mean") or {}).get("mae"),
    }


def _baseline_columns(quality: dict) -> dict:
    """`baseline_<setting>_<metric>` for every base-model setting a run recorded (e.g. 0-shot)."""
    return {f"baseline_{setting}_{metric}": value
            for setting, values in (quality.get("baseline") or {}).items()
            for metric, value in values.items() if isinstance(value, (int, float))}


def _group_columns(quality: dict) -> dict:
    """Worst group, its value and the largest gap per headline metric, where a run has groups."""
    groups = quality.get("per_group")
    if not groups:
        return {}
    judged = [name for name, row in groups["groups"].items() if not row.get("small")]  # older runs listed all
    columns = {"groups_judged": len(judged), "groups_small": len(groups.get("small_groups", []))}
    for metric in GROUP_METRICS:
        if metric in groups.get("worst", {}):
            columns[f"worst_group_{metric}"] = groups["worst_group"][metric]
            columns[f"worst_{metric}"] = groups["worst"][metric]
            columns[f"gap_{metric}"] = groups["gap"][metric]
    return columns


def results_table(results: list[dict]) -> pd.DataFrame:
    """One row per run from the runs' results.json: every registered metric (helpers/metrics.py)
    with the majority baseline and the CIs beside it and, where recorded, the base-model and
    per-group numbers."""
    top, quality_keys = metrics.keys(source="top"), metrics.keys(source="quality")
    rows = []
    for r in results:
        quality = r.get("quality", {})
        row = {"model": r["model_name"], "seed": r.get("seed"), "run": r.get("run", r["model_name"]),
               "label_type": r.get("label_type", "single"),
               **{k: r.get(k) for k in top}, **_derived_columns(quality), **{k: quality.get(k) for k in quality_keys}}
        if row["selective_target_reached"] is not None:  # a share of seeds once averaged
            row["selective_target_reached"] = float(row["selective_target_reached"])
        row.update(_baseline_columns(quality))
        row.update(_group_columns(quality))
        row["data_fingerprint"] = r.get("data_fingerprint")
        row["test_examples"] = quality.get("test_examples")  # page one's "on N test examples"
        rows.append(row)
    fixed = [*RUN_COLUMNS, "label_type", *top, *_derived_columns({}), *quality_keys, "data_fingerprint",
             "test_examples"]
    extra = sorted({k for row in rows for k in row} - set(fixed))
    return pd.DataFrame(rows, columns=[*fixed, *extra])


def correctness(dataset_dir: Path, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-example right/wrong of each model on the shared test split (for paired tests): a run's
    `correct` column where it has one (a task run's scored answers), else label == prediction."""
    if table["data_fingerprint"].nunique() > 1:
        raise ValueError("the runs were evaluated on different test splits (data fingerprints differ); "
                         "paired tests need the same dataset, preset and seed for every model")
    return {model: run_correct(dataset_dir / run)[0].to_numpy()
            for model, run in zip(table["model"], table["run"], strict=True)}


def run_correct(run_dir: Path) -> tuple[pd.Series, np.ndarray]:
    """A run's per-example right/wrong, indexed by example in order, and its labels (a task run's
    references) in the same order: its predictions' `correct` column where it has one (a task run's
    scored answers), else label == prediction."""
    predictions = pd.read_csv(run_dir / "predictions.csv").sort_values("example").set_index("example")
    correct = (predictions["correct"].astype(bool) if "correct" in predictions
               else predictions["label"] == predictions["prediction"])
    truth = next((c for c in ("label", "reference") if c in predictions), None)
    labels = predictions[truth].to_numpy() if truth else np.array([])
    return correct.rename("correct"), labels


def label_type_of(table: pd.DataFrame) -> str:
    """The label type every run of a dataset shares (single for runs recorded before label types)."""
    found = set(table["label_type"].fillna("single")) if "label_type" in table else {"single"}
    if len(found) > 1:
        raise ValueError(f"the runs of one dataset have different label types {sorted(found)}; compare them "
                         f"in separate studies")
    return found.pop() if found else "single"


def pairwise_by_seed(dataset_dir: Path, table: pd.DataFrame, labels: list[str] | None = None) -> pd.DataFrame:
    """Exact McNemar (Holm-corrected) between the models of each seed: one seed's models share
    the test split, different seeds do not. Multi-label and regression runs: the paired bootstrap of
    micro-F1 or MAE instead (helpers/labels/compare.py), given the runs' `labels`."""
    label_type = label_type_of(table)
    columns = significance.PAIRWISE_COLUMNS if label_type == "single" else label_compare.PAIRWISE_COLUMNS
    frames = []
    for seed, runs in table.groupby("seed", sort=True, dropna=False):
        if label_type == "single":
            tests = significance.pairwise_mcnemar(correctness(dataset_dir, runs))
        else:
            if runs["data_fingerprint"].nunique() > 1:
                raise ValueError("the runs were evaluated on different test splits (data fingerprints differ); "
                                 "paired tests need the same dataset, preset and seed for every model")
            tests = label_compare.pairwise(dataset_dir, runs, label_type, labels or [], seed=int(seed or 0))
        frames.append(tests.assign(seed=seed)[["seed", *columns]])
    if not frames:
        return pd.DataFrame(columns=["seed", *columns])
    return pd.concat(frames, ignore_index=True)


def run_probabilities(run_dir: Path, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities of a run from its predictions.csv, in label order: the
    recalibrated ones the decisions read (`prob_<label>`), or with `raw` the network's own
    (`raw_prob_<label>`; runs recorded before recalibration have only `prob_`, which were raw)."""
    predictions = pd.read_csv(run_dir / "predictions.csv").sort_values("example")
    columns = [c for c in predictions.columns if c.startswith("prob_")]
    raw_columns = [c for c in predictions.columns if c.startswith("raw_prob_")]
    return predictions["label"].to_numpy(), predictions[raw_columns if raw and raw_columns else columns].to_numpy()


def _has_probabilities(run_dir: Path) -> bool:
    path = run_dir / "predictions.csv"
    return path.is_file() and any(c.startswith("prob_") for c in pd.read_csv(path, nrows=0).columns)


def _pooled(dataset_dir: Path, table: pd.DataFrame, raw: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every model's test labels and probabilities (see run_probabilities), its seeds' test splits
    pooled; a task run has no class probabilities and is left out."""
    pooled = {}
    for model, runs in table.groupby("model", sort=False):
        found = [run_probabilities(dataset_dir / run, raw) for run in runs["run"]
                 if _has_probabilities(dataset_dir / run)]
        if found:
            pooled[model] = (np.concatenate([y for y, _ in found]), np.concatenate([p for _, p in found]))
    return pooled


def reliability_curves(dataset_dir: Path, table: pd.DataFrame, n_bins: int = 15) -> dict[str, pd.DataFrame]:
    """Reliability-diagram data per model (equal-width bins) of the network's own probabilities, as
    the ECE column, read from the runs' predictions."""
    return {model: calibration.reliability(y, p, n_bins)
            for model, (y, p) in _pooled(dataset_dir, table, raw=True).items()}


def risk_coverage_curves(dataset_dir: Path, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Risk-coverage curve per model, read from the runs' predictions."""
    return {model: selective.risk_coverage(y, p) for model, (y, p) in _pooled(dataset_dir, table).items()}


def ece_bins(results: list[dict], default: int = 15) -> int:
    """The ECE bin count the runs were evaluated with (their preset's), so the diagrams match the tables."""
    for r in results:
        bins = r.get("quality", {}).get("ece_bins")
        if bins:
            return int(bins)
    return default


STAGE_NOTEBOOK = re.compile(r"^\.?(?P<stage>0[1-4]_[a-z]+)(\.(?P<state>failed|tmp))?\.ipynb$")
FAILED, UNFINISHED = "failed", "not finished"
UNFINISHED_NOTE = "the study stopped before this run ended (killed, or out of time); run the study again to finish it"


def unfinished(run_dir: Path) -> dict | None:
    """A planned run (it has params.yaml) that neither finished nor recorded a failure, as a failure
    record with the stage it stopped in (`not started` before 01_data); None for a finished or failed run."""
    if not (run_dir / "params.yaml").is_file() or any((run_dir / f).exists() for f in ("results.json", "failed.json")):
        return None
    found = [m for p in run_dir.iterdir() if (m := STAGE_NOTEBOOK.match(p.name))]
    stopped = sorted(m["stage"] for m in found if m["state"])  # a stage's temporary or failed notebook
    done = sorted(m["stage"] for m in found if not m["state"])
    stage = stopped[-1] if stopped else f"after {done[-1]}" if done else "not started"
    return {"run": run_dir.name, "status": UNFINISHED, "stage": stage, "error": UNFINISHED_NOTE}


def stopped_where(stage: str) -> str:
    """An unfinished run's stage as words: `in 02_train`, `after 01_data` or `not started`."""
    return stage if stage == "not started" or stage.startswith("after ") else f"in {stage}"


def collect_runs(dataset_dir: Path) -> tuple[list[dict], list[dict]]:
    """Results and failures of every run under one dataset of a study; each result names its run
    folder. A run the study has not finished (see `unfinished`) is listed with the failures, by its status."""
    results, failures = [], []
    for run_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
        if (run_dir / "failed.json").exists():
            failures.append({"run": run_dir.name, "status": FAILED, **read_json(run_dir / "failed.json")})
        elif (run_dir / "results.json").exists():
            results.append({**read_json(run_dir / "results.json"), "run": run_dir.name})
        elif (pending := unfinished(run_dir)) is not None:
            failures.append(pending)
    return results, failures
