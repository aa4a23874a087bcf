"""The stages of a generative run (registry `method: generate`): what 02_train, 03_evaluate and
04_speed do differently for a model that writes a JSON decision. Everything else (the splits, the
recalibration and every evaluation of the class probabilities, results.json, the comparison) is
the classifiers' own."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data.records import DatasetSplits
from helpers.generate import chat, decode, sft
from helpers.generate.metrics import decision_metrics
from helpers.generate.parse import ParsedAnswer, parse_answer
from helpers.generate.schema import answer_schema
from helpers.generate.speed import measure_generation
from helpers.pipeline.run import Run
from helpers.train import models
from helpers.train.trainer import TrainResult


def tokenizer_for(run: Run):
    return chat.use_chat_template(models.load_tokenizer(run.model, run.preset.truncation_side), run.model)


def prompts_for(run: Run, tokenizer, texts: list[str], labels: list[str]) -> list[str]:
    """The prompts every generative stage shows the model, each text cut to the preset's max_length."""
    return chat.prompts(tokenizer, texts, labels, None, run.preset.max_length)


def schema_for(run: Run, labels: list[str]) -> dict | None:
    """The answer's JSON schema where the preset constrains decoding to it (generation.decoding)."""
    return answer_schema(labels) if run.preset.generation.decoding == "json_schema" else None


def train(run: Run, splits: DatasetSplits, validation: pd.DataFrame | None, output_dir: Path):
    """02_train: LoRA on the causal LM, the loss on the answers (label and human rationale) only;
    the dataset's abstention examples (abstain_labels) learn to abstain. Returns the trained model
    and its TrainResult."""
    cfg = run.preset.train
    tokenizer = tokenizer_for(run)
    model = models.adapt(models.load_causal_lm(run.model, run.precision, cfg.quantization), run.model, cfg)
    if validation is not None:
        validation = splits.with_abstentions("validation")
    result: TrainResult = sft.train_sft(model, tokenizer, splits.with_abstentions("train"), splits.labels, None, cfg,
                                        run.precision, run.preset.max_length, run.seed, output_dir, validation,
                                        run.tensorboard_dir)
    return model, result


def probability_predictor(run: Run, model, tokenizer, labels: list[str]):
    """predict(df) -> (n, labels) probabilities at the decision position, as the classifiers' predict."""
    def predict(df: pd.DataFrame) -> np.ndarray:
        return decode.label_probabilities(model, tokenizer, prompts_for(run, tokenizer, df["text"].tolist(), labels),
                                          labels, run.preset.train.eval_batch_size, run.device)
    return predict


def abstain_predictor(run: Run, model, tokenizer, labels: list[str]):
    """p_null(df) -> (n,) the model's probability of abstaining at the decision (decode.abstain_probabilities)."""
    def p_null(df: pd.DataFrame) -> np.ndarray:
        if df.empty:
            return np.zeros(0)
        return decode.abstain_probabilities(model, tokenizer, prompts_for(run, tokenizer, df["text"].tolist(), labels),
                                            run.preset.train.eval_batch_size, run.device)
    return p_null


def written_answers(run: Run, model, tokenizer, df: pd.DataFrame, labels: list[str]) -> list[ParsedAnswer]:
    """The model's generated answers to the texts of `df`, parsed (helpers/generate/parse.py)."""
    gen = run.preset.generation
    raw = decode.generate(model, tokenizer, prompts_for(run, tokenizer, df["text"].tolist(), labels),
                          gen.max_new_tokens, gen.batch_size, run.device, schema_for(run, labels))
    return [parse_answer(text, labels) for text in raw]


def answer(run: Run, model, tokenizer, test: pd.DataFrame, labels: list[str]) -> tuple[dict, list]:
    """The generated answers on the test split, parsed, and their metrics (helpers/generate/metrics.py)."""
    gen = run.preset.generation
    texts = test["text"].tolist()
    parsed = written_answers(run, model, tokenizer, test, labels)
    rationales = test["rationale"].fillna("").astype(str).tolist() if "rationale" in test else None
    record = decision_metrics(parsed, labels, test["label"].to_numpy(), texts, rationales)
    record["decoding"] = gen.decoding
    record["rationale_target"] = ("human span" if rationales is not None
                                  else "none (the dataset has no rationale_column)")
    return record, parsed


def base_answers(run: Run, test: pd.DataFrame, labels: list[str]) -> dict:
    """The base model (no adapter) answering the same prompts, on the first `generation.base_examples`
    test texts: base vs fine-tuned on the JSON task."""
    test = test.head(run.preset.generation.base_examples) if run.preset.generation.base_examples else test
    tokenizer = tokenizer_for(run)
    model = models.load_causal_lm(run.model, run.precision, run.preset.train.quantization)
    record, _ = answer(run, model, tokenizer, test, labels)
    probs = probability_predictor(run, model, tokenizer, labels)(test)
    record["accuracy"] = float((probs.argmax(axis=1) == test["label"].to_numpy()).mean())
    return record


def speed(run: Run, model, tokenizer, texts: list[str], labels: list[str]) -> dict:
    """04_speed of a generator (helpers/generate/speed.py)."""
    return measure_generation(model, tokenizer, prompts_for(run, tokenizer, texts, labels), run.preset.speed,
                              run.preset.generation, run.device, schema_for(run, labels))


def answer_texts(run: Run, texts: list[str], base: bool = False) -> list[dict]:
    """`senticompare generate` on a classification run (helpers/generate/answer.py): its fine-tuned
    model (and with `base` its base model beside it) answering new texts: the raw answer, what it
    parses to, and the labels' probabilities at the decision position (before the run's recalibration)."""
    labels = run.dataset.labels
    tokenizer = tokenizer_for(run)
    models_to_ask = {"fine-tuned": models.load_finetuned(run.model, run.adapter_dir, labels, run.precision,
                                                         run.preset.train.quantization)}
    if base:
        models_to_ask["base"] = models.load_causal_lm(run.model, run.precision, run.preset.train.quantization)
    prompts = prompts_for(run, tokenizer, texts, labels)
    rows = [{"text": text} for text in texts]
    gen = run.preset.generation
    for name, model in models_to_ask.items():
        raw = decode.generate(model, tokenizer, prompts, gen.max_new_tokens, gen.batch_size, run.device,
                              schema_for(run, labels))
        probs = decode.label_probabilities(model, tokenizer, prompts, labels, gen.batch_size, run.device)
        for row, text, p in zip(rows, raw, probs, strict=True):
            parsed = parse_answer(text, labels)
            row[name] = {"answer": text, "decision": parsed.decision, "rationale": parsed.rationale,
                         "abstain": parsed.abstain, "read_as": parsed.how,
                         "probabilities": {label: round(float(v), 4) for label, v in zip(labels, p, strict=True)}}
    return rows
