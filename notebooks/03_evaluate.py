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
# # 03 · Evaluate
# Predicts the test split with the fine-tuned model, saves every prediction with its class
# probabilities, and computes the quality metrics with 95 % bootstrap intervals next to the
# majority-class baseline.

# %% tags=["parameters"]
model = "smollm2-135m"
dataset = "finefoods"
preset = "quick"
seed = 1337
run_dir = "experiments/scratch/finefoods/smollm2-135m"
data_dir = None
overrides = {}
study = "scratch"

# %%
import pandas as pd

from helpers import plots, stages
from helpers.run import open_run

run = open_run(model, dataset, preset, seed, run_dir, data_dir, overrides, study)
record, predictions = stages.evaluate_model(run)
keys = ("accuracy", "f1", "precision", "recall", "balanced_accuracy")
pd.DataFrame({run.model.id: {k: record[k] for k in keys},
              "majority baseline": {k: record["baseline_majority"][k] for k in keys}})

# %%
pd.DataFrame({"95 % CI": {"accuracy": record["accuracy_ci95"], "f1 (macro)": record["f1_ci95"]}})

# %% [markdown]
# ## Confusion matrix

# %%
plots.confusion_heatmap(record["confusion_matrix"], record["labels"], title=run.model.id);
