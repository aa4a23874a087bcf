"""Honest FLOP counts and the measured matmul peak that model FLOP utilization (MFU) divides by.

Per real (non-padding) token a forward pass costs 2·N FLOPs, N = the weights of the linear
layers that run once per token: embeddings (a lookup), the vocabulary head, the per-sequence
classification head and pooler, and the LoRA adapters themselves are not counted. Training
LoRA adds 2·N for the backward pass (gradients of activations only; the base weights get none).
Attention scores are not counted either, so padding and long sequences can only lower MFU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from helpers.core.device import synchronize
from helpers.speed.timing import summarize, time_calls

# Module names whose linear layers do not run once per token (or are the vocabulary head).
NOT_PER_TOKEN = ("lm_head", "score", "classifier", "pooler")
LORA_PARTS = ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector")


@dataclass
class MatmulPeak:
    device: str
    dtype: str
    size: int
    threads: int
    gflops: float  # the median repetition
    gflops_min: float
    gflops_max: float
    repeats: int


def linear_weights(model: torch.nn.Module) -> int:
    """N: weights of the per-token linear layers (4-bit layers count their logical shape)."""
    total = 0
    for name, module in model.named_modules():
        parts = name.split(".")
        if not isinstance(module, torch.nn.Linear) or any(p in NOT_PER_TOKEN or p in LORA_PARTS for p in parts):
            continue
        total += module.in_features * module.out_features
    return total


def forward_flops_per_token(n_linear: int) -> int:
    return 2 * n_linear


def lora_train_flops_per_token(n_linear: int) -> int:
    """Forward 2·N plus backward 2·N: LoRA needs activation gradients, not base weight gradients."""
    return 4 * n_linear


def mfu(tokens_per_sec: float, flops_per_token: int, peak_gflops: float) -> float:
    """Achieved FLOP/s on real tokens as a share of the measured matmul peak."""
    return tokens_per_sec * flops_per_token / (peak_gflops * 1e9)


def peak_matmul_size(device: str) -> int:
    """A square matmul large enough to fill the device: 1,024 on a CPU (66-203 GFLOP/s on 2 cores, by the hour),
    8,192 on a GPU (params/bench-cuda.yaml's size; a 1,024 matmul leaves an H100 mostly idle)."""
    return 1024 if device == "cpu" else 8192


def matmul_peak(device: str, dtype: torch.dtype = torch.float32, size: int = 1024, warmup: int = 3,
                repeats: int = 10) -> MatmulPeak:
    """A square torch matmul measured now, with the current thread count: the physical limit the
    model's matmuls could reach on this machine at this moment (load included)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    stats = summarize(time_calls(lambda: torch.matmul(a, b), warmup, repeats, device))
    synchronize(device)
    flops = 2.0 * size**3
    return MatmulPeak(
        device=device, dtype=str(dtype).removeprefix("torch."), size=size, threads=torch.get_num_threads(),
        gflops=flops / (stats.median_ms / 1000) / 1e9, gflops_min=flops / (stats.max_ms / 1000) / 1e9,
        gflops_max=flops / (stats.min_ms / 1000) / 1e9, repeats=repeats,
    )
