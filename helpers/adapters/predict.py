"""`senticompare predict`: a registered adapter labels a file of texts the way its run's evaluation
decides, with what that evaluation fitted on its own held-out splits:

- the class probabilities after the run's recalibration (temperature and class biases fitted on
  validation); `label` is their argmax, as the run's `prediction`;
- `conformal_set`: the labels within the run's split-conformal q-hat (LAC, calibrated on the
  calibration split at the run's alpha: the set holds the true label with probability >= 1 - alpha);
- `abstain`: the Bayes decision under the run's cost matrix and abstain cost says to hand the text
  to a person (the evaluation's `abstain_share`); `confident`: the confidence reaches the threshold
  that gave the target accuracy on validation (selective prediction; false for every text where no
  threshold did);
- for a generative adapter (`method: generate`), its generated answer and what it parses to.

The texts go through in chunks of a few batches, in length-sorted batches (the evaluation's
prediction code itself for a head; the generator's own decoding, given its prompts sorted by
length), and each chunk's rows are written as it finishes, in the input's order, to a file that
appears whole when the last chunk is done.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from helpers.adapters import registry
from helpers.adapters.inputs import BadRow, read_texts
from helpers.config import ConfigError
from helpers.core.io import atomic_file, atomic_write_text, read_json
from helpers.evaluate import calibration, conformal, quantize, selective
from helpers.evaluate.inference import length_sorted_batches, predict_proba
from helpers.generate import decode
from helpers.generate import stage as generation
from helpers.generate.parse import parse_answer
from helpers.labels.rules import LabelRules
from helpers.pipeline.run import Run, reopen_run
from helpers.train import models

OUTPUTS = (".jsonl", ".csv")
CHUNK_BATCHES = 8  # batches per written chunk: a progress step, and what is held before it is written
GENERATED = ("answer", "decision", "rationale", "answer_abstain", "read_as")  # a generator's CSV columns


@dataclass(frozen=True)
class DecisionRules:
    """What a run's evaluation fitted on its held-out splits, to decide on new texts."""
    labels: list[str]
    recalibration: calibration.Recalibration
    conformal_alpha: float
    conformal_qhat: float  # inf: too few calibration examples, every label in every set
    selective_threshold: float | None  # None: no threshold reached the target accuracy on validation
    cost_matrix: np.ndarray
    abstain_cost: float

    @classmethod
    def from_results(cls, results_file: Path) -> DecisionRules | LabelRules:
        """The run's decision rules; a multi-label or regression run's are helpers/labels/rules.py's."""
        results = read_json(results_file)
        if results.get("label_type", "single") != "single":
            return LabelRules.from_results(results, str(results_file))
        quality = results["quality"]
        needed = ("labels", "recalibration", "temperature", "class_bias", "conformal_alpha", "conformal_qhat",
                  "selective_threshold", "abstain_cost")
        missing = [key for key in needed if key not in quality]
        if missing:
            raise ConfigError(f"{results_file}: quality lacks {missing} (written by an older 03_evaluate); rerun the "
                              f"study with --force, or notebooks/03_evaluate and 04_speed for this run folder")
        labels = list(quality["labels"])
        cost_matrix = results["params"]["preset"]["evaluation"].get("cost_matrix")
        return cls(labels=labels,
                   recalibration=calibration.Recalibration(quality["recalibration"], quality["temperature"],
                                                            tuple(quality["class_bias"])),
                   conformal_alpha=quality["conformal_alpha"],
                   conformal_qhat=math.inf if quality["conformal_qhat"] is None else quality["conformal_qhat"],
                   selective_threshold=quality["selective_threshold"],
                   cost_matrix=selective.check_cost_matrix(cost_matrix, len(labels)),
                   abstain_cost=quality["abstain_cost"])

    def decide(self, raw: np.ndarray) -> list[dict[str, Any]]:
        """Per text (rows of the network's own probabilities): label, confidence, recalibrated
        probabilities, conformal set, abstain and confident, as described in the module docstring."""
        probs = calibration.recalibrate(raw, self.recalibration)
        sets = conformal.prediction_sets(probs, self.conformal_qhat, "lac")
        actions = selective.bayes_decisions(probs, self.cost_matrix, self.abstain_cost)
        confidence = probs.max(axis=1)
        confident = (confidence >= self.selective_threshold if self.selective_threshold is not None
                     else np.zeros(len(probs), dtype=bool))
        return [{"label": self.labels[int(p.argmax())], "confidence": float(c),
                 "probabilities": {label: float(v) for label, v in zip(self.labels, p, strict=True)},
                 "conformal_set": [label for label, kept in zip(self.labels, s, strict=True) if kept],
                 "abstain": bool(a == selective.ABSTAIN), "confident": bool(ok)}
                for p, c, s, a, ok in zip(probs, confidence, sets, actions, confident, strict=True)]


@dataclass
class AdapterPredictor:
    """A registered adapter loaded as its run's evaluation loads it, with its decision rules."""
    run: Run
    rules: DecisionRules | LabelRules
    model: Any
    tokenizer: Any

    @property
    def generating(self) -> bool:
        return self.run.model.method == "generate"

    @property
    def batch_size(self) -> int:
        return self.run.preset.generation.batch_size if self.generating else self.run.preset.train.eval_batch_size

    def _generated(self, texts: list[str]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The labels' probabilities at the decision position and the parsed answers, the prompts
        given to the generator's own decoding sorted by length and the results put back in order."""
        run, labels = self.run, self.rules.labels
        prompts = generation.prompts_for(run, self.tokenizer, texts, labels)
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        order = np.concatenate(length_sorted_batches(lengths, self.batch_size))
        ordered = [prompts[i] for i in order]
        raw = np.empty((len(texts), len(labels)))
        raw[order] = decode.label_probabilities(self.model, self.tokenizer, ordered, labels,
                                                run.preset.train.eval_batch_size, run.device)
        gen = run.preset.generation
        answers = np.empty(len(texts), dtype=object)
        answers[order] = decode.generate(self.model, self.tokenizer, ordered, gen.max_new_tokens, gen.batch_size,
                                         run.device, generation.schema_for(run, labels))
        parsed = [parse_answer(text, labels) for text in answers]
        return raw, [{"answer": a.raw, "decision": a.decision, "rationale": a.rationale, "abstain": a.abstain,
                      "read_as": a.how} for a in parsed]

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """One decided row per text, in the order given."""
        if self.generating:
            raw, answers = self._generated(texts)
        else:
            raw = predict_proba(self.model, self.tokenizer, texts, self.batch_size, self.run.preset.max_length,
                                self.run.device, getattr(self.rules, "activation", "softmax"))
        rows = self.rules.decide(raw)
        if self.generating:
            for row, generated in zip(rows, answers, strict=True):
                row["generated"] = generated
        return rows


def load_predictor(adapter: str, int8: str | None = None) -> AdapterPredictor:
    """A registered adapter's base model, LoRA, tokenizer and decision rules, loaded as 03_evaluate
    loads them; with `int8` (a mode of helpers/evaluate/quantize.py) the merged model's body is then
    quantized to int8 (against the model as trained on 3,000 Fine Foods reviews: weight-only within
    0.3 points on SmolLM2 and Gemma 3, dynamic 0.2 behind pooled but up to 1.2 on one run;
    docs/performance.md#int8-inference)."""
    record = registry.finished_run(adapter)
    run = reopen_run(record.run_dir)
    if int8 and run.preset.train.quantization != "none":
        raise ConfigError(f"{adapter} was trained on a {run.preset.train.quantization} base, which stays quantized "
                          f"under its unmerged LoRA; int8 needs a merged model: predict without --int8")
    rules = DecisionRules.from_results(record.run_dir / "results.json")
    model = models.load_finetuned(run.model, run.adapter_dir, rules.labels, run.precision,
                                  run.preset.train.quantization, label_type=run.dataset.label_type)
    if int8:
        quantize.quantize_int8(model, int8)
    tokenizer = (generation.tokenizer_for(run) if run.model.method == "generate"
                 else models.load_tokenizer(run.model, run.preset.truncation_side,
                                            models.saved_context_values(run.adapter_dir)))
    return AdapterPredictor(run, rules, model, tokenizer)


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A predicted row flattened for CSV: prob_<label> columns (as the run's predictions.csv), the
    conformal set as a JSON list, a generator's answer in its own columns."""
    flat = {k: v for k, v in row.items() if k not in ("probabilities", "conformal_set", "generated")}
    flat.update({f"prob_{label}": p for label, p in row["probabilities"].items()})
    flat["conformal_set"] = json.dumps(row["conformal_set"], ensure_ascii=False)
    generated = row.get("generated")
    if generated is not None:
        flat.update(answer=generated["answer"], decision=generated["decision"], rationale=generated["rationale"],
                    answer_abstain=generated["abstain"], read_as=generated["read_as"])
    return flat


def csv_columns(labels: list[str], generating: bool) -> list[str]:
    return ["row", "text", "label", "confidence", *(f"prob_{label}" for label in labels), "conformal_set",
            "abstain", "confident", *(GENERATED if generating else ())]


@dataclass
class PredictionSummary:
    output: Path
    predicted: int
    skipped: list[BadRow] = field(default_factory=list)
    skipped_file: Path | None = None  # every skipped row with its reason, beside the output


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def skipped_file_for(output: Path) -> Path:
    return output.with_name(f"{output.stem}.skipped.jsonl")


def predict_file(adapter: str, input_path: str | Path, output_path: str | Path, column: str = "text",
                 show_progress: bool = True, int8: str | None = None) -> PredictionSummary:
    """Predict every text of `input_path` with a registered adapter into `output_path` (.jsonl: one
    object per text; .csv: flat columns), in the input's order; rows without a text are skipped
    and listed, with the reason, in `<output>.skipped.jsonl`. `int8`: see load_predictor."""
    output = Path(output_path)
    if output.suffix.lower() not in OUTPUTS:
        raise ConfigError(f"{output}: predict writes {' or '.join(OUTPUTS)}; name the output file with one of them")
    found = read_texts(input_path, column)
    if not found.texts:
        reasons = "; ".join(f"row {b.row}: {b.reason}" for b in found.bad[:5])
        raise ConfigError(f"{found.path} holds no text to predict ({len(found.bad)} row(s) without one: {reasons}); "
                          f"give a file with a {column!r} field per row, or --column naming it")
    predictor = load_predictor(adapter, int8)
    chunk = predictor.batch_size * CHUNK_BATCHES
    as_csv = output.suffix.lower() == ".csv"
    with atomic_file(output, text=True) as f, \
            tqdm(total=len(found.texts), desc=f"predict {adapter}", unit="text", disable=not show_progress) as bar:
        labelled = isinstance(predictor.rules, LabelRules)  # multi-label or regression
        columns = (predictor.rules.csv_columns() if labelled
                   else csv_columns(predictor.rules.labels, predictor.generating))
        writer = csv.DictWriter(f, columns) if as_csv else None
        if writer:
            writer.writeheader()
        for part in _chunks(len(found.texts), chunk):
            texts = found.texts[part]
            for number, text, row in zip(found.rows[part], texts, predictor.predict(texts), strict=True):
                row = {"row": number, "text": text, **row}
                if writer:
                    writer.writerow(predictor.rules.csv_row(row) if labelled else csv_row(row))
                else:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            bar.update(len(texts))
    summary = PredictionSummary(output, len(found.texts), found.bad)
    if found.bad:
        summary.skipped_file = atomic_write_text(
            skipped_file_for(output),
            "".join(json.dumps({"row": b.row, "reason": b.reason}, ensure_ascii=False) + "\n" for b in found.bad))
    else:
        skipped_file_for(output).unlink(missing_ok=True)  # an earlier prediction's list would mislead
    return summary
