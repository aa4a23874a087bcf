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
# # 04 · Speed
# Single-example latency (median, P99; for a classifier the time to first token is the time
# until its prediction is ready) and batched throughput of the fine-tuned model, after a
# warm-up, with the machine's load recorded before and after.

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

from helpers.pipeline.run import assemble_results, open_run
from helpers.speed.stage import measure_speed

run = open_run(model, dataset, preset, seed, run_dir, data_dir, overrides, study, holdout_group=holdout_group,
               holdout_by=holdout_by, adapter=adapter)
record = measure_speed(run)
pd.Series({k: v for k, v in record.items() if not isinstance(v, dict)}, name=run.model.id).to_frame()

# %%
pd.DataFrame({"before": record["load_before"], "after": record["load_after"]})

# %% [markdown]
# The run's stages are merged into `results.json`:

# %%
results = assemble_results(run)
pd.Series({k: v for k, v in results.items() if not isinstance(v, (dict, list))}, name="results.json").to_frame()
