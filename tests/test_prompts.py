"""Prompts for causal LMs, the verbalizer head and the mean-pooled encoder, on the packaged models."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from helpers import config
from helpers.core.device import precision_for
from helpers.evaluate import prompts
from helpers.evaluate.inference import predict_proba
from helpers.train import models

CPU = precision_for("cpu")
TEXTS = ["The coffee was stale and bitter, I threw it away.",
         "Best dog treats ever, my terrier goes crazy for them!",
         "Arrived quickly. Tastes fine."]


@pytest.fixture(scope="module")
def smollm():
    spec = config.get_model("smollm2-135m")
    return spec, models.load_tokenizer(spec)


def test_prompt_keeps_question_after_truncated_text(smollm):
    _, tokenizer = smollm
    fmt = prompts.prompt_format(config.get_dataset("finefoods"), tokenizer)
    long_text = "word " * 500
    [prompt] = prompts.build_prompts([long_text], tokenizer, fmt, max_tokens=16)
    assert prompt.rstrip().endswith("assistant") and fmt.question in prompt
    assert prompt.count("word") == 16


def test_plain_prompt_and_shots(smollm):
    _, tokenizer = smollm
    fmt = dataclasses.replace(prompts.prompt_format(config.get_dataset("finefoods"), tokenizer), chat=False)
    train = pd.DataFrame({"text": [f"review {i}" for i in range(10)], "label": [0] * 7 + [1] * 3})
    shots = prompts.pick_shots(train, 4, seed=1)
    assert sorted(shots["label"]) == [0, 0, 1, 1]
    assert shots.equals(prompts.pick_shots(train, 4, seed=1))
    [prompt] = prompts.build_prompts(["new review"], tokenizer, fmt, 32, shots)
    assert prompt.count("Answer: yes") == 2 and prompt.count("Answer: no") == 2
    assert prompt.endswith("new review\n\n" + fmt.question + "\nAnswer:")


def test_verbalizers_must_differ(smollm):
    _, tokenizer = smollm
    fmt = prompts.PromptFormat(question="?", verbalizers=["yes", "yes!"], chat=True)
    with pytest.raises(prompts.PromptError, match="verbalizers"):
        prompts.verbalizer_ids(tokenizer, fmt)


def test_verbalizer_head_is_the_lm_next_token_answer(smollm):
    """The untrained classifier equals the causal LM's next-token probabilities over the answers."""
    spec, tokenizer = smollm
    dataset = config.get_dataset("finefoods")
    fmt = prompts.prompt_format(dataset, tokenizer)
    ids = prompts.verbalizer_ids(tokenizer, fmt)
    texts = prompts.build_prompts(TEXTS, tokenizer, fmt, 64)
    classifier = models.load_base(spec, dataset.labels, CPU, tokenizer=tokenizer, verbalizer_ids=ids).eval()
    probs = predict_proba(classifier, tokenizer, texts, batch_size=2, max_length=256, device="cpu")

    lm = AutoModelForCausalLM.from_pretrained(models.model_path(spec), dtype=torch.float32).eval()
    with torch.inference_mode():
        expected = np.stack([torch.softmax(lm(**tokenizer(t, return_tensors="pt")).logits[0, -1, ids], -1).numpy()
                             for t in texts])
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    assert not np.allclose(probs, 0.5)


def test_mean_pooling_ignores_padding():
    spec = config.get_model("minilm-l6")
    assert spec.pooling == "mean"
    tokenizer = models.load_tokenizer(spec)
    model = models.load_base(spec, ["a", "b"], CPU, tokenizer=tokenizer).eval()
    torch.nn.init.normal_(model.classifier.weight)
    alone = predict_proba(model, tokenizer, ["short"], batch_size=1, max_length=64, device="cpu")
    padded = predict_proba(model, tokenizer, ["short", "a much longer text " * 5], batch_size=2, max_length=64,
                           device="cpu")
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_left_truncation_keeps_the_verdict_at_the_end(smollm):
    spec, _ = smollm
    tokenizer = models.load_tokenizer(spec, truncation_side="left")
    text = "filler " * 100 + "Five stars, would buy again."
    kept = tokenizer.decode(tokenizer(text, truncation=True, max_length=8)["input_ids"])
    assert kept.endswith("would buy again.") and "filler" not in kept.split(",")[-1]
