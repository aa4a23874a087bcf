"""End to end: a tiny generative study (registry `method: generate`) through papermill on the real
SmolLM2-135M-Instruct and Tweet Sentiment Extraction from the mirror (human rationale spans)."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from helpers.core import paths
from helpers.core.io import read_json
from helpers.generate.parse import parse_answer
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
