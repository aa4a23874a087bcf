"""The adapter registry: one record per finished run's adapter, in one SQLite file for the project
(`experiments/adapters.sqlite`, beside the run folders; SENTICOMPARE_EXPERIMENTS moves both).

A run registers itself when its results.json is written (`register_finished`, called from
`assemble_results`); `scan` registers runs that finished before the registry existed or elsewhere.
An adapter's id is its run folder under the experiments folder, e.g. `default/finefoods/smollm2-135m`,
so a rerun with `--force` replaces its record. SQLite rather than a JSON file: two studies may
finish runs at the same moment (the runner's lock is per study), and SQLite's transactions keep
both records where a rewritten JSON file would keep one (docs/adapters.md).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from helpers.config import ConfigError
from helpers.core.io import read_json
from helpers.core.paths import display_path, experiments_dir, resolve
from helpers.core.sqlite import ensure_schema

log = logging.getLogger(__name__)

FILE_NAME = "adapters.sqlite"
SCHEMA_VERSION = 1
# helpers/pipeline/study.py keeps there the runs a --force is replacing, or failed to replace
SKIPPED_FOLDERS = (".replaced", ".failed-attempts")
TOP_METRICS = ("accuracy", "f1", "precision", "recall", "micro_f1", "macro_f1", "mae", "r2")
QUALITY_METRICS = ("ece", "ece_recalibrated", "conformal_coverage", "conformal_set_size", "decision_accuracy",
                   "parse_rate")
SCALARS = ("id", "study", "model", "base_model", "method", "dataset", "label_type", "preset", "seed", "path",
           "data_fingerprint", "git_commit", "git_dirty", "created")
JSON_FIELDS = ("labels", "metrics")  # stored as JSON text
COLUMNS = (*SCALARS, *JSON_FIELDS)
SCHEMA = ("CREATE TABLE IF NOT EXISTS adapters ("
          + ", ".join(f"{c} {'INTEGER' if c in ('seed', 'git_dirty') else 'TEXT'}" for c in COLUMNS)
          + ", PRIMARY KEY (id))")


@dataclass(frozen=True)
class AdapterRecord:
    id: str  # the run folder under the experiments folder
    study: str
    model: str  # the model's id in params/models.yaml
    base_model: str  # the pretrained checkpoint it was fine-tuned from
    method: str  # head | generate
    dataset: str
    label_type: str  # binary | multiclass (one label per text) | multi | regression | instruction | sql
    labels: list[str]
    preset: str
    seed: int
    path: str  # the run folder (relative to the project root where it lies inside it)
    metrics: dict[str, float | None]  # on the run's test split
    data_fingerprint: str | None
    git_commit: str | None
    git_dirty: bool | None
    created: str  # when the run finished (results.json written), ISO 8601 UTC

    @property
    def run_dir(self) -> Path:
        return resolve(self.path)

    @property
    def present(self) -> bool:
        """Whether the run folder still holds a finished run."""
        return (self.run_dir / "results.json").is_file()


def registry_file() -> Path:
    return experiments_dir() / FILE_NAME


SINGLE_LABEL = ("binary", "multiclass")  # the label types of one label per text


def label_type_of(results: dict, labels: list[str]) -> str:
    """What the adapter answers: one of two or of several classes, a list of labels (multi), numbers
    (regression), or a task's text (instruction, sql)."""
    if results.get("task"):
        return results["task"]
    if results.get("label_type", "single") != "single":
        return results["label_type"]
    return "binary" if len(labels) == 2 else "multiclass"


def adapter_id(run_dir: Path, study: str) -> str:
    """The run folder relative to the experiments folder; for a run kept elsewhere, study/dataset/run."""
    run_dir, root = Path(run_dir).resolve(), experiments_dir().resolve()
    if run_dir.is_relative_to(root):
        return run_dir.relative_to(root).as_posix()
    return f"{study}/{run_dir.parent.name}/{run_dir.name}"


def record_from_results(run_dir: Path, results: dict[str, Any]) -> AdapterRecord:
    """The registry's record of a finished run, from its results.json."""
    params, quality = results["params"], results["quality"]
    model = params["model"]
    labels = list(quality["labels"])
    git = results.get("environment", {}).get("git") or {}
    finished = (Path(run_dir) / "results.json").stat().st_mtime
    return AdapterRecord(
        id=adapter_id(run_dir, params["study"]),
        study=params["study"],
        model=model["id"],
        base_model=model.get("hub_id") or f"{model.get('package')}:{model.get('file')}",
        method=model.get("method", "head"),
        dataset=params["dataset"]["id"],
        label_type=label_type_of(results, labels),
        labels=labels,
        preset=params["preset"]["name"],
        seed=int(params["seed"]),
        path=display_path(Path(run_dir)),
        metrics={**{k: results[k] for k in TOP_METRICS if k in results},
                 **{k: quality[k] for k in QUALITY_METRICS if k in quality}},
        data_fingerprint=results.get("data_fingerprint"),
        git_commit=git.get("commit"),
        git_dirty=git.get("dirty"),
        created=datetime.fromtimestamp(finished, timezone.utc).isoformat(timespec="seconds"),
    )


def _connect() -> sqlite3.Connection:
    """The registry, created on first use; a file of another schema or not SQLite names the fix."""
    path = registry_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30)  # waits while another process writes
    try:
        ensure_schema(db, SCHEMA, SCHEMA_VERSION, path, "an adapter registry",
                      "delete the file and run `senticompare adapters scan` to rebuild it from the run folders")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigError(f"{path} cannot be read as the adapter registry ({exc}); delete it and run "
                          f"`senticompare adapters scan` to rebuild it from the run folders") from None
    except ConfigError:
        db.close()
        raise
    return db


def _row(record: AdapterRecord) -> tuple:
    values = dataclasses.asdict(record)
    return (*(values[k] for k in SCALARS), *(json.dumps(values[k]) for k in JSON_FIELDS))


def _record(row: tuple) -> AdapterRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    values.update({k: json.loads(values[k]) for k in JSON_FIELDS})
    values["git_dirty"] = None if values["git_dirty"] is None else bool(values["git_dirty"])
    return AdapterRecord(**values)


def register(record: AdapterRecord) -> AdapterRecord:
    """Add the record, or replace the one of the same id (a rerun of the same run folder)."""
    with closing(_connect()) as db, db:
        db.execute(f"INSERT OR REPLACE INTO adapters ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                   _row(record))
    return record


def register_finished(run_dir: Path) -> None:
    """A run's results.json was just written: register its adapter. A registry that cannot be
    written is logged, not raised: the run has finished, and `senticompare adapters scan` adds it later."""
    try:
        register(record_from_results(run_dir, read_json(Path(run_dir) / "results.json")))
    except (ConfigError, sqlite3.Error, OSError) as exc:
        log.warning("%s finished but was not registered as an adapter (%s); run `senticompare adapters scan` "
                    "once the registry %s can be written", run_dir, exc, registry_file())


def list_adapters() -> list[AdapterRecord]:
    """Every registered adapter, by id."""
    with closing(_connect()) as db:
        rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM adapters ORDER BY id").fetchall()
    return [_record(row) for row in rows]


def get_adapter(adapter: str) -> AdapterRecord:
    """The record of one id; an unknown id names the registry, the closest ids and how to list them."""
    with closing(_connect()) as db:
        row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM adapters WHERE id = ?", (adapter,)).fetchone()
        if row is None:
            known = [r[0] for r in db.execute("SELECT id FROM adapters")]
    if row is None:
        close = difflib.get_close_matches(adapter, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"no adapter {adapter!r} in {registry_file()}; {hint}`senticompare adapters list` shows "
                          f"the ids, `senticompare adapters scan` registers finished runs made before the registry")
    return _record(row)


def finished_run(adapter: str) -> AdapterRecord:
    """The record of an adapter whose run folder still holds its finished run."""
    record = get_adapter(adapter)
    if not record.present:
        raise ConfigError(f"adapter {adapter!r}: its run folder {record.run_dir} no longer holds results.json; "
                          f"`senticompare adapters remove {adapter}` drops the record")
    return record


def remove_adapter(adapter: str, delete_run: bool = False) -> AdapterRecord:
    """Drop the record; the run folder is deleted only with `delete_run`."""
    record = get_adapter(adapter)
    if delete_run and record.run_dir.exists():
        if not (record.run_dir / "params.yaml").is_file():
            raise ConfigError(f"{record.run_dir} holds no params.yaml, so it is not a run folder; not deleted "
                              f"(remove the record without --delete-run)")
        shutil.rmtree(record.run_dir)
    with closing(_connect()) as db, db:
        db.execute("DELETE FROM adapters WHERE id = ?", (adapter,))
    return record


def scan(folder: Path | None = None) -> tuple[list[AdapterRecord], list[tuple[Path, str]]]:
    """Register every finished run under `folder` (default: the whole experiments folder); returns
    the records written and the run folders skipped with the reason."""
    root = Path(folder) if folder is not None else experiments_dir()
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; give a study's name (a folder of {experiments_dir()}) or a folder "
                          f"of run folders")
    registered, skipped = [], []
    for results_file in sorted(root.rglob("results.json")):
        run_dir = results_file.parent
        if any(part in SKIPPED_FOLDERS for part in run_dir.relative_to(root).parts):
            continue
        if not (run_dir / "adapter" / "adapter_config.json").is_file():
            skipped.append((run_dir, "no adapter/adapter_config.json"))
            continue
        try:
            registered.append(register(record_from_results(run_dir, read_json(results_file))))
        except (KeyError, TypeError, ValueError) as exc:
            skipped.append((run_dir, f"results.json lacks what a record needs ({type(exc).__name__}: {exc})"))
    return registered, skipped
