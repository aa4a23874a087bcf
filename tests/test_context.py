"""Context-conditioned inputs (issue 19): the texts each context mode builds, the checks where a mode
meets its dataset and model, recipes that set it, and the context tokens trained under LoRA."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
import yaml

from helpers import config
from helpers.core.device import precision_for
from helpers.data import context
from helpers.data.records import DatasetSplits
from helpers.data.splits import read_splits, save_splits
from helpers.pipeline.run import open_run
from helpers.train import models, trainer

CPU = precision_for("cpu")


def frame(contexts=("Australia", "United Kingdom")) -> pd.DataFrame:
    return pd.DataFrame({"text": ["great park", "long queues"], "label": [1, 0], "context": list(contexts)})


def test_each_mode_builds_its_text():
    df = frame()
    assert context.model_texts(df, "none") == ["great park", "long queues"]
    assert context.model_texts(df, "description") == ["Context: Australia. great park",
                                                      "Context: United Kingdom. long queues"]
    assert context.model_texts(df, "token") == ["[ctx:Australia] great park", "[ctx:United_Kingdom] long queues"]
    assert context.model_texts(df, "instruction") == [
        "Keep in mind the context of the writer: Australia.\ngreat park",
        "Keep in mind the context of the writer: United Kingdom.\nlong queues"]
    assert context.model_texts(df.drop(columns="context"), "token") == ["great park", "long queues"]
    with pytest.raises(ValueError, match="not one of"):
        context.model_texts(df, "speaker")


def test_a_context_train_never_saw_reads_the_shared_other_token(tmp_path):
    assert context.model_texts(frame(), "token", known=["Australia"])[1] == "[ctx:other] long queues"
    # the saved splits carry their train split's values, so evaluation maps unseen ones by itself
    splits = DatasetSplits(dataset="d", labels=["negative", "positive"], train=frame(("Australia", "Australia")),
                           validation=frame(), calibration=frame(), test=frame(("Australia", "Kenya")), source="s")
    save_splits(splits, tmp_path)
    saved = read_splits(tmp_path)
    assert context.token_values(saved, "token") == ["Australia"] and context.token_values(saved, "none") is None
    assert context.model_texts(saved.test, "token") == ["[ctx:Australia] great park", "[ctx:other] long queues"]
    assert context.model_texts(saved.test.loc[saved.test["label"] == 0], "token") == ["[ctx:other] long queues"]
    assert saved.test["text"].tolist() == ["great park", "long queues"]  # the saved text stays raw
    assert context.tokens_for(["b", "a b"]) == ["[ctx:a_b]", "[ctx:b]", "[ctx:other]"]


def test_a_recipe_sets_the_runs_context_mode(tmp_path):
    run = open_run("minilm-l6@ctx-token", "disneyland", "quick", 1, str(tmp_path))
    assert run.preset.context_mode == "token" and run.preset.train == open_run(
        "minilm-l6", "disneyland", "quick", 1, str(tmp_path)).preset.train
    assert open_run("minilm-l6", "disneyland", "quick", 1, str(tmp_path),
                    overrides={"context_mode": "description"}).preset.context_mode == "description"
    assert config.get_dataset("disneyland").context_column == "Reviewer_Location"


@pytest.mark.parametrize("model, dataset, message", [
    ("minilm-l6@ctx-token", "finefoods", r"has no context_column: name one in params/datasets.yaml"),
    ("minilm-l6@ctx-instruction", "disneyland", r"'instruction' is for decoders"),
])
def test_a_mode_that_does_not_fit_is_a_config_error(tmp_path, model, dataset, message):
    with pytest.raises(config.ConfigError, match=message):
        open_run(model, dataset, "quick", 1, str(tmp_path))
    path = tmp_path / "s.yaml"  # and a study says so before anything runs
    path.write_text(yaml.safe_dump({"name": "s", "models": [model], "datasets": [dataset], "preset": "quick",
                                    "seeds": [1]}))
    with pytest.raises(config.ConfigError, match=message):
        config.load_study(path)


def test_a_bad_context_mode_is_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="context_mode must be one of"):
        config.apply_overrides(config.load_preset("quick"), {"context_mode": "speaker"})
    path = tmp_path / "recipes.yaml"
    path.write_text("ctx-bad: {context_mode: speaker}\n")
    with pytest.raises(config.ConfigError, match="context_mode must be one of"):
        config.model.load_recipes(path)


@pytest.mark.slow
def test_context_tokens_are_added_trained_and_saved_with_the_adapter(tmp_path):
    """MiniLM: the new rows start at the mean embedding, LoRA steps change them (and no old row),
    and they come back from the saved adapter."""
    spec = config.get_model("minilm-l6")
    cfg = dataclasses.replace(config.load_preset("quick").train, max_steps=3, batch_size=4, learning_rate=1e-2)
    df = pd.DataFrame({"text": ["a wonderful day", "dull and far too long"] * 4, "label": [1, 0] * 4,
                       "context": ["Australia", "India"] * 4})
    values = context.known_values(df)
    tokenizer = models.load_tokenizer(spec)
    base = models.load_base(spec, ["negative", "positive"], CPU, tokenizer=tokenizer, context_values=values)
    ids = base.context_token_ids
    old_rows = base.get_input_embeddings().weight[:min(ids)].detach().clone()
    start = base.get_input_embeddings().weight[ids].detach().clone()
    assert len(ids) == 3 and torch.allclose(start[0], old_rows.mean(dim=0), atol=1e-5)
    assert tokenizer.tokenize("[ctx:India] dull") == ["[ctx:India]", "dull"]
    model = models.add_lora(base, spec, cfg)
    trainer.train(model, tokenizer, df, cfg, CPU, 32, 0, tmp_path / "out", context_mode="token")
    model.save_pretrained(tmp_path / "adapter", **models.save_options(model))
    models.save_context_tokens(model, tmp_path / "adapter")
    merged = model.merge_and_unload().get_input_embeddings().weight.detach()
    assert not torch.allclose(merged[ids[:2]], start[:2])  # the seen contexts' rows trained
    assert torch.equal(merged[:min(ids)], old_rows)  # the vocabulary's rows did not
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size < 5e6  # no whole embedding matrix
    loaded = models.load_finetuned(spec, tmp_path / "adapter", ["negative", "positive"], CPU)
    assert torch.allclose(loaded.get_input_embeddings().weight[ids], merged[ids])
