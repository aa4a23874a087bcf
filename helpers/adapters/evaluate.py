"""`senticompare evaluate`: score a registered adapter on a labelled dataset it may not have been
trained on (cross-dataset transfer, e.g. an SST-2 adapter on Fine Foods reviews).

The dataset's split is loaded by the study's own data code (`load_splits`: same dataset, preset and
seed give the same rows anywhere), its texts are decided by the adapter with its run's own rules
(`load_predictor(...).predict`: recalibration, conformal sets; nothing is fitted here), and the
dataset's label names are mapped onto the adapter's (`label_map`, dataset label -> adapter label;
by default each label to the adapter's label of the same name). Scored: accuracy, macro
precision/recall/F1 over the adapter labels the dataset's labels map to (a prediction of another
adapter label counts as wrong), 95 % bootstrap CIs (`quality_cis`), the majority class of the
dataset's train split (`majority_baseline`), the confusion matrix (rows: true, columns: predicted,
both in the adapter's label order), and the coverage and size of the adapter's conformal sets on
these texts (the guarantee holds for texts like its own test texts; on another dataset the
coverage is what is measured).

Single-label heads only (binary or multiclass, `method: head`): a multi-label or regression head
has no one label per text to compare, and a generator's decision is its written answer, which this
comparison does not parse. The result is written atomically to
`experiments/evaluations/<adapter id, / as __>__on__<dataset>.json` (a validation split:
`...__validation.json`).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers import config
from helpers.adapters import registry
from helpers.adapters.predict import DecisionRules, load_predictor
from helpers.config import ConfigError
from helpers.core.io import write_json
from helpers.core.paths import display_path, experiments_dir
from helpers.data.splits import as_drawn, load_splits, sample
from helpers.evaluate import quality, significance
from helpers.pipeline.run import reopen_run

SPLITS = ("test", "validation")
KINDS = {"multi": "multi-label", "regression": "regression"}


def evaluations_dir() -> Path:
    return experiments_dir() / "evaluations"


def output_file(adapter: str, dataset: str, split: str = "test") -> Path:
    suffix = "" if split == "test" else f"__{split}"
    return evaluations_dir() / f"{adapter.replace('/', '__')}__on__{dataset}{suffix}.json"


def parse_label_map(items: Iterable[str] | None) -> dict[str, str]:
    """`--label-map great=positive --label-map other=negative` as {dataset label: adapter label}."""
    mapping: dict[str, str] = {}
    for item in items or ():
        source, sep, target = item.partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise ConfigError(f"--label-map {item!r}: give DATASET_LABEL=ADAPTER_LABEL, e.g. great=positive")
        if source in mapping and mapping[source] != target:
            raise ConfigError(f"--label-map maps {source!r} twice ({mapping[source]!r} and {target!r}); give it once")
        mapping[source] = target
    return mapping


def _map_hint(dataset_labels: list[str], adapter_labels: list[str]) -> str:
    pairs = zip(dataset_labels, adapter_labels, strict=True) if len(dataset_labels) == len(adapter_labels) else ()
    example = (" ".join(f"--label-map {d}={a}" for d, a in pairs)
               or f"--label-map {dataset_labels[0]}={adapter_labels[0]}")
    return f"e.g. {example} (label_map in the API)"


def label_mapping(dataset_labels: list[str], adapter_labels: list[str], label_map: dict[str, str] | None,
                  dataset: str = "the dataset", adapter: str = "the adapter") -> dict[str, str]:
    """Every dataset label -> an adapter label: `label_map`'s entries, the others by the same name.
    Several dataset labels may map to one adapter label; an adapter label no dataset label maps to
    can still be predicted (and is then wrong)."""
    label_map = dict(label_map or {})
    unknown = sorted(set(label_map) - set(dataset_labels))
    if unknown:
        raise ConfigError(f"label map: {unknown} are not labels of dataset {dataset!r} (its labels: {dataset_labels}); "
                          f"map the dataset's labels onto adapter {adapter!r}'s {adapter_labels}, "
                          f"{_map_hint(dataset_labels, adapter_labels)}")
    wrong = sorted({v for v in label_map.values() if v not in adapter_labels})
    if wrong:
        raise ConfigError(f"label map: {wrong} are not labels of adapter {adapter!r} (its labels: {adapter_labels}); "
                          f"map dataset {dataset!r}'s labels {dataset_labels} onto them, "
                          f"{_map_hint(dataset_labels, adapter_labels)}")
    mapping = {label: label_map.get(label, label) for label in dataset_labels}
    missing = [label for label, target in mapping.items() if target not in adapter_labels]
    if missing:
        raise ConfigError(f"labels {missing} of dataset {dataset!r} have no counterpart among the labels of adapter "
                          f"{adapter!r}, {adapter_labels} (the dataset's labels: {dataset_labels}); say which adapter "
                          f"label each one means, {_map_hint(dataset_labels, adapter_labels)}")
    return mapping


def check_single_label(record: registry.AdapterRecord, spec: config.DatasetSpec) -> None:
    """Single-label heads on single-label classification data only (the module docstring says why)."""
    if record.method != "head" or record.label_type not in registry.SINGLE_LABEL:
        kind = (f"a generator (method {record.method}): its decision is a written answer" if record.method != "head"
                else f"a {KINDS.get(record.label_type, record.label_type)} head: it gives no single label per "
                     f"text to compare")
        raise ConfigError(f"adapter {record.id!r} is {kind}; evaluate supports single-label classification heads "
                          f"only (binary or multiclass, method head), whose one label per text is scored against "
                          f"the dataset's. Evaluate it on its own splits through a study instead")
    if spec.task != "classification" or spec.label_type != "single":
        kind = f"a {spec.task} task" if spec.task != "classification" else f"{spec.label_type}-label data"
        raise ConfigError(f"dataset {spec.id!r} is {kind}; evaluate scores one label per text, so it takes "
                          f"single-label classification datasets only (label_type single in params/datasets.yaml)")


def _preset_for(preset: str | None, run_preset: config.Preset) -> config.Preset:
    """The adapter run's own preset (its study's overrides included: the run's rows) unless one is named."""
    return run_preset if preset is None else config.load_preset(preset)


def evaluate_adapter(adapter: str, dataset: str, preset: str | None = None, split: str = "test",
                     label_map: dict[str, str] | None = None, max_examples: int | None = None, seed: int = 1337,
                     *, predict: Callable[[list[str]], list[dict[str, Any]]] | None = None,
                     write: bool = True) -> dict[str, Any]:
    """Score a registered single-label head on a registered dataset's split (module docstring).
    `preset` None: the adapter run's own preset (with its study's overrides), so its own dataset at
    its own seed gives its own test rows. `predict` (texts -> decided rows) defaults to
    `load_predictor(adapter).predict`; the API passes its loaded adapters'. Returns the record
    written to `output` (also in the record)."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: evaluate takes one of {list(SPLITS)}")
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"max_examples {max_examples}: give a positive number, or none for the whole split")
    record = registry.finished_run(adapter)
    spec = config.get_dataset(dataset)
    check_single_label(record, spec)
    rules = DecisionRules.from_results(record.run_dir / "results.json")
    adapter_labels = list(rules.labels)
    mapping = label_mapping(list(spec.labels), adapter_labels, label_map, spec.id, record.id)
    run = reopen_run(record.run_dir)
    chosen = _preset_for(preset, run.preset)
    data_dir = os.environ.get("SENTICOMPARE_DATA_DIR") or run.data_dir
    splits = load_splits(spec, chosen, seed, data_dir)
    frame: pd.DataFrame = splits.split(split)
    if frame.empty:
        raise ConfigError(f"dataset {spec.id!r} has no {split} rows under preset {chosen.name!r}; try --split test")
    if max_examples is not None:
        frame = sample(frame, max_examples, seed)

    to_adapter = np.array([adapter_labels.index(mapping[label]) for label in splits.labels])
    y_true = to_adapter[frame["label"].to_numpy(dtype=int)]
    y_train = to_adapter[as_drawn(splits, chosen)["label"].to_numpy(dtype=int)]
    scored = sorted({int(i) for i in to_adapter})  # the adapter labels the dataset's labels map to
    texts = frame["text"].astype(str).tolist()
    rows = (predict or load_predictor(adapter).predict)(texts)
    y_pred = np.array([adapter_labels.index(row["label"]) for row in rows])
    sets = [row["conformal_set"] for row in rows]

    metrics = quality.classification_metrics(y_true, y_pred, scored)
    majority = quality.majority_baseline(y_train, y_true, scored)
    majority_label = adapter_labels[int(majority.pop("majority_label"))]
    same_dataset = spec.id == record.dataset
    note = None
    if same_dataset and (split != "test" or seed != record.seed or chosen != run.preset):
        note = (f"evaluated on the adapter's own dataset with other rows than its run's test split ({split}, "
                f"seed {seed}, preset {chosen.name}; the run: test, seed {record.seed}, preset {run.preset.name}): "
                f"the rows may include texts the adapter was trained, recalibrated or calibrated on")
    result = {
        "adapter": record.id,
        "adapter_dataset": record.dataset,
        "adapter_labels": adapter_labels,
        "dataset": spec.id,
        "dataset_labels": list(splits.labels),
        "dataset_fingerprint": splits.fingerprint,
        "split": split,
        "preset": chosen.name,
        "seed": seed,
        "label_map": mapping,
        "examples": len(frame),
        "split_examples": len(splits.split(split)),
        "accuracy": metrics["accuracy"],
        "f1": metrics["f1"],
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        **significance.quality_cis(y_true, y_pred, scored, seed=seed),
        "baseline_majority": {"label": majority_label, "accuracy": majority["accuracy"], "f1": majority["f1"]},
        "confusion_labels": adapter_labels,
        "confusion_matrix": quality.confusion(y_true, y_pred, list(range(len(adapter_labels)))).tolist(),
        "conformal_alpha": rules.conformal_alpha,
        "conformal_coverage": float(np.mean([adapter_labels[t] in s for t, s in zip(y_true, sets, strict=True)])),
        "conformal_set_size": float(np.mean([len(s) for s in sets])),
        "abstain_share": float(np.mean([row["abstain"] for row in rows])),
        "adapter_test_accuracy": record.metrics.get("accuracy"),
        "note": note,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = output_file(record.id, spec.id, split)
    result["output"] = display_path(path)
    if write:
        write_json(path, result)
    return result


def summary_table(result: dict[str, Any]) -> str:
    """The CLI's short table: the headline numbers, then the confusion matrix."""
    def ci(key: str) -> str:
        low, high = result[f"{key}_ci95"]
        return f"{result[key]:.3f} ({low:.3f}-{high:.3f})"

    base = result["baseline_majority"]
    lines = [
        f"{result['adapter']} (trained on {result['adapter_dataset']}) on {result['dataset']} "
        f"{result['split']}: {result['examples']} examples, preset {result['preset']}, seed {result['seed']}",
        f"  accuracy (95 % CI)        {ci('accuracy')}",
        f"  macro F1 (95 % CI)        {ci('f1')}",
        f"  majority class ({base['label']})   accuracy {base['accuracy']:.3f}, macro F1 {base['f1']:.3f}",
        f"  conformal coverage / size {result['conformal_coverage']:.3f} / {result['conformal_set_size']:.2f} "
        f"(target {1 - result['conformal_alpha']:.2f})",
    ]
    mapped = {d: a for d, a in result["label_map"].items() if d != a}
    if mapped:
        lines.append("  label map                 " + ", ".join(f"{d}={a}" for d, a in mapped.items()))
    labels = result["confusion_labels"]
    table = pd.DataFrame(result["confusion_matrix"], index=[f"true {x}" for x in labels],
                         columns=[f"pred {x}" for x in labels])
    lines += ["", table.to_string()]
    if result.get("note"):
        lines += ["", f"note: {result['note']}"]
    return "\n".join(lines)
