"""Int8 inference of a merged model through torchao, every linear layer of the body quantized and
the head (`score`, `classifier`, `lm_head`) kept as trained.

Modes (one entry each; the bench measures the ones its params name). Measured on SmolLM2-135M
trained by `params/bench-accuracy.yaml` on three seeds (2026-11-29, 2 CPU cores, 1,000 Fine Foods
test reviews each at 256 tokens, batch size 1), against the same models in fp32:
- `weight-only`: int8 weights with one scale per output channel, activations in the model's
  dtype (torchao `Int8WeightOnlyConfig`): +0.3 points pooled (18 / 10 reviews only one of them
  got right, p = 0.18), +0.1 to +0.4 on single runs, the weights in 210 MB instead of 513, at
  0.95-0.98x the speed: on this CPU the weights are widened back before an fp32 matmul, so what it
  saves is memory.
- `dynamic`: int8 weights and int8 activations scaled per token (torchao
  `Int8DynamicActivationInt8WeightConfig`): −0.2 points pooled (30 / 35, p = 0.62) but −1.2 to
  +0.8 on single runs, at 0.97-1.13x the throughput.
Three more seeds each at commit fa2ed84 (SmolLM2 and Gemma 3 270M): weight-only +0.27 / −0.03
pooled again, at 0.62-0.98x the speed (0.6x while the host keeps the two vCPUs on cores of two
L3 caches: each layer's widened weights cross between them; docs/performance.md#the-hosts-two-states);
dynamic 0.00 on SmolLM2 but −0.93 on Gemma (19 / 47, seed 7 −2.2), so weight-only is the mode
that keeps accuracy. Those fp32 answers were scored with LoRA's dropout still on (the bench scored
its models in training mode until commit e59b887); in evaluation mode, on an Intel Xeon, Gemma's
seed 7 gave weight-only −0.1 and dynamic −0.8, SmolLM2's seed 1337 +0.1 and −0.1
(docs/performance.md#int8-inference).
torch's own dynamic int8 (`quantize_dynamic`, one activation scale per tensor) ran 2.5x faster on
SST-2 but lost 7.9 points: the inputs of SmolLM2's `down_proj` carry outlier channels one scale
cannot hold (that layer alone cost 5.5 points); docs/performance.md#int8-inference.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads where the work is: the CLI reads INT8_MODES for its options
    import torch

INT8_MODES = ("weight-only", "dynamic")


def _configs() -> dict:
    # torchao logs a line for each of its CUDA kernel libraries it cannot load on a CPU machine.
    logging.getLogger("torchao").setLevel(logging.ERROR)
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    return {"weight-only": Int8WeightOnlyConfig, "dynamic": Int8DynamicActivationInt8WeightConfig}


def quantize_int8(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """Quantize `model`'s body in place (a merged model: LoRA layers must be folded in first) and
    return it; the head stays in its dtype."""
    if mode not in INT8_MODES:
        raise ValueError(f"int8 mode must be one of {list(INT8_MODES)}, got {mode!r}")
    config = _configs()[mode]()  # first: it quiets torchao's import
    import torch
    from torchao.quantization import quantize_

    from helpers.train.models import HEAD_MODULES

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
