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
# # 05 · Compare
# All models of the study on one dataset: a weighted ranking of normalized metrics, exact
# McNemar tests on the shared test examples (Holm-corrected), calibration and uncertainty,
# the base model against the fine-tuned one, per-group quality, and the trade-off plots.

# %% tags=["parameters"]
study = "scratch"
dataset = "finefoods"
study_dir = "experiments/scratch/finefoods"
weights = {}
seed = 1337

# %%
import pandas as pd
from IPython.display import Markdown, display

from helpers.compare import views
from helpers.compare.stage import compare_dataset
from helpers.core.paths import resolve
from helpers.labels import views as label_views
from helpers.report import plots
from helpers.report.escape import md

found = compare_dataset(resolve(study_dir), weights)
statuses = pd.Series([f["status"] for f in found.failures], dtype=object)
display(Markdown(f"**{len(found.table)}** model(s) finished on **{md(dataset)}** ({len(found.runs)} run(s)), "
                 f"**{(statuses == 'failed').sum()}** failed, **{(statuses == 'not finished').sum()}** not finished."))

# %% [markdown]
# ## Ranking
# Composite score: each metric min–max normalized across models (1 = best; latency inverted),
# then weighted; with several seeds, each model's metrics are averaged over its seeds first.
# "Not significantly different from" names a neighbour in the ranking whose accuracy difference
# is not significant (exact McNemar, Holm-corrected, α = 0.05; with several seeds: in at least one seed).
# "McNemar p vs majority" is the same exact test of each model against always answering the
# training majority class: whether its margin over that floor is more than the luck of the test sample.

# %%
views.summary(found.ranked) if len(found.ranked) else Markdown("No model finished: nothing to rank.")

# %% [markdown]
# Every metric of every model is in `comparison.json` in the study's folder for this dataset.
#
# ## Differences between models against the seed-to-seed spread
# A difference smaller than the models' seed standard deviations (or than the spread of the
# per-seed paired difference) is within what retraining with another seed changes.

# %%
if found.several_seeds:
    for key in views.headline_keys(found.table):
        display(found.seed_differences(key).round(4))
else:
    display(Markdown("One seed per model: no seed-to-seed spread to compare against."))

# %% [markdown]
# ## Failed and unfinished runs

# %%
pd.DataFrame(found.failures, columns=["run", "status", "stage", "error"]) if found.failures else Markdown("None: every model finished.")

# %% [markdown]
# ## Paired significance (exact McNemar)

# %%
views.pairwise_view(found.pairwise) if len(found.pairwise) else Markdown("Fewer than two finished models: nothing to test.")

# %% [markdown]
# ## Calibration and uncertainty
# ECE, Brier and NLL of the network's own probabilities (lower is better), ECE and NLL after the
# recalibration fitted on validation (the probabilities every decision below reads); AURC of the
# risk–coverage curve; selective prediction at the confidence threshold that reached the preset's
# target accuracy on validation (coverage and accuracy on test; without such a threshold nothing
# is answered, and "target reached" is the share of seeds that had one); split-conformal
# prediction sets (coverage should be at least 1 − α; smaller sets are better); average cost of
# the cost-optimal decisions with abstention against always answering. With several seeds:
# mean ± seed standard deviation.

# %%
uncertainty = views.uncertainty_view(found.table) if len(found.table) else pd.DataFrame()
uncertainty if len(uncertainty) else Markdown("No run recorded calibration numbers (runs made before they existed).")

# %% [markdown]
# ## Reliability diagrams
# Accuracy against confidence per bin, on the test predictions of every seed of a model.

# %%
reliability = found.reliability_curves()
if reliability:
    plots.reliability_diagrams(reliability);

# %% [markdown]
# ## Risk–coverage
# The error rate among the examples a model answers when it answers only its most confident ones,
# on the test predictions of every seed of a model.

# %%
curves = found.risk_coverage_curves()
if curves:
    plots.risk_coverage(curves);

# %% [markdown]
# ## Base model against fine-tuned
# The causal LMs prompted zero-/k-shot before fine-tuning, next to the fine-tuned model
# (encoders have no base-model baseline).

# %%
baseline = views.baseline_view(found.table) if len(found.table) else pd.DataFrame()
baseline if len(baseline) else Markdown("No run recorded a base-model baseline.")

# %% [markdown]
# ## Generated answers
# Models that answer by generation: how often their JSON answer could be read and followed the schema,
# how often they abstained, how their rationale overlaps the human one, the base model on the same
# prompts, and the generator's speed. Their accuracy in the tables above reads the labels'
# probabilities at the decision position, so head and generation compare on the same test examples.

# %%
generated = views.generation_view(found.table) if len(found.table) else pd.DataFrame()
generated if len(generated) else Markdown("No model answered by generation.")

# %% [markdown]
# ## Abstention
# Where the dataset names raw labels that mean "no decision" (`abstain_labels`, e.g. 3-star
# reviews), its test abstention examples beside the labelled texts: a generator's written
# abstentions, and for every model how well its confidence singles them out (AUROC) and how many
# fall below its selective threshold; for a generator also its own probability of abstaining,
# P(null) at the decision: its AUROC, and the shares at or above the threshold chosen on validation.

# %%
abstaining = views.abstention_view(found.table) if len(found.table) else pd.DataFrame()
abstaining if len(abstaining) else Markdown("The dataset has no abstention examples (abstain_labels).")

# %% [markdown]
# ## Per-group quality
# The worst group and the largest gap between groups; groups below the minimum size are counted
# but not judged.

# %%
groups = views.group_view(found.table) if len(found.table) else pd.DataFrame()
groups if len(groups) else Markdown("No group to judge: the dataset has no group column, or no group has "
                                   "enough test examples (the evaluation preset's min_group_size).")

# %% [markdown]
# ## Per label or per target
# Multi-label: every model's F1 per label on the shared test texts (labels by their test support).
# Regression: MAE and R² per target and per group of the dataset's group column.

# %%
if views.label_type(found.table) != "single":
    display(label_views.by_model(found.results).round(3))
    figure = label_views.by_model_figure(found.results)
    if figure is not None:
        display(figure)
else:
    display(Markdown("A single-label comparison: its per-class numbers are in each run's 03_evaluate."))

# %% [markdown]
# ## Throughput

# %%
if len(found.table):
    plots.throughput_bars(found.table);
