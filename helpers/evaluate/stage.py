"""03_evaluate: predictions with class probabilities, quality with CIs, calibration, selective
prediction, conformal sets, costs, per-group quality and, for causal LMs, the base model zero-/k-shot."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import metrics
from helpers.core.io import atomic_write_text
from helpers.data.context import model_texts, token_values
from helpers.data.records import DataError
from helpers.data.splits import as_drawn, read_splits
from helpers.evaluate import abstention, calibration, prompts, quality, significance, uncertainty
from helpers.evaluate.inference import predict_proba
from helpers.generate import stage as generation
from helpers.generate import task_stage
from helpers.labels import stage as label_stage
from helpers.pipeline.run import Run
from helpers.train import models

SUMMARY_KEYS = metrics.keys(uncertainty=True)  # the uncertainty numbers the notebook shows (metric registry)


def base_model_baseline(run: Run, shots: list[int]) -> dict[str, dict]:
    """A causal LM before fine-tuning, asked each test text zero-/k-shot: the next-token
    probability of each label's answer word, normalized over the labels (one forward pass per
    example). That is exactly the untrained classifier with its verbalizer head."""
    if run.model.family != "decoder" or not shots:
        return {}
    splits = read_splits(run.data_folder)
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
        block[f"{k}-shot"] = {**quality.classification_metrics(y_true, probs.argmax(axis=1), label_ids),
                              **uncertainty.calibration_metrics(y_true, probs, run.preset.evaluation.ece_bins),
                              "shots": k, "prompt_tokens_mean": float(np.mean(lengths))}
    return block


def evaluate_model(run: Run) -> tuple[dict, pd.DataFrame]:
    """03_evaluate: predict validation, calibration and test with probabilities; the decision is the
    argmax after the recalibration fitted on validation (the network's own argmax kept as
    `raw_argmax`); quality metrics by sklearn, calibration, selective prediction, conformal sets and
    costs (helpers/evaluate/uncertainty.py), and, for causal LMs, the base model zero-/k-shot beside it.
    A task dataset (instruction, sql) is scored on generated answers instead (helpers/generate/task_stage.py)."""
    if run.dataset.task != "classification":
        return task_stage.evaluate(run)
    if run.dataset.label_type != "single":  # multi-label or regression (helpers/labels/stage.py)
        return label_stage.evaluate(run)
    splits = read_splits(run.data_folder)
    values = token_values(splits, run.preset.context_mode)  # context_mode token's tokens (helpers/data/context.py)
    model = models.load_finetuned(run.model, run.adapter_dir, splits.labels, run.precision,
                                  run.preset.train.quantization, context_values=values)
    generating = run.model.method == "generate"
    if generating:  # the labels' probabilities where its JSON answer gives the decision
        tokenizer = generation.tokenizer_for(run)
        predict = generation.probability_predictor(run, model, tokenizer, splits.labels)
    else:
        tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side, values)

        def predict(df: pd.DataFrame) -> np.ndarray:
            return predict_proba(model, tokenizer, model_texts(df, run.preset.context_mode),
                                 run.preset.train.eval_batch_size,
                                 run.preset.max_length, run.device)

    test, validation, held_out = splits.test, splits.validation, splits.calibration
    if held_out.empty:
        raise DataError(f"{run.data_folder} has no calibration split (written before it existed); "
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
    majority = quality.majority_baseline(as_drawn(splits, run.preset)["label"].to_numpy(), y_true, label_ids)
    record = {
        **quality.classification_metrics(y_true, y_pred, label_ids),
        **significance.quality_cis(y_true, y_pred, label_ids, seed=run.seed),
        "raw_argmax": quality.classification_metrics(y_true, raw.argmax(axis=1), label_ids),
        "validation_accuracy": float((p_val.argmax(axis=1) == y_val).mean()),  # the network's argmax
        **uncertainty.uncertainty_report(y_val, p_val, y_cal, p_cal, y_true, raw, run.preset.evaluation,
                                        groups_test=groups, label_ids=label_ids, recalibration=fitted),
        "baseline_majority": majority,
        "vs_majority": significance.versus_majority(y_true, y_pred, majority["majority_label"]),
        "confusion_matrix": quality.confusion(y_true, y_pred, label_ids),
        "labels": splits.labels,
        "test_examples": len(test),
        "fingerprint": splits.fingerprint,
    }
    if generating:  # what the user reads: the generated answers, parsed (the base model's beside them)
        record["generation"], parsed = generation.answer(run, model, tokenizer, test, splits.labels)
        record.update({k: record["generation"][k] for k in metrics.GENERATION if k in record["generation"]})
        generated = np.array([splits.labels.index(a.decision) if a.decision else -1 for a in parsed])
        record["generation"]["agrees_with_argmax"] = float((generated == raw.argmax(axis=1)).mean())
        predictions["answer"] = [a.raw for a in parsed]
        predictions["generated"] = [a.decision or ("abstain" if a.abstain else "") for a in parsed]
    if not splits.abstentions("test").empty:
        record["abstention"] = abstentions(run, splits, predict, fitted, probs, record.get("selective_threshold"),
                                           (model, tokenizer) if generating else None)
        record.update({k: v for k, v in record["abstention"].items() if k in metrics.ABSTENTION})
    model = None  # its weights go before a base model loads (`predict` reads this name, so not `del`)
    if generating and run.preset.generation.compare_base:
        base = record["generation"]["base"] = generation.base_answers(run, test, splits.labels)
        record.update(base_decision_accuracy=base["decision_accuracy"], base_parse_rate=base["parse_rate"])
    baseline = base_model_baseline(run, run.preset.evaluation.baseline_shots)
    if baseline:
        record["baseline"] = baseline
    atomic_write_text(run.run_dir / "predictions.csv", predictions.to_csv(index=False))
    run.write_stage("03_evaluate", record)
    return record, predictions


def abstentions(run: Run, splits, predict, fitted, probs: np.ndarray, threshold: float | None,
                generator: tuple | None) -> dict:
    """The test split's abstention examples scored beside its labelled texts (`probs`, recalibrated)
    by helpers/evaluate/abstention.py; a generator's written answers to them too. Every example's
    confidence (and answer) goes to abstentions.csv."""
    held = splits.abstentions("test")
    confidence = calibration.recalibrate(predict(held), fitted).max(axis=1)
    block = abstention.abstention_metrics(confidence, probs.max(axis=1), threshold)
    rows = pd.DataFrame({"example": np.arange(len(held)), "confidence": confidence,
                         "below_selective_threshold": confidence < threshold if threshold is not None else None})
    if generator is not None:
        parsed = generation.written_answers(run, *generator, held, splits.labels)
        rows["answer"] = [a.raw for a in parsed]
        rows["abstained"] = [a.abstain for a in parsed]
        block["abstain_recall"] = float(rows["abstained"].mean())
        p_null = generation.abstain_predictor(run, *generator, splits.labels)
        rows["p_null"] = p_null(held)
        block.update(abstention.null_metrics(rows["p_null"].to_numpy(), p_null(splits.test),
                                             p_null(splits.abstentions("validation")), p_null(splits.validation)))
    atomic_write_text(run.run_dir / "abstentions.csv", rows.to_csv(index=False))
    return block


def reliability_before_after(predictions: pd.DataFrame, labels: list[str], n_bins: int) -> dict[str, pd.DataFrame]:
    """Reliability-diagram data of the network's own probabilities (`raw_prob_*`, key "") and of the
    recalibrated ones every decision reads (`prob_*`, key ", recalibrated")."""
    y = predictions["label"].to_numpy()
    return {suffix: calibration.reliability(y, predictions[[f"{prefix}_{name}" for name in labels]].to_numpy(), n_bins)
            for suffix, prefix in (("", "raw_prob"), (", recalibrated", "prob"))}
