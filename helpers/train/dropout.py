"""Dropout with its masks drawn by numpy, for training on a CPU.

torch's CPU dropout samples every mask element through a Bernoulli draw from mt19937; in a LoRA
step of SmolLM2-135M (every adapter drops its own copy of its input) that was 13 % of the step's
time, second only to the matmuls. numpy's SFC64 bit generator fills the same masks about three
times faster. Each mask element keeps its input when a 16-bit uniform integer is
at least round(p * 2**16), so p holds to within 2**-17; the generator is seeded from torch's, so a
seeded run draws the same masks every time.
"""
from __future__ import annotations

import numpy as np
import torch

LEVELS = 2**16


class NumpyDropout(torch.nn.Module):
    """`torch.nn.Dropout(p)` in training and evaluation, with numpy drawing the mask."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        seed = int(torch.randint(2**62, (1,)))
        bits = np.random.Generator(np.random.SFC64(seed)).bytes(2 * x.numel())
        keep = np.frombuffer(bits, np.uint16).reshape(x.shape) >= self.threshold
        mask = torch.from_numpy(keep.astype(np.float32)).mul_(LEVELS / (LEVELS - self.threshold))
        return x * mask.to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_numpy_dropout(model: torch.nn.Module) -> int:
    """Swap every `nn.Dropout` with p > 0 for a NumpyDropout of the same p (LoRA's adapter
    dropouts included); returns how many were swapped."""
    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if type(child) is torch.nn.Dropout and child.p > 0]
    for parent, name, child in swaps:
        replacement = NumpyDropout(child.p)
        replacement.train(child.training)
        setattr(parent, name, replacement)
    return len(swaps)
