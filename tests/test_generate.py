"""Decisions by generation: the answer parser on broken answers, the schema, the metrics, prompt
masking and the labels' probabilities on a real packaged model (SmolLM2-135M-Instruct)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers import DataCollatorForSeq2Seq

from helpers import config
from helpers.config import ConfigError
from helpers.core.device import precision_for
from helpers.generate import chat, decode, sft
from helpers.generate.metrics import decision_metrics, jaccard
from helpers.generate.parse import parse_answer
from helpers.generate.schema import DECISION_PREFIX, answer_model, render_answer
from helpers.train import models

LABELS = ["negative", "neutral", "positive"]
GOOD = '{"decision": "positive", "rationale": "love it", "abstain": false}'


@pytest.mark.parametrize("text, decision, how, valid", [
    (GOOD, "positive", "json", True),
    (GOOD + "<|im_end|>", "positive", "json", True),  # a template token after it
    ("<start_of_turn>model\n" + GOOD + "<end_of_turn>", "positive", "json", True),
    ("```json\n" + GOOD + "\n```", "positive", "json", True),  # a code fence
    ("Sure! Here is the answer: " + GOOD + " Hope this helps {really}.", "positive", "json", True),
    ('{"decision": "neutral", "rationale": "a {brace} and a \\"quote\\"", "abstain": false}', "neutral", "json", True),
    ("{'decision': 'negative', 'rationale': 'awful', 'abstain': false}", "negative", "repaired", False),
    ('{"decision": "negative", "rationale": "awful", "abstain": false', "negative", "repaired", False),  # no brace
    ('{"decision": "positive", "rationale": "gre', "positive", "repaired", False),  # truncated
    ('{"decision": "negative", "rationale": "bad",}', "negative", "repaired", False),  # trailing comma
    ('{"decision": "Positive", "rationale": "x", "abstain": false}', "positive", "json", False),  # case
    ('{"decision": "happy", "rationale": "x", "abstain": false}', None, "json", False),  # not a label
    ('{"decision": "positive", "rationale": "x", "abstain": false, "score": 3}', "positive", "json", False),
    ('The "decision": "negative", I think', "negative", "regex", False),
    ("I cannot tell.", None, "none", False),
    ("", None, "none", False),
])
def test_the_parser_reads_what_a_model_writes(text, decision, how, valid):
    parsed = parse_answer(text, LABELS)
    assert (parsed.decision, parsed.how, parsed.schema_valid) == (decision, how, valid)
    assert parsed.raw == text  # kept verbatim


def test_an_abstention_has_no_decision():
    parsed = parse_answer(render_answer(None, "", abstain=True), LABELS)
    assert parsed.abstain and parsed.decision is None and parsed.schema_valid


def test_the_schema_takes_the_rendered_answer_and_refuses_others():
    schema = answer_model(LABELS)
    assert schema.model_validate_json(render_answer("neutral", "meh")).decision == "neutral"
    for bad in ('{"decision": "joy", "rationale": "", "abstain": false}',
                '{"decision": "neutral", "rationale": "", "abstain": "no"}',
                '{"decision": "neutral", "rationale": ""}'):
        with pytest.raises(ValueError):
            schema.model_validate_json(bad)
    assert render_answer("positive", "x").startswith(DECISION_PREFIX + "positive")


def test_jaccard_is_the_competitions_word_overlap():
    assert jaccard("Sooo SAD", "sooo sad") == 1.0
    assert jaccard("so sad today", "sad") == pytest.approx(1 / 3)
    assert jaccard("", "") == 1.0 and jaccard("a", "") == 0.0


def test_decision_metrics_by_hand():
    answers = [parse_answer(t, LABELS) for t in (
        render_answer("positive", "love it"),  # right, quoted from the text
        render_answer("negative", "made up"),  # wrong, not in the text
        render_answer(None, "", abstain=True),  # abstained
        "garbage")]  # unreadable: wrong
    texts = ["I love it", "fine day", "hmm", "ok"]
    record = decision_metrics(answers, LABELS, np.array([2, 1, 0, 1]), texts, ["love", "fine", "", "ok"])
    assert record["parse_rate"] == 0.75 and record["schema_valid_rate"] == 0.75
    assert record["decision_accuracy"] == 0.25 and record["abstain_rate"] == 0.25
    assert record["accuracy_answered"] == pytest.approx(1 / 3)
    assert record["rationale_in_input_rate"] == 0.25
    assert record["rationale_jaccard"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)


def test_method_generate_needs_a_decoder_and_a_known_template():
    spec = config.get_model("minilm-l6")
    with pytest.raises(ConfigError, match="method 'generate' needs a decoder"):
        dataclasses.replace(spec, method="generate")
    with pytest.raises(ConfigError, match="method must be one of"):
        dataclasses.replace(spec, method="prompt")
    gemma = dataclasses.replace(config.get_model("gemma3-270m-json"), chat_template="llama9")
    with pytest.raises(ConfigError, match=r"chat_template 'llama9' is not in .*chat_templates.yaml"):
        chat.use_chat_template(models.load_tokenizer(gemma), gemma)


@pytest.fixture(scope="module")
def smollm():
    spec = config.get_model("smollm2-135m-json")
    tokenizer = chat.use_chat_template(models.load_tokenizer(spec, "left"), spec)
    model = models.load_causal_lm(spec, precision_for("cpu")).eval()
    return spec, tokenizer, model


def test_gemma_gets_its_turn_format_and_the_answer_is_its_turn():
    spec = config.get_model("gemma3-270m-json")
    tokenizer = chat.use_chat_template(models.load_tokenizer(spec), spec)
    example = chat.sft_example(tokenizer, chat.user_turn("so good", LABELS), GOOD)
    text = tokenizer.decode(example["input_ids"])
    assert text.startswith("<bos><start_of_turn>user\n") and "<start_of_turn>model\n" + GOOD + "<end_of_turn>" in text
    answer = [i for i, label in zip(example["input_ids"], example["labels"], strict=True) if label != chat.IGNORE]
    assert tokenizer.decode(answer).startswith(GOOD + "<end_of_turn>")
    assert set(decode.stop_ids(tokenizer)) >= {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")}


def test_the_loss_covers_the_answer_tokens_only(smollm):
    _, tokenizer, model = smollm
    example = chat.sft_example(tokenizer, chat.user_turn("What a lovely morning", LABELS), GOOD)
    ids, labels = torch.tensor([example["input_ids"]]), torch.tensor([example["labels"]])
    n_prompt = len(tokenizer(chat.render_prompt(tokenizer, chat.user_turn("What a lovely morning", LABELS)),
                             add_special_tokens=False)["input_ids"])
    assert (labels[0, :n_prompt] == chat.IGNORE).all() and (labels[0, n_prompt:] == ids[0, n_prompt:]).all()
    assert tokenizer.decode(ids[0, n_prompt:]).startswith(GOOD + "<|im_end|>")
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss
        logits = model(input_ids=ids).logits[0, n_prompt - 1:-1]  # the positions that predict the answer
    by_hand = torch.nn.functional.cross_entropy(logits.float(), ids[0, n_prompt:])
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_the_training_batch_computes_the_answer_spans_logits_only(smollm):
    _, tokenizer, model = smollm
    examples = chat.sft_examples(tokenizer, ["What a lovely morning", "meh"], [GOOD, GOOD], LABELS, None, 64)
    tokenizer.padding_side = "right"  # as the classifiers' tokenizers are: the collator pads on the left anyway
    try:
        batch = sft.collator(tokenizer, "cpu")(examples)
    finally:
        tokenizer.padding_side = "left"
    longest_answer = max(sum(t != chat.IGNORE for t in e["labels"]) for e in examples)
    assert batch["logits_to_keep"] == longest_answer + 1 < batch["input_ids"].shape[1]
    assert batch["attention_mask"][:, -1].all()  # padded on the left
    assert batch["labels"].shape == (2, batch["logits_to_keep"])
    full = dict(DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=chat.IGNORE)(examples))  # every position
    with torch.no_grad():
        assert model(**batch).loss.item() == pytest.approx(model(**full).loss.item(), rel=1e-5)
        assert model(**batch).logits.shape[1] == batch["logits_to_keep"]
    assert sft.answer_loss(model, tokenizer, examples, 2, "cpu") == pytest.approx(model(**full).loss.item(), rel=1e-5)


def test_label_probabilities_are_the_lms_softmax_at_the_decision(smollm):
    _, tokenizer, model = smollm
    texts = ["An absolutely wonderful, joyful day with friends", "meh"]  # different lengths: left padding
    prompts = chat.prompts(tokenizer, texts, LABELS, None, 64)
    batched = decode.label_probabilities(model, tokenizer, prompts, LABELS, batch_size=2, device="cpu")
    ids = decode.label_token_ids(tokenizer, LABELS)
    for row, prompt in zip(batched, prompts, strict=True):
        encoded = tokenizer(prompt + DECISION_PREFIX, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            full = torch.softmax(model(**encoded).logits[0, -1].float(), dim=-1)
        expected = (full[ids] / full[ids].sum()).numpy()
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6)
    assert batched.shape == (2, 3) and np.allclose(batched.sum(axis=1), 1)


def test_the_abstain_probability_is_null_against_the_labels_quote_at_the_decision(smollm):
    _, tokenizer, model = smollm
    prompts = chat.prompts(tokenizer, ["An absolutely wonderful, joyful day with friends", "meh"], LABELS, None, 64)
    batched = decode.abstain_probabilities(model, tokenizer, prompts, batch_size=2, device="cpu")
    key, quote, null = decode.abstain_token_ids(tokenizer)
    assert key == '{"decision":' and tokenizer.decode([null]).strip() == "null"
    assert tokenizer.decode([quote]).strip() == '"'
    for value, prompt in zip(batched, prompts, strict=True):
        encoded = tokenizer(prompt + key, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            full = torch.softmax(model(**encoded).logits[0, -1].float(), dim=-1)
        assert value == pytest.approx(float(full[null] / (full[null] + full[quote])), rel=1e-4)
    assert batched.shape == (2,) and ((batched > 0) & (batched < 1)).all()


def test_labels_sharing_a_first_token_are_refused(smollm):
    _, tokenizer, _ = smollm
    with pytest.raises(decode.LabelTokenError, match="share a first token"):
        decode.label_token_ids(tokenizer, ["good", "goodness"])  # "good" + "ness"


def test_greedy_generation_stops_and_is_deterministic(smollm):
    _, tokenizer, model = smollm
    prompts = chat.prompts(tokenizer, ["I hate waiting", "Lovely"], LABELS, None, 64)
    first = decode.generate(model, tokenizer, prompts, max_new_tokens=24, batch_size=2, device="cpu")
    again = decode.generate(model, tokenizer, prompts[:1], max_new_tokens=24, batch_size=1, device="cpu")
    assert first[0] == again[0]  # left padding in a batch changes nothing
    assert all("<|im_end|>" not in answer for answer in first)


def test_constrained_decoding_writes_the_schema_even_for_the_base_model(smollm):
    spec, tokenizer, _ = smollm
    base = models.load_causal_lm(spec, precision_for("cpu")).eval()
    prompts = chat.prompts(tokenizer, ["I hate waiting in line", "What a lovely gift", "The bus is at 9"], LABELS,
                           None, 64)
    schema = answer_model(LABELS).model_json_schema()
    answers = decode.generate(base, tokenizer, prompts, max_new_tokens=40, batch_size=3, device="cpu", schema=schema)
    for answer in answers:
        parsed = parse_answer(answer, LABELS)
        assert answer.startswith(DECISION_PREFIX) or answer.startswith('{"decision": null'), answer
        assert parsed.decision in LABELS or parsed.abstain, answer  # never prose in place of a label
        assert parsed.parsed


def test_decoding_must_be_free_or_json_schema():
    with pytest.raises(ConfigError, match=r"decoding must be one of \['free', 'json_schema'\]"):
        config.apply_overrides(config.load_preset("tiny"), {"generation": {"decoding": "grammar"}})


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])  # 13 s and 8 s on 2 idle cores
def test_a_generator_fine_tunes_on_a_quantized_base_and_reads_its_labels(quantization, tmp_path):
    """QLoRA (NF4) and LLM.int8 for a generator: the LoRA learns on the frozen quantized body, and
    the reloaded adapter on a quantized base gives the labels' probabilities at the decision."""
    import bitsandbytes as bnb
    import pandas as pd

    from helpers.generate import sft

    spec = config.get_model("smollm2-135m-json")
    cpu = precision_for("cpu")
    tokenizer = chat.use_chat_template(models.load_tokenizer(spec, "left"), spec)
    cfg = dataclasses.replace(config.load_preset("tiny").train, quantization=quantization, max_steps=2, batch_size=4)
    model = models.adapt(models.load_causal_lm(spec, cpu, quantization), spec, cfg)
    layer = bnb.nn.Linear4bit if quantization == "4bit" else bnb.nn.Linear8bitLt
    assert any(isinstance(m, layer) for m in model.modules())
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    train = pd.DataFrame({"text": ["so good", "awful", "it is fine", "love it"], "label": [2, 0, 1, 2]})
    result = sft.train_sft(model, tokenizer, train, LABELS, None, cfg, cpu, 32, 0, tmp_path / "trainer")
    assert result.steps == 2 and any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
    model.save_pretrained(tmp_path / "adapter")
    reloaded = models.load_finetuned(spec, tmp_path / "adapter", LABELS, cpu, quantization)
    prompts = chat.prompts(tokenizer, ["what a day"], LABELS, None, 32)
    probs = decode.label_probabilities(reloaded, tokenizer, prompts, LABELS, 1, "cpu")
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1.0)
