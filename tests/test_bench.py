"""The benchmark: honest FLOP counts, the HF Trainer baseline padded to max length, the CUDA code path, and an end-to-end
run on a tiny random decoder that writes every key the issue asks for."""
from __future__ import annotations

import dataclasses
import mmap
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from helpers import config
from helpers.bench import baseline, measure, profile, tables, turns
from helpers.bench import config as bench_config
from helpers.bench import run as bench
from helpers.core import threads
from helpers.core.device import Precision, precision_for
from helpers.core.io import read_json
from helpers.core.paths import PARAMS_DIR
from helpers.evaluate.significance import mcnemar_exact_p
from helpers.evaluate.inference import pad_values, padded_batch, predict_proba
from helpers.speed import flops, timing
from helpers.train import models, trainer

CPU = precision_for("cpu")
LABELS = ["negative", "positive"]
TEXTS = ["a wonderful, moving film that I loved", "dull", "I loved every minute of it, truly", "a waste"] * 4
HEADLINE_KEYS = {
    "train_tokens_per_sec_ours", "train_tokens_per_sec_reference", "train_speedup", "val_accuracy_ours",
    "val_accuracy_reference", "infer_samples_per_sec_ours", "infer_samples_per_sec_reference", "infer_speedup",
    "matmul_peak_gflops", "train_mfu", "infer_mfu", "qlora_memory_mb", "lora_memory_mb", "environment",
}
# Every linear layer's outputs a multiple of 32 and inputs of 64: bitsandbytes' CPU inference kernel packs
# 4-bit weights in blocks of 32 outputs, one scale per 64 inputs (a QLoRA model scored in evaluation
# mode, as the bench does).
HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 64, 128, 2, 2, 1, 32


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama with the real SmolLM2 tokenizer, saved like a converted package model."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(models.model_path(config.get_model("smollm2-135m")))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, max_position_embeddings=256,
        tie_word_embeddings=True))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny(monkeypatch, tiny_model_dir) -> config.ModelSpec:
    monkeypatch.setattr(models, "model_path", lambda spec: str(tiny_model_dir))
    return config.get_model("smollm2-135m")


def hand_count() -> int:
    """q, k, v, o and the three MLP matrices per layer; no embeddings, no heads."""
    q = o = HIDDEN * HEADS * HEAD_DIM
    k = v = HIDDEN * KV_HEADS * HEAD_DIM
    mlp = 3 * HIDDEN * INTERMEDIATE
    return LAYERS * (q + k + v + o + mlp)


def test_flop_count_matches_a_hand_count_with_and_without_lora(tiny):
    base = models.load_base(tiny, LABELS, CPU)
    assert flops.linear_weights(base) == hand_count()
    lora = models.add_lora(base, tiny, config.TrainConfig())
    assert flops.linear_weights(lora) == hand_count()
    assert flops.forward_flops_per_token(hand_count()) == 2 * hand_count()
    assert flops.lora_train_flops_per_token(hand_count()) == 4 * hand_count()


def test_flop_count_of_a_4bit_body_uses_logical_shapes(tiny):
    assert flops.linear_weights(models.load_base(tiny, LABELS, CPU, "4bit")) == hand_count()


def test_mfu_is_achieved_flops_over_the_peak():
    assert flops.mfu(tokens_per_sec=100.0, flops_per_token=10**9, peak_gflops=200.0) == pytest.approx(0.5)


def test_matmul_peak_is_measured_with_spread():
    peak = flops.matmul_peak("cpu", size=128, warmup=1, repeats=3)
    assert 0 < peak.gflops_min <= peak.gflops <= peak.gflops_max
    assert peak.threads == torch.get_num_threads() and peak.dtype == "float32"


def test_reference_pads_every_example_to_max_length(tiny):
    tokenizer = models.load_tokenizer(tiny)
    df = pd.DataFrame({"text": TEXTS[:4], "label": [1, 0, 1, 0]})
    padded = baseline.tokenize_padded(df, tokenizer, 24)
    assert all(len(ids) == 24 for ids in padded["input_ids"])
    real = [sum(mask) for mask in padded["attention_mask"]]
    assert len(set(real)) > 1 and max(real) < 24
    ours = trainer.tokenize(df, tokenizer, 24)
    assert [len(ids) for ids in ours["input_ids"]] == real


def test_reference_training_counts_only_real_tokens(tiny, tmp_path):
    tokenizer = models.load_tokenizer(tiny)
    df = pd.DataFrame({"text": TEXTS[:8], "label": [1, 0, 1, 0] * 2})
    cfg = dataclasses.replace(config.TrainConfig(), batch_size=4)
    model = models.add_lora(models.load_base(tiny, LABELS, CPU, tokenizer=tokenizer), tiny, cfg)
    result = baseline.train_reference(model, df, tokenizer, cfg, 32, 0, CPU, tmp_path)
    real = sum(len(ids) for ids in tokenizer(df["text"].tolist())["input_ids"])
    assert result.steps == 2 and len(result.step_seconds) == 2
    assert sum(result.step_tokens) == result.train_tokens == real


def test_a_model_scored_straight_after_training_is_scored_without_dropout(tiny, tmp_path):
    """The Trainer leaves its model in training mode, and the bench scores it there: prediction
    must not draw dropout masks (answers that moved with the random state until 2026-11-30)."""
    tokenizer = models.load_tokenizer(tiny)
    df = pd.DataFrame({"text": TEXTS[:8], "label": [1, 0, 1, 0] * 2})
    cfg = dataclasses.replace(config.TrainConfig(), batch_size=4, lora_dropout=0.5)
    model = measure.lora_model(tiny, LABELS, CPU, cfg, tokenizer, 0)
    baseline.train_reference(model, df, tokenizer, cfg, 32, 0, CPU, tmp_path)
    assert model.training
    scored = [predict_proba(model, tokenizer, TEXTS, 4, 16, "cpu") for _ in range(2)]
    assert model.training  # given back as it came
    model.eval()
    np.testing.assert_array_equal(scored[0], scored[1])
    np.testing.assert_array_equal(scored[0], predict_proba(model, tokenizer, TEXTS, 4, 16, "cpu"))


def test_compiled_training_is_the_eager_training_in_whole_graphs(tiny, tmp_path):
    """`train.compile` on a CPU: the graphs a GPU would replay as CUDA graphs (reduce-overhead) are
    the eager steps' arithmetic, with no graph break in the forward and backward (a break would
    leave part of every step to host-launched kernels), and the process's later Trainers stay eager."""
    from torch._dynamo.utils import counters

    tokenizer = models.load_tokenizer(tiny)
    df = pd.DataFrame({"text": TEXTS[:8], "label": [1, 0, 1, 0] * 2})
    losses, breaks, graphs = {}, {}, {}
    for mode in ("none", "default"):
        cfg = dataclasses.replace(config.TrainConfig(), batch_size=4, max_steps=2, lora_dropout=0.0, compile=mode)
        model = measure.lora_model(tiny, LABELS, CPU, cfg, tokenizer, 0)
        torch._dynamo.reset()
        counters.clear()
        result = trainer.train(model, tokenizer, df, cfg, CPU, 32, 0, tmp_path / mode)
        losses[mode] = [entry["loss"] for entry in result.log_history if "loss" in entry]
        breaks[mode] = dict(counters["graph_break"])
        graphs[mode] = counters["stats"]["unique_graphs"]
    assert len(losses["none"]) == 2 and losses["default"] == pytest.approx(losses["none"], rel=1e-4)
    assert graphs["none"] == 0 and graphs["default"] >= 1 and breaks["default"] == {}
    assert not [key for key in os.environ if key.startswith(trainer.DYNAMO_ENV)]


def test_step_clock_synchronizes_cuda_before_each_clock_read(monkeypatch):
    synced = []
    monkeypatch.setattr(trainer, "synchronize", synced.append)
    clock = trainer.StepClock("cuda")
    state = type("State", (), {"num_input_tokens_seen": 0})()
    clock.on_train_begin(None, state, None)
    state.num_input_tokens_seen = 7
    clock.on_step_end(None, state, None)
    assert clock.tokens == [7] and len(clock.seconds) == 1 and synced.count("cuda") >= 2


def test_step_clock_leaves_the_time_between_steps_out():
    clock = trainer.StepClock("cpu", between_steps=lambda: time.sleep(0.3))
    state = type("State", (), {"num_input_tokens_seen": 0})()
    clock.on_train_begin(None, state, None)
    for _ in range(2):
        time.sleep(0.05)
        clock.on_step_end(None, state, None)
    assert len(clock.seconds) == 2 and all(0.05 <= s < 0.25 for s in clock.seconds)


def test_peak_memory_on_cuda_reads_max_allocated(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 3 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 4 * 2**20)
    with timing.peak_memory("cuda") as peak:
        pass
    assert peak == {"allocated_mb": 3.0, "reserved_mb": 4.0} and calls[:2] == ["sync", "reset"]


def test_peak_memory_on_cpu_sees_a_large_allocation():
    with timing.peak_memory("cpu", interval_s=0.005) as peak:
        block = mmap.mmap(-1, 64 * 2**20)  # fresh pages: malloc may reuse memory earlier tests freed
        block.write(b"\1" * len(block))
        time.sleep(0.05)
        block.close()
    assert peak["rss_growth_mb"] >= 32


def test_cuda_mixed_precision_computes_in_bf16_and_qlora_too():
    cuda = Precision("cuda", torch.float32, fp16=False, bf16=True, qlora_compute_dtype=torch.bfloat16)
    assert measure.compute_dtype(cuda) == torch.bfloat16
    assert models._quantization(cuda, "4bit").bnb_4bit_compute_dtype == torch.bfloat16
    assert measure.compute_dtype(CPU) == torch.float32


def test_time_interleaved_takes_turns():
    order = []
    times = timing.time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 1, 2)
    assert order == ["a", "b"] * 3 and [len(t) for t in times.values()] == [2, 2]


def test_turns_pass_round_robin_and_a_failed_party_lets_the_others_finish():
    ran = []

    def steps(name: str, count: int, fail_at: int | None = None):
        def job(between_steps):
            for step in range(count):
                if step == fail_at:
                    raise ValueError(f"{name} broke")
                ran.append(name)
                between_steps()
            return name
        return job

    results, order = turns.run_interleaved({"a": steps("a", 3), "b": steps("b", 1), "c": steps("c", 2)})
    assert results == {"a": "a", "b": "b", "c": "c"}
    assert ran == ["a", "b", "c", "a", "c", "a"]
    assert order == ["a", "b", "c", "a", "b", "c", "a", "c", "a"]  # a turn to each step's end, one to each job's end
    ran.clear()
    with pytest.raises(RuntimeError, match="'b' training failed.*b broke"):
        turns.run_interleaved({"a": steps("a", 3), "b": steps("b", 3, fail_at=1)})
    assert ran == ["a", "b", "a", "a"]
    with pytest.raises(ValueError, match="at least one job"):
        turns.run_interleaved({})


def test_interleaved_trainings_take_turns_and_compute_what_they_compute_alone(tiny, tmp_path):
    """Both paths' trainings, one step each in turn, against the same trainings one after the
    other: the same losses and adapters bit for bit (each party keeps its random state: dropout
    masks, batch order), every step's clock its own, on the caller's threads."""
    torch.set_num_threads(2)
    tokenizer = models.load_tokenizer(tiny)
    df = pd.DataFrame({"text": TEXTS, "label": [1, 0, 1, 0] * 4})
    cfg = dataclasses.replace(config.TrainConfig(), epochs=1, batch_size=4, lora_dropout=0.3, micro_batch_size=2)
    bench_cfg = bench_config.BenchConfig(name="t", models=["smollm2-135m"], train=cfg,
                                         datasets=[bench_config.BenchData("finefoods", 32, 16, 4, 4)])

    def jobs(folder: str) -> dict:
        return {"reference": lambda between: bench.trained_reference(tiny, LABELS, tokenizer, df, bench_cfg, 32, CPU,
                                                                     tmp_path / folder, between),
                "ours": lambda between: bench.trained_ours(tiny, LABELS, tokenizer, df, bench_cfg, 32, CPU,
                                                           tmp_path / folder, between)}

    def logged(result) -> list:
        return [(key, value) for entry in result.log_history for key, value in entry.items()
                if key in ("loss", "grad_norm", "train_loss")]

    alone = {name: job(None) for name, job in jobs("alone").items()}
    together, order = turns.run_interleaved(jobs("together"))
    assert order == ["reference", "ours"] * 5  # a first turn to each step's end, one to each training's end
    for name in ("reference", "ours"):
        (model_alone, result_alone), (model_together, result_together) = alone[name], together[name]
        assert logged(result_alone) and logged(result_alone) == logged(result_together), name
        adapters = [{k: v for k, v in m.state_dict().items() if "lora_" in k} for m in (model_alone, model_together)]
        assert adapters[0] and all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0]), name
        assert len(result_together.step_seconds) == 4 and result_together.step_threads == [2] * 4


@pytest.mark.parametrize("order", ["sequential", "interleaved"])
def test_train_paths_keep_only_the_models_asked_for_and_measure_memory_per_order(order):
    def job(name: str):
        def trained(between_steps):
            if between_steps is not None:
                between_steps()
            return torch.nn.Linear(2, 2), name
        return trained

    done, turn_order = measure.train_paths({"reference": job("reference"), "ours": job("ours")},
                                           lambda model: np.array([True, False]), {"ours"}, order, "cpu")
    assert [done[name].result for name in ("reference", "ours")] == ["reference", "ours"]
    assert done["reference"].model is None and isinstance(done["ours"].model, torch.nn.Linear)
    assert all(path.correct.tolist() == [True, False] and path.peak_memory["rss_peak_mb"] > 0 for path in done.values())
    shared = done["reference"].peak_memory is done["ours"].peak_memory
    assert shared == (order == "interleaved") and ("paths" in done["ours"].peak_memory) == shared
    assert turn_order == (["reference", "ours"] if order == "sequential" else ["reference", "ours"] * 2)


def test_threads_follow_the_free_cores_unless_pinned(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.free_core_threads() == torch.get_num_threads()  # deterministic unless asked
    monkeypatch.setenv(threads.ENV, "auto")
    assert 1 <= threads.free_core_threads() <= (threads.psutil.cpu_count() or 1)
    monkeypatch.delenv(threads.ENV)
    with threads.pinned(1):
        assert threads.free_core_threads() == 1
        with threads.cpu_threads("cpu") as count:
            assert count == 1 and torch.get_num_threads() == 1
    assert threads.os.environ.get(threads.ENV) != "1"


def test_our_paths_give_the_callers_thread_count_back(tiny, tmp_path):
    torch.set_num_threads(2)
    tokenizer = models.load_tokenizer(tiny)
    model = models.load_base(tiny, LABELS, CPU, tokenizer=tokenizer)
    with threads.pinned(1):
        predict_proba(model, tokenizer, TEXTS[:2], 2, 16, "cpu")
        assert torch.get_num_threads() == 2
        cfg = dataclasses.replace(config.TrainConfig(), batch_size=4, max_steps=1)
        result = trainer.train(models.add_lora(model, tiny, cfg), tokenizer,
                                pd.DataFrame({"text": TEXTS[:4], "label": [1, 0, 1, 0]}), cfg, CPU, 16, 0, tmp_path)
    assert result.step_threads == [1] and torch.get_num_threads() == 2


def test_inference_model_is_merged_and_in_the_mixed_precision_dtype(tiny):
    bf16 = Precision("cpu", torch.float32, fp16=False, bf16=True, qlora_compute_dtype=torch.bfloat16)
    lora = models.add_lora(models.load_base(tiny, LABELS, CPU), tiny, config.TrainConfig())
    merged = measure.inference_model(lora, bf16)
    assert not any("lora_" in name for name, _ in merged.named_modules())
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("model_id", ["smollm2-135m", "minilm-l6"])  # a decoder's pad token; BERT's token types
@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batch_is_what_tokenizer_pad_builds(model_id, side):
    tokenizer = models.load_tokenizer(config.get_model(model_id))
    tokenizer.padding_side = side
    encoded = tokenizer(TEXTS[:4], truncation=True, max_length=16)
    rows = torch.tensor([2, 0, 1]).numpy()
    expected = tokenizer.pad([{key: encoded[key][i] for key in encoded.keys()} for i in rows], return_tensors="pt")
    ours = padded_batch(encoded, rows, pad_values(tokenizer), side)
    assert set(ours) == set(expected) and (model_id == "minilm-l6") == ("token_type_ids" in ours)
    for key in expected:
        assert torch.equal(ours[key], expected[key]) and ours[key].dtype == expected[key].dtype
    longest = ours["input_ids"].shape[1]
    rounded = padded_batch(encoded, rows, pad_values(tokenizer), side, multiple=8, cap=16)
    assert rounded["input_ids"].shape[1] == min(-(-longest // 8) * 8, 16)
    assert torch.equal(rounded["attention_mask"].sum(dim=1), expected["attention_mask"].sum(dim=1))


def test_device_busy_time_counts_overlapping_kernels_once():
    assert profile.union_us([(0, 10), (5, 12), (20, 25), (21, 22)]) == 17
    assert profile.union_us([]) == 0


def test_step_profiler_summarizes_only_the_steps_after_the_warm_up(tiny, tmp_path):
    tokenizer = models.load_tokenizer(tiny)
    cfg = dataclasses.replace(config.TrainConfig(), batch_size=2, max_steps=5)
    profiler = profile.StepProfiler("cpu", skip=2, steps=2)
    model = models.add_lora(models.load_base(tiny, LABELS, CPU, tokenizer=tokenizer), tiny, cfg)
    trainer.train(model, tokenizer, pd.DataFrame({"text": TEXTS[:10], "label": [1, 0] * 5}), cfg, CPU, 16, 0,
                  tmp_path, callbacks=[profiler])
    summary = profiler.summary
    assert summary["steps"] == 2 and summary["wall_ms_per_step"] > 0 and summary["aten_calls_per_step"] > 10
    assert summary["device_busy_share"] is None and summary["kernels_per_step"] is None  # no device timeline
    assert len(summary["top"]) == profile.TOP_OPERATORS
    assert any(row["name"].startswith("aten::") and row["self_ms_per_step"] > 0 for row in summary["top"])
    once = profile.profile_calls(lambda: predict_proba(model, tokenizer, TEXTS, 4, 16, "cpu"), "cpu", steps=3)
    assert once["steps"] == 3 and once["aten_calls_per_step"] > 0


def test_compiled_prediction_is_the_eager_prediction_and_the_pipelines_labels(tiny):
    tokenizer = models.load_tokenizer(tiny)
    model = models.load_base(tiny, LABELS, CPU, tokenizer=tokenizer).eval()
    torch.manual_seed(5)  # a head that labels the texts both ways, each probability 0.24 or more from 0.5
    torch.nn.init.normal_(model.score.weight, std=1.0)  # a new head starts at zero: every text 0.5/0.5
    eager = predict_proba(model, tokenizer, TEXTS, 4, 16, "cpu")
    assert len(set(eager.argmax(axis=1))) == 2 and (abs(eager[:, 0] - 0.5) > 1e-3).all()
    torch._dynamo.reset()
    compiled = predict_proba(measure.compiled(model, "default"), tokenizer, TEXTS, 4, 16, "cpu")
    assert compiled == pytest.approx(eager, abs=1e-5) and measure.compiled(model, "none") is model
    pipeline_out = baseline.classify(baseline.text_classifier(model, tokenizer, "cpu"), TEXTS, 4, 16)
    assert measure.agreement(model, eager, pipeline_out) == 1.0
    assert measure.agreement(model, 1.0 - eager, pipeline_out) == 0.0


def test_bench_params_files_are_valid():
    for name in ("bench.yaml", "bench-cuda.yaml", "bench-accuracy.yaml"):
        cfg = bench_config.load_bench(PARAMS_DIR / name)
        assert cfg.models and cfg.datasets and cfg.train.quantization == "none"


@pytest.mark.parametrize("models, extra, error", [
    ("nope", "", "nope"),  # an id the registry does not know
    ("smollm2-135m", "profile_steps: -1\n", "profile_steps"),
    ("smollm2-135m", "infer: {compile: max}\n", "compile"),
    ("smollm2-135m", "train: {lora_layers: 4}\n", "lora_layers must be 0"),  # the 4N FLOP count needs every layer
    ("smollm2-135m", "int8: [int4]\n", r"int8 must be a list of int8 modes from \['weight-only', 'dynamic'\]"),
    ("smollm2-135m", "train_order: parallel\n", r"train_order must be one of \['interleaved', 'sequential'\]"),
    ("smollm2-135m", "allocator: jemalloc\n", r"allocator must be one of \['default', 'keep-freed'\]"),
])
def test_bench_params_reject_bad_entries(tmp_path, models, extra, error):
    bad = tmp_path / "bench.yaml"
    bad.write_text(f"name: x\nmodels: [{models}]\ndatasets: [{{id: sst2, max_length: 32, train_examples: 8, "
                   f"validation_examples: 8, infer_examples: 8}}]\n{extra}")
    with pytest.raises(config.ConfigError, match=error):
        bench_config.load_bench(bad)


def tiny_bench(tmp_path: Path) -> bench_config.BenchConfig:
    return bench_config.BenchConfig(
        name="tiny", models=["smollm2-135m"], seed=0,
        datasets=[bench_config.BenchData("sst2", max_length=32, train_examples=8, validation_examples=8,
                                        infer_examples=8, batch_sizes=[1, 4], extras=True)],
        train=dataclasses.replace(config.TrainConfig(), batch_size=4, eval_batch_size=8, epochs=2),  # 3 steady steps
        infer=bench_config.InferSettings(warmup=1, repeats=2, latency_repeats=3),
        matmul=bench_config.MatmulSettings(size=64, warmup=1, repeats=2),
        threads=[1, 2], threads_train_steps=1,
        scaling=bench_config.ScalingSettings(examples=4, factors=[1, 2], max_lengths=[16, 32]),
        profile_steps=2, int8=["weight-only"], train_order="interleaved",
    )


def test_another_seed_draws_its_own_sample_and_writes_beside_the_params_seed(mirror, tmp_path, monkeypatch):
    drawn = []

    def record_of(spec, splits, bench_data, cfg, precision, scratch):  # what bench_model got, without the models
        drawn.append(tuple(splits.train["text"]))
        return {"seed": cfg.seed, "device_name": "here"}

    monkeypatch.setattr(bench, "bench_model", record_of)
    cfg = tiny_bench(tmp_path)
    first = bench.run_bench(cfg, out_dir=tmp_path / "bench")
    other = bench.run_bench(cfg, out_dir=tmp_path / "bench", seed=7)
    assert first == [tmp_path / "bench" / "sst2" / "smollm2-135m.json"]
    assert other == [tmp_path / "bench" / "sst2" / "smollm2-135m.seed7.json"]
    assert [read_json(path)["seed"] for path in first + other] == [0, 7]
    assert drawn[0] != drawn[1]  # the seed draws the data sample too


def seed_record(seed: int, ours_only: int, ref_only: int, examples: int = 1000, speedup: float = 2.9) -> dict:
    """The keys of a bench record that the seeds table reads; the two paths' accuracies follow from
    the discordant counts (both right on half of the examples)."""
    both = examples // 2
    return {"dataset": "finefoods", "model": "smollm2-135m", "seed": seed, "train_speedup": speedup,
            "val_accuracy_ours": (both + ours_only) / examples, "val_accuracy_reference": (both + ref_only) / examples,
            "val_mcnemar": {"examples": examples, "ours_only_correct": ours_only, "reference_only_correct": ref_only,
                            "p_value": 0.5}}


@pytest.mark.parametrize("folder", ["cpu-amd-epyc-2t-accuracy", "cpu-intel-r-xeon-r-processor-2t-accuracy",
                                    "cpu-intel-r-xeon-r-processor-2t-accuracy-interleaved-keep-freed"])
def test_the_published_accuracy_bench_renders_every_table_and_figure(folder):
    records = tables.load_results(PARAMS_DIR.parent / "reports" / "benchmarks" / folder)
    for r in records:  # step times recorded since 2026-11-30: both paths' steps pair, around the speed-up
        interval = r.get("train_speedup_interval")
        assert (interval is not None) == ("step_seconds" in r["train"]["ours"])
        assert interval is None or interval["low"] <= r["train_speedup"] <= interval["high"]
    assert sorted(r["seed"] for r in records if r["model"] == "gemma3-270m") == [7, 42, 1337]
    assert {("finefoods", "gemma3-270m", seed) for seed in (7, 42, 1337)} <= set(tables.summary_table(records).index)
    assert tables.seeds_table(records).loc[("finefoods", "gemma3-270m"), "examples"] == 3000
    assert set(tables.int8_table(records)["mode"]) == {"weight-only", "dynamic"}
    for figure in (tables.throughput_figure, tables.mfu_figure, tables.batch_size_figure, tables.scaling_figure):
        assert figure(records).axes  # no scaling measured there: the figure says so


def test_seeds_table_pools_the_discordant_answers_of_every_seed():
    one = tables.seeds_table([seed_record(1337, 48, 65)])
    assert one.loc[("finefoods", "smollm2-135m"), "points ours - ref (pooled)"] == pytest.approx(-1.7)
    assert not one.loc[("finefoods", "smollm2-135m"), "accuracy equal"]  # 1.7 points apart
    pooled = tables.seeds_table([seed_record(1337, 48, 65), seed_record(42, 60, 50, speedup=3.1),
                                 seed_record(7, 55, 52, speedup=2.7)]).loc[("finefoods", "smollm2-135m")]
    assert (pooled["seeds"], pooled["examples"], pooled["ours only / ref only"]) == ("7 42 1337", 3000, "163 / 167")
    assert pooled["points ours - ref (pooled)"] == pytest.approx(-4 / 30)
    assert (pooled["points min"], pooled["points max"]) == (pytest.approx(-1.7), pytest.approx(1.0))
    assert pooled["McNemar p (pooled)"] == pytest.approx(mcnemar_exact_p(163, 167))
    assert pooled["accuracy equal"]
    assert (pooled["train speedup (min)"], pooled["train speedup (max)"]) == (2.7, 3.1)


def step_summary(seconds: list[float], tokens: list[int], warmup_steps: int = 1) -> dict:
    """The keys of a training summary that `speedup_interval` reads."""
    return {"step_seconds": seconds, "step_tokens": tokens, "warmup_steps": warmup_steps}


def test_speedup_interval_pairs_the_steps_and_leaves_the_warm_up_out():
    rng = np.random.default_rng(0)
    tokens = [int(t) for t in rng.integers(200, 900, 31)]
    ours = [60.0] + [t / 250 for t in tokens[1:]]  # a slow first step, then 250 tokens/s
    reference = [1.0] + [2.2 * t / 250 * f for t, f in zip(tokens[1:], rng.uniform(0.9, 1.1, 30))]
    interval = measure.speedup_interval(step_summary(ours, tokens), step_summary(reference, tokens))
    assert interval["steps"] == 30
    assert interval["speedup"] == pytest.approx(sum(reference[1:]) / sum(ours[1:]))
    assert interval["low"] < interval["speedup"] < interval["high"]
    assert 2.1 < interval["low"] and interval["high"] < 2.3  # steps 0.9-1.1 of 2.2x apart: a narrow interval
    assert 0.9 * 2.2 <= interval["step_ratio_min"] <= interval["step_ratio_median"] <= interval["step_ratio_max"]
    steadier = measure.speedup_interval(step_summary(ours, tokens), step_summary([1.0] + [2.2 * t / 250 for t in
                                                                                         tokens[1:]], tokens))
    assert steadier["high"] - steadier["low"] < 1e-9 < interval["high"] - interval["low"]
    other_batches = tokens[::-1]
    assert measure.speedup_interval(step_summary(ours, tokens), step_summary(reference, other_batches)) is None
    assert measure.speedup_interval(step_summary(ours, tokens), {"warmup_steps": 1}) is None  # files before it


def test_accuracy_on_the_test_split_scores_1000_reviews_and_times_only_the_infer_examples():
    cfg = bench_config.load_bench(PARAMS_DIR / "bench-accuracy.yaml")
    data = cfg.dataset("finefoods")
    assert (data.max_length, data.accuracy_split, data.validation_examples) == (256, "test", 1000)
    splits = bench.bench_splits(data, cfg)
    assert len(measure.scored(splits, data)) == 1000  # the validation split holds at most 800 of these reviews
    assert measure.timed_texts(splits, data) == splits.test["text"].head(data.infer_examples).tolist()
    assert len(splits.train) == data.train_examples
    with pytest.raises(config.ConfigError, match="accuracy_split"):
        dataclasses.replace(data, accuracy_split="train")


def test_bench_runs_end_to_end_and_writes_every_key(tiny, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("SENTICOMPARE_REPORTS", str(tmp_path / "reports"))
    written = bench.run_bench(tiny_bench(tmp_path), out_dir=tmp_path / "bench", publish=True)
    assert len(written) == 2 and written[0] == tmp_path / "bench" / "sst2" / "smollm2-135m.json"
    assert written[1].parent.parent.parent == tmp_path / "reports" / "benchmarks"
    record = read_json(written[0])
    assert HEADLINE_KEYS <= set(record)
    assert record["train_tokens_per_sec_ours"] > 0 and record["train_tokens_per_sec_reference"] > 0
    assert record["train"]["reference"]["padding_share"] > 0.3  # short sentences padded to 32
    assert record["train"]["ours"]["train_tokens"] == record["train"]["reference"]["train_tokens"]
    steps = record["train"]["ours"]["steps"]  # the two trainings took turns: a turn to each step's end, one more
    assert record["train_order"] == "interleaved" and record["train_turns"] == 2 * (steps + 1)
    interval = record["train_speedup_interval"]  # both paths read the same batches: their steps pair
    assert interval["speedup"] == pytest.approx(record["train_speedup"])
    assert interval["steps"] == steps - record["train"]["ours"]["warmup_steps"] and interval["low"] <= interval["high"]
    assert tables.speedup_interval_text(record) in tables.summary_line(record)
    assert record["train"]["ours"]["peak_memory"]["paths"] == ["ours", "reference"]
    assert set(record["infer"]["by_batch_size"]["ours"]) == {"1", "4"}
    assert record["infer_agreement"] == 1.0  # one merged model, two paths: the same labels
    assert {(phase, path, found["steps"]) for phase, paths in record["profile"].items()
            for path, found in paths.items()} == {(phase, path, 2) for phase in ("train", "infer")
                                                  for path in ("ours", "reference")}
    assert 0 < record["qlora_memory_mb"] < record["lora_memory_mb"]
    assert [row["threads"] for row in record["threads_comparison"]] == [1, 2]
    assert [(r["max_length"], r["examples"]) for r in record["scaling"]] == [(16, 4), (16, 8), (32, 4), (32, 8)]
    assert record["flops"]["linear_weights"] == hand_count()
    assert record["environment"]["torch_threads"] >= 1 and "loadavg_1m" in record["load"]["start"]
    assert set(record["targets"]) >= {"train_speedup_2x", "train_mfu_50", "infer_speedup_2x", "infer_mfu_50",
                                      "val_accuracy_equal"}
    paired = record["val_mcnemar"]  # the two paths' answers on the same validation examples
    assert paired["examples"] == record["data"]["validation_examples"] and 0 < paired["p_value"] <= 1
    assert (paired["ours_only_correct"] - paired["reference_only_correct"]) / paired["examples"] == pytest.approx(
        record["val_accuracy_ours"] - record["val_accuracy_reference"])
    assert record["targets"]["val_accuracy_equal"] is False  # too few examples to call them equal
    records = tables.load_results(tmp_path / "bench")
    assert list(tables.summary_table(records).index) == [("sst2", "smollm2-135m")]  # one seed: no seed column
    assert set(tables.inference_table(records)["batch_size"]) == {1, 4}
    assert len(tables.scaling_table(records)) == 4 and len(tables.threads_table(records)) == 2
    assert len(tables.profile_table(records)) == 4 and "error" not in tables.profile_table(records)
    assert list(tables.training_table(records)["path"]) == ["ours (LoRA)", "reference (LoRA)", "ours (QLoRA)"]
    assert tables.training_table(records)["cross-core ms before / after"].iloc[0].count(" / ") == 1
    assert list(tables.training_table(records)["trainings"]) == ["interleaved", "interleaved", "alone"]
    int8 = record["int8"]["weight-only"]  # the trained model against an int8 copy of itself
    assert int8["examples"] == paired["examples"] and int8["accuracy_fp32"] == record["val_accuracy_ours"]
    assert (int8["int8_only_correct"] - int8["fp32_only_correct"]) / int8["examples"] == pytest.approx(
        int8["accuracy"] - int8["accuracy_fp32"])
    assert int8["weights_mb"] < int8["weights_mb_fp32"] and int8["samples_per_sec"] > 0
    assert list(tables.int8_table(records)["mode"]) == ["weight-only"]
    assert tables.int8_table(records)["cross-core ms"].iloc[0] > 0  # the host's state beside the speedup
    for figure in (tables.throughput_figure, tables.mfu_figure, tables.batch_size_figure,
                   tables.scaling_figure):
        assert figure(records).axes
