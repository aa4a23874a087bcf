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
# # 02 · Train
# LoRA (or QLoRA, 4-bit NF4) fine-tuning of the model's classification head and adapters on
# the saved train split. The adapter is saved as safetensors in the run folder. A registered
# adapter a study uses as trained (its `adapters:`) is copied in instead, with its own training
# record (a merged adapter's: no steps).

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

from helpers.pipeline.run import open_run
from helpers.report import plots
from helpers.train.stage import train_model

run = open_run(model, dataset, preset, seed, run_dir, data_dir, overrides, study, holdout_group=holdout_group,
               holdout_by=holdout_by, adapter=adapter)
record = train_model(run)
pd.Series({k: record[k] for k in ("training_time_s", "steps", "epochs", "train_samples", "train_tokens",
                                  "train_tokens_per_sec", "trainable_params",
                                  "total_params", "quantization", "best_step", "best_metric",
                                  "resumed_from_step")}, name=run.model.id).to_frame()

# %% [markdown]
# ## Training curves
# The train loss with the learning-rate schedule (warm-up, then linear decay) on the right axis.
# Where the preset evaluates during training (`train.eval_strategy`), the validation loss and macro
# F1 at each evaluation, and the best step, whose adapter is the one kept
# (`train.load_best_model_at_end`); otherwise validation is predicted once, by 03_evaluate.

# %%
plots.training_curves(record["log_history"], record.get("best_step"));
