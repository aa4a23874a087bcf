"""04_speed: single-example latency and batched throughput of the fine-tuned model, with the
host's matmul rate measured beside them and the share of it the batched pass reached (inference MFU)."""
from __future__ import annotations

import dataclasses

from helpers.data.context import model_texts, token_values
from helpers.data.splits import read_splits
from helpers.generate import stage as generation
from helpers.generate import task_stage
from helpers.pipeline.run import Run
from helpers.speed import flops, timing
from helpers.train import models


def inference_mfu(model, tokens_per_sec: float, device: str, dtype) -> dict:
    """The matmul peak measured now in the dtype the model ran in (how fast this host ran today), the
    forward FLOPs per token (2N, helpers/speed/flops.py) and the batched pass's share of that peak.
    A generator's tokens/s counts the tokens it wrote, not its prompts: its MFU is a lower bound."""
    peak = flops.matmul_peak(device, dtype, flops.peak_matmul_size(device))
    per_token = flops.forward_flops_per_token(flops.linear_weights(model))
    return {"matmul_peak": dataclasses.asdict(peak), "inference_flops_per_token": per_token,
            "inference_mfu": flops.mfu(tokens_per_sec, per_token, peak.gflops)}


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
    record.update(inference_mfu(model, record["throughput_tokens_per_sec"], run.device, run.precision.dtype))
    run.write_stage("04_speed", record)
    return record
