"""`senticompare export`: a finished run's LoRA merged into its base model
(`merge_and_unload`) as a standalone transformers folder that loads without peft or this
project: safetensors weights, the tokenizer (with the chat template a generator was trained
with), label names in the config, and `senticompare.json` with where it came from (run
parameters, commit, metrics, the run's recalibration, which a plain `softmax(logits)` does not
apply). Written beside the target and moved in whole."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from helpers.config import ConfigError
from helpers.core.device import precision_for
from helpers.core.io import read_json, write_json
from helpers.generate import stage as generation
from helpers.pipeline.run import reopen_run
from helpers.train import models

RECORD = "senticompare.json"


def export_run(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Merge the run's adapter into its base model and write the folder described above; returns it."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / "results.json").is_file():
        raise ConfigError(f"{run_dir} holds no results.json: export a finished run "
                          f"(experiments/<study>/<dataset>/<model>/)")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / RECORD).is_file():
        raise ConfigError(f"{out_dir} exists and is not an earlier export; give an empty or new folder")
    run = reopen_run(run_dir)
    if run.model.pooling == "mean":
        raise ConfigError(f"{run.model.id!r} classifies from a masked mean of its token states (pooling: mean), "
                          f"which a plain transformers folder cannot hold; load the run with "
                          f"helpers.train.models.load_finetuned instead")
    results = read_json(run_dir / "results.json")
    labels = results["quality"]["labels"]
    # Full precision on the CPU: a quantized base cannot take the merged weights.
    model = models.load_finetuned(run.model, run.adapter_dir, labels, precision_for("cpu"), "none")
    tokenizer = (generation.tokenizer_for(run) if run.model.method == "generate"
                 else models.load_tokenizer(run.model, run.preset.truncation_side))
    staging = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    quality = results["quality"]
    write_json(staging / RECORD, {
        "run": str(run_dir), "model": run.model.id, "method": run.model.method, "dataset": run.dataset.id,
        "labels": labels, "seed": run.seed, "params": results["params"],
        "git": results["environment"].get("git"), "data_fingerprint": results["data_fingerprint"],
        "metrics": {k: results.get(k) for k in ("accuracy", "f1", "precision", "recall")},
        "recalibration": {k: quality.get(k) for k in ("recalibration", "temperature", "class_bias")},
    })
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, out_dir)
    return out_dir
