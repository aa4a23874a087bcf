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
# # 01 · Data
# Loads the dataset through its registry entry, checks it, makes the stratified
# train/validation/test splits for this seed and saves them for the later stages (a task dataset,
# instruction or SQL: its prompts and targets, split at random or by database).

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

from helpers.data import tasks
from helpers.data.stage import example_rows, prepare_data
from helpers.pipeline.run import open_run
from helpers.report import plots
from helpers.report.escape import md

run = open_run(model, dataset, preset, seed, run_dir, data_dir, overrides, study, holdout_group=holdout_group,
               holdout_by=holdout_by, adapter=adapter)
splits, lengths = prepare_data(run)
classifying = run.dataset.task == "classification"
display(Markdown(f"**{md(splits.dataset)}** from {md(splits.source)} · fingerprint {md(splits.fingerprint)} · "
                 f"max length {run.preset.max_length} tokens of {md(run.model.id)}"
                 + ("" if classifying else f" · task: {md(run.dataset.task)}")))
splits.summary() if classifying else tasks.summary(splits, lengths)

# %% [markdown]
# ## Class balance and length in tokens

# %%
if classifying:
    plots.data_card(splits, lengths, run.preset.max_length)
else:
    display(Markdown("A task dataset has no classes; its prompt and target lengths are in the table above."))

# %% [markdown]
# ## Findings of the data checks

# %%
pd.set_option("display.max_colwidth", None)  # a finding's message is read whole
findings = pd.DataFrame([f.__dict__ for f in splits.findings], columns=["level", "check", "split", "count", "message"])
findings if len(findings) else Markdown("No findings: no empty texts, duplicates or train/test overlap.")

# %% [markdown]
# ## Example rows per class (train)

# %%
if classifying:
    display(example_rows(splits))
else:
    display(splits.train[["text", "target"]].head(4).assign(text=lambda d: d["text"].str.slice(0, 300)))
