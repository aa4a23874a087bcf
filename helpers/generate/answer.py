"""`senticompare generate <run folder>`: a recorded generative run answers new texts with its
fine-tuned model (and its base model beside it): a classification run's JSON decision
(helpers/generate/stage.py), an instruction run's answer, an SQL run's query about a database
(helpers/generate/task_stage.py)."""
from __future__ import annotations

from pathlib import Path

from helpers.config import ConfigError
from helpers.generate import stage, task_stage
from helpers.pipeline.run import Run, reopen_run


def open_generative_run(run_dir: str | Path) -> Run:
    """The recorded run of a `method: generate` model in `run_dir`, else an error naming the fix."""
    run = reopen_run(run_dir)
    if run.model.method != "generate":
        raise ConfigError(f"{run_dir} is a run of {run.model.id!r}, which classifies with a head and writes "
                          f"nothing; give a run of a `method: generate` model (e.g. smollm2-135m-json)")
    return run


def answer_texts(run_dir: str | Path, texts: list[str], base: bool = False, db_id: str | None = None,
                 schema: str | None = None) -> list[dict]:
    """Each text answered, one record per text; an SQL run's texts are questions about the database
    `db_id` of its data, or the one whose CREATE TABLE statements are `schema`."""
    run = open_generative_run(run_dir)
    if run.dataset.task == "sql":
        return task_stage.answer_texts(run, texts, base, task_stage.database_schema(run, db_id, schema))
    if db_id is not None or schema is not None:
        raise ConfigError(f"--db-id and --schema are for task: sql runs; {run_dir} is a {run.dataset.task} run")
    if run.dataset.task == "instruction":
        return task_stage.answer_texts(run, texts, base)
    return stage.answer_texts(run, texts, base)
