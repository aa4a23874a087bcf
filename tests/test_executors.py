"""Executors: runs side by side on this machine or as Ray tasks give the serial runner's numbers, a
failed run does not stop the others, and no speed stage shares the machine with another run's work."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

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
    with pytest.raises(config.ConfigError, match=r"executor must be one of \['local', 'ray', 'serial'\]"):
        config.load_study(path)
    path.write_text(yaml.safe_dump({"name": "s", "models": ["minilm-l6"], "datasets": ["sst2"], "preset": "quick",
                                    "seeds": [1], "executor": "local", "max_workers": 0}))
    with pytest.raises(config.ConfigError, match="max_workers must be null or a positive integer"):
        config.load_study(path)


def test_a_studys_ray_settings_check_themselves(tmp_path):
    path = tmp_path / "s.yaml"
    base = {"name": "s", "models": ["minilm-l6"], "datasets": ["sst2"], "preset": "quick", "seeds": [1],
            "executor": "ray"}
    path.write_text(yaml.safe_dump({**base, "ray": {"address": "auto", "num_cpus": 4, "num_gpus": 0.5}}))
    assert config.load_study(path).ray == config.study.RayConfig("auto", 4, 0.5, "shared")
    path.write_text(yaml.safe_dump({**base, "ray": {"num_cpus": 0, "results": "nfs"}}))
    with pytest.raises(config.ConfigError, match=r"s.yaml: ray: num_cpus must be a positive number.*results must be "
                                                 r"one of \['copy', 'shared'\]"):
        config.load_study(path)
    path.write_text(yaml.safe_dump({**base, "ray": {"adress": "auto"}}))
    with pytest.raises(config.ConfigError, match=r"unknown key\(s\) \['adress'\]"):
        config.load_study(path)


class FileRecordingRunner:
    """A stage runner for Ray tasks, which run in other processes: records (plan, stage, env, pid,
    start, end) as files in `folder`, fails where told, and kills its own worker process the first
    `die[plan]` times it starts that plan. With `together`, each 02_train waits (a minute at most)
    until that many have started: two that run at once meet there, however long Ray took to start
    each worker."""

    def __init__(self, folder: Path, fail: dict[str, str] | None = None, die: dict[str, int] | None = None,
                 together: int = 1):
        self.folder, self.fail, self.die, self.together = folder, fail or {}, die or {}, together

    def __call__(self, plan, stages, env):
        name = getattr(plan, "model", plan)
        attempts = len(list(self.folder.glob(f"{name}.attempt*")))
        (self.folder / f"{name}.attempt{attempts}").touch()
        if attempts < self.die.get(name, 0):
            os._exit(1)
        for stage in stages:
            start = time.time()
            if stage == "02_train":
                (self.folder / f"{name}.train").touch()
                while len(list(self.folder.glob("*.train"))) < self.together and time.time() < start + 60:
                    time.sleep(0.05)
            time.sleep(0.3)
            if hasattr(plan, "run_dir"):
                (plan.run_dir / f"{stage}.done").write_text(str(os.getpid()))
            record = [name, stage, env, os.getpid(), start, time.time()]
            (self.folder / f"{name}-{stage}.json").write_text(json.dumps(record))
            if self.fail.get(name) == stage:
                return executors.Failure(stage, "boom")
        return None

    def log(self) -> list[tuple]:
        return sorted((tuple(json.loads(p.read_text())) for p in self.folder.glob("*-*.json")), key=lambda e: e[4])


@pytest.fixture(scope="module")
def local_ray(mirror_path):
    """Ray started in this process with 2 CPUs, as CI has; its workers import this module's runners
    by value (they cannot import the tests) and read the data mirror."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    for attempt in range(2):  # Ray gives its raylet 30 s to start, which a loaded 2-core machine can miss
        try:
            ray.init(num_cpus=2, include_dashboard=False,
                     runtime_env={"env_vars": {"SENTICOMPARE_DATA_DIR": str(mirror_path)}})
            break
        except Exception:
            ray.shutdown()
            if attempt:
                raise
    yield ray
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_ray_runs_each_run_as_a_task_then_each_speed_alone(local_ray, tmp_path, monkeypatch):
    monkeypatch.delenv("SENTICOMPARE_THREADS", raising=False)
    runner = FileRecordingRunner(tmp_path, fail={"b": "03_evaluate"}, die={"c": 1}, together=2)
    failures = executors.ray_tasks(["a", "b", "c"], runner, STAGES, cluster=config.study.RayConfig(num_cpus=1))
    assert failures == [None, executors.Failure("03_evaluate", "boom"), None]
    assert len(list(tmp_path.glob("c.attempt*"))) == 3  # died once, retried, then its 04_speed task
    log = runner.log()
    assert {entry[3] for entry in log}.isdisjoint({os.getpid()})  # in Ray's worker processes
    trains = [entry for entry in log if entry[1] == "02_train"]
    assert any(a[4] < b[5] and b[4] < a[5] for a in trains for b in trains if a is not b)  # two at once
    assert all(entry[2] == {"SENTICOMPARE_THREADS": "1"} for entry in log if entry[1] != "04_speed")
    speeds = [entry for entry in log if entry[1] == "04_speed"]
    assert [entry[0] for entry in speeds] == ["a", "c"] and all(entry[2] == {} for entry in speeds)
    others_end = max(entry[5] for entry in log if entry[1] != "04_speed")
    assert speeds[0][4] >= others_end and speeds[1][4] >= speeds[0][5]  # alone on the one node


def test_a_ray_task_lost_twice_is_a_failed_run_and_the_others_finish(local_ray, tmp_path):
    runner = FileRecordingRunner(tmp_path, die={"a": 2})
    failures = executors.ray_tasks(["a", "b"], runner, ["01_data", "02_train"])
    assert failures[1] is None and failures[0].stage is None and "lost with its worker" in failures[0].error
    assert len(list(tmp_path.glob("a.attempt*"))) == 2


def test_without_a_shared_filesystem_the_run_folder_travels_through_the_object_store(local_ray, tmp_path,
                                                                                     monkeypatch):
    """results: copy, the worker made to think it is on another node than the runner: it unpacks
    the run folder, executes there, sends it back and removes its copy; the runner puts it in place."""
    monkeypatch.setattr(executors, "_driver_node", lambda ray: "another-node")
    run_dir = tmp_path / "study" / "sst2" / "minilm-l6"
    run_dir.mkdir(parents=True)
    (run_dir / "params.yaml").write_text("seed: 1\n")
    plan = study_module.RunPlan("minilm-l6", "sst2", 1, run_dir, {"run_dir": str(run_dir)})
    (tmp_path / "log").mkdir()
    failures = executors.ray_tasks([plan], FileRecordingRunner(tmp_path / "log"), STAGES,
                                   cluster=config.study.RayConfig(results="copy"))
    assert failures == [None]
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(["params.yaml"] + [f"{s}.done" for s in STAGES])
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["minilm-l6"]  # nothing left beside it


def test_a_run_lost_with_its_worker_is_failed_in_its_first_stage_without_a_record(tmp_path):
    plan = study_module.RunPlan("m", "d", 1, tmp_path, {})
    assert study_module._lost_stage(plan) == "01_data"
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "01_data.json").write_text("{}")
    assert study_module._lost_stage(plan) == "02_train"


SMALL = {  # runs of the cheapest packaged model, cut to two training steps
    "models": ["minilm-l6"],
    "datasets": ["sst2"],
    "preset": "quick",
    "overrides": {"max_train": 32, "max_validation": 16, "max_calibration": 24, "max_test": 32, "max_length": 40,
                  "train": {"max_steps": 2, "batch_size": 8},
                  "speed": {"warmup": 1, "repeats": 3, "max_examples": 8, "batch_size": 8}},
}


@pytest.mark.slow
@pytest.mark.full  # the CI budget (docs/decisions.md)
def test_a_study_side_by_side_or_on_ray_gives_the_serial_numbers(tmp_path, mirror_path, monkeypatch, local_ray):
    """One real run under `serial`, as a Ray task on a local Ray with 2 CPUs, and under `local`
    with two workers (its kernel's threads set by the worker): the same quality numbers and
    probabilities. Runs side by side and 04_speed alone: the recording-runner tests above, in CI.
    (Three runs: 240-245 s on the 2-core machine.)"""
    monkeypatch.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    monkeypatch.setenv("SENTICOMPARE_THREADS", "1")  # one thread per kernel in all: the same float sums
    folders = {}
    for name, executor in (("exec_serial", {}), ("exec_ray", {"executor": "ray"}),
                           ("exec_local", {"executor": "local", "max_workers": 2})):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, **SMALL, "seeds": [5], **executor}))
        outcome = run_study(path, report=False)
        assert len(outcome.done) == 1 and not outcome.failed, name
        folders[name] = paths.experiments_dir() / name / "sst2" / "minilm-l6"
    serial = read_json(folders["exec_serial"] / "results.json")
    for name in ("exec_local", "exec_ray"):
        other = read_json(folders[name] / "results.json")
        for key in ("accuracy", "f1", "precision", "recall"):
            assert other[key] == serial[key], (name, key)
        for key in ("ece", "brier", "nll", "temperature", "conformal_qhat", "conformal_set_size"):
            assert other["quality"][key] == serial["quality"][key], (name, key)
        assert ((folders[name] / "predictions.csv").read_text()
                == (folders["exec_serial"] / "predictions.csv").read_text()), name
    for folder in folders.values():  # a reviewer's rerun of any stage gets the thread count it ran with
        commands = (folder / "reproduce.sh").read_text().splitlines()[3:]
        assert len(commands) == 4 and all(c.startswith("SENTICOMPARE_THREADS=1 papermill ") for c in commands)


def test_reproduce_sh_sets_the_thread_count_each_stage_ran_with(tmp_path, monkeypatch):
    from helpers.pipeline.notebooks import pin_threads_in_reproduce, reproduce_command

    monkeypatch.delenv("SENTICOMPARE_THREADS", raising=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stages = ("01_data", "02_train", "04_speed")
    (run_dir / "reproduce.sh").write_text("#!/usr/bin/env bash\nset -e\n"
                                          + "".join(reproduce_command(s, run_dir) + "\n" for s in stages))
    pin_threads_in_reproduce(run_dir, "02_train", {"SENTICOMPARE_THREADS": "1"})  # a local worker's share
    lines = (run_dir / "reproduce.sh").read_text().splitlines()
    assert lines[3] == "SENTICOMPARE_THREADS=1 " + reproduce_command("02_train", run_dir)
    assert lines[2] == reproduce_command("01_data", run_dir) and lines[4] == reproduce_command("04_speed", run_dir)
    pin_threads_in_reproduce(run_dir, "02_train", {})  # rerun without a pin: the plain command again
    assert (run_dir / "reproduce.sh").read_text().splitlines()[3] == reproduce_command("02_train", run_dir)
    monkeypatch.setenv("SENTICOMPARE_THREADS", "2")  # the user's own pin reaches every kernel
    pin_threads_in_reproduce(run_dir, "04_speed", {})
    assert (run_dir / "reproduce.sh").read_text().splitlines()[4].startswith("SENTICOMPARE_THREADS=2 papermill ")


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
    before = dict(os.environ)
    execute_notebook(source, output, {"x": 7}, env={"SENTICOMPARE_THREADS": "3"})
    assert nbformat.read(output, 4).cells[-1].outputs[0]["text"].split() == ["3", "false", "7"]
    assert dict(os.environ) == before and "SENTICOMPARE_THREADS" not in os.environ
