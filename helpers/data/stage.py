"""01_data: load, check, split and save the rows every later stage uses. The notebook calls this
and shows the result; the runner and a reviewer's papermill rerun go through the same code."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from helpers.data.records import SPLITS, DatasetSplits
from helpers.data.splits import load_splits, save_splits
from helpers.data.tasks import prepare_task_data
from helpers.pipeline.run import Run
from helpers.train.models import load_tokenizer


def prepare_data(run: Run) -> tuple[DatasetSplits, dict[str, np.ndarray]]:
    """01_data: load, check, split and save the rows every later stage uses; returns the
    splits and each text's length in the model's tokens (a task dataset: helpers/data/tasks.py)."""
    if run.dataset.task != "classification":
        return prepare_task_data(run)
    splits = load_splits(run.dataset, run.preset, run.seed, run.data_dir)
    save_splits(splits, run.data_folder)
    tokenizer = load_tokenizer(run.model, run.preset.truncation_side)
    lengths = token_lengths(splits, tokenizer)
    run.write_stage("01_data", {
        "dataset": splits.dataset,
        "source": splits.source,
        "fingerprint": splits.fingerprint,
        "labels": splits.labels,
        "rows": {name: len(splits.split(name)) for name in SPLITS},
        "class_counts": splits.summary().drop(columns="rows").to_dict(orient="index"),
        "truncated_share": {name: float((lengths[name] > run.preset.max_length).mean()) for name in SPLITS},
        "max_length": run.preset.max_length,
        "findings": [dataclasses.asdict(f) for f in splits.findings],
    })
    return splits, lengths


def token_lengths(splits: DatasetSplits, tokenizer) -> dict[str, np.ndarray]:
    """Untruncated length of every text in the model's own tokens, per split."""
    return {name: np.array([len(ids) for ids in tokenizer(splits.split(name)["text"].tolist())["input_ids"]])
            for name in SPLITS}


def example_rows(splits: DatasetSplits, per_class: int = 2, chars: int = 300) -> pd.DataFrame:
    """Train rows to read: `per_class` of each class, or the first few of a multi-label (label names)
    or regression (targets) dataset; texts cut at `chars`."""
    train = splits.train
    if splits.label_type == "single":
        shown = train.groupby("label", group_keys=False).head(per_class)
        labels = shown["label"].map(dict(enumerate(splits.labels)))
    else:
        shown = train.head(3 * per_class)
        labels = shown["label"].map(lambda v: ", ".join(splits.labels[i] for i in v) if splits.label_type == "multi"
                                    else list(np.asarray(v).tolist()))
    return shown.assign(label=labels, text=shown["text"].str.slice(0, chars))
