"""End to end: a tiny study through papermill on real packaged models and the SST-2 mirror."""
from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from bs4 import BeautifulSoup

from helpers import config
from helpers.compare import runs as run_table
from helpers.core import paths
from helpers.core.io import read_json, write_yaml
from helpers.evaluate import conformal
from helpers.pipeline.publish import publish_study
from helpers.pipeline.recorded import differences
from helpers.pipeline.run import open_run, reopen_run
from helpers.pipeline.study import plan_runs, report_study, run_study

pytestmark = pytest.mark.slow

TINY = {
    "name": "tiny",
    "models": ["minilm-l6", "smollm2-135m", "distilbert-base"],
    "datasets": ["sst2"],
    "preset": "quick",
    "seeds": [3],
    "overrides": {"max_train": 48, "max_validation": 16, "max_calibration": 24, "max_test": 40, "max_length": 48,
                  "train": {"max_steps": 3, "batch_size": 8},
                  "speed": {"warmup": 1, "repeats": 5, "max_examples": 16, "batch_size": 8},
                  "evaluation": {"baseline_shots": [0, 1]}},
    "benchmarks": ["reports/benchmarks/cpu-amd-epyc-2t"],
    "tracking": ["tensorboard", "mlflow"],
}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, mirror_path):
    """Runs once for the module: two offline models finish, the hub model fails offline."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTICOMPARE_DATA_DIR", str(mirror_path))
    mp.setenv("HF_HUB_OFFLINE", "1")  # the hub model must fail fast, as on a machine without network
    path = tmp_path_factory.mktemp("study") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    outcome = run_study(path)
    yield path, outcome
    mp.undo()


def test_offline_models_finish_and_the_hub_model_is_recorded_as_failed(tiny_study):
    _, outcome = tiny_study
    assert sorted(p.model for p in outcome.done) == ["minilm-l6", "smollm2-135m"]
    assert [(p.model, stage) for p, stage, _ in outcome.failed] == [("distilbert-base", "01_data")]
    failed = read_json(paths.experiments_dir() / "tiny" / "sst2" / "distilbert-base" / "failed.json")
    assert failed["stage"] == "01_data" and "ModelError" in failed["error"] and "network" in failed["error"]


def test_results_hold_the_seed_format_and_agree_with_predictions(tiny_study):
    run_dir = paths.experiments_dir() / "tiny" / "sst2" / "minilm-l6"
    results = read_json(run_dir / "results.json")
    for key in ("model_name", "dataset", "accuracy", "f1", "precision", "recall", "ttft_mean_ms",
                "latency_median_ms", "latency_p99_ms", "throughput_tokens_per_sec", "throughput_samples_per_sec",
                "memory_allocated_mb", "memory_reserved_mb", "peak_rss_mb", "training_time_hours",
                "trainable_params", "total_params", "params", "environment", "data_fingerprint"):
        assert key in results, key
    assert 0 < results["trainable_params"] < results["total_params"]
    assert results["latency_p99_ms"] >= results["latency_median_ms"] > 0
    assert results["speed"]["matmul_peak"]["gflops"] > 0  # the host's speed beside its timings
    # MiniLM-L6's per-token linear layers: 6 x (4 x 384^2 + 2 x 384 x 1,536); no embeddings, pooler or head
    assert results["speed"]["inference_flops_per_token"] == 2 * 6 * (4 * 384**2 + 2 * 384 * 1536)
    assert results["inference_mfu"] == pytest.approx(
        results["throughput_tokens_per_sec"] * results["speed"]["inference_flops_per_token"]
        / (results["speed"]["matmul_peak"]["gflops"] * 1e9))
    assert 0 < results["inference_mfu"] < 1
    assert results["environment"]["packages"]["torch"]
    import pandas as pd

    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert len(predictions) == 40
    assert results["accuracy"] == pytest.approx((predictions["label"] == predictions["prediction"]).mean())
    decided = predictions.filter(regex="^prob_").to_numpy()
    raw = predictions.filter(regex="^raw_prob_").to_numpy()
    assert decided.shape == raw.shape == (40, 2)
    assert (decided.argmax(axis=1) == predictions["prediction"]).all()
    assert results["quality"]["raw_argmax"]["accuracy"] == pytest.approx(
        (raw.argmax(axis=1) == predictions["label"]).mean())
    majority = results["quality"]["baseline_majority"]["majority_label"]
    model_right, majority_right = predictions["label"] == predictions["prediction"], predictions["label"] == majority
    vs = results["quality"]["vs_majority"]
    assert vs["model_only_correct"] == (model_right & ~majority_right).sum()
    assert vs["majority_only_correct"] == (~model_right & majority_right).sum() and 0 < vs["p_value"] <= 1
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    for stage in ("01_data", "02_train", "03_evaluate", "04_speed"):
        assert (run_dir / f"{stage}.ipynb").is_file()
    assert "papermill notebooks/03_evaluate.ipynb" in (run_dir / "reproduce.sh").read_text()


def test_results_hold_calibration_conformal_and_the_base_model_baseline(tiny_study):
    sst2 = paths.experiments_dir() / "tiny" / "sst2"
    decoder = read_json(sst2 / "smollm2-135m" / "results.json")["quality"]
    encoder = read_json(sst2 / "minilm-l6" / "results.json")["quality"]
    for quality in (decoder, encoder):
        for key in ("ece", "mce", "brier", "nll", "ece_recalibrated", "temperature", "class_bias", "aurc", "conformal_alpha",
                    "conformal_coverage", "conformal_set_size", "expected_cost", "accuracy_ci95", "f1_ci95"):
            assert key in quality, key
        assert quality["temperature"] > 0 and 1 <= quality["conformal_set_size"] <= 2
        assert quality["conformal_calibration_examples"] == 24
    zero_shot, one_shot = decoder["baseline"]["0-shot"], decoder["baseline"]["1-shot"]
    assert 0 <= zero_shot["accuracy"] <= 1 and zero_shot["nll"] > 0 and zero_shot["shots"] == 0
    assert one_shot["shots"] == 1 and one_shot["prompt_tokens_mean"] > zero_shot["prompt_tokens_mean"]
    assert "baseline" not in encoder  # encoders have no zero-shot head


@pytest.mark.parametrize("method", ["lac", "aps"])
def test_conformal_coverage_holds_on_real_predictions(tiny_study, method):
    """Random calibration/test halves of a fine-tuned model's real test predictions: averaged over
    the splits, the sets cover the true label at least 1 - alpha of the time (finite-sample slack)."""
    labels, probs = run_table.run_probabilities(paths.experiments_dir() / "tiny" / "sst2" / "smollm2-135m")
    rng, alpha, coverages = np.random.default_rng(0), 0.2, []
    for seed in range(200):
        order = rng.permutation(len(labels))
        cal, test = order[: len(order) // 2], order[len(order) // 2:]
        outcome = conformal.split_conformal(labels[cal], probs[cal], labels[test], probs[test], alpha, method,
                                            seed=seed)
        coverages.append(outcome.metrics.coverage)
    assert np.mean(coverages) >= 1 - alpha - 0.02


def test_comparison_ranks_the_finished_models_and_tests_them_pairwise(tiny_study):
    comparison = read_json(paths.experiments_dir() / "tiny" / "sst2" / "comparison.json")
    assert sorted(r["model"] for r in comparison["ranking"]) == ["minilm-l6", "smollm2-135m"]
    assert sorted(r["rank"] for r in comparison["ranking"]) == [1, 2]
    (pair,) = comparison["pairwise"]
    assert 0 <= pair["p_value"] <= pair["p_holm"] <= 1
    assert comparison["failures"][0]["run"] == "distilbert-base"
    for row in comparison["ranking"]:  # the margin over the majority class, tested on the same examples
        recorded = read_json(paths.experiments_dir() / "tiny" / "sst2" / row["model"] / "results.json")
        assert row["p_vs_majority"] == recorded["quality"]["vs_majority"]["p_value"]


def test_report_has_every_model_and_the_failure(tiny_study):
    html = (paths.reports_dir() / "tiny.html").read_text()
    for text in ("minilm-l6", "smollm2-135m", "distilbert-base", "Failed in 01_data", "Ranking",
                 "McNemar p vs majority"):
        assert text in html
    bench = html.split("Appendix B: benchmarks")[-1]  # the committed results' section (after the contents)
    assert "cpu-amd-epyc-2t" in bench and "gemma3-270m" in bench and "train speedup" in bench
    assert "tags=[\"parameters\"]" not in html and "open_run(" not in html  # code is hidden
    assert (paths.reports_dir() / "tiny.pdf").read_bytes()[:5] == b"%PDF-"


def pdf_words(pdf) -> list[tuple[int, float, float, str]]:
    """Every word of a PDF with its page, right edge and the page's width (pdftotext -bbox)."""
    xml = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    words = []
    for number, (width, body) in enumerate(re.findall(r'<page width="([\d.]+)" height="[\d.]+">(.*?)</page>', xml,
                                                      flags=re.S), start=1):
        words += [(number, float(x_max), float(width), html_lib.unescape(word)) for x_max, word in
                  re.findall(r'<word xMin="[\d.]+" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">(.*?)</word>', body)]
    return words


def tokens(text: str) -> set[str]:
    """Word characters only: a header wrapped at a hyphen or a quote prints as two words."""
    return set(re.findall(r"[^\W_]+", text))


def test_report_answers_on_page_one_and_clips_no_column(tiny_study):
    pdf, html = paths.reports_dir() / "tiny.pdf", (paths.reports_dir() / "tiny.html").read_text()
    words = pdf_words(pdf)
    first = " ".join(word for page, _, _, word in words if page == 1)
    assert "Verdict" in first and "most accurate" in first and "Ranking on sst2" in first
    assert "accuracy (95 % CI)" in first and "p vs majority" in first
    images = subprocess.run(["pdfimages", "-list", "-f", "1", "-l", "1", str(pdf)], capture_output=True, text=True,
                            check=True).stdout.splitlines()[2:]
    assert len(images) >= 1  # the headline figure
    assert [word for _, right, width, word in words if right > width + 0.5] == []  # nothing beyond the page
    printed = tokens(" ".join(word for *_, word in words))
    headers = tokens(" ".join(th.get_text(" ") for th in BeautifulSoup(html, "html.parser").select("th")))
    assert headers - printed == set()  # every column header of every table is in the PDF
    assert "Alternative text is missing" not in html and 'alt="No description' not in html
    anchors = set(re.findall(r'<a id="(section-\d+)"', html))
    assert anchors and set(re.findall(r'href="#(section-\d+)"', html)) == anchors  # the contents link every section


def test_tracked_runs_reach_tensorboard_and_mlflow(tiny_study, monkeypatch):
    run_dir = paths.experiments_dir() / "tiny" / "sst2" / "minilm-l6"
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    logged = read_json(run_dir / "results.json")["tracking"]["mlflow"]
    assert logged["experiment"] == "tiny" and logged["uri"].endswith("/mlruns")
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as helpers/pipeline/tracking.py sets for its store
    mlflow.set_tracking_uri(logged["uri"])
    run = mlflow.get_run(logged["run_id"])
    assert run.data.params["model"] == "minilm-l6" and run.data.params["seed"] == "3"
    assert run.data.metrics["accuracy"] == pytest.approx(read_json(run_dir / "results.json")["accuracy"])
    assert {"loss", "ece", "latency_median_ms"} <= set(run.data.metrics)


def test_rerun_reuses_finished_work(tiny_study):
    path, _ = tiny_study
    results = paths.experiments_dir() / "tiny" / "sst2" / "minilm-l6" / "results.json"
    before = results.stat().st_mtime_ns
    outcome = run_study(path, report=False)
    assert sorted(p.model for p in outcome.reused) == ["minilm-l6", "smollm2-135m"]
    assert results.stat().st_mtime_ns == before


def test_a_single_stage_reruns_with_plain_papermill_to_the_same_metrics(tiny_study):
    run_dir = paths.experiments_dir() / "tiny" / "sst2" / "minilm-l6"
    recorded = read_json(run_dir / "stages" / "03_evaluate.json")
    command = [sys.executable, "-m", "papermill", "notebooks/03_evaluate.ipynb", str(run_dir / "rerun.ipynb"),
               "-f", str(run_dir / "params.yaml"), "--cwd", "."]
    subprocess.run(command, cwd=paths.PROJECT_ROOT, check=True, capture_output=True)
    again = read_json(run_dir / "stages" / "03_evaluate.json")
    for key in ("accuracy", "f1", "precision", "recall", "confusion_matrix"):
        assert again[key] == recorded[key], key
    assert json.dumps(again["accuracy_ci95"]) == json.dumps(recorded["accuracy_ci95"])


def test_settings_compare_key_by_key_and_prose_is_left_out():
    recorded = {"train": {"epochs": 3, "lora_targets": ["q"], "description": "old words"}, "seed": 1}
    resolved = {"train": {"epochs": 3, "lora_targets": ["q", "v"], "sampling": "random", "description": "new"},
                "seed": 1}
    assert differences(recorded, resolved, "preset") == [
        "preset.train.lora_targets: ['q'] -> ['q', 'v']", "preset.train.sampling: '<not set>' -> 'random'"]
    assert differences(recorded, recorded, "preset") == []
    assert differences(recorded["train"], {**recorded["train"], "micro_batch_split": "even"}, "preset.train") == []
    assert differences(recorded["train"], {**recorded["train"], "micro_batch_split": "least-padding"},
                       "preset.train") == ["preset.train.micro_batch_split: 'even' -> 'least-padding'"]


def test_a_run_made_under_other_settings_is_neither_rerun_nor_reused(tiny_study):
    """A preset's content or a setting's default can change between commits (0838c14 changed which
    batches a training draws): a finished run recorded under other settings than today's code
    resolves from its params.yaml stops a stage rerun and a study's reuse, naming each moved
    setting and the commit, and keeps its results. Reading its adapter stops only where what the
    adapter reads moved (here its texts' length), not how it trained."""
    path, _ = tiny_study
    run_dir = paths.experiments_dir() / "tiny" / "sst2" / "minilm-l6"
    results = run_dir / "results.json"
    original = results.read_bytes()
    record = json.loads(original)
    train = record["params"]["preset"]["train"]
    del train["sampling"]  # made before the setting existed
    train["micro_batch_size"] = 4
    record["params"]["dataset"]["description"] = "prose changes no number"
    record["environment"]["git"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    results.write_text(json.dumps(record))
    edited = results.read_bytes()
    failed = paths.experiments_dir() / "tiny" / "sst2" / "distilbert-base" / "failed.json"
    try:
        with pytest.raises(config.ConfigError) as stopped:
            open_run(**config.read_yaml(run_dir / "params.yaml"))
        message = str(stopped.value)
        assert [line.strip() for line in message.splitlines() if line.startswith("  ")] == [
            "preset.train.micro_batch_size: 4 -> 0", "preset.train.sampling: '<not set>' -> 'random'"]
        assert "commit 0123456789abcdef" in message and "git worktree add ../rerun 0123456789ab" in message
        with pytest.raises(config.ConfigError, match="no longer resolves"):
            run_study(path, report=False)
        assert results.read_bytes() == edited and failed.is_file()  # checked before any folder was touched
        assert reopen_run(run_dir).preset.train.sampling == "random"  # how it trained: not what a reader sees
        record["params"]["preset"]["max_length"] = 40
        record["params"]["model"]["train"]["epochs"] = 9
        results.write_text(json.dumps(record))
        with pytest.raises(config.ConfigError) as unread:
            reopen_run(run_dir)
        assert [line.strip() for line in str(unread.value).splitlines() if line.startswith("  ")] == [
            "preset.max_length: 40 -> 48"]
    finally:
        results.write_bytes(original)


def test_a_study_stopped_part_way_is_reported_and_published_with_what_did_not_finish(tiny_study, tmp_path):
    """What a study killed in gemma3-270m's 02_train leaves (its 01_data notebook, no results) is
    reported as not finished beside the finished runs; publishing copies only finished runs."""
    stopped = tmp_path / "tiny.yaml"
    stopped.write_text(yaml.safe_dump({**TINY, "models": [*TINY["models"], "gemma3-270m"]}))
    dataset_dir = paths.experiments_dir() / "tiny" / "sst2"
    plan = next(p for p in plan_runs(config.load_study(stopped)) if p.model == "gemma3-270m")
    plan.run_dir.mkdir()
    write_yaml(plan.run_dir / "params.yaml", plan.params)
    shutil.copy(dataset_dir / "minilm-l6" / "01_data.ipynb", plan.run_dir / "01_data.ipynb")
    try:
        outcome = report_study(stopped)
        assert sorted(p.model for p in outcome.reused) == ["minilm-l6", "smollm2-135m"]
        failures = read_json(dataset_dir / "comparison.json")["failures"]
        assert [(f["run"], f["status"], f["stage"]) for f in failures] == [
            ("distilbert-base", "failed", "01_data"), ("gemma3-270m", "not finished", "after 01_data")]
        text = " ".join(BeautifulSoup(outcome.report_html.read_text(), "html.parser").get_text(" ").split())
        assert "1 run(s) not finished: gemma3-270m (after 01_data)" in text
        assert "Not finished (after 01_data)" in text
        published = publish_study(config.load_study(stopped), paths.experiments_dir() / "tiny", outcome.report_html,
                                  outcome.report_pdf, stopped)
        assert published.parent.parent == paths.reports_dir() / "studies" and published.name == "tiny"
        assert sorted(p.parent.name for p in published.glob("sst2/*/results.json")) == ["minilm-l6", "smollm2-135m"]
        assert yaml.safe_load((published / "study.yaml").read_text())["models"][-1] == "gemma3-270m"
        assert read_json(published / "sst2" / "comparison.json")["failures"] == failures
        assert (published / "tiny.pdf").read_bytes()[:5] == b"%PDF-"
        changed = tmp_path / "changed.yaml"  # other parameters than the runs were made with
        changed.write_text(yaml.safe_dump({**TINY, "seeds": [3], "overrides": {**TINY["overrides"], "max_test": 41}}))
        with pytest.raises(config.ConfigError, match=r"minilm-l6/params.yaml differs from what tiny plans"):
            report_study(changed)
    finally:
        shutil.rmtree(plan.run_dir)


def test_an_exported_run_loads_without_peft_to_the_same_probabilities(tiny_study, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from helpers.adapters.export import export_run
    from helpers.core.device import precision_for
    from helpers.evaluate.inference import predict_proba
    from helpers.train import models

    run_dir = paths.experiments_dir() / "tiny" / "sst2" / "smollm2-135m"
    out = export_run(run_dir, tmp_path / "export")
    exported = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert exported.config.id2label == {0: "negative", 1: "positive"}
    texts = ["a gorgeous, witty film", "tedious and far too long, with nothing to say about anything"]
    plain = predict_proba(exported, AutoTokenizer.from_pretrained(out), texts, 2, 48, "cpu")
    spec = config.get_model("smollm2-135m")
    with_peft = predict_proba(models.load_finetuned(spec, run_dir / "adapter", ["negative", "positive"],
                                                    precision_for("cpu")),
                              models.load_tokenizer(spec, "left"), texts, 2, 48, "cpu")
    np.testing.assert_allclose(plain, with_peft, atol=1e-5)
    record = read_json(out / "senticompare.json")
    assert record["labels"] == ["negative", "positive"] and record["metrics"]["accuracy"] is not None
    assert record["recalibration"]["recalibration"] == "bias_temperature"
    with pytest.raises(config.ConfigError, match="pooling: mean"):
        export_run(paths.experiments_dir() / "tiny" / "sst2" / "minilm-l6", tmp_path / "minilm")
    with pytest.raises(config.ConfigError, match="holds no results.json"):
        export_run(paths.experiments_dir() / "tiny" / "sst2" / "distilbert-base", tmp_path / "failed")
