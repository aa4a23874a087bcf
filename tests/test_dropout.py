"""helpers/train/dropout.py: numpy-drawn dropout masks behave as torch's dropout."""
from __future__ import annotations

import pytest
import torch

from helpers import config
from helpers.core.device import precision_for
from helpers.train import models
from helpers.train.dropout import NumpyDropout, use_numpy_dropout


def test_drops_a_share_p_and_rescales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(64, 128, 96)
    y = NumpyDropout(0.1).train()(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.005)
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 2**16 / (2**16 - round(0.1 * 2**16))))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_identity_in_eval_and_at_zero():
    x = torch.randn(4, 8)
    assert NumpyDropout(0.5).eval()(x) is x
    assert NumpyDropout(0.0).train()(x) is x


def test_masks_follow_torchs_seed_and_differ_between_calls():
    x = torch.ones(32, 32)
    drop = NumpyDropout(0.3).train()
    torch.manual_seed(7)
    first, second = drop(x), drop(x)
    torch.manual_seed(7)
    assert torch.equal(drop(x), first)
    assert not torch.equal(first, second)


def test_gradient_flows_through_the_kept_elements_only():
    torch.manual_seed(1)
    x = torch.ones(16, 16, requires_grad=True)
    y = NumpyDropout(0.5).train()(x)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())


def test_bad_probability_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        NumpyDropout(1.0)


def test_swaps_the_lora_adapter_dropouts_of_a_peft_model():
    spec = config.get_model("smollm2-135m")
    train_cfg = config.load_preset("quick").train
    tokenizer = models.load_tokenizer(spec)
    model = models.add_lora(models.load_base(spec, ["a", "b"], precision_for("cpu"), tokenizer=tokenizer),
                            spec, train_cfg)
    lora_dropouts = [m for name, m in model.named_modules() if name.endswith("lora_dropout.default")]
    assert lora_dropouts and all(type(m) is torch.nn.Dropout for m in lora_dropouts)
    assert use_numpy_dropout(model) == len(lora_dropouts)
    swapped = [m for name, m in model.named_modules() if name.endswith("lora_dropout.default")]
    assert all(isinstance(m, NumpyDropout) and m.p == train_cfg.lora_dropout for m in swapped)
    assert not any(type(m) is torch.nn.Dropout and m.p > 0 for m in model.modules())
