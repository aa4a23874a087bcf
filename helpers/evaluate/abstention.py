"""How a run treats the texts it should not decide: a dataset's abstention examples (its
`abstain_labels`, e.g. Disneyland's 3-star reviews between the negative 1-2 and the positive 4-5),
the test split's ones scored beside its labelled texts.

- abstain_auroc: how well the run's confidence (its recalibrated top probability) tells an
  abstention example (lower) from a labelled text: ROC AUC, 0.5 = not at all. Every run has one,
  so a head and a generator compare on it.
- abstain_recall_selective, false_abstain_rate_selective: the share of abstention examples, and of
  labelled texts, below the selective-prediction threshold chosen on validation (the run's own rule
  for declining to answer, helpers/evaluate/selective.py); None where no threshold reached the target.
- abstain_recall: a generator's written answers: the share of abstention examples it answered with
  `"abstain": true` (its false abstentions are `abstain_rate`, on the labelled texts); written by
  03_evaluate (helpers/evaluate/stage.py), which keeps every answer in abstentions.csv.
- abstain_auroc_null, abstain_recall_null, false_abstain_rate_null: a generator's own probability
  of abstaining, P(null) against P(a label) at the decision (helpers/generate/decode.py): its ROC
  AUC on test, and the shares of abstention examples and labelled texts at or above the threshold
  that best separated validation's (Youden's J). Greedy decoding abstains only above 0.5; a model
  that learned abstention as the less likely answer can still rank those texts first.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def abstention_metrics(confidence_abstain: np.ndarray, confidence_labelled: np.ndarray,
                       threshold: float | None) -> dict[str, float | int | None]:
    """The threshold-free and the selective-threshold numbers of the module docstring."""
    confidence_abstain, confidence_labelled = np.asarray(confidence_abstain), np.asarray(confidence_labelled)
    if not len(confidence_abstain) or not len(confidence_labelled):
        raise ValueError("abstention metrics need abstention examples and labelled texts")
    should = np.r_[np.ones(len(confidence_abstain)), np.zeros(len(confidence_labelled))]
    below = None if threshold is None else (confidence_abstain < threshold, confidence_labelled < threshold)
    return {
        "abstention_examples": int(len(confidence_abstain)),
        "abstain_auroc": float(roc_auc_score(should, -np.r_[confidence_abstain, confidence_labelled])),
        "abstain_recall_selective": None if below is None else float(below[0].mean()),
        "false_abstain_rate_selective": None if below is None else float(below[1].mean()),
    }


def null_metrics(abstain_test: np.ndarray, labelled_test: np.ndarray, abstain_validation: np.ndarray,
                 labelled_validation: np.ndarray) -> dict[str, float | None]:
    """A generator's P(null) on test's abstention examples and labelled texts: the AUROC, and the
    rates at the validation-chosen threshold (None without abstention examples in validation)."""
    abstain_test, labelled_test = np.asarray(abstain_test), np.asarray(labelled_test)
    if not len(abstain_test) or not len(labelled_test):
        raise ValueError("abstention metrics need abstention examples and labelled texts")
    should = np.r_[np.ones(len(abstain_test)), np.zeros(len(labelled_test))]
    record = {"abstain_auroc_null": float(roc_auc_score(should, np.r_[abstain_test, labelled_test])),
              "abstain_null_threshold": None, "abstain_recall_null": None, "false_abstain_rate_null": None}
    if len(abstain_validation) and len(labelled_validation):
        fpr, tpr, thresholds = roc_curve(np.r_[np.ones(len(abstain_validation)), np.zeros(len(labelled_validation))],
                                         np.r_[abstain_validation, labelled_validation])
        threshold = float(min(thresholds[int(np.argmax(tpr - fpr))], 1.0))  # roc_curve's first is +inf
        record.update(abstain_null_threshold=threshold,
                      abstain_recall_null=float((abstain_test >= threshold).mean()),
                      false_abstain_rate_null=float((labelled_test >= threshold).mean()))
    return record
