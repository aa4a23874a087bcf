"""The params/ registries (models, datasets, presets, studies) read into checked records.

Every check runs before any model is loaded, so a typo in a YAML file costs seconds, not a
training run, and the error names the file, the key and the fix.
"""
from helpers.config.base import ConfigError, as_mapping, build, override, read_yaml
from helpers.config.dataset import DatasetSpec, get_dataset, load_datasets
from helpers.config.model import ModelSpec, get_model, load_models
from helpers.config.preset import (RECALIBRATIONS, EvaluationConfig, GenerationConfig, Preset, SpeedConfig,
                                   TrainConfig, apply_overrides, load_preset)
from helpers.config.study import Study, load_study, run_overrides

__all__ = ["ConfigError", "DatasetSpec", "EvaluationConfig", "GenerationConfig", "ModelSpec", "Preset",
           "RECALIBRATIONS", "SpeedConfig", "Study", "TrainConfig", "apply_overrides", "as_mapping", "build",
           "get_dataset", "get_model", "load_datasets", "load_models", "load_preset", "load_study", "override",
           "read_yaml", "run_overrides"]
