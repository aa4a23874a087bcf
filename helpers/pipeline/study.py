"""The study runner: every stage notebook once per model x dataset x seed through papermill,
then the comparison per dataset, then the report.

Finished runs are reused (their params.yaml must match, and so must the settings today's code
resolves from it: helpers/pipeline/recorded.py), every written file lands atomically,
and a model whose notebook fails is recorded as failed while the others go on. Before any
training, every dataset is loaded and checked for every seed. One runner holds a study at a time
(helpers/pipeline/lock.py). `--force` replaces a finished run only once its new run has finished:
the old folder waits in `<study>/.replaced/` meanwhile and comes back if the new run fails or is
killed (at the next start of the study). What a killed attempt left in a run folder (temporary
notebooks, a half-trained adapter, stage records) is cleared before the run executes again.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from tqdm.auto import tqdm

from helpers import config
from helpers.config import Study
from helpers.core import progress
from helpers.core.io import atomic_write_text, write_json, write_yaml
from helpers.core.paths import bench_notebook, display_path, experiments_dir, reports_dir, resolve
from helpers.data import load_splits
from helpers.pipeline import adapters, executors, holdout
from helpers.pipeline.lock import study_lock
from helpers.pipeline.notebooks import (clean_kernel_leftovers, error_summary, execute_notebook,
                                        pin_threads_in_reproduce, reproduce_command, sync_notebooks)
from helpers.pipeline.run import STAGES, open_run

log = logging.getLogger(__name__)
COMPARE_STAGE = "05_compare"
BENCH_STAGE = "06_bench"
REPLACED = ".replaced"  # finished runs being replaced under --force, until their new run finishes
FAILED_ATTEMPTS = ".failed-attempts"  # a --force attempt that failed, kept for inspection
# What an attempt leaves in a run folder that must not mix with the next one (e.g. in the report).
PROGRESS_FILE = ".progress.json"  # the running stage's own progress (helpers/core/progress.py)
ATTEMPT_FILES = (PROGRESS_FILE, "results.json", "failed.json", "predictions.csv", "0*_*.ipynb", ".0*_*.tmp.ipynb",
                 "stages", "adapter", ".adapter.tmp", ".trainer-*")


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


def _dataset_runs(study: Study, dataset: str, folder: Path, holdout_group: str | None = None,
                  holdout_by: str = "group") -> list[RunPlan]:
    """One run per model (and adapter used as trained) x seed in a dataset folder; a seed suffix only
    when the study has several."""
    plans = []
    for model in [*study.models, *study.adapters]:
        for seed in study.seeds:
            run_dir = folder / (model if len(study.seeds) == 1 else f"{model}-seed{seed}")
            params = {
                "model": model, "dataset": dataset, "preset": study.preset, "seed": seed,
                "run_dir": display_path(run_dir), "data_dir": study.data_dir,
                "overrides": config.run_overrides(study, dataset), "study": study.name,
            }
            if model in study.adapters:
                params["adapter"] = study.adapters[model]
            if holdout_group is not None:  # only then: earlier runs' params.yaml stay as they were
                params["holdout_group"] = holdout_group
                if holdout_by != "group":  # by: context (a study's by: group keeps its earlier params.yaml)
                    params["holdout_by"] = holdout_by
            plans.append(RunPlan(model, dataset, seed, run_dir, params, holdout_group))
    return plans


def plan_runs(study: Study) -> list[RunPlan]:
    """One run per dataset x model x seed, then one per held-out group x model x seed."""
    plans = [plan for name in study.datasets for plan in _dataset_runs(study, name, study_dir(study) / name)]
    for group in holdout.groups(study):
        dataset = study.holdout["dataset"]
        folder = study_dir(study) / holdout.folder_name(dataset, group)
        plans += _dataset_runs(study, dataset, folder, group, holdout.column(study))
    return plans


def _aside(study_root: Path, run_dir: Path, kind: str) -> Path:
    return study_root / kind / run_dir.relative_to(study_root)


def recover_replaced(study_root: Path) -> list[Path]:
    """Finish what a killed `--force` left: a run whose new attempt did not finish gets its old
    folder back; one whose new attempt finished loses the old copy. Returns the restored runs."""
    restored = []
    for backup in sorted(p.parent for p in (study_root / REPLACED).glob("**/params.yaml")):
        run_dir = study_root / backup.relative_to(study_root / REPLACED)
        if (run_dir / "results.json").is_file():
            shutil.rmtree(backup)
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(backup, run_dir)
        restored.append(run_dir)
        log.warning("%s: an interrupted --force left it unfinished; its previous results are restored", run_dir)
    return restored


def clear_attempt(run_dir: Path) -> None:
    """Remove what an earlier attempt left in a run folder (the saved data splits stay: 01_data rewrites them)."""
    for pattern in ATTEMPT_FILES:
        for path in run_dir.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _reusable(plan: RunPlan, force: bool) -> bool:
    """True when the run finished with the parameters and settings the study plans for it; an error
    when it finished with others (so a study checks every run before it touches any folder)."""
    results = plan.run_dir / "results.json"
    if not results.exists() or force:
        return False
    params_file = plan.run_dir / "params.yaml"
    recorded = yaml.safe_load(params_file.read_text()) if params_file.exists() else None
    if recorded != plan.params:
        raise config.ConfigError(
            f"{plan.run_dir} holds results made with other parameters; rerun with --force to replace "
            f"them, or give the study another name"
        )
    open_run(**plan.params)  # stops when today's code resolves other settings than results.json recorded
    return True


def _prepare_run_dir(plan: RunPlan, study_root: Path) -> None:
    """Make the folder of a run that must execute. A finished run (under --force) is moved aside
    (see the module docstring), never deleted before its replacement exists."""
    params_file = plan.run_dir / "params.yaml"
    results = plan.run_dir / "results.json"
    if results.exists():
        backup = _aside(study_root, plan.run_dir, REPLACED)
        shutil.rmtree(backup, ignore_errors=True)
        backup.parent.mkdir(parents=True, exist_ok=True)
        os.replace(plan.run_dir, backup)
    clear_attempt(plan.run_dir)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(params_file, plan.params)
    atomic_write_text(plan.run_dir / "reproduce.sh", "#!/usr/bin/env bash\n# Rerun any stage of this run from the project root.\nset -e\n"
                      + "".join(reproduce_command(stage, plan.run_dir) + "\n" for stage in STAGES))


def _settle(plan: RunPlan, study_root: Path, succeeded: bool) -> None:
    """After a run executed: drop the copy it replaced, or, when it failed, put that copy back and
    keep the failed attempt under .failed-attempts/ for inspection."""
    backup = _aside(study_root, plan.run_dir, REPLACED)
    if not backup.exists():
        return
    if succeeded:
        shutil.rmtree(backup)
        return
    kept = _aside(study_root, plan.run_dir, FAILED_ATTEMPTS)
    shutil.rmtree(kept, ignore_errors=True)
    kept.parent.mkdir(parents=True, exist_ok=True)
    os.replace(plan.run_dir, kept)
    os.replace(backup, plan.run_dir)
    log.warning("%s: the --force attempt failed; the previous results are kept (the attempt is in %s)",
                plan.run_dir, kept)


def check_data(study: Study) -> None:
    """Load and check every dataset of the study for every seed (and held-out group) before any
    training: a data error stops the study here, once, not inside each model's 01_data. The adapters
    a study lists are checked against its datasets here too."""
    adapters.check_study(study)
    specs = [config.get_dataset(name) for name in study.datasets]
    for group in holdout.groups(study):
        spec = config.get_dataset(study.holdout["dataset"])
        specs.append(dataclasses.replace(spec, holdout_group=group, holdout_by=holdout.column(study)))
    for spec in specs:
        preset = config.apply_overrides(config.load_preset(study.preset), config.run_overrides(study, spec.id))
        for seed in study.seeds:
            load_splits(spec, preset, seed, study.data_dir)


def run_study(study_path: str | Path, force: bool = False, report: bool = True, executor: str | None = None,
              max_workers: int | None = None, address: str | None = None) -> StudyOutcome:
    """Run a study end to end; see `senticompare run --help`. `executor`, `max_workers` and the Ray
    `address` replace the study's own (helpers/pipeline/executors.py)."""
    study = config.load_study(study_path)
    if executor is not None or max_workers is not None or address is not None:
        study = dataclasses.replace(study, executor=executor or study.executor,
                                    max_workers=max_workers or study.max_workers,
                                    ray=dataclasses.replace(study.ray, address=address or study.ray.address))
    root = study_dir(study)
    with study_lock(root, study.name):
        check_data(study)
        clean_kernel_leftovers()
        recover_replaced(root)
        return _run(study, root, force, report)


class NotebookStages:
    """The stage runner the executors call (helpers/pipeline/executors.py): stages of one run, each
    notebook executed through papermill into the run folder, the stage's progress on the bar; the
    first failure recorded in failed.json and returned. Pickled (for a Ray task), it travels
    without the bar, its notebooks named relative to the project, and runs the same way in the
    other process with that process's checkout."""

    def __init__(self, notebooks: dict[str, Path], bar: tqdm | None = None) -> None:
        self.notebooks, self.bar = notebooks, bar

    def __getstate__(self) -> dict[str, Any]:
        return {"notebooks": {stage: display_path(path) for stage, path in self.notebooks.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.notebooks, self.bar = {stage: resolve(path) for stage, path in state["notebooks"].items()}, None

    def _show(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def _advance(self, stages: int) -> None:
        if self.bar is not None:
            self.bar.update(stages)

    def __call__(self, plan: RunPlan, stages: Sequence[str], env: dict[str, str]) -> executors.Failure | None:
        for stage in stages:
            where = f"{plan.run_dir.parent.name}/{plan.run_dir.name} {stage}"
            self._show(where)
            try:
                with progress.shown(plan.run_dir / PROGRESS_FILE,
                                    lambda line, where=where: self._show(f"{where} · {line}")) as progress_env:
                    pin_threads_in_reproduce(plan.run_dir, stage, env)
                    execute_notebook(self.notebooks[stage], plan.run_dir / f"{stage}.ipynb", plan.params,
                                     env={**env, **progress_env})
            except Exception as exc:  # a failed model must not take the study down
                error = error_summary(exc)
                log.error("%s/%s failed in %s: %s", plan.run_dir.parent.name, plan.run_dir.name, stage, error)
                _record_failure(plan, stage, error)
                self._advance(len(STAGES) - STAGES.index(stage))
                return executors.Failure(stage, error)
            self._advance(1)
        return None


def _record_failure(plan: RunPlan, stage: str, error: str) -> None:
    write_json(plan.run_dir / "failed.json", {"stage": stage, "error": error, "params": plan.params})


def _lost_stage(plan: RunPlan) -> str:
    """The stage a run lost with its worker was in: the first without a record."""
    return next((stage for stage in STAGES if not (plan.run_dir / "stages" / f"{stage}.json").is_file()), STAGES[-1])


def _run(study: Study, root: Path, force: bool, report: bool) -> StudyOutcome:
    notebooks = sync_notebooks()
    plans = plan_runs(study)
    outcome = StudyOutcome(study.name)
    outcome.reused = [plan for plan in plans if _reusable(plan, force)]
    todo = [plan for plan in plans if plan not in outcome.reused]
    for plan in todo:
        _prepare_run_dir(plan, root)
    remote = study.executor in executors.REMOTE  # it shows its own bar, of runs done
    bar = tqdm(total=len(todo) * len(STAGES), desc=study.name, unit="stage", disable=not todo or remote)
    failures = executors.get(study.executor)(todo, NotebookStages(notebooks, bar), STAGES, study.max_workers,
                                             study.ray)
    for plan, failure in zip(todo, failures, strict=True):
        if failure is not None and failure.stage is None:
            failure = dataclasses.replace(failure, stage=_lost_stage(plan))
        if failure is not None and not (plan.run_dir / "failed.json").is_file():
            _record_failure(plan, failure.stage, failure.error)
        _settle(plan, root, succeeded=failure is None)
        if failure is None:
            outcome.done.append(plan)
        else:
            outcome.failed.append((plan, failure.stage, failure.error))
    bar.close()
    _compare_and_report(study, root, notebooks, outcome, report)
    return outcome


def _compare_and_report(study: Study, root: Path, notebooks: dict[str, Path], outcome: StudyOutcome,
                        report: bool) -> None:
    """05_compare per dataset that has a run folder, 06_bench per benchmark folder, then the report."""
    for dataset in study.datasets:
        compare_dir = root / dataset
        if not compare_dir.is_dir():
            continue
        execute_notebook(notebooks[COMPARE_STAGE], compare_dir / f"{COMPARE_STAGE}.ipynb", {
            "study": study.name, "dataset": dataset,
            "study_dir": display_path(compare_dir),
            "weights": study.weights or {}, "seed": study.seeds[0],
        })
    for folder in study.benchmarks:
        execute_notebook(notebooks[BENCH_STAGE], bench_notebook(root, folder),
                         {"bench_dir": display_path(resolve(folder))})
    if report:
        from helpers.report.stitch import build_report

        outcome.report_html, outcome.report_pdf = build_report(study, root, reports_dir())


def report_study(study_path: str | Path) -> StudyOutcome:
    """Compare and report what a study has finished, training nothing: for a study stopped part way
    (killed, or out of device time), or one whose runs were made on another machine. Runs not
    finished show as such in the comparison and the report; a finished run whose params.yaml differs
    from the study's plan stops it, as in `run_study`."""
    study = config.load_study(study_path)
    root = study_dir(study)
    if not root.is_dir():
        raise config.ConfigError(f"{root} does not exist: run the study first (senticompare run {study_path})")
    with study_lock(root, study.name):
        outcome = StudyOutcome(study.name)
        for plan in plan_runs(study):
            if not (plan.run_dir / "results.json").is_file():
                continue
            recorded = yaml.safe_load((plan.run_dir / "params.yaml").read_text())
            if recorded != plan.params:
                raise config.ConfigError(f"{plan.run_dir}/params.yaml differs from what {study.name} plans for it: "
                                         f"report the study file the runs were made with")
            outcome.reused.append(plan)
        _compare_and_report(study, root, sync_notebooks(), outcome, report=True)
        return outcome
