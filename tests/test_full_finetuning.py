"""Full fine-tuning beside LoRA (preset `train.method: full`): every weight trains, the whole model
is what a run keeps, later stages load it, and a study compares it with the LoRA run like a model."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from helpers import config
from helpers.core import paths
from helpers.core.device import precision_for
from helpers.core.io import read_json
from helpers.pipeline.run import open_run
from helpers.pipeline.study import run_study
from helpers.train import models
from helpers.train.stage import save_adapter

CPU = precision_for("cpu")


def test_full_cannot_train_quantized_weights():
    with pytest.raises(config.ConfigError, match="method full trains every weight.*quantization: none"):
        config.TrainConfig(method="full", quantization="4bit")
    with pytest.raises(config.ConfigError, match=r"method must be one of \['full', 'lora'\]"):
        config.TrainConfig(method="qlora")


def test_full_trains_every_weight_and_lora_a_few():
    spec = config.get_model("minilm-l6")
    lora = models.adapt(models.load_base(spec, ["negative", "positive"], CPU), spec, config.TrainConfig())
    full = models.adapt(models.load_base(spec, ["negative", "positive"], CPU), spec,
                        config.TrainConfig(method="full"))
    lora_trainable, lora_total = models.count_parameters(lora)
    full_trainable, full_total = models.count_parameters(full)
    assert full_trainable == full_total and lora_trainable < full_trainable / 10
    assert full_total < lora_total  # LoRA adds its adapters on top of the same body


def test_a_saved_full_model_loads_back_to_the_same_predictions(tmp_path):
    """The run folder keeps the whole model (no LoRA files); 03_evaluate and 04_speed load it with
    the registry's mean pooling put back, to the same probabilities."""
    spec = config.get_model("minilm-l6@full")
    labels = ["negative", "positive"]
    tokenizer = models.load_tokenizer(spec)
    model = models.adapt(models.load_base(spec, labels, CPU, tokenizer=tokenizer), spec,
                         config.TrainConfig(method="full"))
    torch.manual_seed(0)
    with torch.no_grad():  # weights a training would have moved, head included
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    batch = tokenizer(["a fine film", "dull and far too long"], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits.softmax(-1)
    folder = save_adapter(model, tmp_path / "adapter")
    assert models.is_full_model(folder) and not (folder / "adapter_config.json").exists()
    assert models.artifact_mb(folder) > 80  # 22.7M fp32 weights
    loaded = models.load_finetuned(spec, folder, labels, CPU)
    with torch.no_grad():
        after = loaded(**batch).logits.softmax(-1)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert loaded.config.id2label == {0: "negative", 1: "positive"}


@pytest.mark.slow
@pytest.mark.full
def test_a_study_compares_full_and_lora_like_two_models(tmp_path, mirror_path, monkeypatch):
    monkeypatch.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    study = {"name": "full_vs_lora", "models": ["minilm-l6", "minilm-l6@full"], "datasets": ["sst2"],
             "preset": "quick", "seeds": [2],
             "overrides": {"max_train": 48, "max_validation": 16, "max_calibration": 24, "max_test": 40,
                           "max_length": 40, "train": {"max_steps": 3},
                           "speed": {"warmup": 1, "repeats": 3, "max_examples": 8, "batch_size": 8}}}
    path = tmp_path / "full_vs_lora.yaml"
    path.write_text(yaml.safe_dump(study))
    outcome = run_study(path, report=False)
    assert sorted(p.model for p in outcome.done) == ["minilm-l6", "minilm-l6@full"] and not outcome.failed
    folder = paths.experiments_dir() / "full_vs_lora" / "sst2"
    lora, full = (read_json(folder / model / "results.json") for model in ("minilm-l6", "minilm-l6@full"))
    assert full["training"]["method"] == "full" and lora["training"]["method"] == "lora"
    assert full["trainable_params"] == full["total_params"] and lora["trainable_params"] < full["trainable_params"]
    assert full["artifact_mb"] > 50 * lora["artifact_mb"]
    assert full["params"]["preset"]["train"]["learning_rate"] == 2e-5
    comparison = read_json(folder / "comparison.json")
    ranked = {row["model"]: row for row in comparison["ranking"]}
    assert ranked["minilm-l6@full"]["artifact_mb"] == pytest.approx(full["artifact_mb"])
    assert {(p["model_a"], p["model_b"]) for p in comparison["pairwise"]} in (
        {("minilm-l6", "minilm-l6@full")}, {("minilm-l6@full", "minilm-l6")})
    assert dataclasses.asdict(config.get_model("minilm-l6@full"))["pooling"] == "mean"


def test_a_recipe_variant_is_its_model_with_the_recipe_over_its_own_training():
    smollm = config.get_model("smollm2-135m")
    variant = config.get_model("smollm2-135m@r64")
    assert variant.id == "smollm2-135m@r64" and variant.source == smollm.source
    assert variant.train == smollm.train and variant.recipe == {"lora_r": 64, "lora_alpha": 128}
    run = open_run("smollm2-135m@r64", "sst2", "quick", 1, "experiments/scratch/x",
                   overrides={"train": {"lora_r": 4, "learning_rate": 5.0e-4, "lora_layers": 10}})
    train = run.preset.train  # the recipe over the study's overrides, the overrides over the model's own
    assert (train.lora_r, train.lora_alpha, train.learning_rate, train.lora_layers) == (64, 128, 5.0e-4, 10)
    with pytest.raises(config.ConfigError, match="unknown recipe 'r3' in 'minilm-l6@r3'; add it to params/recipes"):
        config.get_model("minilm-l6@r3")
    with pytest.raises(config.ConfigError, match="unknown model id 'minilm'"):
        config.get_model("minilm@full")


def test_recipes_joined_by_plus_apply_left_to_right():
    """A grid's cell without an entry per combination: `r16+lr5e-4` is rank 16 at 5e-4, and the
    modules a recipe names reach the LoRA config (`qkv`: attention without the MLP)."""
    assert config.get_model("minilm-l6@r16+lr5e-4").recipe == {"lora_r": 16, "lora_alpha": 32, "learning_rate": 5.0e-4}
    assert config.get_model("minilm-l6@lr5e-4+lr2e-4").recipe == {"learning_rate": 2.0e-4}
    run = open_run("minilm-l6@qkv+r16", "sst2", "quick", 1, "experiments/scratch/x")
    assert run.preset.train.lora_targets == ["query", "key", "value"] and run.preset.train.lora_r == 16
    with pytest.raises(config.ConfigError, match=r"unknown recipe 'r3' in 'minilm-l6@r16\+r3'.*joined by '\+'"):
        config.get_model("minilm-l6@r16+r3")


@pytest.mark.parametrize("variant, adapted", [("minilm-l6", {"query", "key", "value", "dense"}),
                                              ("minilm-l6@qkv", {"query", "key", "value"}),
                                              ("minilm-l6@all-linear", {"query", "key", "value", "dense"})])
def test_a_recipes_lora_targets_replace_the_models_own(variant, adapted):
    run = open_run(variant, "sst2", "quick", 1, "experiments/scratch/x")
    model = models.adapt(models.load_base(run.model, ["negative", "positive"], precision_for("cpu")), run.model,
                         run.preset.train)
    names = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if ".lora_A" in name}
    assert names == adapted


def test_a_recipe_is_checked_like_a_preset_train_block(tmp_path):
    from helpers.config.model import load_recipes

    path = tmp_path / "recipes.yaml"
    path.write_text("wide: {lora_rank: 64}\n")
    with pytest.raises(config.ConfigError, match=r"recipe 'wide'.*unknown key\(s\) \['lora_rank'\]"):
        load_recipes(path)
    path.write_text("fast: {learning_rate: -1.0}\n")
    with pytest.raises(config.ConfigError, match="recipe 'fast'.*learning_rate must be a positive number"):
        load_recipes(path)
