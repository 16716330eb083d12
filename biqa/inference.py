"""Inference-only rewrites of a trained network (the scorer's copy; never used for training).

:func:`fold_batchnorm` folds every eval-mode BatchNorm that directly follows a convolution into
that convolution's weights and bias, and drops the BatchNorm (keeping the activation of timm's
``BatchNormAct2d``). Same function, one pass over the activations less per convolution: on the
CPU, where a large image's activations do not fit the caches, that pass is a sizeable share of
a forward. onnxruntime does the same fusion on its own graph.
"""
from __future__ import annotations

import torch
from torch import nn


def _bn_replacement(bn: nn.Module) -> nn.Module | None:
    """What is left of a BatchNorm once folded: nothing, or timm's activation (and dropout)."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    if hasattr(bn, "act") and hasattr(bn, "drop") and isinstance(bn, nn.BatchNorm2d):  # timm BatchNormAct2d
        return nn.Sequential(bn.drop, bn.act)
    return None


def _conv_bn_pairs(model: nn.Module, probe: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, bn name) pairs where the BN's input is exactly the conv's output, seen in one forward."""
    names = {m: n for n, m in model.named_modules()}
    produced: dict[int, str] = {}
    pairs: list[tuple[str, str]] = []
    hooks = []

    def conv_hook(m, inp, out):
        produced[id(out)] = names[m]

    def bn_hook(m, inp, out):
        src = produced.get(id(inp[0]))
        if src is not None:
            pairs.append((src, names[m]))

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(bn_hook))
    try:
        with torch.inference_mode():
            model(probe)
    finally:
        for h in hooks:
            h.remove()
    return pairs


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


@torch.no_grad()
def fold_batchnorm(model: nn.Module, *, check: bool = True, atol: float = 1e-4) -> int:
    """Fold conv -> BatchNorm pairs of an eval-mode ``model`` in place; returns how many were folded.

    Pairs are found by running one small forward with hooks (a BN whose input tensor is a conv's
    output). Each conv/BN is used once per forward in the models biqa builds; a model that reuses
    them, or whose outputs change by more than ``atol`` after folding, is restored unchanged (0).
    """
    if model.training:
        raise ValueError("fold_batchnorm is for eval-mode models")
    probe = torch.randn(2, 3, 67, 83, generator=torch.Generator().manual_seed(0))
    pairs = _conv_bn_pairs(model, probe)
    convs = [c for c, _ in pairs]
    if not pairs or len(set(convs)) != len(convs) or len({b for _, b in pairs}) != len(pairs):
        return 0
    with torch.inference_mode():
        ref = model(probe)
    saved = []
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        rest = _bn_replacement(bn)
        if rest is None or bn.running_mean is None or conv.groups < 1:
            continue
        saved.append((conv_name, bn_name, conv.weight.detach().clone(),
                      None if conv.bias is None else conv.bias.detach().clone(), conv.bias is None, bn))
        inv = torch.rsqrt(bn.running_var.float() + bn.eps)
        gamma = bn.weight.float() if bn.weight is not None else torch.ones_like(inv)
        beta = bn.bias.float() if bn.bias is not None else torch.zeros_like(inv)
        scale = gamma * inv
        w = conv.weight.float() * scale.view(-1, 1, 1, 1)
        b0 = conv.bias.float() if conv.bias is not None else torch.zeros_like(scale)
        b = beta + (b0 - bn.running_mean.float()) * scale
        conv.weight = nn.Parameter(w.to(conv.weight.dtype), requires_grad=False)
        conv.bias = nn.Parameter(b.to(conv.weight.dtype), requires_grad=False)
        _set(model, bn_name, rest)
    if check and saved:
        with torch.inference_mode():
            out = model(probe)
        worst = max(float((ref[k].float() - out[k].float()).abs().max()) for k in ref) \
            if isinstance(ref, dict) else float((ref - out).abs().max())
        if not worst <= atol:
            for conv_name, bn_name, w, b, had_none, bn in saved:
                conv = model.get_submodule(conv_name)
                conv.weight = nn.Parameter(w, requires_grad=False)
                conv.bias = None if had_none else nn.Parameter(b, requires_grad=False)
                _set(model, bn_name, bn)
            return 0
    return len(saved)
