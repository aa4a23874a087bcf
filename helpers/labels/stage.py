"""02_train and 03_evaluate of a multi-label or regression dataset (its entry's `label_type`).

Training is the classification path's (helpers/train/trainer.py `fit`) with another head loss:
sigmoid + BCE on multi-hot rows, or MSE on targets standardized with the train split's mean and
deviation; the head starts as the linear probe of the frozen features (helpers/labels/probe.py).
Evaluation predicts validation, calibration and test; multi-label decisions use thresholds fitted on
validation, one for every label or one per label (evaluation.label_thresholds; the other rule and
0.5 are reported beside);
regression predictions are read back in the targets' units; conformal label sets or intervals
come from the calibration split.
"""
from __future__ import annotations

import datasets
import numpy as np
import pandas as pd

from helpers.core import device
from helpers.core.io import atomic_write_text
from helpers.data.context import model_texts, token_values
from helpers.data.records import DataError, DatasetSplits
from helpers.data.splits import read_splits
from helpers.evaluate import prompts
from helpers.evaluate.inference import predict_proba
from helpers.labels import conformal, probe, targets
from helpers.labels import metrics as label_metrics
from helpers.pipeline.run import Run
from helpers.train import models, trainer

# The metrics each type's bootstrap CIs are about (its headline keys: helpers/metrics.py).
MAIN = {"multi": ("micro_f1", "macro_f1"), "regression": ("mae", "r2")}


def _dataset(df: pd.DataFrame, tokenizer, max_length: int, label_type: str, n_labels: int,
             scaler: targets.Scaler | None, context_mode: str) -> datasets.Dataset:
    encoded = tokenizer(model_texts(df, context_mode), truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict(
        {**encoded, "labels": targets.encode(df["label"], label_type, n_labels, scaler).tolist()})


def scaler_for(splits: DatasetSplits) -> targets.Scaler | None:
    """The train split's target scaler (regression), recomputed from the saved rows by every stage."""
    if splits.label_type != "regression":
        return None
    return targets.Scaler.fit(targets.target_matrix(splits.train["label"]))


def validation_metrics(prediction) -> dict[str, float]:
    """Multi-label validation during training at threshold 0.5: `f1` is micro-F1, `accuracy` the
    subset accuracy (the preset's metric_for_best_model keys)."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    decided = (np.asarray(logits) > 0).astype(int)
    scores = label_metrics.multilabel_metrics(np.asarray(prediction.label_ids), decided)
    return {"f1": scores["micro_f1"], "accuracy": scores["subset_accuracy"], "macro_f1": scores["macro_f1"]}


def train(run: Run, splits: DatasetSplits, validation: pd.DataFrame | None, output_dir):
    """The model with its new head, LoRA (or every weight) trained; returns (model, TrainResult).
    A regression head keeps the best checkpoint by validation loss (MSE on standardized targets)."""
    cfg = run.preset.train
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
    model = models.adapt(models.load_base(run.model, splits.labels, run.precision, cfg.quantization, tokenizer,
                                          label_type=splits.label_type,
                                          context_values=token_values(splits, run.preset.context_mode)),
                         run.model, cfg)
    scaler = scaler_for(splits)
    texts = model_texts(splits.train, run.preset.context_mode)
    probe_fit = probe.fit_head(model, probe.features(model, tokenizer, texts, run.preset.max_length,
                                                     cfg.eval_batch_size, run.device),
                               targets.encode(splits.train["label"], splits.label_type, len(splits.labels), scaler),
                               splits.label_type, run.seed)
    encode = lambda df: _dataset(df, tokenizer, run.preset.max_length, splits.label_type,  # noqa: E731
                                 len(splits.labels), scaler, run.preset.context_mode)
    collator = trainer.DataCollatorWithPadding(tokenizer, pad_to_multiple_of=device.pad_multiple(run.device))
    result = trainer.fit(model, encode(splits.train), encode(validation) if validation is not None else None,
                         collator, cfg, run.precision, run.seed, output_dir, run.tensorboard_dir,
                         validation_metrics if splits.label_type == "multi" else None)
    result.log_history.insert(0, {"step": 0, **probe_fit})  # the head's linear-probe start (helpers/labels/probe.py)
    return model, result


def fit_thresholds(y: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Both decision rules' thresholds per label, fitted on validation: `global` (the micro-F1-best
    single threshold for every label) and `per_label` (each label's F1-best; the global one for a
    label without a positive validation text). The preset's evaluation.label_thresholds picks one."""
    global_t = label_metrics.fit_global_threshold(y, scores)
    return {"global": np.full(y.shape[1], global_t),
            "per_label": label_metrics.fit_label_thresholds(y, scores, global_t)}


def _multi(run: Run, splits: DatasetSplits, outputs: dict[str, np.ndarray]) -> tuple[dict, pd.DataFrame]:
    n = len(splits.labels)
    y = {name: targets.multi_hot(splits.split(name)["label"], n).astype(int) for name in outputs}
    evaluation = run.preset.evaluation
    fitted = fit_thresholds(y["validation"], outputs["validation"])
    thresholds = fitted[evaluation.label_thresholds]
    scores, truth = outputs["test"], y["test"]
    decided = (scores >= thresholds).astype(int)
    per_label = label_metrics.per_label(truth, scores, decided, splits.labels, evaluation.ece_bins)
    sets, q_hat = conformal.label_sets(y["calibration"], outputs["calibration"], scores, evaluation.conformal_alpha)
    record = {
        **label_metrics.multilabel_metrics(truth, decided),
        **label_metrics.bootstrap_cis(truth, decided, MAIN["multi"], seed=run.seed),
        **label_metrics.ranking_summary(per_label),
        **conformal.label_set_report(truth, sets, q_hat, evaluation.conformal_alpha),
        "per_label": per_label,
        "label_thresholds": evaluation.label_thresholds,
        "thresholds": dict(zip(splits.labels, thresholds.tolist(), strict=True)),  # the ones decided with
        "global_threshold": float(fitted["global"][0]),
        "at_global_threshold": label_metrics.multilabel_metrics(truth, (scores >= fitted["global"]).astype(int)),
        "at_per_label_thresholds": label_metrics.multilabel_metrics(truth,
                                                                    (scores >= fitted["per_label"]).astype(int)),
        "at_threshold_0.5": label_metrics.multilabel_metrics(truth, (scores >= 0.5).astype(int)),
        "baselines": label_metrics.prior_baselines(targets.multi_hot(splits.train["label"], n), y["validation"], truth),
        "ece_bins": evaluation.ece_bins,
    }
    predictions = pd.DataFrame({"example": np.arange(len(truth)), "labels": targets.joined_cells(truth),
                                "predicted": targets.joined_cells(decided), "label_set": targets.joined_cells(sets)})
    for j, name in enumerate(splits.labels):
        predictions[f"score_{name}"] = scores[:, j]
    return record, predictions


def _regression(run: Run, splits: DatasetSplits, outputs: dict[str, np.ndarray]) -> tuple[dict, pd.DataFrame]:
    scaler = scaler_for(splits)
    y = {name: targets.target_matrix(splits.split(name)["label"]) for name in outputs}
    predicted = {name: scaler.inverse(values) for name, values in outputs.items()}
    alpha = run.preset.evaluation.conformal_alpha
    lower, upper, q_hat = conformal.intervals(y["calibration"], predicted["calibration"], predicted["test"], alpha)
    truth, guess = y["test"], predicted["test"]
    train_mean = np.tile(scaler.mean, (len(truth), 1))
    record = {
        **label_metrics.regression_metrics(truth, guess, splits.labels),
        **label_metrics.bootstrap_cis(truth, guess, MAIN["regression"], seed=run.seed),
        **conformal.interval_report(truth, lower, upper, splits.labels, alpha),
        "interval_q_hat": q_hat.tolist(),
        "validation": {k: v for k, v in label_metrics.regression_metrics(
            y["validation"], predicted["validation"], splits.labels).items() if k != "per_target"},
        "baselines": {"train_mean": {k: v for k, v in label_metrics.regression_metrics(
            truth, train_mean, splits.labels).items() if k != "per_target"}},
        "target_mean": scaler.mean.tolist(), "target_std": scaler.std.tolist(),
    }
    predictions = pd.DataFrame({"example": np.arange(len(truth))})
    for j, name in enumerate(splits.labels):
        predictions[f"true_{name}"], predictions[f"pred_{name}"] = truth[:, j], guess[:, j]
        predictions[f"lower_{name}"], predictions[f"upper_{name}"] = lower[:, j], upper[:, j]
    return record, predictions


def per_group(predictions: pd.DataFrame, record: dict, label_type: str, labels: list[str]) -> dict:
    """The headline metrics on each group's test texts (e.g. each park), with the group's size."""
    rows = {}
    for group, part in predictions.groupby("group", sort=True):
        if label_type == "multi":
            scores = label_metrics.multilabel_metrics(targets.read_label_matrix(part["labels"], len(labels)),
                                                      targets.read_label_matrix(part["predicted"], len(labels)))
        else:
            scores = label_metrics.regression_metrics(part[[f"true_{t}" for t in labels]].to_numpy(),
                                                      part[[f"pred_{t}" for t in labels]].to_numpy(), labels)
            scores.pop("per_target")
        rows[str(group)] = {"n": len(part), **{k: scores[k] for k in MAIN[label_type]}}
    return rows


def base_model_scores(run: Run, splits: DatasetSplits) -> dict | None:
    """A multi-label dataset's base causal LM before fine-tuning, zero-shot: its next-token
    probabilities of the labels' answer words (the dataset's question and verbalizers; one forward
    pass per text) as each label's score, decided with thresholds fitted on validation by the same
    rule as the fine-tuned model's. None for encoders, regression (no answer words to score) and presets
    that do not score the base model (`evaluation.baseline_shots` without 0)."""
    if run.model.family != "decoder" or splits.label_type != "multi" or 0 not in run.preset.evaluation.baseline_shots:
        return None
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side)
    fmt = prompts.prompt_format(run.dataset, tokenizer)
    model = models.load_base(run.model, splits.labels, run.precision, run.preset.train.quantization, tokenizer,
                             verbalizer_ids=prompts.verbalizer_ids(tokenizer, fmt)).eval()
    scores = {}
    for name in ("validation", "test"):
        texts = prompts.build_prompts(splits.split(name)["text"].tolist(), tokenizer, fmt, run.preset.max_length)
        longest = max(len(ids) for ids in tokenizer(texts)["input_ids"])  # the text and the question around it
        scores[name] = predict_proba(model, tokenizer, texts, run.preset.train.eval_batch_size, longest, run.device)
    n = len(splits.labels)
    y_val, y_test = (targets.multi_hot(splits.split(name)["label"], n).astype(int) for name in ("validation", "test"))
    thresholds = fit_thresholds(y_val, scores["validation"])[run.preset.evaluation.label_thresholds]
    decided = (scores["test"] >= thresholds).astype(int)
    return {"0-shot": {**label_metrics.multilabel_metrics(y_test, decided), "shots": 0,
                       **label_metrics.ranking_summary(
                           label_metrics.per_label(y_test, scores["test"], decided, splits.labels,
                                                   run.preset.evaluation.ece_bins))}}


def evaluate(run: Run) -> tuple[dict, pd.DataFrame]:
    """03_evaluate of a multi-label or regression run: predictions.csv and the stage record."""
    splits = read_splits(run.data_folder)
    if splits.calibration.empty:
        raise DataError(f"{run.data_folder} has no calibration split; rerun notebooks/01_data for this run_dir")
    values = token_values(splits, run.preset.context_mode)  # context_mode token's tokens (helpers/data/context.py)
    model = models.load_finetuned(run.model, run.adapter_dir, splits.labels, run.precision,
                                  run.preset.train.quantization, label_type=splits.label_type, context_values=values)
    tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side, values)
    activation = "sigmoid" if splits.label_type == "multi" else "none"
    outputs = {name: predict_proba(model, tokenizer, model_texts(splits.split(name), run.preset.context_mode),
                                   run.preset.train.eval_batch_size, run.preset.max_length, run.device, activation)
               for name in ("validation", "calibration", "test")}
    del model
    build = _multi if splits.label_type == "multi" else _regression
    record, predictions = build(run, splits, outputs)
    if "group" in splits.test:
        predictions["group"] = splits.test["group"].astype(str).to_numpy()
        record["group_scores"] = per_group(predictions, record, splits.label_type, splits.labels)
    record.update(label_type=splits.label_type, labels=splits.labels, test_examples=len(splits.test),
                  fingerprint=splits.fingerprint)
    base = base_model_scores(run, splits)
    if base:
        record["baseline"] = base
    atomic_write_text(run.run_dir / "predictions.csv", predictions.to_csv(index=False))
    run.write_stage("03_evaluate", record)
    return record, predictions
