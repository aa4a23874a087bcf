"""What each stage notebook computes and writes. The notebooks call these and show the results;
the runner and a reviewer's papermill rerun go through the same code."""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import calibration, data, evaluation, flops, metrics, models, prompts, significance, timing
from helpers.inference import predict_proba
from helpers.io import atomic_write_text
from helpers.run import Run


def prepare_data(run: Run) -> tuple[data.DatasetSplits, dict[str, np.ndarray]]:
    """01_data: load, check, split and save the rows every later stage uses; returns the
    splits and each text's length in the model's tokens."""
    splits = data.load_splits(run.dataset, run.preset, run.seed, run.data_dir)
    data.save_splits(splits, run.data_folder)
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
    lengths = token_lengths(splits, tokenizer)
    run.write_stage("01_data", {
        "dataset": splits.dataset,
        "source": splits.source,
        "fingerprint": splits.fingerprint,
        "labels": splits.labels,
        "rows": {name: len(splits.split(name)) for name in data.SPLITS},
        "class_counts": splits.summary().drop(columns="rows").to_dict(orient="index"),
        "truncated_share": {name: float((lengths[name] > run.preset.max_length).mean()) for name in data.SPLITS},
        "max_length": run.preset.max_length,
        "findings": [dataclasses.asdict(f) for f in splits.findings],
    })
    return splits, lengths


def token_lengths(splits: data.DatasetSplits, tokenizer) -> dict[str, np.ndarray]:
    """Untruncated length of every text in the model's own tokens, per split."""
    return {name: np.array([len(ids) for ids in tokenizer(splits.split(name)["text"].tolist())["input_ids"]])
            for name in data.SPLITS}


def train_model(run: Run) -> dict:
    """02_train: LoRA/QLoRA fine-tune on the saved train split, save the adapter (safetensors)."""
    from helpers import training  # the Trainer import alone takes ~10 s; only this stage needs it

    splits = data.read_splits(run.data_folder)
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
    cfg = run.preset.train
    model = models.add_lora(models.load_base(run.model, splits.labels, run.precision, cfg.quantization, tokenizer),
                            run.model, cfg)
    trainable, total = models.count_parameters(model)
    with tempfile.TemporaryDirectory(prefix="trainer-") as scratch:
        result = training.train(model, tokenizer, splits.train, cfg, run.precision,
                                run.preset.max_length, run.seed, Path(scratch))
    model.save_pretrained(run.adapter_dir, safe_serialization=True)
    record = {
        **dataclasses.asdict(result),
        "train_tokens_per_sec": result.train_tokens / result.training_time_s,
        "train_samples_per_sec": result.train_samples * result.epochs / result.training_time_s,
        "trainable_params": trainable,
        "total_params": total,
        "quantization": cfg.quantization,
        "load": timing.machine_load(),
        "peak_rss_mb": timing.peak_rss_mb(),
    }
    run.write_stage("02_train", record)
    return record


def base_model_baseline(run: Run, shots: list[int]) -> dict[str, dict]:
    """A causal LM before fine-tuning, asked each test text zero-/k-shot: the next-token
    probability of each label's answer word, normalized over the labels (one forward pass per
    example). That is exactly the untrained classifier with its verbalizer head."""
    if run.model.family != "decoder" or not shots:
        return {}
    splits = data.read_splits(run.data_folder)
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
    fmt = prompts.prompt_format(run.dataset, tokenizer)
    model = models.load_base(run.model, splits.labels, run.precision, run.preset.train.quantization, tokenizer,
                             verbalizer_ids=prompts.verbalizer_ids(tokenizer, fmt)).eval()
    y_true, label_ids = splits.test["label"].to_numpy(), list(range(len(splits.labels)))
    block = {}
    for k in shots:
        examples = prompts.pick_shots(splits.train, k, run.seed) if k else None
        texts = prompts.build_prompts(splits.test["text"].tolist(), tokenizer, fmt, run.preset.max_length, examples)
        lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        probs = predict_proba(model, tokenizer, texts, run.preset.train.eval_batch_size, max(lengths), run.device)
        block[f"{k}-shot"] = {**metrics.classification_metrics(y_true, probs.argmax(axis=1), label_ids),
                              **evaluation.calibration_metrics(y_true, probs, run.preset.evaluation.ece_bins),
                              "shots": k, "prompt_tokens_mean": float(np.mean(lengths))}
    return block


def evaluate_model(run: Run) -> tuple[dict, pd.DataFrame]:
    """03_evaluate: predict validation, calibration and test with probabilities; the decision is the
    argmax after the recalibration fitted on validation (the network's own argmax kept as
    `raw_argmax`); quality metrics by sklearn, calibration, selective prediction, conformal sets and
    costs (helpers/evaluation.py), and, for causal LMs, the base model zero-/k-shot beside it."""
    splits = data.read_splits(run.data_folder)
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
    model = models.load_finetuned(run.model, run.adapter_dir, splits.labels, run.precision,
                                  run.preset.train.quantization)

    def predict(df: pd.DataFrame) -> np.ndarray:
        return predict_proba(model, tokenizer, df["text"].tolist(), run.preset.train.eval_batch_size,
                             run.preset.max_length, run.device)

    test, validation, held_out = splits.test, splits.validation, splits.calibration
    if held_out.empty:
        raise data.DataError(f"{run.data_folder} has no calibration split (written before it existed); "
                             f"rerun notebooks/01_data for this run_dir")
    y_val, p_val = validation["label"].to_numpy(), predict(validation)
    y_cal, p_cal = held_out["label"].to_numpy(), predict(held_out)
    y_true, raw = test["label"].to_numpy(), predict(test)
    fitted = calibration.fit_recalibration(y_val, p_val, run.preset.evaluation.recalibration)
    probs = calibration.recalibrate(raw, fitted)
    y_pred = probs.argmax(axis=1)
    label_ids = list(range(len(splits.labels)))
    groups = test["group"].astype(str).to_numpy() if "group" in test else None
    predictions = pd.DataFrame({"example": np.arange(len(test)), "label": y_true, "prediction": y_pred,
                                "confidence": probs.max(axis=1)})
    if groups is not None:
        predictions["group"] = groups
    for prefix, values in (("prob", probs), ("raw_prob", raw)):
        for i, name in enumerate(splits.labels):
            predictions[f"{prefix}_{name}"] = values[:, i]
    majority = metrics.majority_baseline(splits.train["label"].to_numpy(), y_true, label_ids)
    record = {
        **metrics.classification_metrics(y_true, y_pred, label_ids),
        **significance.quality_cis(y_true, y_pred, label_ids, seed=run.seed),
        "raw_argmax": metrics.classification_metrics(y_true, raw.argmax(axis=1), label_ids),
        "validation_accuracy": float((p_val.argmax(axis=1) == y_val).mean()),  # the network's argmax
        **evaluation.uncertainty_report(y_val, p_val, y_cal, p_cal, y_true, raw, run.preset.evaluation,
                                        groups_test=groups, label_ids=label_ids, recalibration=fitted),
        "baseline_majority": majority,
        "vs_majority": significance.versus_majority(y_true, y_pred, majority["majority_label"]),
        "confusion_matrix": metrics.confusion(y_true, y_pred, label_ids),
        "labels": splits.labels,
        "test_examples": len(test),
        "fingerprint": splits.fingerprint,
    }
    del model
    baseline = base_model_baseline(run, run.preset.evaluation.baseline_shots)
    if baseline:
        record["baseline"] = baseline
    atomic_write_text(run.run_dir / "predictions.csv", predictions.to_csv(index=False))
    run.write_stage("03_evaluate", record)
    return record, predictions


def measure_speed(run: Run) -> dict:
    """04_speed: single-example latency and batched throughput of the fine-tuned model."""
    splits = data.read_splits(run.data_folder)
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
    model = models.load_finetuned(run.model, run.adapter_dir, splits.labels, run.precision,
                                  run.preset.train.quantization)
    record = timing.measure_inference(model, tokenizer, splits.test["text"].tolist(), run.preset.speed,
                                      run.preset.max_length, run.device)
    record["matmul_peak"] = dataclasses.asdict(flops.matmul_peak(run.device))  # how fast this host ran today
    run.write_stage("04_speed", record)
    return record
