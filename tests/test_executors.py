"""Executors: runs side by side on this machine give the serial runner's numbers, a failed run does
not stop the others, and no speed stage shares the machine with another run's work."""
from __future__ import annotations

import threading
import time

import pytest
import yaml

from helpers import config
from helpers.core import paths
from helpers.core.io import read_json
from helpers.pipeline import executors, study as study_module
from helpers.pipeline.run import STAGES
from helpers.pipeline.study import run_study


def recording_runner(log: list, fail: dict[str, str] | None = None, pause_s: float = 0.05):
    """A stage runner that records (plan, stage, env, start, end) and fails where told."""
    lock = threading.Lock()

    def run(plan, stages, env):
        for stage in stages:
            start = time.monotonic()
            time.sleep(pause_s)
            with lock:
                log.append((plan, stage, dict(env), start, time.monotonic()))
            if (fail or {}).get(plan) == stage:
                return executors.Failure(stage, "boom")
        return None

    return run


def overlaps(a: tuple, b: tuple) -> bool:
    return a[3] < b[4] and b[3] < a[4]


def test_serial_runs_every_stage_of_one_run_before_the_next():
    log = []
    failures = executors.serial(["a", "b"], recording_runner(log, fail={"a": "02_train"}), STAGES)
    assert failures == [executors.Failure("02_train", "boom"), None]
    assert [(plan, stage) for plan, stage, *_ in log] == [("a", "01_data"), ("a", "02_train")] + [
        ("b", stage) for stage in STAGES]


def test_local_runs_side_by_side_and_times_each_run_alone(monkeypatch):
    monkeypatch.setenv("SENTICOMPARE_THREADS", "1")
    log = []
    failures = executors.local(["a", "b", "c"], recording_runner(log, fail={"b": "03_evaluate"}), STAGES,
                               max_workers=2)
    assert failures == [None, executors.Failure("03_evaluate", "boom"), None]
    trains = [entry for entry in log if entry[1] == "02_train"]
    assert any(overlaps(x, y) for x in trains for y in trains if x[0] != y[0])  # two runs at once
    assert max(sum(overlaps(x, y) for y in trains) for x in trains) <= 2  # never more than max_workers
    speeds = [entry for entry in log if entry[1] == "04_speed"]
    assert [entry[0] for entry in speeds] == ["a", "c"]  # the failed run is not timed
    others_end = max(entry[4] for entry in log if entry[1] != "04_speed")
    assert all(entry[3] >= others_end for entry in speeds)  # alone on the machine
    assert all(not overlaps(x, y) for x in speeds for y in speeds if x is not y)
    assert all(entry[2] == {} for entry in speeds)  # timed with the machine's own thread setting


def test_each_local_worker_gets_its_share_of_the_cores_unless_pinned(monkeypatch):
    monkeypatch.delenv("SENTICOMPARE_THREADS", raising=False)
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 16)
    assert [env["SENTICOMPARE_THREADS"] for env in executors.worker_envs(3)] == ["5", "5", "5"]
    monkeypatch.setenv("SENTICOMPARE_THREADS", "2")
    assert all("SENTICOMPARE_THREADS" not in env for env in executors.worker_envs(3))


def test_a_study_names_its_executor_or_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "models": ["minilm-l6"], "datasets": ["sst2"], "preset": "quick",
                                    "seeds": [1], "executor": "ray-cluster"}))
    with pytest.raises(config.ConfigError, match=r"executor must be one of \['local', 'serial'\]"):
        config.load_study(path)
    path.write_text(yaml.safe_dump({"name": "s", "models": ["minilm-l6"], "datasets": ["sst2"], "preset": "quick",
                                    "seeds": [1], "executor": "local", "max_workers": 0}))
    with pytest.raises(config.ConfigError, match="max_workers must be null or a positive integer"):
        config.load_study(path)


SMALL = {
    "models": ["minilm-l6", "smollm2-135m"],
    "datasets": ["sst2"],
    "preset": "quick",
    "seeds": [5],
    "overrides": {"max_train": 32, "max_validation": 16, "max_calibration": 24, "max_test": 32, "max_length": 40,
                  "train": {"max_steps": 2, "batch_size": 8},
                  "speed": {"warmup": 1, "repeats": 3, "max_examples": 8, "batch_size": 8},
                  "evaluation": {"baseline_shots": [0]}},
}


@pytest.mark.slow
def test_a_study_side_by_side_gives_the_serial_numbers(tmp_path, mirror_path, monkeypatch):
    """Two real runs under `local` with two workers: the same
    quality numbers and probabilities as `serial`, the trainings overlapping, every 04_speed after
    every other stage."""
    monkeypatch.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    monkeypatch.setenv("SENTICOMPARE_THREADS", "1")  # one thread per kernel in both: the same float sums
    stage_log = []
    real = study_module.execute_notebook

    def timed(notebook, output, params, env=None):
        start = time.monotonic()
        try:
            real(notebook, output, params, env)
        finally:
            stage_log.append((params["study"], params.get("model"), notebook.stem, start, time.monotonic()))

    monkeypatch.setattr(study_module, "execute_notebook", timed)
    outcomes = {}
    for name, executor in (("exec_serial", {}), ("exec_local", {"executor": "local", "max_workers": 2})):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, **SMALL, **executor}))
        outcomes[name] = run_study(path, report=False)
    for outcome in outcomes.values():
        assert sorted(p.model for p in outcome.done) == ["minilm-l6", "smollm2-135m"] and not outcome.failed
    for model in ("minilm-l6", "smollm2-135m"):
        serial, local = (read_json(paths.experiments_dir() / name / "sst2" / model / "results.json")
                         for name in ("exec_serial", "exec_local"))
        for key in ("accuracy", "f1", "precision", "recall"):
            assert local[key] == serial[key], (model, key)
        for key in ("ece", "brier", "nll", "temperature", "conformal_qhat", "conformal_set_size"):
            assert local["quality"][key] == serial["quality"][key], (model, key)
        serial_predictions, local_predictions = (
            (paths.experiments_dir() / name / "sst2" / model / "predictions.csv").read_text()
            for name in ("exec_serial", "exec_local"))
        assert local_predictions == serial_predictions
    local_log = [entry for entry in stage_log if entry[0] == "exec_local" and entry[2] in STAGES]
    trains = [entry for entry in local_log if entry[2] == "02_train"]
    assert overlaps(*[(None, None, None, s, e) for *_, s, e in trains])
    speeds = [entry for entry in local_log if entry[2] == "04_speed"]
    assert len(speeds) == 2 and min(s for *_, s, _ in speeds) >= max(e for *_, stage, _, e in local_log
                                                                     if stage != "04_speed")


def test_a_kernel_gets_its_own_environment_and_the_runners_stays(tmp_path, monkeypatch):
    """Workers run kernels at once from one process: each kernel's variables travel with it, never
    through the runner's os.environ."""
    import os

    import nbformat

    from helpers.pipeline.notebooks import execute_notebook

    monkeypatch.delenv("SENTICOMPARE_THREADS", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os; print(os.environ.get('SENTICOMPARE_THREADS'), "
                                          "os.environ.get('TOKENIZERS_PARALLELISM'), x)")]
    nb.metadata = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                   "language_info": {"name": "python"}}
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    execute_notebook(source, output, {"x": 7}, env={"SENTICOMPARE_THREADS": "3"})
    assert nbformat.read(output, 4).cells[-1].outputs[0]["text"].split() == ["3", "false", "7"]
    assert "SENTICOMPARE_THREADS" not in os.environ and "TOKENIZERS_PARALLELISM" not in os.environ
