# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Evaluate
# Predicts the test split with the fine-tuned model, decides by the argmax after the recalibration
# fitted on validation (a temperature, and by default per-class biases that set the decision
# threshold), saves every prediction with its class probabilities, and computes the quality
# metrics with 95 % bootstrap intervals next to the network's own argmax, the majority-class
# baseline and, for causal LMs, the base model asked zero-/k-shot; then
# how far its confidence can be trusted: calibration, selective prediction, conformal sets,
# cost-sensitive decisions and per-group quality. A task dataset (instruction, SQL) is answered by
# generation instead: the fine-tuned and the base model answer every test prompt, each answer scored
# (final number and ROUGE-L, or the query executed on generated rows), with McNemar between the two.

# %% tags=["parameters"]
model = "smollm2-135m"
dataset = "finefoods"
preset = "tiny"
seed = 1337
run_dir = "experiments/scratch/finefoods/smollm2-135m"
data_dir = None
overrides = {}
study = "scratch"
holdout_group = None
holdout_by = "group"
adapter = None

# %%
import pandas as pd
from IPython.display import Markdown, display

from helpers.evaluate.stage import SUMMARY_KEYS, evaluate_model, reliability_before_after
from helpers.generate import task_stage
from helpers.labels import views as label_views
from helpers.pipeline.run import open_run
from helpers.report import plots
from helpers.report.escape import md

run = open_run(model, dataset, preset, seed, run_dir, data_dir, overrides, study, holdout_group=holdout_group,
               holdout_by=holdout_by, adapter=adapter)
record, predictions = evaluate_model(run)
classifying = run.dataset.task == "classification" and run.dataset.label_type == "single"
labelled = run.dataset.label_type != "single"  # multi-label or regression (helpers/labels/)
keys = ("accuracy", "f1", "precision", "recall", "balanced_accuracy")
(pd.DataFrame({run.model.id: {k: record[k] for k in keys},
               "network's own argmax": {k: record["raw_argmax"][k] for k in keys},
               "majority baseline": {k: record["baseline_majority"][k] for k in keys}})
 if classifying else label_views.headline(record, run.model.id) if labelled else task_stage.headline(record))

# %%
if classifying:
    vs = record["vs_majority"]
    display(Markdown(f"Against the majority class on the same test examples: {vs['model_only_correct']} right "
                     f"only by the model, {vs['majority_only_correct']} only by the majority, exact McNemar "
                     f"p = {vs['p_value']:.2g}."))
    display(pd.DataFrame({"95 % CI": {"accuracy": record["accuracy_ci95"], "f1 (macro)": record["f1_ci95"]}}))
elif labelled:
    display(Markdown(md(label_views.verdict(record))))
else:
    display(Markdown(md(task_stage.verdict(record))))

# %% [markdown]
# ## Confusion matrix

# %%
if classifying:
    plots.confusion_heatmap(record["confusion_matrix"], record["labels"], title=run.model.id)
elif labelled:  # per label or per target instead
    display(label_views.detail(record).round(4))
    display(label_views.figure(record, predictions, run.model.id))
else:
    display(Markdown("A task has no classes: no confusion matrix."))

# %% [markdown]
# ## Base model before fine-tuning
# Causal LMs only: the dataset's question after each text, scored by the next-token probability of
# each label's answer word (normalized over the labels), with k answered training examples first.

# %%
if classifying:
    display(pd.DataFrame({"fine-tuned": {k: record[k] for k in ("accuracy", "f1", "ece", "brier", "nll")},
                          **{f"base, {name}": {k: block[k] for k in ("accuracy", "f1", "ece", "brier", "nll")}
                             for name, block in record.get("baseline", {}).items()}}).round(4))
elif labelled:  # multi-label: the base causal LM's answer-word scores zero-shot; regression: none
    shown = label_views.base_model(record, run.model.id)
    display(Markdown(shown) if isinstance(shown, str) else shown)
else:
    display(Markdown("A task run: its base model answered the same test prompts, in the first table."))

# %% [markdown]
# ## Generated answers
# Models that answer by generation only (registry `method: generate`): the JSON decisions written for
# the test texts, parsed however broken (helpers/generate/parse.py), by the fine-tuned and the base
# model on the same prompts. The numbers above read the labels' probabilities at the decision position.

# %%
if labelled:
    display(Markdown("A multi-label or regression head: nothing is generated."))
elif not classifying:
    display(task_stage.side_by_side(predictions))
elif "generation" in record:
    block = record["generation"]
    shown = ("decision_accuracy", "parse_rate", "schema_valid_rate", "abstain_rate", "accuracy_answered",
             "rationale_jaccard", "rationale_in_input_rate", "agrees_with_argmax")
    display(pd.DataFrame({"fine-tuned": {k: block.get(k) for k in shown},
                          "base": {k: block.get("base", {}).get(k) for k in shown}}).round(4))
    display(Markdown(f"Rationale target: {md(block['rationale_target'])}."))
    display(predictions.assign(label=predictions["label"].map(dict(enumerate(record["labels"]))))
            [["example", "label", "generated", "answer"]].head(8))
else:
    display(Markdown("A classification head: nothing is generated."))

# %% [markdown]
# ## Abstention examples
# Where the dataset names raw labels that mean "no decision" (`abstain_labels`): how this run treats
# the test split's abstention examples (helpers/evaluate/abstention.py); each one's confidence, and
# a generator's answer, are in abstentions.csv.

# %%
(pd.Series(record["abstention"], name=run.model.id).to_frame() if "abstention" in record
 else Markdown("The dataset has no abstention examples (abstain_labels)."))

# %% [markdown]
# ## Calibration, selective prediction, conformal sets, costs
# Recalibration and the selective threshold fitted on validation; conformal sets calibrated on the
# held-out calibration split; all numbers on test. ECE, MCE, Brier and NLL are the network's own,
# `*_recalibrated` after recalibration.

# %%
(pd.Series({k: record[k] for k in SUMMARY_KEYS if k in record}, name=run.model.id).to_frame() if classifying
 else label_views.uncertainty(record).to_frame() if labelled else Markdown("A task has no class probabilities: no calibration, selective prediction, conformal sets or costs."))

# %%
if classifying:
    plots.reliability_diagrams({f"{run.model.id}{suffix}": table for suffix, table in
                                reliability_before_after(predictions, record["labels"], record["ece_bins"]).items()})

# %% [markdown]
# ## Per group
# Every quality metric per group of the dataset's group column; groups below the minimum size are
# not judged (results.json keeps their sizes).

# %%
if "per_group" in record:
    groups = pd.DataFrame(record["per_group"]["groups"]).T
    display(Markdown(f"{len(groups)} groups judged, {len(record['per_group']['small_groups'])} below "
                     f"{record['per_group']['min_group_size']} examples; worst group by accuracy: "
                     f"{md(record['per_group']['worst_group'].get('accuracy', 'none judged'))}"))
    if len(groups):
        display(groups)
elif "group_scores" in record:
    display(label_views.group_table(record))
else:
    display(Markdown("The dataset has no group column." if classifying else "No per-group numbers for a task run."))
