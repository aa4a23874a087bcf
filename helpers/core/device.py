"""Which device to use and at which precision (the original design's precision table)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    device: str
    dtype: torch.dtype  # weights and compute
    fp16: bool  # Trainer mixed precision flags
    bf16: bool
    qlora_compute_dtype: torch.dtype


def detect_device(prefer: str | None = None) -> str:
    if prefer:
        return prefer
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def precision_for(device: str) -> Precision:
    """bf16 mixed precision on CUDA where supported, else fp16; full fp32 on MPS and CPU
    (this CPU has no fast bf16: it runs ~25x slower than fp32)."""
    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        half = torch.bfloat16 if bf16 else torch.float16
        return Precision(device, torch.float32, fp16=not bf16, bf16=bf16, qlora_compute_dtype=half)
    return Precision(device, torch.float32, fp16=False, bf16=False, qlora_compute_dtype=torch.float32)


CUDA_PAD_MULTIPLE = 64


def pad_multiple(device: str) -> int | None:
    """Batch lengths are rounded up to this on CUDA (a few cached attention plans and CUDA graphs
    instead of one per length), in training and in prediction; None elsewhere, where every padding
    token costs compute."""
    return CUDA_PAD_MULTIPLE if device == "cuda" else None


def synchronize(device: str) -> None:
    """Wait for queued kernels so a clock read after it measures finished work."""
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()
