"""End to end: a tiny generative study (registry `method: generate`) through papermill on the real
SmolLM2-135M-Instruct and Tweet Sentiment Extraction from the mirror (human rationale spans)."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from helpers.core import paths
from helpers.core.io import read_json
from helpers.generate.answer import answer_texts
from helpers.generate.parse import parse_answer
from helpers.generate.sql import extract_sql
from helpers.pipeline.study import run_study

pytestmark = pytest.mark.slow

TINY = {
    "name": "tiny_generate",
    "models": ["smollm2-135m-json"],
    "datasets": ["tweet_sentiment_extraction"],
    "preset": "tiny",
    "seeds": [5],
    "overrides": {"max_train": 48, "max_validation": 16, "max_calibration": 16, "max_test": 16, "max_length": 48,
                  "train": {"max_steps": 6, "batch_size": 8},
                  "speed": {"warmup": 1, "repeats": 3, "max_examples": 8, "batch_size": 8},
                  "generation": {"max_new_tokens": 32},
                  "evaluation": {"baseline_shots": []}},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mirror_path):
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    path = tmp_path_factory.mktemp("study") / "tiny_generate.yaml"
    path.write_text(yaml.safe_dump(TINY))
    outcome = run_study(path)
    assert [p.model for p in outcome.done] == ["smollm2-135m-json"] and not outcome.failed
    yield paths.experiments_dir() / "tiny_generate" / "tweet_sentiment_extraction" / "smollm2-135m-json"
    mp.undo()


def test_a_generative_run_records_its_answers_metrics_and_speed(run_dir):
    results = read_json(run_dir / "results.json")
    quality = results["quality"]
    for key in ("parse_rate", "schema_valid_rate", "abstain_rate", "decision_accuracy", "rationale_jaccard",
                "rationale_in_input_rate", "ece", "conformal_coverage", "accuracy_ci95"):
        assert quality[key] is not None, key
    assert quality["generation"]["rationale_target"] == "human span"
    assert quality["parse_rate"] > quality["base_parse_rate"]  # fine-tuning taught the format
    assert results["ttft_ms"] > 0 and results["decode_tokens_per_sec"] > 0
    assert results["latency_median_ms"] > results["ttft_ms"]  # a whole answer takes longer than its first token
    adapter = read_json(run_dir / "adapter" / "adapter_config.json")
    assert adapter["task_type"] == "CAUSAL_LM"


def test_predictions_keep_every_answer_verbatim_and_agree_with_the_metrics(run_dir):
    results = read_json(run_dir / "results.json")
    labels = results["quality"]["labels"]
    predictions = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False)
    reparsed = [parse_answer(answer, labels) for answer in predictions["answer"]]
    assert [a.decision or ("abstain" if a.abstain else "") for a in reparsed] == predictions["generated"].tolist()
    right = [g == labels[y] for g, y in zip(predictions["generated"], predictions["label"], strict=True)]
    assert results["quality"]["decision_accuracy"] == pytest.approx(sum(right) / len(right))
    probs = predictions[[f"prob_{label}" for label in labels]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-6


def test_generate_answers_new_texts_as_the_run_answered_its_test_split(run_dir):
    from helpers.data.splits import read_splits

    texts = read_splits(run_dir / "data").test["text"].tolist()
    rows = answer_texts(run_dir, texts, base=True)  # one batch, as 03_evaluate generated them
    predictions = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False)
    assert [row["fine-tuned"]["answer"] for row in rows] == predictions["answer"].tolist()
    raw = predictions[[c for c in predictions if c.startswith("raw_prob_")]].to_numpy()
    labels = read_json(run_dir / "results.json")["quality"]["labels"]
    mine = [[row["fine-tuned"]["probabilities"][label] for label in labels] for row in rows]
    assert abs(raw - mine).max() < 1e-3  # before the run's recalibration, rounded to 4 places
    assert all(row["base"]["read_as"] in {"json", "repaired", "regex", "none"} for row in rows)


def test_the_comparison_and_report_show_the_generated_answers(run_dir):
    comparison = read_json(run_dir.parent / "comparison.json")
    assert comparison["runs"][0]["parse_rate"] == read_json(run_dir / "results.json")["quality"]["parse_rate"]
    html = (paths.reports_dir() / "tiny_generate.html").read_text()
    assert "Generated answers" in html and "rationale Jaccard" in html and "time to first token" in html


def test_an_exported_generator_loads_without_peft_to_the_same_label_probabilities(run_dir, tmp_path):
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from helpers import config
    from helpers.adapters.export import export_run
    from helpers.core.device import precision_for
    from helpers.generate import chat, decode
    from helpers.train import models

    out = export_run(run_dir, tmp_path / "export")
    labels = read_json(run_dir / "results.json")["quality"]["labels"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompts = chat.prompts(tokenizer, ["best day ever", "my phone broke again"], labels, None, 48)
    plain = decode.label_probabilities(AutoModelForCausalLM.from_pretrained(out), tokenizer, prompts, labels, 2, "cpu")
    spec = config.get_model("smollm2-135m-json")
    with_peft = decode.label_probabilities(models.load_finetuned(spec, run_dir / "adapter", labels,
                                                                 precision_for("cpu")),
                                           tokenizer, prompts, labels, 2, "cpu")
    np.testing.assert_allclose(plain, with_peft, atol=1e-5)
    assert read_json(out / "senticompare.json")["method"] == "generate"


TASKS = {
    "name": "tiny_generative_tasks",
    "models": ["smollm2-135m-sft"],
    "datasets": ["gsm8k", "spider"],
    "preset": "tiny",
    "seeds": [5],
    "overrides": {"max_train": 16, "max_validation": 8, "max_test": 10, "max_length": 64,
                  "train": {"max_steps": 2, "batch_size": 8},
                  "speed": {"warmup": 1, "repeats": 2, "max_examples": 4, "batch_size": 4},
                  "generation": {"max_new_tokens": 24, "batch_size": 10}},
}


@pytest.fixture(scope="module")
def task_study(tmp_path_factory, mirror_path):
    """A tiny study of the two task datasets (instruction: GSM8K; sql: Spider), base against fine-tuned."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    path = tmp_path_factory.mktemp("study") / "tiny_generative_tasks.yaml"
    path.write_text(yaml.safe_dump(TASKS))
    outcome = run_study(path)
    assert [(p.dataset, p.model) for p in outcome.done] == [("gsm8k", "smollm2-135m-sft"),
                                                            ("spider", "smollm2-135m-sft")] and not outcome.failed
    yield paths.experiments_dir() / "tiny_generative_tasks"
    mp.undo()


@pytest.mark.full  # a second tiny study (instruction and SQL tasks): `make test-full`
@pytest.mark.parametrize("dataset, metrics", [
    ("gsm8k", ("final_number_match", "rouge_l", "answer_words")),
    ("spider", ("execution_accuracy", "executes_rate", "sql_parse_rate", "exact_match")),
])
def test_a_task_run_scores_base_and_fine_tuned_answers(task_study, dataset, metrics):
    run_dir = task_study / dataset / "smollm2-135m-sft"
    results = read_json(run_dir / "results.json")
    quality = results["quality"]
    assert results["task"] == quality["task"] == read_json(run_dir / "stages" / "01_data.json")["task"]
    assert results["accuracy_is"] and 0 <= results["accuracy"] <= 1 and "f1" not in results
    for key in (*metrics, "base_accuracy", "p_vs_base", "validation_perplexity", "base_validation_perplexity"):
        assert quality[key] is not None, key
        assert key in quality["base"] or key.startswith(("base_", "p_")), key
    assert not {"ece", "conformal_coverage", "temperature"} & set(quality)  # no class probabilities, none faked
    assert results["ttft_ms"] > 0 and results["decode_tokens_per_sec"] > 0
    predictions = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False)
    assert len(predictions) == quality["test_examples"] == 10
    assert predictions["correct"].mean() == pytest.approx(results["accuracy"])
    assert predictions["base_correct"].mean() == pytest.approx(quality["base_accuracy"])
    assert read_json(run_dir / "adapter" / "adapter_config.json")["task_type"] == "CAUSAL_LM"


@pytest.mark.full  # a second tiny study (instruction and SQL tasks): `make test-full`
def test_spider_is_tested_on_unseen_databases(task_study):
    groups = read_json(task_study / "spider" / "smollm2-135m-sft" / "stages" / "01_data.json")["groups"]
    assert groups["test"] and not set(groups["test"]) & set(groups["train"] + groups["validation"])


@pytest.mark.full  # a second tiny study (instruction and SQL tasks): `make test-full`
def test_the_comparison_and_report_carry_the_task_runs(task_study):
    for dataset, key in (("gsm8k", "final_number_match"), ("spider", "execution_accuracy")):
        run = read_json(task_study / dataset / "comparison.json")["runs"][0]
        results = read_json(task_study / dataset / "smollm2-135m-sft" / "results.json")
        assert run[key] == results["quality"][key] and run["accuracy_ci95"] == results["quality"]["accuracy_ci95"]
        assert run["baseline_0-shot_accuracy"] == results["quality"]["base_accuracy"]
    html = (paths.reports_dir() / "tiny_generative_tasks.html").read_text()
    assert "execution accuracy" in html and "final-number match" in html and "base model accuracy" in html


@pytest.mark.full  # a second tiny study (instruction and SQL tasks): `make test-full`
def test_generate_answers_new_instructions_and_questions_about_a_database(task_study):
    spider = task_study / "spider" / "smollm2-135m-sft"
    database = read_json(spider / "stages" / "01_data.json")["groups"]["test"][0]
    question = "How many rows does the first table have?"
    [row] = answer_texts(spider, [question], base=True, db_id=database)
    assert row["text"] == question and set(row) == {"text", "fine-tuned", "base"}
    for answer in (row["fine-tuned"], row["base"]):
        assert answer["answer"] and set(answer) == {"answer", "query", "parsed", "runs_on_schema"}
        assert answer["query"] == extract_sql(answer["answer"])
    predictions = pd.read_csv(task_study / "gsm8k" / "smollm2-135m-sft" / "predictions.csv", keep_default_na=False)
    again = answer_texts(task_study / "gsm8k" / "smollm2-135m-sft", predictions["text"].tolist())
    assert [row["fine-tuned"]["answer"] for row in again] == predictions["answer"].tolist()  # greedy, same batches
