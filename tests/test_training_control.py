"""Training you can watch, stop early and resume: validation during training, the best checkpoint,
early stopping, a killed training resumed to the same result, TensorBoard and MLflow."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers import config
from helpers.core.device import precision_for
from helpers.report import plots
from helpers.train import models, trainer
from helpers.train.sampler import LeastPaddingSampler

CPU = precision_for("cpu")
LABELS = ["negative", "positive"]
TEXTS = ["a wonderful, moving film", "dull and far too long", "I loved every minute", "a waste of time",
         "sharp, funny and warm", "I walked out halfway", "the best thing this year", "flat and lifeless"]
TESTS_DIR = Path(__file__).resolve().parent


def frame(repeat: int = 2) -> pd.DataFrame:
    return pd.DataFrame({"text": TEXTS * repeat, "label": [1, 0] * 4 * repeat})


def control(**changes) -> config.TrainConfig:
    return dataclasses.replace(config.load_preset("tiny").train, **{"batch_size": 4, "learning_rate": 5e-3, **changes})


def fresh_model() -> tuple[torch.nn.Module, object]:
    spec = config.get_model("minilm-l6")
    tokenizer = models.load_tokenizer(spec)
    torch.manual_seed(0)
    model = models.add_lora(models.load_base(spec, LABELS, CPU, tokenizer=tokenizer), spec, control())
    return model, tokenizer


def run_training(output_dir: Path, cfg: config.TrainConfig) -> trainer.TrainResult:
    """The same small training every time (minilm-l6, 16 texts, seed 0, one thread)."""
    torch.set_num_threads(1)
    model, tokenizer = fresh_model()
    result = trainer.train(model, tokenizer, frame(), cfg, CPU, 32, 0, output_dir, frame(1))
    result.adapter = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    return result


def test_validation_during_training_keeps_the_best_step(tmp_path):
    cfg = control(max_steps=6, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
                  load_best_model_at_end=True)
    result = run_training(tmp_path, cfg)
    evaluated = [e for e in result.log_history if "eval_f1" in e]
    assert [e["step"] for e in evaluated] == [2, 4, 6]
    assert all({"eval_loss", "eval_accuracy", "eval_f1"} <= set(e) for e in evaluated)
    best = max(evaluated, key=lambda e: (e["eval_f1"], -e["step"]))
    assert result.best_step == best["step"] and result.best_metric == pytest.approx(best["eval_f1"])
    fig = plots.training_curves(result.log_history, result.best_step)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["Training curves", "Validation during training"]


def test_eval_steps_as_a_fraction_evaluates_at_that_share_of_training(tmp_path):
    """0.25 of 8 steps: validation at steps 2, 4, 6 and 8, whatever the data set's size."""
    cfg = control(max_steps=8, eval_strategy="steps", eval_steps=0.25, save_strategy="steps", save_steps=0.25,
                  load_best_model_at_end=True)
    result = run_training(tmp_path, cfg)
    assert [e["step"] for e in result.log_history if "eval_f1" in e] == [2, 4, 6, 8]
    assert result.best_step in {2, 4, 6, 8}


def test_early_stopping_ends_training_when_validation_stops_improving(tmp_path):
    cfg = control(max_steps=20, learning_rate=1e-12, eval_strategy="steps", eval_steps=2, save_strategy="steps",
                  save_steps=2, load_best_model_at_end=True, early_stopping_patience=1, metric_for_best_model="loss")
    result = run_training(tmp_path, cfg)
    assert result.steps == 4  # step 2 is best, step 4 does not improve on it: patience 1 stops there


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    result = run_training(tmp_path, control(epochs=1, gradient_accumulation_steps=2, max_grad_norm=0.5))
    assert result.steps == 2  # 16 texts, batches of 4, two batches per optimizer step


def varied(repeat: int = 2) -> pd.DataFrame:
    """The texts said once to four times (5 to 20 tokens), so that micro-batches cut where they pad
    least differ in size."""
    texts = [" ".join([text] * (1 + i % 4)) for i, text in enumerate(TEXTS)]
    return pd.DataFrame({"text": texts * repeat, "label": [1, 0] * 4 * repeat})


def trained_without_dropout(output_dir: Path, data: pd.DataFrame | None = None,
                            **changes) -> tuple[trainer.TrainResult, dict[str, torch.Tensor]]:
    """Random batches of 4 over the 16 texts (or `data`), every dropout off so that a step's gradient
    is a function of its examples only; gradients clipped hard, so a step that added up its batches'
    mean losses instead of averaging them would log twice the gradient norm."""
    torch.set_num_threads(1)
    model, tokenizer = fresh_model()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    cfg = control(**{"sampling": "random", "epochs": 1, "max_grad_norm": 0.05, **changes})
    result = trainer.train(model, tokenizer, frame() if data is None else data, cfg, CPU, 32, 0, output_dir)
    return result, {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def moved(adapter: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> float:
    """The distance between two adapters' weights, all tensors as one vector."""
    return float(torch.cat([(adapter[name] - start[name]).flatten() for name in sorted(adapter)]).norm())


@pytest.mark.parametrize("split", [{"micro_batch_size": 2}, {"micro_batch_size": 1},
                                   {"micro_batch_size": 2, "micro_batch_split": "least-padding"},
                                   {"batch_size": 2, "gradient_accumulation_steps": 2}])
def test_a_batch_run_in_parts_takes_the_whole_batchs_step(tmp_path, split):
    whole, whole_adapter = trained_without_dropout(tmp_path / "whole")
    parts, parts_adapter = trained_without_dropout(tmp_path / "parts", **split)
    start = {name: p.detach() for name, p in fresh_model()[0].named_parameters() if p.requires_grad}
    assert parts.steps == whole.steps == 4
    assert sum(parts.step_tokens) == sum(whole.step_tokens)
    logged = [{k: e[k] for k in ("loss", "grad_norm")} for e in whole.log_history if "grad_norm" in e]
    # rel 5e-4: float noise through two Adam steps is below 1e-4 on an AMD EPYC (AVX2) and 1.2-1.8e-4 on
    # an Intel Xeon (AVX-512 kernels); a sum of means would double grad_norm.
    assert [{k: e[k] for k in ("loss", "grad_norm")} for e in parts.log_history if "grad_norm" in e] == [
        {k: pytest.approx(v, rel=5e-4) for k, v in e.items()} for e in logged]
    # Float noise, Adam-amplified: under 1 % of the training's movement on the AMD EPYC, 2.4-2.7 % on the
    # Intel Xeon (least-padding 0.14 %); other batches move it by 142 % there.
    assert moved(parts_adapter, whole_adapter) < 0.05 * moved(whole_adapter, start)
    _, other_batches = trained_without_dropout(tmp_path / "grouped", sampling="length-grouped")
    assert moved(other_batches, whole_adapter) > 0.1 * moved(whole_adapter, start)


DDP_RANK = """
import os, sys
import torch
sys.path.insert(0, {tests!r})
import test_training_control as t
result, adapter = t.trained_without_dropout(t.Path({out!r}) / "trainer", t.varied(), batch_size=8, micro_batch_size=2,
                                            micro_batch_split="least-padding", distributed="ddp", processes=2)
torch.save({{"log": result.log_history, "adapter": adapter}}, t.Path({out!r}) / f"rank{{os.environ['RANK']}}.pt")
"""


@pytest.mark.slow
def test_least_padding_on_two_ddp_processes_takes_one_process_whole_batchs_step(tmp_path):
    """Under DDP each rank weights its micro-batches by their share of all ranks' examples: DDP
    averages the ranks' gradients, and the step is still the mean over its 8 examples."""
    lengths = [len(ids) for ids in fresh_model()[1](varied()["text"].tolist())["input_ids"]]
    cut = [len(batch) for rank in (0, 1) for batch in LeastPaddingSampler(lengths, 8, dp_size=2, grad_accum=2,
                                                                            seed=0, rank=rank)]
    assert len(set(cut)) > 1  # micro-batches of unequal sizes, which an unweighted mean would get wrong
    whole, whole_adapter = trained_without_dropout(tmp_path / "whole", varied(), batch_size=8)
    script = tmp_path / "rank.py"
    script.write_text(DDP_RANK.format(tests=str(TESTS_DIR), out=str(tmp_path)))
    ranks = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                            str(script)], cwd=TESTS_DIR.parent, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert ranks.returncode == 0, (ranks.stdout + ranks.stderr)[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    start = {name: p.detach() for name, p in fresh_model()[0].named_parameters() if p.requires_grad}
    logged = [{k: e[k] for k in ("loss", "grad_norm")} for e in whole.log_history if "grad_norm" in e]
    assert len(logged) == 2
    assert [{k: e[k] for k in ("loss", "grad_norm")} for e in rank0["log"] if "grad_norm" in e] == [
        {k: pytest.approx(v, rel=1e-4) for k, v in e.items()} for e in logged]
    for name, weight in rank0["adapter"].items():
        assert torch.equal(rank1["adapter"][name], weight), name  # DDP keeps the ranks' weights in step
    assert moved(rank0["adapter"], whole_adapter) < 0.01 * moved(whole_adapter, start)


KILLED_AT = 3


@pytest.mark.parametrize("split", [{}, {"micro_batch_size": 2, "micro_batch_split": "least-padding"}])
def test_a_killed_training_resumes_from_its_last_checkpoint_to_the_same_adapter(tmp_path, split):
    cfg = control(max_steps=6, save_strategy="steps", save_steps=2, **split)
    uninterrupted = run_training(tmp_path / "whole", cfg)
    script = (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(TESTS_DIR)!r})\n"
        "import test_training_control as t\n"
        "from helpers.train import trainer\n"
        "original = trainer.StepClock.on_step_end\n"
        "def dying(self, args, state, control, **kwargs):\n"
        "    original(self, args, state, control, **kwargs)\n"
        f"    if state.global_step == {KILLED_AT}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)  # as a power cut would\n"
        "trainer.StepClock.on_step_end = dying\n"
        f"t.run_training(t.Path({str(tmp_path / 'killed')!r}), t.control(max_steps=6, save_strategy='steps', "
        f"save_steps=2, **{split!r}))\n")
    killed = subprocess.run([sys.executable, "-c", script], cwd=TESTS_DIR.parent, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert trainer.last_checkpoint(tmp_path / "killed").name == "checkpoint-2"
    resumed = run_training(tmp_path / "killed", cfg)
    assert resumed.resumed_from_step == 2 and resumed.steps == 6
    assert resumed.adapter.keys() == uninterrupted.adapter.keys()
    for name, weight in uninterrupted.adapter.items():
        assert torch.equal(resumed.adapter[name], weight), name
    final_loss = [e["loss"] for e in uninterrupted.log_history if "loss" in e][-1]
    assert [e["loss"] for e in resumed.log_history if "loss" in e][-1] == final_loss


def test_tensorboard_writes_event_files_where_the_run_says(tmp_path):
    pytest.importorskip("tensorboard")
    torch.set_num_threads(1)
    model, tokenizer = fresh_model()
    cfg = control(max_steps=2, report_to=["tensorboard"])
    trainer.train(model, tokenizer, frame(), cfg, CPU, 32, 0, tmp_path / "out", None, tmp_path / "tensorboard")
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("changes, message", [
    ({"eval_strategy": "steps"}, r"eval_strategy 'steps' needs eval_steps"),
    ({"load_best_model_at_end": True}, r"load_best_model_at_end needs eval_strategy and save_strategy set alike"),
    ({"eval_strategy": "steps", "eval_steps": 3, "save_strategy": "steps", "save_steps": 4,
      "load_best_model_at_end": True}, r"save_steps \(4\) to be a multiple of eval_steps \(3\)"),
    ({"eval_strategy": "steps", "eval_steps": 1.5},
     r"eval_steps must be null or a positive integer or a fraction in \(0, 1\) of the training's steps, got 1.5"),
    ({"save_strategy": "steps", "save_steps": 0}, r"save_steps must be null or a positive integer or a fraction"),
    ({"early_stopping_patience": 2}, r"early_stopping_patience needs load_best_model_at_end: true"),
    ({"report_to": ["wandb"]}, r"report_to must be a list of trackers from \['mlflow', 'tensorboard'\]"),
    ({"metric_for_best_model": "auc"}, r"metric_for_best_model must be one of \['accuracy', 'f1', 'loss'\]"),
    ({"sampling": "sorted"}, r"sampling must be one of \['length-grouped', 'random'\]"),
    ({"micro_batch_size": 3}, r"micro_batch_size 3 must divide each process's batch \(batch_size 16 / processes 1\)"),
    ({"micro_batch_split": "least-padding"}, r"least-padding needs micro_batch_size below batch_size \(16\)"),
    ({"micro_batch_split": "least-padding", "micro_batch_size": 4, "sampling": "length-grouped"},
     r"least-padding cuts random batches; with sampling length-grouped set micro_batch_split: even"),
    ({"micro_batch_split": "uneven"}, r"micro_batch_split must be one of \['even', 'least-padding'\]"),
])
def test_inconsistent_training_control_is_refused_when_the_config_is_built(changes, message):
    with pytest.raises(config.ConfigError, match=message):
        dataclasses.replace(config.TrainConfig(), **changes)


def test_a_study_tracking_reaches_every_run_as_report_to(tmp_path):
    import yaml

    path = tmp_path / "tracked.yaml"
    path.write_text(yaml.safe_dump({"name": "tracked", "models": ["minilm-l6"], "datasets": ["finefoods"],
                                    "preset": "quick", "seeds": [1], "tracking": ["tensorboard", "mlflow"],
                                    "overrides": {"train": {"max_steps": 2}}}))
    study = config.load_study(path)
    assert config.run_overrides(study) == {"train": {"max_steps": 2, "report_to": ["tensorboard", "mlflow"]}}
    path.write_text(path.read_text().replace("mlflow", "wandb"))
    with pytest.raises(config.ConfigError, match=r"tracking must be a list of trackers"):
        config.load_study(path)


def test_quantization_the_device_cannot_run_is_replaced_with_a_warning(caplog):
    spec = config.get_model("minilm-l6")
    assert models.usable_quantization(spec, "4bit", "mps") == "none"
    assert "not available on Apple MPS; loading it in full precision" in caplog.text
    assert models.usable_quantization(spec, "8bit", "mps") == "none"
    assert models.usable_quantization(spec, "4bit", "cpu") == "4bit"
    assert models.usable_quantization(spec, "8bit", "cpu") == "8bit"


def test_training_reports_its_steps_for_the_runner(tmp_path, monkeypatch):
    import json

    from helpers.core import progress

    monkeypatch.setenv(progress.ENV, str(tmp_path / "progress.json"))
    run_training(tmp_path / "out", control(max_steps=3))
    record = json.loads((tmp_path / "progress.json").read_text())
    assert (record["task"], record["done"], record["total"]) == ("train", 3, 3) and "loss" in record
