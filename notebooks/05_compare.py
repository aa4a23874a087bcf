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
# McNemar tests on the shared test examples (Holm-corrected), and the trade-off plots.

# %% tags=["parameters"]
study = "scratch"
dataset = "finefoods"
study_dir = "experiments/scratch/finefoods"
weights = {}
seed = 1337

# %%
import pandas as pd
from IPython.display import HTML, Markdown, display

from helpers import comparison, plots, significance
from helpers.io import write_json
from helpers.paths import resolve

folder = resolve(study_dir)
results, failures = comparison.collect_runs(folder)
table = comparison.results_table(results)
display(Markdown(f"**{len(results)}** model(s) finished on **{dataset}**, **{len(failures)}** failed."))

# %% [markdown]
# ## Ranking
# Composite score: each metric min–max normalized across models (1 = best; latency inverted),
# then weighted. "Not significantly different from" names a neighbour in the ranking whose
# accuracy difference is not significant (exact McNemar, Holm-corrected, α = 0.05).

# %%
pairwise = significance.pairwise_mcnemar(comparison.correctness(folder, table)) if len(table) else pd.DataFrame()
ranked = comparison.rank_models(table, weights or None) if len(table) else table
if len(pairwise):
    ranked = comparison.mark_ties(ranked, pairwise)
write_json(folder / "comparison.json", {"ranking": ranked.to_dict(orient="records"),
                                         "pairwise": pairwise.to_dict(orient="records"), "failures": failures})
if len(pairwise):
    pairwise.to_csv(folder / "pairwise.csv", index=False)
comparison.summary(ranked) if len(ranked) else Markdown("No model finished: nothing to rank.")

# %% [markdown]
# The full table, every metric of every model, is `comparison.json` next to this notebook.
#
# ## Failed models

# %%
pd.DataFrame(failures, columns=["run", "stage", "error"]) if failures else Markdown("None: every model finished.")

# %% [markdown]
# ## Paired significance (exact McNemar)

# %%
pairwise if len(pairwise) else Markdown("Fewer than two finished models: nothing to test.")

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
