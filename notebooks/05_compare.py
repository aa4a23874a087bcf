# ---
# jupyter:
#   jupytext:
#     formats: py:percent
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

from helpers import comparison, plots
from helpers.io import write_json
from helpers.paths import resolve

folder = resolve(study_dir)
results, failures = comparison.collect_runs(folder)
runs = comparison.results_table(results)
table = comparison.aggregate_seeds(runs) if len(runs) else runs
several_seeds = len(table) and table["n_seeds"].max() > 1
display(Markdown(f"**{len(table)}** model(s) finished on **{dataset}** ({len(runs)} run(s)), "
                 f"**{len(failures)}** failed."))

# %% [markdown]
# ## Ranking
# Composite score: each metric min–max normalized across models (1 = best; latency inverted),
# then weighted; with several seeds, each model's metrics are averaged over its seeds first.
# "Not significantly different from" names a neighbour in the ranking whose accuracy difference
# is not significant (exact McNemar, Holm-corrected, α = 0.05; with several seeds: in at least one seed).
# "McNemar p vs majority" is the same exact test of each model against always answering the
# training majority class: whether its margin over that floor is more than the luck of the test sample.

# %%
pairwise = comparison.pairwise_by_seed(folder, runs) if len(runs) else pd.DataFrame()
ranked = comparison.rank_models(table, weights or None) if len(table) else table
if len(pairwise):
    ranked = comparison.mark_ties(ranked, pairwise)
write_json(folder / "comparison.json", {"ranking": ranked.to_dict(orient="records"),
                                         "runs": runs.to_dict(orient="records"),
                                         "pairwise": pairwise.to_dict(orient="records"), "failures": failures})
if len(pairwise):
    pairwise.to_csv(folder / "pairwise.csv", index=False)
comparison.summary(ranked) if len(ranked) else Markdown("No model finished: nothing to rank.")

# %% [markdown]
# The full table, every metric of every model, is `comparison.json` next to this notebook.
#
# ## Differences between models against the seed-to-seed spread
# A difference smaller than the models' seed standard deviations (or than the spread of the
# per-seed paired difference) is within what retraining with another seed changes.

# %%
if several_seeds:
    display(comparison.seed_differences(runs, "accuracy").round(4))
    display(comparison.seed_differences(runs, "f1").round(4))
else:
    display(Markdown("One seed per model: no seed-to-seed spread to compare against."))

# %% [markdown]
# ## Failed models

# %%
pd.DataFrame(failures, columns=["run", "stage", "error"]) if failures else Markdown("None: every model finished.")

# %% [markdown]
# ## Paired significance (exact McNemar)

# %%
pairwise if len(pairwise) else Markdown("Fewer than two finished models: nothing to test.")

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
uncertainty = comparison.uncertainty_view(table) if len(table) else pd.DataFrame()
uncertainty if len(uncertainty) else Markdown("No run recorded calibration numbers (runs made before they existed).")

# %% [markdown]
# ## Reliability diagrams
# Accuracy against confidence per bin, on the test predictions of every seed of a model.

# %%
reliability = comparison.reliability_curves(folder, runs, comparison.ece_bins(results)) if len(runs) else {}
if reliability:
    plots.reliability_diagrams(reliability);

# %% [markdown]
# ## Risk–coverage
# The error rate among the examples a model answers when it answers only its most confident ones,
# on the test predictions of every seed of a model.

# %%
curves = comparison.risk_coverage_curves(folder, runs) if len(runs) else {}
if curves:
    plots.risk_coverage(curves);

# %% [markdown]
# ## Base model against fine-tuned
# The causal LMs prompted zero-/k-shot before fine-tuning, next to the fine-tuned model
# (encoders have no base-model baseline).

# %%
baseline = comparison.baseline_view(table) if len(table) else pd.DataFrame()
baseline if len(baseline) else Markdown("No run recorded a base-model baseline.")

# %% [markdown]
# ## Per-group quality
# The worst group and the largest gap between groups; groups below the minimum size are counted
# but not judged.

# %%
groups = comparison.group_view(table) if len(table) else pd.DataFrame()
groups if len(groups) else Markdown("No per-group numbers (the dataset has no group column, or older runs).")

# %% [markdown]
# ## Accuracy against latency

# %%
if len(table):
    plots.accuracy_vs_latency(table);

# %% [markdown]
# ## Profile of normalized metrics

# %%
if len(table):
    plots.radar(table, ["accuracy", "f1", "throughput_samples_per_sec", "latency_median_ms", "peak_rss_mb",
                        "training_time_hours"]);

# %% [markdown]
# ## Throughput

# %%
if len(table):
    plots.throughput_bars(table);
