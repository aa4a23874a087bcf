"""02_train on several processes: a preset's `train: {distributed: ddp}` runs the stage's training
under torchrun (PyTorch DDP through the Trainer, which is built on accelerate) with
`train.processes` ranks: NCCL on GPUs, one per rank; gloo on CPU cores.

The notebook's kernel launches `torchrun -m helpers.train.distributed <run>`; every rank runs the
same `train_model` as one process would, on its share of each batch (`batch_size` stays the global
batch: each rank takes batch_size / processes, so the steps, the schedule and the metrics in
expectation are one process's), and rank 0 alone saves the adapter and the stage record, which the
kernel then reads. Models that do not fit one GPU need FSDP or DeepSpeed ZeRO-3 instead
(docs/scale.md).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from helpers.config import ConfigError, TrainConfig
from helpers.core.paths import PROJECT_ROOT
from helpers.pipeline.run import Run, seed_everything

OUTPUT_TAIL = 4000  # characters of the ranks' output kept in the error of a failed training


def in_rank() -> bool:
    """Whether this process is one of torchrun's ranks."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if in_rank() else 1


def is_main_process() -> bool:
    return not in_rank() or int(os.environ["RANK"]) == 0


def describe() -> dict[str, Any]:
    """What the stage record says of the training's processes: nothing for one."""
    if not in_rank():
        return {}
    return {"distributed": {"kind": "ddp", "processes": world_size(),
                            "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None}}


def processes(cfg: TrainConfig) -> int:
    """The preset's `processes`, else one per visible GPU."""
    if cfg.processes:
        return cfg.processes
    gpus = torch.cuda.device_count()
    if not gpus:
        raise ConfigError("train.distributed ddp without GPUs needs train.processes (e.g. 2: DDP over gloo on the "
                          "CPU cores)")
    if cfg.batch_size % gpus:
        raise ConfigError(f"train.batch_size {cfg.batch_size} is the global batch of {gpus} GPUs: make it a multiple "
                          f"of {gpus}, or set train.processes")
    return gpus


def launch(run: Run) -> None:
    """02_train's training on `processes(cfg)` ranks under torchrun; raises with the ranks' last
    output when one fails. The run travels pickled, in a `.trainer-*` folder of the run (cleared by
    the runner if the kernel is killed)."""
    n = processes(run.preset.train)
    env = dict(os.environ)
    if run.device == "cpu":  # the ranks share the cores this process has
        env["OMP_NUM_THREADS"] = str(max(1, torch.get_num_threads() // n))
    with tempfile.TemporaryDirectory(prefix=".trainer-ddp-", dir=run.run_dir) as job:
        run_file = Path(job) / "run.pickle"
        run_file.write_bytes(pickle.dumps(run))
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
                               "-m", __name__, str(run_file)], cwd=PROJECT_ROOT, env=env, capture_output=True,
                              text=True)
    if done.returncode:
        output = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
        raise RuntimeError(f"DDP training on {n} processes failed (torchrun exit {done.returncode}):\n{output}")


def main(run_file: str) -> None:
    """One rank: the stage's training as one process would run it (helpers/train/stage.py)."""
    from helpers.train.stage import train_model

    run: Run = pickle.loads(Path(run_file).read_bytes())
    if run.device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    seed_everything(run.seed)
    try:
        train_model(run)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
