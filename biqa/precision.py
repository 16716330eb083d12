"""Mixed-precision helpers for training on CPUs.

Under bf16 autocast on a CPU, PyTorch's backward pass of a *depthwise* convolution (``groups ==
in_channels``) is several times slower than its float32 counterpart, while the dense (1x1 / 3x3)
convolutions are fastest in bf16. Measured on this project's 2-core CPU machine (torch 2.14.1,
channels-last, batch 16), the backward of EfficientNet-Lite0's stride-2 5x5 depthwise conv on a
144-channel 59x59 map took 100 ms in bf16 and 18 ms in float32; over the whole network the bf16
backward was 5x its forward, and depthwise convolutions were most of it.

:func:`float32_depthwise_` makes every depthwise convolution of a module run in float32 (autocast
off for that layer, its input cast up), everything else still autocasts to bf16. A Lite0 training
step of 16 crops at 224 px went from 1.15 s to 0.67 s in a bare loop, and the baseline step of
``benchmarks/strategies.py --step-time-only`` (inside the trainer) from 1.21 s to 0.63 s. The
weights, their names and the checkpoints are unchanged; only the arithmetic of those layers is done
at higher precision. The trainer applies it to the networks it
trains when ``train.amp`` is on and the device is a CPU (``train.fp32_depthwise: auto``).
"""
from __future__ import annotations

import types

import torch
from torch import nn


def is_depthwise(mod: nn.Module) -> bool:
    """A 2-d convolution with one filter group per input channel (and more than one channel)."""
    return isinstance(mod, nn.Conv2d) and mod.groups > 1 and mod.groups == mod.in_channels


def _float32_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False):
        return type(self).forward(self, x.float())


def float32_depthwise_(module: nn.Module) -> int:
    """Run every depthwise convolution in ``module`` in float32 under autocast (in place).

    The layer's own class ``forward`` (padding included, e.g. timm's ``Conv2dSame``) is called with
    autocast disabled and a float32 input; the output is float32 and the next autocast op casts it
    down again. Parameters are untouched, so ``state_dict`` keys, ``torch.func.functional_call``
    (OHEM's masked branch) and DDP work as before. Idempotent. Returns how many layers run in float32.
    """
    n = 0
    for mod in module.modules():
        if is_depthwise(mod):
            if getattr(mod, "_biqa_fp32", False) is False:
                mod.forward = types.MethodType(_float32_forward, mod)
                mod._biqa_fp32 = True
            n += 1
    return n


# ---------------------------------------------------------------- bf16 scoring (biqa score --precision bf16)

def native_bf16(device: "str | torch.device" = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively: a GPU that supports it, or a CPU with AVX512-BF16 /
    AMX (oneDNN's bf16 kernels). Elsewhere bf16 would be emulated, slower than float32."""
    from .host import resolve_device

    dev = resolve_device(device)  # "auto" too
    if dev.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported())
        except (AssertionError, RuntimeError):  # no usable CUDA
            return False
    if dev.type != "cpu":
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class AutocastModel(nn.Module):
    """Scores with ``model`` under bf16 autocast (convolutions and matrix products in bfloat16, the rest
    as autocast decides); the outputs come back as float32. The weights stay float32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.model, self.dtype = model, dtype
        self.trained = getattr(model, "trained", True)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(x.device.type, dtype=self.dtype):
            out = self.model(x)
        return {k: v.float() for k, v in out.items()}
