"""The study runner: every stage notebook once per model x dataset x seed through papermill,
then the comparison per dataset, then the report.

Finished runs are reused (their params.yaml must match), every written file lands atomically,
and a model whose notebook fails is recorded as failed while the others go on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from helpers import config
from helpers.config import Study
from helpers.core.io import atomic_write_text, write_json, write_yaml
from helpers.core.paths import bench_notebook, display_path, experiments_dir, reports_dir, resolve
from helpers.pipeline import holdout
from helpers.pipeline.notebooks import error_summary, execute_notebook, reproduce_command, sync_notebooks
from helpers.pipeline.run import STAGES

log = logging.getLogger(__name__)
COMPARE_STAGE = "05_compare"
BENCH_STAGE = "06_bench"


@dataclass
class RunPlan:
    model: str
    dataset: str
    seed: int
    run_dir: Path
    params: dict[str, Any]
    holdout_group: str | None = None


@dataclass
class StudyOutcome:
    study: str
    done: list[RunPlan] = field(default_factory=list)
    reused: list[RunPlan] = field(default_factory=list)
    failed: list[tuple[RunPlan, str, str]] = field(default_factory=list)  # plan, stage, error
    report_html: Path | None = None
    report_pdf: Path | None = None


def study_dir(study: Study) -> Path:
    return experiments_dir() / study.name


def _dataset_runs(study: Study, dataset: str, folder: Path, holdout_group: str | None = None) -> list[RunPlan]:
    """One run per model x seed in a dataset folder; a seed suffix only when the study has several."""
    plans = []
    for model in study.models:
        for seed in study.seeds:
            run_dir = folder / (model if len(study.seeds) == 1 else f"{model}-seed{seed}")
            params = {
                "model": model, "dataset": dataset, "preset": study.preset, "seed": seed,
                "run_dir": display_path(run_dir), "data_dir": study.data_dir,
                "overrides": study.overrides, "study": study.name,
            }
            if holdout_group is not None:  # only then: earlier runs' params.yaml stay as they were
                params["holdout_group"] = holdout_group
            plans.append(RunPlan(model, dataset, seed, run_dir, params, holdout_group))
    return plans


def plan_runs(study: Study) -> list[RunPlan]:
    """One run per dataset x model x seed, then one per held-out group x model x seed."""
    plans = [plan for name in study.datasets for plan in _dataset_runs(study, name, study_dir(study) / name)]
    for group in holdout.groups(study):
        dataset = study.holdout["dataset"]
        folder = study_dir(study) / holdout.folder_name(dataset, group)
        plans += _dataset_runs(study, dataset, folder, group)
    return plans


def _prepare_run_dir(plan: RunPlan, force: bool) -> bool:
    """True when the run must execute; False when its finished results are reused."""
    params_file = plan.run_dir / "params.yaml"
    results = plan.run_dir / "results.json"
    if results.exists() and not force:
        recorded = yaml.safe_load(params_file.read_text()) if params_file.exists() else None
        if recorded == plan.params:
            return False
        raise config.ConfigError(
            f"{plan.run_dir} holds results made with other parameters; rerun with --force to replace "
            f"them, or give the study another name"
        )
    # What an earlier attempt left must not mix with this one (e.g. in the report).
    stale = [plan.run_dir / name for name in ("results.json", "failed.json", "predictions.csv")]
    stale += list(plan.run_dir.glob("0*_*.ipynb")) + list(plan.run_dir.glob("stages/*.json"))
    for path in stale:
        path.unlink(missing_ok=True)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(params_file, plan.params)
    atomic_write_text(plan.run_dir / "reproduce.sh", "#!/usr/bin/env bash\n# Rerun any stage of this run from the project root.\nset -e\n"
                      + "".join(reproduce_command(stage, plan.run_dir) + "\n" for stage in STAGES))
    return True


def run_study(study_path: str | Path, force: bool = False, report: bool = True) -> StudyOutcome:
    """Run a study end to end; see `senticompare run --help`."""
    study = config.load_study(study_path)
    notebooks = sync_notebooks()
    plans = plan_runs(study)
    outcome = StudyOutcome(study.name)
    todo = [plan for plan in plans if _prepare_run_dir(plan, force)]
    outcome.reused = [plan for plan in plans if plan not in todo]
    bar = tqdm(total=len(todo) * len(STAGES), desc=study.name, unit="stage", disable=not todo)
    for plan in todo:
        for i, stage in enumerate(STAGES):
            bar.set_postfix_str(f"{plan.run_dir.parent.name}/{plan.run_dir.name} {stage}")
            try:
                execute_notebook(notebooks[stage], plan.run_dir / f"{stage}.ipynb", plan.params)
            except Exception as exc:  # a failed model must not take the study down
                error = error_summary(exc)
                log.error("%s/%s failed in %s: %s", plan.run_dir.parent.name, plan.run_dir.name, stage, error)
                write_json(plan.run_dir / "failed.json", {"stage": stage, "error": error, "params": plan.params})
                outcome.failed.append((plan, stage, error))
                bar.update(len(STAGES) - i)
                break
            bar.update(1)
        else:
            outcome.done.append(plan)
    bar.close()
    for dataset in study.datasets:
        compare_dir = study_dir(study) / dataset
        execute_notebook(notebooks[COMPARE_STAGE], compare_dir / f"{COMPARE_STAGE}.ipynb", {
            "study": study.name, "dataset": dataset,
            "study_dir": display_path(compare_dir),
            "weights": study.weights or {}, "seed": study.seeds[0],
        })
    for folder in study.benchmarks:
        execute_notebook(notebooks[BENCH_STAGE], bench_notebook(study_dir(study), folder),
                         {"bench_dir": display_path(resolve(folder))})
    if report:
        from helpers.report.stitch import build_report

        outcome.report_html, outcome.report_pdf = build_report(study, study_dir(study), reports_dir())
    return outcome
