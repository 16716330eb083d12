"""Depthwise convolutions in float32 under bf16 autocast (biqa.precision)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from biqa.models import create_model
from biqa.precision import float32_depthwise_, is_depthwise
from biqa.strategies.pruning import magnitude_masks, masked_forward, prunable_weights


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("lite0-mos", pretrained=False).train().to(memory_format=torch.channels_last)


def _dtypes_of_conv_outputs(model, x):
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((is_depthwise(m), o.dtype)))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_depthwise_layers_run_in_float32_the_rest_in_bf16():
    m = _model()
    n_dw = sum(is_depthwise(mod) for mod in m.modules())
    assert n_dw == 16  # EfficientNet-Lite0: one depthwise conv per MBConv block
    keys = list(m.state_dict())
    assert float32_depthwise_(m) == n_dw
    assert float32_depthwise_(m) == n_dw  # idempotent
    assert list(m.state_dict()) == keys
    x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    seen = _dtypes_of_conv_outputs(m, x)
    assert {dt for dw, dt in seen if dw} == {torch.float32}
    assert {dt for dw, dt in seen if not dw} == {torch.bfloat16}
    # outside autocast nothing changes
    m.eval()
    ref = copy.deepcopy(m)
    for mod in ref.modules():
        mod.__dict__.pop("forward", None)
    with torch.no_grad():
        assert torch.equal(m(x)["z"], ref(x)["z"])


def test_patched_layer_is_exactly_the_float32_layer_under_autocast():
    """A patched depthwise conv under bf16 autocast computes what the plain layer computes in
    float32 (outputs and gradients bit for bit); unpatched, autocast would round to bf16."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=8)
    ref = copy.deepcopy(conv)
    float32_depthwise_(conv)
    x = torch.randn(3, 8, 17, 19).contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x1)
    y_ref = ref(x2)
    assert y.dtype == torch.float32 and torch.equal(y, y_ref)
    g = torch.randn_like(y_ref)
    y.backward(g)
    y_ref.backward(g)
    assert torch.equal(conv.weight.grad, ref.weight.grad) and torch.equal(x1.grad, x2.grad)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ref(x).dtype == torch.bfloat16  # what the patch avoids


def test_whole_model_close_to_float32():
    m = create_model("lite0-mos", pretrained=True).eval().to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        z32 = m(x)["z"]
        float32_depthwise_(m)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = m(x)["z"].float()
    assert torch.allclose(z, z32, atol=0.03)


def test_pruned_branch_uses_masked_weights_through_the_patched_layers():
    m = _model()
    float32_depthwise_(m)
    masks = magnitude_masks(prunable_weights(m), 0.7)
    x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    m.eval()
    with torch.no_grad():
        out_p = masked_forward(m, masks, x)["z"]
        pruned = copy.deepcopy(m)
        for name, p in pruned.named_parameters():
            if name in masks:
                p.mul_(masks[name])
        assert torch.allclose(out_p, pruned(x)["z"], atol=1e-6)
        assert not torch.allclose(out_p, m(x)["z"], atol=1e-3)


@pytest.mark.parametrize("amp,setting,expect", [(True, "auto", True), (False, "auto", False),
                                                (True, False, False), (False, True, True)])
def test_trainer_applies_it_with_bf16_on_the_cpu(tiny_records, tmp_path, amp, setting, expect):
    from biqa.config import load_config
    from biqa.trainer import Trainer

    cfg = {"name": "t", "out_dir": str(tmp_path), "progress": False,
           "data": {"records": tiny_records, "crop_size": 32, "num_workers": 0},
           "model": {"preset": "lite0-mos", "pretrained": False},
           "train": {"epochs": 1, "batch_size": 4, "amp": amp, "fp32_depthwise": setting}}
    tr = Trainer(load_config(cfg))
    patched = [getattr(mod, "_biqa_fp32", False) for mod in tr.strategy.model.modules() if is_depthwise(mod)]
    assert patched and all(p is expect for p in patched)


def test_bad_setting_is_an_error(tiny_records, tmp_path):
    from biqa.config import load_config
    from biqa.trainer import Trainer

    cfg = {"name": "t", "out_dir": str(tmp_path), "progress": False,
           "data": {"records": tiny_records, "crop_size": 32, "num_workers": 0},
           "model": {"preset": "lite0-mos", "pretrained": False}, "train": {"fp32_depthwise": "yes"}}
    with pytest.raises(ValueError, match="fp32_depthwise"):
        Trainer(load_config(cfg))
