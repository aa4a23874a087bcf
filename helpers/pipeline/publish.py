"""Publish a finished study under reports/studies/<device>/<study>/, committed on purpose like
the published benchmarks: a number quoted anywhere can be traced to the run that made it.

What is copied: the study file, each run's results.json, params.yaml and predictions.csv (enough
to recompute every test of the comparison), each dataset's comparison.json, and the HTML and PDF
report. The device folder is named after the GPU (or the CPU) that trained the runs, read from
their results, so a study run on a GPU and reported elsewhere lands under the GPU's name.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from helpers.config import Study
from helpers.config.study import study_path
from helpers.core.io import read_json
from helpers.core.paths import reports_dir

RUN_FILES = ("results.json", "params.yaml", "predictions.csv")


def device_folder(results: list[dict]) -> str:
    """The GPU's name or `cpu-<name>-<threads>t` of the runs' environment, as a folder name; runs
    made on different machines are refused (their speed columns would not compare)."""
    names = set()
    for result in results:
        env = result["environment"]
        names.add(env["gpu"] or f"cpu {env['cpu']} {env['torch_threads']}t")
    if len(names) != 1:
        raise ValueError(f"the study's runs were made on {sorted(names)}: publish runs of one machine")
    return re.sub(r"[^a-z0-9]+", "-", names.pop().lower()).strip("-")


def publish_study(study: Study, study_root: Path, report_html: Path | None, report_pdf: Path | None,
                  source: str | Path | None = None) -> Path:
    """Copy the study's results into reports/studies/<device>/<study>/ (replacing an earlier copy);
    returns that folder."""
    runs = sorted(p.parent for p in study_root.glob("*/*/results.json") if not p.parent.parent.name.startswith("."))
    if not runs:
        raise FileNotFoundError(f"{study_root} holds no finished run (*/*/results.json): run the study first")
    target = reports_dir() / "studies" / device_folder([read_json(run / "results.json") for run in runs]) / study.name
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(study_path(source or study.name), staging / "study.yaml")
    for run in runs:
        folder = staging / run.relative_to(study_root)
        folder.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, folder / name)
    for comparison in study_root.glob("*/comparison.json"):  # also of a dataset where no run finished
        (staging / comparison.parent.name).mkdir(exist_ok=True)
        shutil.copy2(comparison, staging / comparison.relative_to(study_root))
    for report in (report_html, report_pdf):
        if report is not None and report.is_file():
            shutil.copy2(report, staging / report.name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
