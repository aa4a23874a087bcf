"""How a registered multi-label or regression adapter decides on new texts (`senticompare predict`,
the local API): with what its run's 03_evaluate fitted on the held-out splits, exactly as that
evaluation decided on its test texts.

- multi-label: `labels` are those whose sigmoid reaches the label's threshold fitted on validation;
  `label_set` the conformal set (every true label in it with probability >= 1 - alpha);
- regression: `prediction` in the targets' own units (the train split's mean and deviation undone),
  `interval` the conformal interval (prediction ± q-hat per target).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.config import ConfigError


@dataclass(frozen=True)
class LabelRules:
    label_type: str  # multi | regression
    labels: list[str]  # label names, or target names
    thresholds: np.ndarray | None = None  # multi: per label
    set_q_hat: float | None = None  # multi: conformal label sets
    mean: np.ndarray | None = None  # regression: the train split's target means and deviations
    std: np.ndarray | None = None
    interval_q_hat: np.ndarray | None = None  # regression: per target

    @property
    def activation(self) -> str:
        return "sigmoid" if self.label_type == "multi" else "none"

    @classmethod
    def from_results(cls, results: dict, source: str) -> LabelRules:
        quality, kind = results["quality"], results["label_type"]
        needed = (("thresholds", "conformal_q_hat") if kind == "multi"
                  else ("target_mean", "target_std", "interval_q_hat"))
        missing = [key for key in needed if key not in quality]
        if missing:
            raise ConfigError(f"{source}: quality lacks {missing}; rerun notebooks/03_evaluate for this run folder")
        labels = list(quality["labels"])
        if kind == "multi":
            return cls(kind, labels, thresholds=np.array([quality["thresholds"][label] for label in labels]),
                       set_q_hat=float(quality["conformal_q_hat"]))
        return cls(kind, labels, mean=np.array(quality["target_mean"]), std=np.array(quality["target_std"]),
                   interval_q_hat=np.array(quality["interval_q_hat"], dtype=float))

    def decide(self, raw: np.ndarray) -> list[dict[str, Any]]:
        """One row per text from the head's outputs (sigmoids, or standardized predictions)."""
        if self.label_type == "multi":
            decided, kept = raw >= self.thresholds, 1.0 - raw <= self.set_q_hat
            return [{"labels": [n for n, d in zip(self.labels, row, strict=True) if d],
                     "scores": {n: float(v) for n, v in zip(self.labels, scores, strict=True)},
                     "label_set": [n for n, k in zip(self.labels, held, strict=True) if k]}
                    for row, scores, held in zip(decided, raw, kept, strict=True)]
        values = raw * self.std + self.mean
        return [{"prediction": {n: float(v) for n, v in zip(self.labels, row, strict=True)},
                 "interval": {n: [float(v - q), float(v + q)] for n, v, q in zip(self.labels, row, self.interval_q_hat,
                                                                                strict=True)}}
                for row in values]

    def csv_columns(self) -> list[str]:
        if self.label_type == "multi":
            return ["row", "text", "labels", *(f"score_{n}" for n in self.labels), "label_set"]
        return ["row", "text", *(f"{part}_{n}" for n in self.labels for part in ("pred", "lower", "upper"))]

    def csv_row(self, row: dict[str, Any]) -> dict[str, Any]:
        flat = {"row": row["row"], "text": row["text"]}
        if self.label_type == "multi":
            flat.update({"labels": json.dumps(row["labels"], ensure_ascii=False),
                         "label_set": json.dumps(row["label_set"], ensure_ascii=False),
                         **{f"score_{n}": v for n, v in row["scores"].items()}})
        else:
            for name, value in row["prediction"].items():
                low, high = row["interval"][name]
                flat.update({f"pred_{name}": value, f"lower_{name}": low, f"upper_{name}": high})
        return flat
