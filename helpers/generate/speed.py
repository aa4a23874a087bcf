"""What a user of a generator feels, for 04_speed of a generative run: time to first token
(prompt processing and the first decode step), decode tokens/s, end-to-end latency per answer
(median and P99), batched generation throughput and memory. Greedy, KV cache on, after warm-up;
CUDA work synchronized (helpers/speed/timing.py)."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from helpers.config import GenerationConfig, SpeedConfig
from helpers.generate import decode
from helpers.speed.timing import machine_load, resources, summarize, time_calls


def measure_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                       speed: SpeedConfig, generation: GenerationConfig, device: str,
                       schema: dict | None = None) -> dict:
    """The numbers of the module docstring; with `schema`, decoding constrained to it, as the run evaluated."""
    prompts = list(prompts)[: speed.max_examples]
    if not prompts:
        raise ValueError("no prompts to time")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    load_before = machine_load()

    def answer(texts: list[str], max_new_tokens: int = generation.max_new_tokens, batch_size: int = 1) -> list[str]:
        return decode.generate(model, tokenizer, texts, max_new_tokens, batch_size, device, schema)

    single = prompts[len(prompts) // 2]  # a typical example, not the first
    new_tokens = len(tokenizer(answer([single])[0], add_special_tokens=False)["input_ids"]) + 1  # + the stop token
    first = summarize(time_calls(lambda: answer([single], 1), speed.warmup, speed.repeats, device))
    whole = summarize(time_calls(lambda: answer([single]), speed.warmup, speed.repeats, device))
    batch_answers = answer(prompts, batch_size=generation.batch_size)
    batch_tokens = int(sum(len(ids) + 1 for ids in tokenizer(batch_answers, add_special_tokens=False)["input_ids"]))
    batch_runs = summarize(time_calls(lambda: answer(prompts, batch_size=generation.batch_size),
                                      0, max(3, speed.repeats // 10), device))
    batch_s = batch_runs.median_ms / 1000.0
    decode_s = (whole.median_ms - first.median_ms) / 1000.0
    record = {
        "ttft_ms": first.median_ms,
        "ttft_p99_ms": first.p99_ms,
        "ttft_mean_ms": first.mean_ms,
        "latency_median_ms": whole.median_ms,
        "latency_p99_ms": whole.p99_ms,
        "latency_mean_ms": whole.mean_ms,
        "latency_example_tokens": len(tokenizer(single, add_special_tokens=False)["input_ids"]),
        "latency_new_tokens": new_tokens,
        "decode_tokens_per_sec": (new_tokens - 1) / decode_s if new_tokens > 1 and decode_s > 0 else None,
        "throughput_samples_per_sec": len(prompts) / batch_s,
        "throughput_tokens_per_sec": batch_tokens / batch_s,  # generated tokens
        "throughput_batch_size": generation.batch_size,
        "throughput_examples": len(prompts),
        "throughput_runs": asdict(batch_runs),
        "new_tokens_mean": batch_tokens / len(prompts),
        "new_tokens_p99": float(np.percentile([len(ids) + 1 for ids in tokenizer(
            batch_answers, add_special_tokens=False)["input_ids"]], 99)),
        "max_new_tokens": generation.max_new_tokens,
        "decoding": "json_schema" if schema else "free",
        **resources(model, device, load_before),
    }
    return record
