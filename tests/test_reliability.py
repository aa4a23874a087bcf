"""Reliability as a user meets it: bad ids and names, concurrent runs, a killed `--force`, checks
that come before training, and what killed attempts leave behind. Finished results must come out
byte-identical (sha256 of every file of the run folders)."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import config
from helpers.cli import main
from helpers.core import paths
from helpers.core.io import write_yaml
from helpers.data import DataError, load_splits
from helpers.pipeline import notebooks
from helpers.pipeline import study as runner
from helpers.pipeline.lock import study_lock
from helpers.report import stitch
from helpers.report.escape import md

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMALL = {"name": "small", "models": ["minilm-l6"], "datasets": ["finefoods"], "preset": "tiny", "seeds": [5],
         "overrides": {"max_train": 32, "max_test": 24, "train": {"max_steps": 2, "epochs": 1},
                       "speed": {"warmup": 0, "repeats": 2, "max_examples": 4}}}


def write_study(tmp_path: Path, **fields) -> Path:
    return write_yaml(tmp_path / f"{fields.get('name', 'x')}.yaml",
                      {"name": "x", "models": ["minilm-l6"], "datasets": ["finefoods"], "preset": "quick",
                       "seeds": [1], **fields})


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "helpers.cli", *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


# 1. Ids are checked where they are declared, and what is rendered is escaped in one place.

@pytest.mark.parametrize("dataset_id", ["pd_<img src=x onerror=alert(1)>", "pd_<script>x", "../up", "a b"])
def test_a_dataset_id_with_markup_or_a_path_is_refused_where_it_is_declared(tmp_path, dataset_id):
    registry = write_yaml(tmp_path / "datasets.yaml", {dataset_id: {
        "source": "file", "path": "x.csv", "text_column": "t", "label_column": "l", "labels": ["a", "b"]}})
    with pytest.raises(config.ConfigError, match=r"id must be an id of letters, digits, '\.', '_' and '-'"):
        config.load_datasets(registry)


def test_a_study_name_that_climbs_out_of_experiments_is_refused_and_nothing_is_written(tmp_path, capsys):
    path = write_study(tmp_path, name="../../../outside")
    assert main(["run", str(path)]) == 2
    assert "name must be an id of letters, digits" in capsys.readouterr().err
    assert not (paths.experiments_dir().parent / "outside").exists()


def test_markup_from_data_or_errors_is_shown_as_text():
    assert "<" not in md("<img src=x onerror=alert(1)>") and "&lt;img" in md("<img src=x onerror=alert(1)>")
    assert md("*bold* `code` [link](x)") == r"\*bold\* \`code\` \[link\](x)"


def test_a_failure_message_with_markup_enters_the_report_as_text(tmp_path):
    run_dir = tmp_path / "finefoods" / "minilm-l6"
    run_dir.mkdir(parents=True)
    (run_dir / "failed.json").write_text('{"stage": "01_data", "error": "bad <script>alert(1)</script>"}')
    study = config.Study(name="s", models=["minilm-l6"], datasets=["finefoods"], preset="quick", seeds=[1])
    html = stitch.to_html(stitch.stitch(study, tmp_path))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_a_pdf_print_that_hangs_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(stitch.subprocess, "run", hang)
    monkeypatch.setattr(stitch, "find_chromium", lambda: "chromium")
    page = tmp_path / "r.html"
    page.write_text("<html></html>")
    with pytest.raises(stitch.ReportError, match=r"did not finish printing .*r.html within 5 s; the HTML report"):
        stitch.html_to_pdf(page, tmp_path / "r.pdf", timeout=5)


# 2. One runner per study.

def test_a_second_run_of_a_study_refuses_naming_the_holder(tmp_path, capsys):
    folder = paths.experiments_dir() / "locked"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from helpers.pipeline.lock import study_lock\n"
        f"with study_lock(Path({str(folder)!r}), 'locked'):\n    print('held', flush=True); time.sleep(60)")],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        path = write_study(tmp_path, name="locked")
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"study 'locked' is being run by pid {holder.pid}" in err and "wait for it to finish" in err
    finally:
        holder.kill()
        holder.wait()
    with study_lock(folder, "locked") as lock:  # a killed holder's lock is taken over
        assert f"pid {os.getpid()}" in lock.read_text()


# 3 and 6. A real small study: --force replaces nothing until its new run is complete; a killed
# attempt's leftovers are cleared.

@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.yaml"
    write_yaml(path, SMALL)
    outcome = runner.run_study(path, report=False)
    assert [p.model for p in outcome.done] == ["minilm-l6"]
    return path, paths.experiments_dir() / "small" / "finefoods" / "minilm-l6"


@pytest.mark.slow
def test_a_killed_force_run_loses_no_finished_result(small_study):
    path, run_dir = small_study
    before = digest(run_dir)
    attempt = cli("run", str(path), "--force", "--no-report", env={**os.environ, "TQDM_DISABLE": "1"},
                  start_new_session=True)
    backup = run_dir.parents[1] / runner.REPLACED / "finefoods" / "minilm-l6"
    deadline = time.monotonic() + 120

    def started() -> bool:  # the old run moved aside and the new one's first stage done
        return backup.exists() and (run_dir / "01_data.ipynb").exists()

    while not started() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started(), "the --force attempt never reached its first stage"
    os.killpg(attempt.pid, signal.SIGKILL)  # the runner and its kernel, as a power cut would
    attempt.wait()
    assert digest(backup) == before  # aside, whole, while the new run was unfinished
    assert not (run_dir / "results.json").exists()
    assert main(["run", str(path), "--no-report"]) == 0  # the next start restores it and reuses it
    assert digest(run_dir) == before
    assert not backup.exists()


@pytest.mark.slow
def test_a_force_run_that_fails_keeps_the_previous_results(small_study, monkeypatch):
    path, run_dir = small_study
    before = digest(run_dir)
    real = runner.execute_notebook

    def fail_training(notebook, output, params, env=None):
        if output.name == "02_train.ipynb":
            raise RuntimeError("out of memory")
        return real(notebook, output, params, env)

    monkeypatch.setattr(runner, "execute_notebook", fail_training)
    outcome = runner.run_study(path, force=True, report=False)
    assert [(p.model, stage) for p, stage, _ in outcome.failed] == [("minilm-l6", "02_train")]
    assert digest(run_dir) == before
    kept = run_dir.parents[1] / runner.FAILED_ATTEMPTS / "finefoods" / "minilm-l6" / "failed.json"
    assert "out of memory" in kept.read_text()


@pytest.mark.slow
def test_what_a_killed_attempt_left_is_cleared_before_the_run_executes_again(small_study):
    _, run_dir = small_study
    attempt = run_dir.parent / "leftover"
    (attempt / "stages").mkdir(parents=True)
    (attempt / "stages" / "02_train.json").write_text("{}")
    (attempt / ".02_train.tmp.ipynb").write_text("{}")
    (attempt / ".trainer-abc").mkdir()
    (attempt / "adapter").mkdir()
    (attempt / "adapter" / "adapter_model.safetensors").write_bytes(b"half")
    (attempt / "data").mkdir()
    (attempt / "data" / "card.json").write_text("{}")
    runner.clear_attempt(attempt)
    assert sorted(p.name for p in attempt.iterdir()) == ["data"]


def test_kernel_files_of_a_dead_runner_are_removed():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = notebooks.kernels_root() / str(gone.pid)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "k-1234.json").write_text("{}")
    mine = notebooks.kernels_root() / str(os.getpid())
    mine.mkdir(parents=True, exist_ok=True)
    assert folder in notebooks.clean_kernel_leftovers()
    assert not folder.exists() and mine.exists()


# 5. Checks that come before any training.

@pytest.mark.parametrize("fields, message", [
    ({"weights": {"acuracy": 1.0}}, r"weights name unknown metric\(s\) \['acuracy'\]; use keys of helpers/metrics.py"),
    ({"weights": {"accuracy": -1.0}}, r"weights must be null or non-negative weights"),
    ({"seeds": [1, 1]}, r"seeds must be a list of at least one integer seed, each once"),
    ({"models": ["minilm-l6", "minilm-l6"]},
     r"models must be a list of model ids, each once \(at least one, or some adapters\)"),
    ({"models": "minilm-l6"}, r"models must be list\[str\], got 'minilm-l6'"),
    ({"datasets": ["finefoods", "finefoods"]}, r"datasets must be a list of at least one dataset id, each once"),
])
def test_a_bad_study_fails_when_it_loads(tmp_path, fields, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load_study(write_study(tmp_path, **fields))


def test_a_study_is_found_by_its_name():
    assert config.load_study("default").name == "default"
    with pytest.raises(config.ConfigError, match=r"no study file 'defualt'.*params/studies/: \[.*'default'"):
        config.load_study("defualt")


def test_a_test_split_too_small_to_judge_is_refused(file_dataset, reviews):
    spec = file_dataset(reviews)
    preset = config.apply_overrides(config.load_preset("tiny"), {"max_test": 1})
    with pytest.raises(DataError, match=r"the test split has 1 row\(s\), fewer than the 10 needed to judge a model"):
        load_splits(spec, preset, seed=1)


def test_a_data_error_stops_the_study_before_any_model_trains(tmp_path, monkeypatch, mirror):
    registry = tmp_path / "params"
    registry.mkdir()
    datasets = yaml.safe_load((PROJECT_ROOT / "params" / "datasets.yaml").read_text())
    (tmp_path / "empty.csv").write_text("text,label\n")
    datasets["broken"] = {"source": "file", "path": str(tmp_path / "empty.csv"), "text_column": "text",
                          "label_column": "label", "labels": ["negative", "positive"]}
    write_yaml(registry / "datasets.yaml", datasets)
    monkeypatch.setattr("helpers.config.dataset.PARAMS_DIR", registry)
    path = write_study(tmp_path, name="early", datasets=["finefoods", "broken"])
    assert main(["run", str(path)]) == 2
    assert not list((paths.experiments_dir() / "early").glob("*/*/params.yaml"))  # no run was even prepared


def test_help_names_the_environment_and_what_force_replaces():
    done = subprocess.run([sys.executable, "-m", "helpers.cli", "run", "--help"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert "SENTICOMPARE_DATA_DIR" in done.stdout and "SENTICOMPARE_EXPERIMENTS" in done.stdout
    assert "replaced only when its new run has finished" in " ".join(done.stdout.split())
