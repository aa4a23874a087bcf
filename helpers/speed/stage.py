"""04_speed: single-example latency and batched throughput of the fine-tuned model, with the
host's matmul rate measured beside them."""
from __future__ import annotations

import dataclasses

from helpers.data.context import model_texts, token_values
from helpers.data.splits import read_splits
from helpers.generate import stage as generation
from helpers.generate import task_stage
from helpers.pipeline.run import Run
from helpers.speed import flops, timing
from helpers.train import models


def measure_speed(run: Run) -> dict:
    """04_speed: single-example latency and batched throughput of the fine-tuned model (for a
    generator also time to first token and decode tokens/s)."""
    splits = read_splits(run.data_folder)
    model = models.load_finetuned(run.model, run.adapter_dir, splits.labels, run.precision,
                                  run.preset.train.quantization)
    if run.dataset.task != "classification":  # the same, on the task's prompts
        record = task_stage.speed(run, model, generation.tokenizer_for(run), splits.test)
    elif run.model.method == "generate":  # time to first token, decode tokens/s, answers/s
        record = generation.speed(run, model, generation.tokenizer_for(run), splits.test["text"].tolist(),
                                  splits.labels)
    else:
        tokenizer = models.load_tokenizer(run.model, run.preset.truncation_side,
                                          token_values(splits, run.preset.context_mode))
        record = timing.measure_inference(model, tokenizer, model_texts(splits.test, run.preset.context_mode),
                                          run.preset.speed,
                                          run.preset.max_length, run.device)
    record["matmul_peak"] = dataclasses.asdict(flops.matmul_peak(run.device))  # how fast this host ran today
    run.write_stage("04_speed", record)
    return record
