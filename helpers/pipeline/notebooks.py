"""Notebooks as functions: the stage notebooks' jupytext sources made into .ipynb, and one
executed through papermill into its run folder.

The kernel talks to papermill over IPC sockets rather than TCP ports: nothing listens on the
network, and ipykernel has no reason to warn, once per notebook, that its TCP traffic is
unencrypted. Its connection file and sockets live in a folder of the runner's own
(`<tmp>/senticompare-kernels/<pid>/`, short enough for a socket path), removed when the kernel
shuts down; what a killed runner left there is removed by the next runner.
"""
from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Any

import jupytext
import papermill
from jupyter_client.manager import AsyncKernelManager
import psutil
from traitlets import CaselessStrEnum

from helpers.core.io import atomic_write_text
from helpers.core.paths import NOTEBOOKS_DIR, PROJECT_ROOT, display_path
from helpers.core.threads import ENV as THREADS_ENV

# Quiet the kernels: library progress bars and load reports belong in logs, not the report.
KERNEL_ENV = {"TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
              "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


def kernels_root() -> Path:
    return Path(tempfile.gettempdir()) / "senticompare-kernels"


def clean_kernel_leftovers() -> list[Path]:
    """Remove the kernel files of runners that are no longer running; returns what was removed."""
    removed = []
    for folder in kernels_root().glob("*"):
        if folder.name.isdigit() and not psutil.pid_exists(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class IPCKernelManager(AsyncKernelManager):
    """A kernel reached over IPC sockets instead of TCP ports on localhost, its files in this
    runner's own folder, started with the runner's environment plus `extra_env` (see `kernel_manager`)."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
    extra_env: dict[str, str] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        folder = kernels_root() / str(os.getpid())
        folder.mkdir(parents=True, exist_ok=True)
        self.connection_file = str(folder / f"k-{uuid.uuid4().hex[:8]}.json")

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        kw["env"] = {**kw.get("env", os.environ), **self.extra_env}
        return await super()._async_pre_start_kernel(**kw)


def kernel_manager(env: dict[str, str]) -> type[IPCKernelManager]:
    """The kernel manager class for one execution: papermill instantiates the class itself, so the
    environment of this one kernel travels in a subclass rather than through os.environ, which
    the runner's other threads share."""
    return type("IPCKernelManagerWithEnv", (IPCKernelManager,), {"extra_env": {**KERNEL_ENV, **env}})


def sync_notebooks(folder: Path = NOTEBOOKS_DIR) -> dict[str, Path]:
    """Each notebooks/<stage>.py (the source git keeps) and the .ipynb paired with it (its header's
    `formats: ipynb,py:percent`) made to hold the same cells, as `jupytext --sync` does: the file
    saved last gives the cells, the .ipynb keeps its outputs; a missing .ipynb is generated. With
    jupytext, JupyterLab saves both files at once; an .ipynb edited without it (saved after its .py,
    other cells) has its cells written to the .py, so `git diff` shows the edit and nothing is lost.
    A written .ipynb takes the time of the .py it was made from, so an edit of the .py made meanwhile
    stays the newer one."""
    import logging

    from jupytext.combine import combine_inputs_with_outputs

    paths = {}
    for source in sorted(folder.glob("[0-9][0-9]_*.py")):
        target = paths[source.stem] = source.with_suffix(".ipynb")
        read_at = source.stat()
        text = source.read_text(encoding="utf-8")
        saved = jupytext.read(target) if target.exists() else None
        if saved is not None and jupytext.writes(saved, fmt="py:percent") == text:
            continue
        if saved is not None and target.stat().st_mtime_ns > read_at.st_mtime_ns:
            saved.metadata["jupytext"] = jupytext.reads(text, fmt="py:percent").metadata.get("jupytext", {})
            edited = jupytext.writes(saved, fmt="py:percent")  # its cells under the .py's own header
            if edited != text:
                text = edited
                atomic_write_text(source, text)
                read_at = source.stat()
                logging.getLogger(__name__).warning("%s was saved after %s with other cells: they are now in the "
                                                    ".py (see git diff)", display_path(target), display_path(source))
        notebook = jupytext.reads(text, fmt="py:percent")
        if saved is not None:
            notebook = combine_inputs_with_outputs(notebook, jupytext.read(target), fmt="py:percent")
        atomic_write_text(target, jupytext.writes(notebook, fmt="ipynb"))
        os.utime(target, ns=(read_at.st_atime_ns, read_at.st_mtime_ns))
    return paths


def reproduce_command(stage: str, run_dir: Path) -> str:
    rel = display_path(run_dir)
    return (f"papermill notebooks/{stage}.ipynb {shlex.quote(rel + '/' + stage + '.rerun.ipynb')} "
            f"-f {shlex.quote(rel + '/params.yaml')} --cwd .")


def pin_threads_in_reproduce(run_dir: Path, stage: str, env: dict[str, str]) -> None:
    """Where the stage's kernel ran on a pinned CPU thread count (a `local` worker's share of the
    cores, a Ray task's num_cpus, or the user's SENTICOMPARE_THREADS), its line in reproduce.sh
    sets the same count: another count sums floating point in another order, and a reviewer's rerun
    must give the recorded numbers."""
    path = run_dir / "reproduce.sh"
    if not path.is_file():
        return
    threads = env.get(THREADS_ENV) or os.environ.get(THREADS_ENV)
    command = reproduce_command(stage, run_dir)
    line_now = f"{THREADS_ENV}={shlex.quote(threads)} {command}" if threads else command
    lines = [line_now if line.endswith(command) else line for line in path.read_text().splitlines()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def execute_notebook(notebook: Path, output: Path, params: dict[str, Any], env: dict[str, str] | None = None) -> None:
    """papermill into a temporary file, renamed into place only when the notebook succeeds;
    a failed execution is kept beside it as <stage>.failed.ipynb for inspection. `env` is added to
    the kernel's environment (the runner's own stays as it is)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp.ipynb")
    try:
        papermill.execute_notebook(str(notebook), str(tmp), parameters=params, kernel_name="python3",
                                   cwd=str(PROJECT_ROOT), progress_bar=False, log_output=False,
                                   kernel_manager_class=kernel_manager(env or {}))
        os.replace(tmp, output)
    except BaseException:
        if tmp.exists():
            os.replace(tmp, output.with_suffix(".failed.ipynb"))
        raise


def error_summary(exc: BaseException) -> str:
    """The error a notebook raised, without papermill's cell dump."""
    if isinstance(exc, papermill.PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue}"
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


if __name__ == "__main__":  # `make notebooks`
    for stage, path in sync_notebooks().items():
        print(f"{stage}: {display_path(path)}")
