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
# # 06 · Benchmark: our path against the HF Trainer baseline (pad to max length)
# Written by `senticompare bench params/bench.yaml`: in one run on the same machine, model, data
# and seed, training with the HF Trainer baseline (HF Trainer + peft, every text padded to
# `max_length`, default settings) against ours (the same batches, each sorted into micro-batches), and
# `transformers.pipeline("text-classification")` defaults against our length-sorted prediction
# path. FLOPs are counted per real token (2·N forward, 4·N LoRA training, N = per-token linear
# weights) and divided by a torch matmul peak measured in the same run (MFU). Every number sits
# beside the machine load it was measured under.

# %% tags=["parameters"]
bench_dir = "reports/benchmarks/cpu-amd-epyc-2t"

# %%
import pandas as pd

from helpers.bench import tables
from helpers.core.paths import resolve

records = tables.load_results(resolve(bench_dir))
pd.set_option("display.float_format", "{:.3g}".format)
tables.summary_table(records)

# %% [markdown]
# ## Targets: ≥ 2× the baseline and ≥ 50 % of the matmul peak

# %%
tables.targets_table(records)

# %% [markdown]
# ## Accuracy over seeds: each path's mean, and McNemar on the discordant answers summed over seeds
# (`senticompare bench <params> --seed N` adds a seed's `<model>.seed<N>.json`)

# %%
tables.seeds_table(records)

# %%
tables.throughput_figure(records);

# %%
tables.mfu_figure(records);

# %% [markdown]
# ## Training: tokens/s (steady state, per-step median/min/max), epoch time, memory, accuracy

# %%
tables.training_table(records)

# %% [markdown]
# ## Inference at each batch size (median of repeated passes, min–max bars)

# %%
tables.batch_size_figure(records);

# %%
tables.inference_table(records)

# %% [markdown]
# ## LoRA vs QLoRA (4-bit NF4): weights footprint, step time, accuracy

# %%
tables.memory_table(records)

# %% [markdown]
# ## Int8 inference: our trained model against itself (params `int8`)

# %%
tables.int8_table(records)

# %% [markdown]
# ## 1 vs 2 threads, each against a matmul peak at that thread count

# %%
tables.threads_table(records)

# %% [markdown]
# ## Scaling: 1×, 2×, 4× the training examples at two max lengths

# %%
tables.scaling_table(records)

# %%
tables.scaling_figure(records);

# %% [markdown]
# ## Where a step's time goes: torch.profiler per training step and inference pass
# (bench runs with `profile_steps`; on a GPU the device's busy share shows a host-bound step)

# %%
tables.profile_table(records)
