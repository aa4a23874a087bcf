"""The metric registry: every reported number's key, label, direction and format, in one place.

Evaluation writes the keys, the comparison reads them from results.json (`source`: the top level
or the `quality` block), the ranking normalizes by `higher_is_better`, and the report's tables and
figures take `label`, `unit` and `digits` from here. Adding a metric is one `register_metric` call
(the evaluation stage that computes it writes the key under `quality`); it then appears in the
comparison's run table and can be weighted in a study's ranking.
"""
from __future__ import annotations

from dataclasses import dataclass

SOURCES = ("top", "quality", "comparison")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # as a reader sees it, without the unit
    higher_is_better: bool | None  # None: a setting or a count, not better either way
    digits: int = 3  # decimals shown in tables
    unit: str = ""
    source: str = "quality"  # where results.json holds it: top level, the `quality` block, or made by the comparison
    uncertainty: bool = False  # one of the calibration, selective prediction, conformal and cost numbers
    shown: bool = True  # a column of the report's tables (the rest stay in comparison.json)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"metric {self.key!r}: source must be one of {SOURCES}, got {self.source!r}")

    @property
    def title(self) -> str:
        """The label with its unit, for a table column or an axis."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


METRICS: dict[str, Metric] = {}


def register_metric(key: str, label: str, higher_is_better: bool | None, digits: int = 3, unit: str = "",
                    source: str = "quality", uncertainty: bool = False, shown: bool = True) -> Metric:
    """Add a metric (or replace one of the same key) and return it."""
    METRICS[key] = Metric(key, label, higher_is_better, digits, unit, source, uncertainty, shown)
    return METRICS[key]


def metric(key: str) -> Metric:
    if key not in METRICS:
        raise KeyError(f"unknown metric {key!r}; register it in helpers/metrics.py (known: {sorted(METRICS)})")
    return METRICS[key]


def lower_is_better(key: str) -> bool:
    """True where a smaller value is better; unregistered columns count as higher-is-better."""
    return key in METRICS and METRICS[key].higher_is_better is False


def title(key: str) -> str:
    """A column's label with its unit; the key itself where it is not registered."""
    return METRICS[key].title if key in METRICS else key


def keys(source: str | None = None, uncertainty: bool | None = None, shown: bool | None = None) -> list[str]:
    """Registered keys in registration order, optionally only those of one source, of the
    uncertainty numbers, or of the report's tables."""
    return [m.key for m in METRICS.values()
            if (source is None or m.source == source) and (uncertainty is None or m.uncertainty == uncertainty)
            and (shown is None or m.shown == shown)]


# Quality (macro averages where averaged), at the top level of results.json.
for _key, _label in (("accuracy", "accuracy"), ("f1", "F1 (macro)"), ("precision", "precision (macro)"),
                     ("recall", "recall (macro)")):
    register_metric(_key, _label, True, source="top")
register_metric("balanced_accuracy", "balanced accuracy", True)
# Speed and cost, at the top level.
register_metric("latency_median_ms", "latency median", False, 1, "ms", "top")
register_metric("latency_p99_ms", "latency P99", False, 1, "ms", "top")
register_metric("ttft_mean_ms", "time to first prediction", False, 1, "ms", "top")
register_metric("throughput_samples_per_sec", "throughput", True, 2, "samples/s", "top")
register_metric("throughput_tokens_per_sec", "throughput", True, 0, "tokens/s", "top")
register_metric("inference_mfu", "inference MFU", True, 3, "", "top")  # batched pass, over a matmul measured beside it
register_metric("peak_rss_mb", "peak RSS", False, 0, "MB", "top")
register_metric("memory_allocated_mb", "GPU memory allocated", False, 0, "MB", "top")
register_metric("memory_reserved_mb", "GPU memory reserved", False, 0, "MB", "top")
register_metric("training_time_hours", "training time", False, 4, "h", "top")
register_metric("trainable_params", "trainable parameters", False, 0, "", "top")
register_metric("artifact_mb", "artifact size", False, 1, "MB", "top")  # the adapter, or the whole model (full)
register_metric("total_params", "parameters", None, 0, "", "top")
# Calibration, selective prediction, conformal sets and decision costs, in the `quality` block.
for _key, _label, _better, _shown in (
        ("ece", "ECE", False, True),
        ("ece_equal_mass", "ECE (equal mass)", False, True),
        ("ece_classwise", "ECE (classwise)", False, False),
        ("mce", "MCE", False, False),
        ("ece_recalibrated", "ECE recalibrated", False, True),
        ("temperature", "temperature", None, True),
        ("brier", "Brier", False, True),
        ("nll", "NLL", False, True),
        ("nll_recalibrated", "NLL recalibrated", False, True),
        ("brier_recalibrated", "Brier recalibrated", False, False),
        ("aurc", "AURC", False, True),
        ("selective_target_accuracy", "selective target accuracy", None, False),
        ("selective_target_reached", "target reached on validation", None, True),
        ("selective_threshold", "selective threshold", None, False),
        ("selective_coverage", "selective coverage", True, True),
        ("selective_accuracy", "selective accuracy", True, True),
        ("conformal_alpha", "conformal alpha", None, False),
        ("conformal_coverage", "conformal coverage (LAC)", None, True),
        ("conformal_set_size", "set size (LAC)", False, True),
        ("conformal_singleton_share", "singleton sets (LAC)", True, False),
        ("conformal_aps_coverage", "conformal coverage (APS)", None, True),
        ("conformal_aps_set_size", "set size (APS)", False, True),
        ("expected_cost", "expected cost", False, True),
        ("expected_cost_argmax", "cost of argmax", False, True),
        ("abstain_share", "abstained", False, True)):
    register_metric(_key, _label, _better, uncertainty=True, shown=_shown)
# Made by the comparison from a run's `quality` block (helpers/compare/runs.py).
register_metric("p_vs_majority", "McNemar p vs majority", False, 2, source="comparison")
register_metric("baseline_accuracy", "majority baseline", None, source="comparison")
register_metric("accuracy_raw_argmax", "accuracy before recalibration", True, source="comparison")
register_metric("f1_raw_argmax", "F1 before recalibration", True, source="comparison")
# Decisions by generation (registry `method: generate`, helpers/generate/metrics.py), in the
# `quality` block; the generator's speed at the top level. Classifier runs leave them empty.
for _key, _label, _better in (
        ("decision_accuracy", "generated decision accuracy", True),
        ("parse_rate", "answers parsed", True),
        ("schema_valid_rate", "answers valid as written", True),
        ("abstain_rate", "abstained (generated)", None),
        ("accuracy_answered", "accuracy when answering", True),
        ("rationale_jaccard", "rationale Jaccard", True),
        ("rationale_in_input_rate", "rationale quoted from the text", True),
        ("base_decision_accuracy", "base model decision accuracy", True),
        ("base_parse_rate", "base model answers parsed", True)):
    register_metric(_key, _label, _better, shown=False)
# Abstention examples (a dataset's abstain_labels, helpers/evaluate/abstention.py), in the `quality`
# block of every single-label run of such a dataset; abstain_recall of generators only.
register_metric("abstention_examples", "abstention examples (test)", None, 0, shown=False)
for _key, _label, _better in (
        ("abstain_recall", "should-abstain texts abstained (generated)", True),
        ("abstain_auroc", "abstain AUROC (low confidence)", True),
        ("abstain_recall_selective", "should-abstain texts below the selective threshold", True),
        ("false_abstain_rate_selective", "labelled texts below the selective threshold", False),
        ("abstain_auroc_null", "abstain AUROC (P(null), generated)", True),
        ("abstain_recall_null", "should-abstain texts at P(null) >= threshold", True),
        ("false_abstain_rate_null", "labelled texts at P(null) >= threshold", False)):
    register_metric(_key, _label, _better, shown=False)
ABSTENTION = ("abstention_examples", "abstain_recall", "abstain_rate", "abstain_auroc", "abstain_recall_selective",
              "false_abstain_rate_selective", "abstain_auroc_null", "abstain_recall_null", "false_abstain_rate_null")
register_metric("ttft_ms", "time to first token", False, 1, "ms", "top", shown=False)
register_metric("decode_tokens_per_sec", "decode speed", True, 1, "tokens/s", "top", shown=False)
# Task runs (a dataset's `task: instruction | sql`, helpers/generate/task_stage.py), in the `quality`
# block: the fine-tuned model's answers scored, its base model's on the same test prompts beside them.
for _key, _label, _better, _digits, _unit in (
        ("final_number_match", "final-number match", True, 3, ""),
        ("rouge_l", "ROUGE-L", True, 3, ""),
        ("answer_words", "answer length", None, 1, "words"),
        ("execution_accuracy", "execution accuracy", True, 3, ""),
        ("executes_rate", "queries that run", True, 3, ""),
        ("sql_parse_rate", "queries parsed", True, 3, ""),
        ("exact_match", "exact match (normalized)", True, 3, ""),
        ("validation_perplexity", "answer perplexity (validation)", False, 2, ""),
        ("base_accuracy", "base model accuracy", True, 3, ""),
        ("p_vs_base", "McNemar p vs base model", None, 2, ""),
        ("base_validation_perplexity", "base model answer perplexity", False, 2, "")):
    register_metric(_key, _label, _better, _digits, _unit, shown=False)
TASK = ("final_number_match", "rouge_l", "answer_words", "execution_accuracy", "executes_rate", "sql_parse_rate",
        "exact_match", "validation_perplexity", "base_accuracy", "p_vs_base", "base_validation_perplexity")
GENERATION = ("decision_accuracy", "parse_rate", "schema_valid_rate", "abstain_rate", "accuracy_answered",
              "rationale_jaccard", "rationale_in_input_rate", "base_decision_accuracy", "base_parse_rate",
              *TASK, "ttft_ms", "decode_tokens_per_sec")
# Multi-label and regression runs (a dataset's `label_type`, helpers/labels/), at the top level of
# results.json; their per-label and per-target numbers stay in the `quality` block.
for _key, _label, _better in (
        ("micro_f1", "micro-F1", True),
        ("macro_f1", "macro-F1 (labels)", True),
        ("samples_f1", "samples F1", True),
        ("hamming_loss", "Hamming loss", False),
        ("subset_accuracy", "subset accuracy", True),
        ("r2", "R²", True),
        ("mae", "MAE", False),
        ("rmse", "RMSE", False),
        ("pearson", "Pearson r", True),
        ("spearman", "Spearman ρ", True),
        ("interval_coverage", "interval coverage", None),
        ("interval_width", "interval width", False)):
    register_metric(_key, _label, _better, source="top")
for _key, _label, _better in (
        ("macro_average_precision", "mean average precision", True),
        ("macro_roc_auc", "mean ROC AUC", True),
        ("ece_per_label_mean", "ECE per label (mean)", False),
        ("conformal_label_recall", "true labels in the conformal set", None)):
    register_metric(_key, _label, _better, uncertainty=True, shown=False)
# The headline keys of each label type (copied to the top level of results.json) and the metric
# its verdict, CIs and paired bootstrap are about, first in each tuple.
LABEL_TYPE_HEADLINE = {
    "multi": ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy"),
    "regression": ("mae", "r2", "rmse", "pearson", "spearman", "interval_coverage", "interval_width"),
}
# The number a label type's verdict, ranking and paired tests are about, the second one shown beside
# it, and its trivial baseline's (made by the comparison from the run's `quality` block).
MAIN_METRIC = {"single": "accuracy", "multi": "micro_f1", "regression": "mae"}
SECOND_METRIC = {"single": "f1", "multi": "macro_f1", "regression": "r2"}
BASELINE_METRIC = {"single": "baseline_accuracy", "multi": "baseline_micro_f1", "regression": "baseline_mae"}
register_metric("baseline_micro_f1", "best trivial baseline micro-F1", None, source="comparison")
register_metric("baseline_mae", "training-mean baseline MAE", None, source="comparison")
