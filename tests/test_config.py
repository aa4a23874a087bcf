from pathlib import Path

import pytest

from helpers import config
from helpers.core.paths import PARAMS_DIR


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
                           "train: {quantization: 3bit}\n", "p.yaml")
    with pytest.raises(config.ConfigError, match=r"p.yaml: train: quantization must be one of \['4bit', '8bit', 'none'\], got '3bit'"):
        config.load_preset(str(path))
    models = write(tmp_path, "m:\n  source: hub\n  hub_id: x/y\n  family: decoder\n  lora_targets: [q]\n"
                             "  train: {quantization: 3bit}\n", "models.yaml")
    with pytest.raises(config.ConfigError, match=r"model 'm': train: quantization must be one of \['4bit', '8bit', 'none'\], got '3bit'"):
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


# Every checked key of a preset, reached through a study's `overrides:`: the study fails when it is
# loaded (before any model), naming the file, the key path, the bad value and what is allowed.
BAD_OVERRIDES = [
    ({"train": {"quantization": "4-bit"}}, r"train: quantization must be one of \['4bit', '8bit', 'none'\], got '4-bit'"),
    ({"train": {"epochs": 0}}, r"train: epochs must be a positive number, got 0"),
    ({"train": {"learning_rate": "1e-3"}}, r"train: learning_rate must be float, got '1e-3' \(YAML reads a number"),
    ({"train": {"batch_size": 0}}, r"train: batch_size must be a positive integer, got 0"),
    ({"train": {"eval_batch_size": 2.5}}, r"train: eval_batch_size must be int, got 2.5"),
    ({"train": {"weight_decay": -0.1}}, r"train: weight_decay must be a non-negative number, got -0.1"),
    ({"train": {"warmup_ratio": 1.5}}, r"train: warmup_ratio must be in \[0, 1\), got 1.5"),
    ({"train": {"lora_r": 0}}, r"train: lora_r must be a positive integer, got 0"),
    ({"train": {"lora_alpha": -16}}, r"train: lora_alpha must be a positive number, got -16"),
    ({"train": {"lora_dropout": 1.0}}, r"train: lora_dropout must be in \[0, 1\), got 1.0"),
    ({"train": {"max_steps": 0}}, r"train: max_steps must be -1 \(as the epochs take\) or a positive integer, got 0"),
    ({"train": {"lora_layers": -2}}, r"train: lora_layers must be 0 \(every layer\) or a positive integer, got -2"),
    ({"train": {"lr": 1e-3}}, r"train: unknown key\(s\) \['lr'\]; allowed: \[.*'learning_rate'"),
    ({"speed": {"warmup": -1}}, r"speed: warmup must be a non-negative integer, got -1"),
    ({"speed": {"repeats": 0}}, r"speed: repeats must be a positive integer, got 0"),
    ({"speed": {"batch_size": 0}}, r"speed: batch_size must be a positive integer, got 0"),
    ({"speed": {"max_examples": 0}}, r"speed: max_examples must be a positive integer, got 0"),
    ({"evaluation": {"ece_bins": 0}}, r"evaluation: ece_bins must be a positive integer, got 0"),
    ({"evaluation": {"conformal_alpha": 1.5}}, r"evaluation: conformal_alpha must be in \(0, 1\), got 1.5"),
    ({"evaluation": {"target_accuracy": 0}}, r"evaluation: target_accuracy must be in \(0, 1\], got 0"),
    ({"evaluation": {"cost_matrix": [[0, 1]]}}, r"evaluation: cost_matrix must be null or a square list of rows"),
    ({"evaluation": {"abstain_cost": -1}}, r"evaluation: abstain_cost must be a non-negative number, got -1"),
    ({"evaluation": {"min_group_size": 0}}, r"evaluation: min_group_size must be a positive integer, got 0"),
    ({"evaluation": {"baseline_shots": [-1]}}, r"evaluation: baseline_shots must be a list of non-negative integers"),
    ({"evaluation": {"recalibration": "platt"}},
     r"evaluation: recalibration must be one of \['bias_temperature', 'temperature'\], got 'platt'"),
    ({"max_train": 0}, r"max_train must be null \(every row\) or a positive integer, got 0"),
    ({"max_validation": -5}, r"max_validation must be null \(every row\) or a positive integer, got -5"),
    ({"max_test": 0}, r"max_test must be null \(every row\) or a positive integer, got 0"),
    ({"max_calibration": 0}, r"max_calibration must be null \(every row\) or a positive integer, got 0"),
    ({"max_length": 2}, r"max_length must be at least 8 tokens, got 2"),
    ({"truncation_side": "middle"}, r"truncation_side must be one of \['left', 'right'\], got 'middle'"),
    ({"balance": "yes"}, r"balance must be bool, got 'yes'"),
    ({"max_trian": 8}, r"unknown key\(s\) \['max_trian'\]; allowed: \[.*'max_train'"),
]


@pytest.mark.parametrize("overrides, message", BAD_OVERRIDES, ids=[str(o) for o, _ in BAD_OVERRIDES])
def test_a_bad_override_fails_when_the_study_loads_naming_key_and_allowed_values(tmp_path, overrides, message):
    import yaml

    study = {"name": "x", "models": ["minilm-l6"], "datasets": ["finefoods"], "preset": "quick", "seeds": [1],
             "overrides": overrides}
    path = write(tmp_path, yaml.safe_dump(study))
    with pytest.raises(config.ConfigError, match=rf"study.yaml: overrides: {message}"):
        config.load_study(path)


def test_checks_hold_however_a_record_is_made():
    """Built in code, the records check themselves too (as peft's LoraConfig does)."""
    with pytest.raises(config.ConfigError, match=r"quantization must be one of \['4bit', '8bit', 'none'\], got '2bit'"):
        config.TrainConfig(quantization="2bit")
    with pytest.raises(config.ConfigError, match="max_length must be at least 8 tokens"):
        config.Preset(name="p", max_train=1, max_validation=1, max_test=1, max_length=4, balance=False)
    with pytest.raises(config.ConfigError, match=r"models must be list\[str\], got 'minilm-l6'"):
        config.Study(name="x", models="minilm-l6", datasets=["finefoods"], preset="quick", seeds=[1])


def test_dataset_overrides_apply_to_that_datasets_runs_over_the_study_overrides(tmp_path):
    from helpers.pipeline.study import plan_runs

    path = write(tmp_path, "name: x\nmodels: [minilm-l6]\ndatasets: [finefoods, sst2]\npreset: quick\nseeds: [1]\n"
                           "overrides: {train: {batch_size: 8, epochs: 2}}\n"
                           "dataset_overrides: {sst2: {max_train: 100, train: {batch_size: 64}}}\n")
    study = config.load_study(path)
    assert config.run_overrides(study, "finefoods") == {"train": {"batch_size": 8, "epochs": 2}}
    assert config.run_overrides(study, "sst2") == {"train": {"batch_size": 64, "epochs": 2}, "max_train": 100}
    params = {plan.dataset: plan.params["overrides"] for plan in plan_runs(study)}
    assert params == {"finefoods": config.run_overrides(study, "finefoods"), "sst2": config.run_overrides(study, "sst2")}


def test_dataset_overrides_name_a_study_dataset_and_are_checked_against_the_preset(tmp_path):
    base = "name: x\nmodels: [minilm-l6]\ndatasets: [finefoods]\npreset: quick\nseeds: [1]\n"
    with pytest.raises(config.ConfigError, match=r"dataset_overrides must be a mapping from the study's dataset ids"):
        config.load_study(write(tmp_path, base + "dataset_overrides: {sst2: {max_train: 10}}\n"))
    with pytest.raises(config.ConfigError,
                       match=r"study.yaml: dataset_overrides.finefoods: train: batch_size must be a positive integer"):
        config.load_study(write(tmp_path, base + "dataset_overrides: {finefoods: {train: {batch_size: 0}}}\n"))
