"""DDP training: 02_train on 2 CPU processes over gloo trains the global batch the preset names,
and rank 0 alone saves the adapter and the stage record."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from helpers import config
from helpers.data.stage import prepare_data
from helpers.pipeline.run import open_run
from helpers.train.stage import train_model

TINY = {"max_train": 32, "max_validation": 16, "max_calibration": 24, "max_test": 32, "max_length": 40,
        "train": {"max_steps": 2, "batch_size": 8}}


def test_ddp_settings_check_themselves():
    train = config.load_preset("quick").train
    with pytest.raises(config.ConfigError, match="distributed must be one of"):
        config.apply_overrides(config.load_preset("quick"), {"train": {"distributed": "fsdp"}})
    with pytest.raises(config.ConfigError, match="batch_size 9 is the global batch of 2 processes"):
        config.apply_overrides(config.load_preset("quick"), {"train": {"distributed": "ddp", "processes": 2,
                                                                       "batch_size": 9}})
    with pytest.raises(config.ConfigError, match="processes 2 needs distributed: ddp"):
        config.apply_overrides(config.load_preset("quick"), {"train": {"processes": 2}})
    assert train.distributed == "none" and train.processes is None


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_and_rank_zero_saves(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("SENTICOMPARE_THREADS", "1")
    overrides = {**TINY, "train": {**TINY["train"], "distributed": "ddp", "processes": 2}}
    run = open_run("minilm-l6", "sst2", "quick", 5, str(tmp_path / "run"), overrides=overrides)
    prepare_data(run)
    record = train_model(run)
    assert record["distributed"] == {"kind": "ddp", "processes": 2, "backend": "gloo"}
    assert record["steps"] == 2
    assert record["epochs"] == 0.5  # 2 steps of a global batch of 8 (4 per process) over 32 sentences
    assert run.read_stage("02_train") == record
    weights = load_file(run.adapter_dir / "adapter_model.safetensors")
    assert any("lora_B" in name and torch.count_nonzero(w) for name, w in weights.items())  # trained, not initial
    assert sorted(p.name for p in run.run_dir.iterdir() if p.name.startswith(".")) == []  # no scratch, no temp adapter
