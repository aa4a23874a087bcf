"""The stage notebooks as a user meets them in JupyterLab: each .ipynb paired with the jupytext
source git keeps, so a save in Lab shows in `git diff`; a .py opening as a notebook; `make lab`
starting as root; and every notebook running top to bottom with its default parameters, with no
papermill in between."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext import TextFileContentsManager
from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file
from nbclient import NotebookClient

from helpers.core.io import read_json
from helpers.pipeline.notebooks import sync_notebooks

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = PROJECT_ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
STAGES = [source.stem for source in SOURCES]


def copy_notebooks(folder: Path) -> Path:
    """The jupytext sources and their config, as a checkout has them (no .ipynb yet)."""
    folder.mkdir(parents=True)
    for path in [*SOURCES, NOTEBOOKS / "jupytext.toml"]:
        shutil.copy2(path, folder / path.name)
    return folder


def parameters(cells: list) -> int:
    """The index of the cell tagged `parameters`."""
    return next(i for i, cell in enumerate(cells) if "parameters" in cell["metadata"].get("tags", []))


def later(path: Path, seconds: float = 2.0) -> None:
    """Date a file after everything written so far, as a save a moment later would."""
    stamp = time.time() + seconds
    os.utime(path, (stamp, stamp))


def test_every_stage_notebook_is_paired_with_its_source():
    assert STAGES == ["01_data", "02_train", "03_evaluate", "04_speed", "05_compare", "06_bench"]
    for source in SOURCES:
        assert jupytext.read(source).metadata["jupytext"]["formats"] == "ipynb,py:percent", source.name
    config = load_jupytext_configuration_file(find_jupytext_configuration_file(NOTEBOOKS))
    assert config.default_formats(str(NOTEBOOKS / "new.ipynb")) == "ipynb,py:percent"  # a new one made there too


def test_sync_generates_paired_notebooks_and_leaves_them_be(tmp_path):
    folder = copy_notebooks(tmp_path / "notebooks")
    paths = sync_notebooks(folder)
    assert sorted(paths) == STAGES
    stamps = {}
    for stage, path in paths.items():
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
        assert jupytext.writes(notebook, fmt="py:percent") == (folder / f"{stage}.py").read_text()
        stamps[stage] = (path.stat().st_mtime_ns, (folder / f"{stage}.py").stat().st_mtime_ns)
        assert stamps[stage][0] == stamps[stage][1]  # an edit of the .py while it was written stays the newer
    sync_notebooks(folder)
    assert {stage: (path.stat().st_mtime_ns, (folder / f"{stage}.py").stat().st_mtime_ns)
            for stage, path in paths.items()} == stamps


def test_a_save_through_jupytext_writes_both_files_and_sync_keeps_the_outputs(tmp_path):
    """JupyterLab saves through jupytext's contents manager (its server extension); the outputs of a
    run stay in the .ipynb when `make notebooks` runs after it, and a later edit of the .py in an
    editor reaches the .ipynb without losing them."""
    folder = copy_notebooks(tmp_path / "notebooks")
    source = folder / "03_evaluate.py"
    original = source.read_text()
    sync_notebooks(folder)
    manager = TextFileContentsManager(root_dir=str(folder))
    model = manager.get("03_evaluate.ipynb")
    cells = model["content"]["cells"]
    code = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code" and "open_run" in cell["source"])
    cells[code]["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text="ran in Lab\n")]
    cells[code]["execution_count"] = 1
    manager.save(model, "03_evaluate.ipynb")
    assert source.read_text() == original  # outputs are no edit of the source
    sync_notebooks(folder)
    assert nbformat.read(folder / "03_evaluate.ipynb", as_version=4).cells[code].outputs[0].text == "ran in Lab\n"

    source.write_text(original.replace('seed = 1337', 'seed = 7'))  # an editor, a moment later
    later(source)
    sync_notebooks(folder)
    notebook = nbformat.read(folder / "03_evaluate.ipynb", as_version=4)
    cell = notebook.cells[parameters(notebook.cells)]
    assert "seed = 7" in cell.source and "seed = 1337" not in cell.source
    assert notebook.cells[code].outputs[0].text == "ran in Lab\n"


def test_an_ipynb_edited_without_jupytext_gives_its_cells_to_the_source(tmp_path):
    """An editor without jupytext saves the .ipynb alone: the next sync (`make notebooks`, every
    study) writes its cells into the .py under the same header, rather than overwriting the edit."""
    folder = copy_notebooks(tmp_path / "notebooks")
    source = folder / "02_train.py"
    original = source.read_text()
    target = sync_notebooks(folder)["02_train"]
    notebook = nbformat.read(target, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell('record["steps"]'))
    nbformat.write(notebook, target)
    later(target)
    sync_notebooks(folder)
    assert source.read_text() == original + '\n# %%\nrecord["steps"]\n'
    assert jupytext.writes(nbformat.read(target, as_version=4), fmt="py:percent") == source.read_text()


def make_lab_command() -> str:
    """What `make lab` runs once set up and the notebooks are made."""
    return subprocess.run(["make", "--no-print-directory", "-n", "-o", "setup", "-o", "notebooks", "lab"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """The Jupyter server `make lab` starts, asked over its REST API as the Lab front end asks it."""

    def __init__(self, command: str, checkout: Path, home: Path) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(home / "user-settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
        self.log = home / "lab.log"
        self.process = subprocess.Popen(
            ["bash", "-c", f"{command} --no-browser --port={self.port} --ServerApp.port_retries=0 "
                           f"--IdentityProvider.token={self.token}"],
            cwd=checkout, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def request(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method="GET" if body is None else "PUT",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def wait_until_up(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"`make lab` exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                self.request("/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        pytest.fail(f"`make lab` did not answer within {seconds} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def test_make_lab_starts_as_root_opens_a_py_as_a_notebook_and_a_save_shows_in_git_diff(tmp_path):
    command = make_lab_command()
    assert ("--allow-root" in command) == (os.getuid() == 0)
    checkout = tmp_path / "checkout"
    sync_notebooks(copy_notebooks(checkout / "notebooks"))
    (checkout / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    (checkout / ".gitignore").write_text(".venv\nnotebooks/*.ipynb\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "checkout"], check=True)

    lab = Lab(command, checkout, tmp_path)
    try:
        lab.wait_until_up()
        viewers = lab.request("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
        assert viewers["schema"]["properties"]["defaultViewers"]["default"]["python"] == "Jupytext Notebook"
        opened = lab.request("/api/contents/06_bench.py?type=notebook&content=1")  # a double click on it
        assert opened["type"] == "notebook"
        assert 'bench_dir = "reports/benchmarks/cpu-amd-epyc-2t"' in opened["content"]["cells"][
            parameters(opened["content"]["cells"])]["source"]

        model = lab.request("/api/contents/03_evaluate.ipynb?type=notebook&content=1")
        cell = model["content"]["cells"][parameters(model["content"]["cells"])]
        cell["source"] = cell["source"].replace('dataset = "finefoods"', 'dataset = "sst2"')
        lab.request("/api/contents/03_evaluate.ipynb", {"type": "notebook", "format": "json",
                                                         "content": model["content"]})
    finally:
        lab.stop()
    changed = subprocess.run([*git, "diff", "--name-only"], capture_output=True, text=True, check=True).stdout
    assert changed.split() == ["notebooks/03_evaluate.py"]
    diff = subprocess.run([*git, "diff", "-U0"], capture_output=True, text=True, check=True).stdout
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        '-dataset = "finefoods"', '+dataset = "sst2"']


@pytest.mark.slow
@pytest.mark.full
def test_every_notebook_runs_top_to_bottom_as_a_plain_notebook_with_its_defaults(project_copy):
    """As JupyterLab's Run All runs them: the .ipynb `make notebooks` writes, nothing injected, one
    after another, each in a kernel started in notebooks/. The defaults make a tiny scratch run of
    SmolLM2 on Fine Foods, compare it, and render the published CPU benchmark."""
    subprocess.run([sys.executable, "-m", "helpers.pipeline.notebooks"], cwd=project_copy, check=True,
                   capture_output=True)
    folder = project_copy / "notebooks"
    for stage in STAGES:
        notebook = nbformat.read(folder / f"{stage}.ipynb", as_version=4)
        NotebookClient(notebook, kernel_name="python3", timeout=1200,
                       resources={"metadata": {"path": str(folder)}}).execute()
    scratch = project_copy / "experiments" / "scratch" / "finefoods"
    results = read_json(scratch / "smollm2-135m" / "results.json")
    assert results["model_name"] == "smollm2-135m" and results["params"]["preset"]["max_train"] == 64
    assert results["quality"]["baseline"]["0-shot"]["accuracy"] >= 0
    assert [row["model"] for row in read_json(scratch / "comparison.json")["ranking"]] == ["smollm2-135m"]
