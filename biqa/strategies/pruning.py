"""Global unstructured magnitude masks and the weight-sharing pruned forward (OHEM's self-competitor).

The pruned branch is the *same* network evaluated with ``w * mask`` in place of each
pruned weight (``torch.func.functional_call``), so no copy of the model exists and the
gradients of both branches reach the same weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call


def prunable_weights(model: nn.Module, include_linear: bool = True) -> dict[str, torch.Tensor]:
    """Weights of every conv (and linear) layer of ``model.backbone`` (or ``model`` when it has
    no backbone), keyed by their name in ``model.named_parameters()``. Norm layers, biases
    and the head are never pruned."""
    root = getattr(model, "backbone", model)
    prefix = "backbone." if root is not model else ""
    kinds: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d) + ((nn.Linear,) if include_linear else ())
    out = {}
    for name, mod in root.named_modules():
        if isinstance(mod, kinds) and getattr(mod, "weight", None) is not None:
            out[f"{prefix}{name}.weight" if name else f"{prefix}weight"] = mod.weight
    return out


@torch.no_grad()
def magnitude_masks(weights: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Global magnitude pruning: the ``k = ceil(ratio * N)`` weights of smallest ``|w|`` over all
    tensors together get mask 0, all others 1 (ties broken by position, so exactly ``k`` are
    pruned). Every kept weight has ``|w| >=`` every pruned one. Returns bool masks."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    flat = torch.cat([w.detach().abs().flatten().float().cpu() for w in weights.values()])
    n = flat.numel()
    k = math.ceil(ratio * n)
    keep = torch.ones(n, dtype=torch.bool)
    if k > 0:
        keep[torch.topk(flat, k, largest=False, sorted=False).indices] = False
    masks, i = {}, 0
    for name, w in weights.items():
        masks[name] = keep[i:i + w.numel()].view_as(w).to(w.device)
        i += w.numel()
    return masks


def masked_forward(model: nn.Module, masks: dict[str, torch.Tensor], *args, **kwargs):
    """``model(*args)`` with each masked weight replaced by ``w * mask`` (shared weights).

    Buffers (BatchNorm running statistics) are passed as copies: in training mode the pruned
    branch normalises with its own batch statistics but must not pull the full model's running
    statistics towards those of a 70%-pruned network."""
    params = dict(model.named_parameters())
    overrides = {name: params[name] * m for name, m in masks.items()}
    if model.training:
        overrides.update({name: b.clone() for name, b in model.named_buffers()})
    return functional_call(model, overrides, args, kwargs, strict=False)


def sparsity(masks: dict[str, torch.Tensor]) -> float:
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / max(total, 1)
