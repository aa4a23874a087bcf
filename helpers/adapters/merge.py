"""`senticompare merge`: registered adapters of one base model and one label set combined with
weights into a new adapter through peft's `add_weighted_adapter` (linear, ties, dare_ties, cat),
written as a run folder, evaluated like a run and registered, so `predict`, `export`, the API and
the web UI take it like any trained adapter.

- One label set: the merged adapter has the labels of the parent it is evaluated on; another
  head parent may have them in another order, or under other names that `label_map` pairs with
  them (SST-2's `negative, positive` and Fine Foods' `other, great`: `--label-map great=positive
  other=negative`); its head's rows are put in that parent's order before they are combined.

- The LoRA matrices are combined by peft. peft refuses to combine adapters whose classification
  head it keeps in `modules_to_save` (`score`, `classifier`): it cannot merge full modules. So the
  parents are loaded without their heads, their LoRA weights combined by peft, and each head
  tensor combined here with the same weights, `sum(w_i * head_i)` for every method: a head is a
  small full matrix trained from zero (helpers/train/models.py `_zero_head`), not a low-rank delta,
  so TIES' trimming and DARE's random drops, made to thin out millions of delta entries, are not
  applied to it. The new adapter keeps the parents' `modules_to_save`, so it loads as theirs do.
- The merged run folder is `experiments/merged/<dataset>/<name>` (registry id
  `merged/<dataset>/<name>`): the evaluation parent's `params.yaml` (study `merged`), its saved
  splits and data record, the merged `adapter/`, and what 03_evaluate writes for it
  (`predictions.csv`, `stages/03_evaluate.json`: the recalibration, conformal q-hat and thresholds
  are fitted for the merged adapter on that parent's validation and calibration splits, never
  copied from a parent). `results.json` holds the evaluation and a `merge` block (method, density,
  parents with their weights); a merged run has no training or speed record.
- The folder is built beside its place and moved in whole once evaluated.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from helpers.adapters import registry
from helpers.adapters.registry import AdapterRecord
from helpers.config import ConfigError, read_yaml
from helpers.config.base import ID_RULE, is_id
from helpers.core.device import precision_for
from helpers.core.environment import environment
from helpers.core.io import read_json, write_json, write_yaml
from helpers.core.paths import display_path, experiments_dir
from helpers.pipeline.run import open_run, run_params

log = logging.getLogger(__name__)

METHODS = ("linear", "ties", "dare_ties", "cat")
PRUNING = ("ties", "dare_ties")  # the methods that keep a share (density) of each delta
DEFAULT_DENSITY = 0.5
STUDY = "merged"  # the merged runs' folder under experiments/ and their study in params.yaml
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
# Must match across parents: where LoRA sits decides which weights peft combines.
PLACEMENT = ("target_modules", "layers_to_transform", "layers_pattern", "task_type", "modules_to_save")
LABEL_ROWS = ("score", "classifier")  # head modules with one row per label (a generator's lm_head has none)


@dataclass(frozen=True)
class WeightedAdapter:
    id: str
    weight: float


def parse_weighted(spec: str) -> WeightedAdapter:
    """`ID:WEIGHT` (e.g. `default/finefoods/smollm2-135m:0.5`)."""
    adapter, sep, weight = spec.rpartition(":")
    try:
        value = float(weight)
    except ValueError:
        value = math.nan
    if not sep or not adapter or not math.isfinite(value):
        raise ConfigError(f"{spec!r}: give each adapter as ID:WEIGHT, e.g. default/finefoods/smollm2-135m:0.5 "
                          f"(`senticompare adapters list` shows the ids)")
    return WeightedAdapter(adapter, value)


@dataclass(frozen=True)
class MergePlan:
    parents: list[tuple[AdapterRecord, float]]
    method: str
    density: float | None  # ties and dare_ties only
    name: str
    evaluate_on: AdapterRecord  # the parent whose splits evaluate the merged adapter
    head_orders: list[list[int]]  # per parent: its head's row for each of evaluate_on's labels
    label_map: dict[str, str]  # parent label = evaluate_on label pairs the user gave (either way round)

    @property
    def run_dir(self) -> Path:
        return experiments_dir() / STUDY / self.evaluate_on.dataset / self.name

    @property
    def id(self) -> str:
        return f"{STUDY}/{self.evaluate_on.dataset}/{self.name}"


def _lora_config(record: AdapterRecord) -> dict:
    path = record.run_dir / "adapter" / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"adapter {record.id!r}: {path} not found; the run folder lost its adapter (rerun it with "
                          f"--force, or `senticompare adapters remove {record.id}`)")
    return read_json(path)


def head_order(labels: list[str], target: list[str], label_map: dict[str, str]) -> list[int] | None:
    """Row i of the merged head comes from row `order[i]` of a parent head with `labels`: its labels,
    renamed by `label_map` (given either way round) where they are not the target's, must be the
    target's labels in some order. None where they are not."""
    pairs = {**{b: a for a, b in label_map.items()}, **label_map}
    named = [label if label in target else pairs.get(label, label) for label in labels]
    if sorted(named) != sorted(target) or len(set(named)) != len(named):
        return None
    return [named.index(label) for label in target]


def plan_merge(parents: list[WeightedAdapter], method: str, name: str, density: float | None = None,
               dataset: str | None = None, label_map: dict[str, str] | None = None) -> MergePlan:
    """Check that the adapters can be merged this way, before anything is loaded: two or more
    distinct finished adapters of one base model, method and label set (a head's labels in any
    order, or paired by `label_map`), with LoRA in the same places (and of one rank, except for `cat`)."""
    if method not in METHODS:
        raise ConfigError(f"merge method {method!r}: use one of {', '.join(METHODS)}")
    if not is_id(name):
        raise ConfigError(f"--out-id {name!r}: {ID_RULE}; the merged adapter becomes {STUDY}/<dataset>/<out-id>")
    ids = [p.id for p in parents]
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise ConfigError(f"merge needs two or more different adapters, got {ids}; give --adapters A:0.5 B:0.5")
    if method in PRUNING:
        density = DEFAULT_DENSITY if density is None else density
        if not 0 < density <= 1:
            raise ConfigError(f"--density {density}: {method} keeps this share of each delta; give 0 < density <= 1")
    elif density is not None:
        raise ConfigError(f"--density applies to {' and '.join(PRUNING)} only; leave it out for {method}")
    records = [(registry.finished_run(p.id), p.weight) for p in parents]
    first = records[0][0]
    first_config = _lora_config(first)
    for record, _ in records[1:]:
        for field, what in (("base_model", "base model"), ("method", "method (head or generate)")):
            if getattr(record, field) != getattr(first, field):
                raise ConfigError(f"adapters {first.id!r} and {record.id!r} have different {what}: "
                                  f"{getattr(first, field)!r} and {getattr(record, field)!r}; merge adapters of one "
                                  f"base model and one label set")
        config = _lora_config(record)
        for key in PLACEMENT:
            if _as_set(config.get(key)) != _as_set(first_config.get(key)):
                raise ConfigError(f"adapters {first.id!r} and {record.id!r} put LoRA in different places ({key}: "
                                  f"{first_config.get(key)} and {config.get(key)} in their adapter/{CONFIG_FILE}); "
                                  f"merge adapters trained with the same lora_targets and train.lora_layers")
        if method != "cat" and config["r"] != first_config["r"]:
            raise ConfigError(f"adapters {first.id!r} and {record.id!r} have LoRA ranks {first_config['r']} and "
                              f"{config['r']}; {method} needs one rank: use --method cat, which takes any ranks")
    chosen = first if dataset is None else next((r for r, _ in records if r.dataset == dataset), None)
    if chosen is None:
        raise ConfigError(f"--dataset {dataset!r} is none of the parents' datasets "
                          f"({sorted({r.dataset for r, _ in records})}); the merged adapter is evaluated on the "
                          f"saved splits of a parent")
    label_map = dict(label_map or {})
    orders = []
    for record, _ in records:
        order = (head_order(record.labels, chosen.labels, label_map) if record.method == "head"
                 else list(range(len(record.labels))) if record.labels == chosen.labels else None)
        if order is None:
            fix = ("pair them with --label-map PARENT_LABEL=LABEL, e.g. --label-map great=positive other=negative "
                   "(label_map in the API)" if record.method == "head"
                   else "a generator's prompt lists its labels: merge generators trained on one label set")
            raise ConfigError(f"adapters {chosen.id!r} and {record.id!r} have different labels: {chosen.labels} and "
                              f"{record.labels}; {fix}")
        orders.append(order)
    return MergePlan(records, method, density, name, chosen, orders, label_map)


def _as_set(value: object) -> object:
    return frozenset(value) if isinstance(value, list) else value


def _split_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An adapter file's LoRA tensors and its fully trained modules' (`modules_to_save`) tensors."""
    from safetensors.torch import load_file

    state = load_file(path)
    lora = {k: v for k, v in state.items() if ".lora_" in k}
    return lora, {k: v for k, v in state.items() if k not in lora}


def merge_weights(adapter_dirs: list[Path], weights: list[float], method: str, density: float | None,
                  base: torch.nn.Module, out_dir: Path, head_orders: list[list[int]] | None = None) -> Path:
    """Combine the adapters in `adapter_dirs` (loaded on `base`, a model of their base checkpoint,
    which this changes) into one adapter folder `out_dir` (adapter_config.json and
    adapter_model.safetensors, as peft saves them): LoRA by peft's `add_weighted_adapter`, the heads
    in `modules_to_save` by the weighted sum (see the module docstring), each classification head's
    rows first put in its `head_orders` order (plan_merge)."""
    from peft import LoraConfig, PeftModel, get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import save_file

    names = [f"parent{i}" for i in range(len(adapter_dirs))]
    heads = []
    model = None
    kept_modules = LoraConfig.from_pretrained(str(adapter_dirs[0])).modules_to_save  # the same in every parent
    for name, folder in zip(names, adapter_dirs, strict=True):
        config = LoraConfig.from_pretrained(str(folder))
        config.modules_to_save = None  # peft's merge refuses them; the heads are combined below
        config.inference_mode = True
        if model is None:
            model = PeftModel(base, config, adapter_name=name)
        else:
            model.add_adapter(name, config)
        lora, head = _split_state(Path(folder) / WEIGHTS_FILE)
        loaded = set_peft_model_state_dict(model, lora, adapter_name=name)
        missing = [k for k in loaded.missing_keys if f".{name}." in k and "lora_" in k]
        if missing or loaded.unexpected_keys:
            raise ConfigError(f"{folder}/{WEIGHTS_FILE} does not fit its own {CONFIG_FILE} (missing {missing[:3]}, "
                              f"unexpected {list(loaded.unexpected_keys)[:3]}); the adapter is damaged: rerun its run")
        heads.append(head)
    for head, order in zip(heads, head_orders or [], strict=False):
        for key in [k for k in head if k.rsplit(".", 2)[-2] in LABEL_ROWS]:
            head[key] = head[key][order]
    if any(set(h) != set(heads[0]) or any(h[k].shape != heads[0][k].shape for k in h) for h in heads):
        raise ConfigError(f"the adapters' trained heads differ in their tensors ({[sorted(h) for h in heads]}); "
                          f"merge adapters of one model and one label set")
    model.add_weighted_adapter(names, list(weights), "merged", combination_type=method, density=density)
    merged = get_peft_model_state_dict(model, adapter_name="merged")
    merged.update({key: sum(w * h[key].float() for w, h in zip(weights, heads, strict=True)).to(heads[0][key].dtype)
                   for key in heads[0]})
    config = model.peft_config["merged"]
    config.modules_to_save = kept_modules
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in merged.items()}, str(out_dir / WEIGHTS_FILE),
              metadata={"format": "pt"})
    config.save_pretrained(str(out_dir))
    return out_dir


def merge_adapters(plan: MergePlan, force: bool = False,
                   on_stage: Callable[[str], None] | None = None) -> AdapterRecord:
    """Merge, evaluate and register as described in the module docstring; returns the new record.
    An existing merged adapter of that name is replaced only with `force`, once the new one is done."""
    from helpers.evaluate.stage import evaluate_model
    from helpers.train import models

    say = on_stage or (lambda message: log.info("%s", message))
    target = plan.run_dir
    if target.exists() and not force:
        raise ConfigError(f"{target} exists (adapter {plan.id}); give another --out-id, or --force to replace it")
    source = plan.evaluate_on.run_dir
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        params = {**read_yaml(source / "params.yaml"), "study": STUDY, "run_dir": display_path(target)}
        write_yaml(staging / "params.yaml", params)
        shutil.copytree(source / "data", staging / "data")
        run = open_run(**{**params, "run_dir": str(staging)})  # seeds every RNG: dare_ties drops at random
        run_data = read_json(source / "stages" / "01_data.json")
        run.write_stage("01_data", run_data)
        labels = plan.evaluate_on.labels
        say(f"loading {len(plan.parents)} adapters on {plan.evaluate_on.base_model}")
        cpu = precision_for("cpu")
        base = (models.load_causal_lm(run.model, cpu) if run.model.method == "generate"
                else models.load_base(run.model, labels, cpu))
        say(f"merging with {plan.method}" + (f" (density {plan.density})" if plan.density is not None else ""))
        merge_weights([r.run_dir / "adapter" for r, _ in plan.parents], [w for _, w in plan.parents], plan.method,
                      plan.density, base, run.adapter_dir, plan.head_orders)
        del base
        say(f"evaluating on {run.dataset.id}: validation, calibration and test splits of {plan.evaluate_on.id}")
        evaluation, _ = evaluate_model(run)
        results = {
            "model_name": run.model.id, "dataset": run.dataset.id, "seed": run.seed,
            **{k: evaluation[k] for k in ("accuracy", "f1", "precision", "recall")},
            "quality": evaluation, "data": run_data, "data_fingerprint": run_data["fingerprint"],
            "merge": {"method": plan.method, "density": plan.density, "evaluated_on": plan.evaluate_on.id,
                      "label_map": plan.label_map,
                      "parents": [{"id": r.id, "weight": w, "dataset": r.dataset, "labels": r.labels,
                                   "accuracy": r.metrics.get("accuracy")} for r, w in plan.parents]},
            "params": run_params(run), "environment": environment(run.device),
        }
        write_json(staging / "results.json", results)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replaced = target.with_name(f".{target.name}.replaced")
    if target.exists():
        shutil.rmtree(replaced, ignore_errors=True)
        os.replace(target, replaced)
    os.replace(staging, target)
    shutil.rmtree(replaced, ignore_errors=True)
    say(f"registered {plan.id}: accuracy {results['accuracy']:.3f} on {run.dataset.id}")
    return registry.register(registry.record_from_results(target, results))
