from pathlib import Path

import pytest

from helpers import config
from helpers.paths import PARAMS_DIR


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_registered_file_loads():
    models = config.load_models()
    assert {"smollm2-135m", "gemma3-270m", "minilm-l6"} <= set(models)
    assert models["minilm-l6"].family == "encoder"
    datasets = config.load_datasets()
    assert datasets["finefoods"].labels == ["other", "great"]
    for preset in (PARAMS_DIR / "presets").glob("*.yaml"):
        assert config.load_preset(preset.stem).max_length >= 8
    for study in (PARAMS_DIR / "studies").glob("*.yaml"):
        assert config.load_study(study).models


def test_unknown_model_id_names_the_registry_and_choices(tmp_path):
    path = write(tmp_path, "name: x\nmodels: [gpt-17]\ndatasets: [finefoods]\npreset: quick\nseeds: [1]\n")
    with pytest.raises(config.ConfigError, match=r"unknown model id 'gpt-17'.*params/models.yaml.*minilm-l6"):
        config.load_study(path)


def test_unknown_dataset_id(tmp_path):
    path = write(tmp_path, "name: x\nmodels: [minilm-l6]\ndatasets: [nope]\npreset: quick\nseeds: [1]\n")
    with pytest.raises(config.ConfigError, match="unknown dataset id 'nope'"):
        config.load_study(path)


def test_malformed_yaml_reports_file_and_line(tmp_path):
    path = write(tmp_path, "name: x\nmodels: [minilm-l6\ndatasets: [finefoods]\n")
    with pytest.raises(config.ConfigError, match=r"study.yaml: malformed YAML \(line \d+"):
        config.load_study(path)


def test_unknown_key_is_rejected_with_allowed_keys(tmp_path):
    path = write(tmp_path, "name: x\nmodel: [minilm-l6]\ndatasets: [finefoods]\npreset: quick\nseeds: [1]\n")
    with pytest.raises(config.ConfigError, match=r"unknown key\(s\) \['model'\]"):
        config.load_study(path)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(config.ConfigError, match=r"unknown preset 'fast'.*quick"):
        config.load_preset("fast")


def test_bad_quantization_value_in_a_preset_or_a_model_entry(tmp_path):
    path = write(tmp_path, "max_train: 1\nmax_validation: 1\nmax_test: 1\nmax_length: 32\nbalance: false\n"
                           "train: {quantization: 8bit}\n", "p.yaml")
    with pytest.raises(config.ConfigError, match="'8bit' is not one of"):
        config.load_preset(str(path))
    models = write(tmp_path, "m:\n  source: hub\n  hub_id: x/y\n  family: decoder\n  lora_targets: [q]\n"
                             "  train: {quantization: 8bit}\n", "models.yaml")
    with pytest.raises(config.ConfigError, match="model 'm': train.quantization: '8bit' is not one of"):
        config.load_models(models)


def test_overrides_replace_nested_values():
    preset = config.apply_overrides(config.load_preset("quick"), {"max_train": 8, "train": {"max_steps": 2}})
    assert preset.max_train == 8 and preset.train.max_steps == 2
    assert preset.train.lora_r == config.load_preset("quick").train.lora_r
    with pytest.raises(config.ConfigError):
        config.apply_overrides(preset, {"max_trian": 8})
    with pytest.raises(config.ConfigError):
        config.apply_overrides(preset, {"train": {"lr": 1}})


def test_benchmarks_entry_without_results_names_the_bench_command(tmp_path):
    empty = tmp_path / "no-results"
    empty.mkdir()
    path = write(tmp_path, f"name: x\nmodels: [minilm-l6]\ndatasets: [finefoods]\npreset: quick\nseeds: [1]\n"
                           f"benchmarks: [{empty}]\n")
    with pytest.raises(config.ConfigError, match=r"holds no <dataset>/<model>.json; run `senticompare bench --publish`"):
        config.load_study(path)
