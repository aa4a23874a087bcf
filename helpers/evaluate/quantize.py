"""Int8 inference of a merged classifier through torchao, every linear layer of the body quantized
and the head (`score`, `classifier`) kept as trained.

Modes (one entry each; the bench measures the ones its params name):
- `weight-only`: int8 weights with one scale per output channel, activations in the model's
  dtype (torchao `Int8WeightOnlyConfig`). Measured on SmolLM2-135M fine-tuned on 2,000 SST-2
  sentences (2026-11-29, 2 CPU cores, all 1,821 test sentences): 0.855 against 0.857 in fp32,
  4 / 7 sentences only one of them got right (p = 0.55), at 0.93x the fp32 speed on this CPU
  (the weights are widened before an fp32 matmul); what it saves is memory.
- `dynamic`: int8 weights and int8 activations scaled per token (torchao
  `Int8DynamicActivationInt8WeightConfig`): 0.88 points below fp32 (23 / 39, p = 0.056) at 1.7x
  fp32's throughput in batches of 32 and 1.1x at batch size 1 on 256-token reviews.
torch's own dynamic int8 (`quantize_dynamic`, one activation scale per tensor) ran 2.5x faster
but lost 7.9 points: the inputs of SmolLM2's `down_proj` carry outlier channels one scale cannot
hold (that layer alone cost 5.5 points); docs/performance.md has the table.
"""
from __future__ import annotations

import logging

import torch

from helpers.train.models import HEAD_MODULES


def _configs() -> dict:
    # torchao logs a line for each of its CUDA kernel libraries it cannot load on a CPU machine.
    logging.getLogger("torchao").setLevel(logging.ERROR)
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    return {"weight-only": Int8WeightOnlyConfig, "dynamic": Int8DynamicActivationInt8WeightConfig}


INT8_MODES = ("weight-only", "dynamic")


def quantize_int8(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """Quantize `model`'s body in place (a merged model: LoRA layers must be folded in first) and
    return it; the head stays in its dtype."""
    if mode not in INT8_MODES:
        raise ValueError(f"int8 mode must be one of {list(INT8_MODES)}, got {mode!r}")
    config = _configs()[mode]()
    from torchao.quantization import quantize_

    def in_body(module: torch.nn.Module, name: str) -> bool:
        return isinstance(module, torch.nn.Linear) and name.split(".")[-1] not in HEAD_MODULES

    quantize_(model, config, filter_fn=in_body)
    return model


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds, looking inside tensor subclasses (a quantized weight is int8 data
    plus its scales; its own element size is the float dtype it stands for)."""
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def weights_mb(model: torch.nn.Module) -> float:
    """The model's parameters and buffers in MiB, tied weights counted once."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor_bytes(tensor)
    return total / 2**20
