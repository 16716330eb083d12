"""Supervised losses for quality regression (pure functions on tensors).

All score losses take ``pred`` and ``target`` of shape ``[B]`` (any scale, usually
labels normalised to [0, 1]) and return a scalar. :func:`emd_loss` takes two
probability distributions ``[B, N]``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred.float(), target.float())


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred.float(), target.float())


def plcc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(1 - PLCC(pred, target)) / 2`` over the batch, in [0, 1]. Needs B >= 2."""
    p = pred.float() - pred.float().mean()
    t = target.float() - target.float().mean()
    r = (p * t).sum() / (p.norm() * t.norm() + eps)
    return (1.0 - r) / 2.0


def fidelity_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pairwise fidelity loss over all ordered pairs i != j of the batch.

    The model's probability that image i is better than j is
    ``p = Phi((f_i - f_j) / sqrt(2))`` (Thurstone, unit variances); the label is
    ``p* = 1[y_i > y_j]`` (0.5 for ties). Fidelity loss
    ``1 - sqrt(p p*) - sqrt((1 - p)(1 - p*))``, averaged over pairs.
    """
    f = pred.float()
    y = target.float()
    diff = (f[:, None] - f[None, :]) / math.sqrt(2.0)
    p = 0.5 * (1.0 + torch.erf(diff / math.sqrt(2.0)))  # standard normal CDF
    ps = (y[:, None] > y[None, :]).float() + 0.5 * (y[:, None] == y[None, :]).float()
    loss = 1.0 - torch.sqrt(p * ps + eps) - torch.sqrt((1.0 - p) * (1.0 - ps) + eps)
    off = ~torch.eye(len(f), dtype=torch.bool, device=f.device)
    return loss[off].mean() if off.any() else loss.sum() * 0.0


def emd_loss(p: torch.Tensor, q: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """Earth mover's distance between distributions on ordered bins (NIMA).

    ``EMD_r(p, q) = ((1/N) sum_k |CDF_p(k) - CDF_q(k)|^r)^(1/r)``, mean over the batch.
    ``p, q``: ``[B, N]``, rows summing to 1.
    """
    if p.shape != q.shape:
        raise ValueError(f"emd_loss: shapes differ {tuple(p.shape)} vs {tuple(q.shape)}")
    cdf_diff = torch.cumsum(p.float(), dim=-1) - torch.cumsum(q.float(), dim=-1)
    m = cdf_diff.abs().pow(r).mean(dim=-1)
    # x ** (1/r) has an infinite slope at 0: keep the gradient finite (zero) where p == q.
    pos = m > 0
    per_sample = torch.where(pos, torch.where(pos, m, torch.ones_like(m)).pow(1.0 / r), torch.zeros_like(m))
    return per_sample.mean()


SCORE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse_loss,
    "l1": l1_loss,
    "plcc": plcc_loss,
    "fidelity": fidelity_loss,
}
DISTRIBUTION_LOSSES = {"emd": emd_loss}
LOSS_NAMES = tuple(SCORE_LOSSES) + tuple(DISTRIBUTION_LOSSES)


def parse_loss_spec(spec: str | list | dict) -> dict[str, float]:
    """Turn ``"mse"``, ``["mse", "plcc"]`` or ``{"mse": 1, "plcc": 0.5}`` into ``{name: weight}``."""
    if isinstance(spec, str):
        spec = {s.strip(): 1.0 for s in spec.split("+")}
    elif isinstance(spec, (list, tuple)):
        spec = {str(s): 1.0 for s in spec}
    out = {str(k): float(v) for k, v in dict(spec).items()}
    unknown = [k for k in out if k not in LOSS_NAMES]
    if unknown or not out:
        raise ValueError(f"unknown loss(es) {unknown}; choose from {list(LOSS_NAMES)}")
    return out
