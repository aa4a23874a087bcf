"""Metrics of decisions by generation, beside the classification metrics computed from the
labels' probabilities (helpers/evaluate/quality.py):

- parse_rate: a JSON object was read (strictly or repaired); schema_valid_rate: as written, it
  follows the schema (helpers/generate/schema.py)
- decision_accuracy: the generated decision right, an unreadable answer or an abstention wrong
- abstain_rate and accuracy_answered (on the answers that did not abstain)
- rationale_jaccard: word-level Jaccard with the human span (the Tweet Sentiment Extraction
  competition's metric: lower-cased, split on whitespace; both empty counts 1)
- rationale_in_input_rate: the rationale is a substring of the input (an extract, not invented)
"""
from __future__ import annotations

import numpy as np

from helpers.generate.parse import ParsedAnswer


def jaccard(a: str, b: str) -> float:
    """Word-level Jaccard of two strings, as the Tweet Sentiment Extraction competition scored it."""
    x, y = set(a.lower().split()), set(b.lower().split())
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


def decision_metrics(answers: list[ParsedAnswer], labels: list[str], y_true: np.ndarray, texts: list[str],
                     rationales: list[str] | None = None) -> dict[str, float | int | None]:
    """The metrics of the module docstring over one split; `rationales` are the human spans, if any."""
    n = len(answers)
    if n == 0:
        raise ValueError("no answers to score")
    predicted = np.array([labels.index(a.decision) if a.decision is not None else -1 for a in answers])
    answered = np.array([not a.abstain for a in answers])
    correct = predicted == np.asarray(y_true)
    record = {
        "answers": n,
        "parse_rate": float(np.mean([a.parsed for a in answers])),
        "schema_valid_rate": float(np.mean([a.schema_valid for a in answers])),
        "decision_accuracy": float(correct.mean()),
        "abstain_rate": float((~answered).mean()),
        "accuracy_answered": float(correct[answered].mean()) if answered.any() else None,
        "rationale_given_rate": float(np.mean([bool(a.rationale) for a in answers])),
        "rationale_in_input_rate": float(np.mean([bool(a.rationale) and a.rationale.strip().lower() in t.lower()
                                                  for a, t in zip(answers, texts, strict=True)])),
        "rationale_jaccard": None,
    }
    if rationales is not None:
        record["rationale_jaccard"] = float(np.mean([jaccard(a.rationale or "", r)
                                                     for a, r in zip(answers, rationales, strict=True)]))
    return record
