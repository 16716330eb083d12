"""Label scales and opinion-score distributions.

Models learn a normalised target ``z = (mos - lo) / (hi - lo)`` in [0, 1] (or its
reverse for lower-is-better labels such as DMOS, so that ``z`` is always
higher-is-better); checkpoints record ``(lo, hi, higher_is_better)`` and report
scores back in the dataset's own units.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LabelScale:
    """Linear map between a dataset's MOS units and the model's [0, 1] target."""

    lo: float = 1.0
    hi: float = 5.0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not self.hi > self.lo:
            raise ValueError(f"label range must have hi > lo, got [{self.lo}, {self.hi}]")

    def normalise(self, mos):
        z = (mos - self.lo) / (self.hi - self.lo)
        return z if self.higher_is_better else 1.0 - z

    def denormalise(self, z):
        z = z if self.higher_is_better else 1.0 - z
        return self.lo + z * (self.hi - self.lo)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelScale":
        return cls(float(d["lo"]), float(d["hi"]), bool(d.get("higher_is_better", True)))


def bin_centres(n_bins: int = 10) -> torch.Tensor:
    """Score bins 1..N used by distribution heads (NIMA: 1..10)."""
    return torch.arange(1, n_bins + 1, dtype=torch.float32)


def distribution_moments(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (in bin units 1..N) of distributions ``[B, N]``."""
    s = bin_centres(probs.shape[-1]).to(probs.device)
    mean = (probs * s).sum(-1)
    var = (probs * (s - mean[..., None]) ** 2).sum(-1)
    return mean, var.clamp_min(0).sqrt()


def rebin_votes(votes: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Vote counts on K ordered scores 1..K as probabilities on the N score bins 1..N.

    ``votes``: ``[B, K]`` counts (``[K]`` is one row); returns ``[B, N]`` probabilities. Vote score
    ``v`` sits at ``x = 1 + (v - 1) (N - 1) / (K - 1)`` on the 1..N scale (the same linear map as the
    label range onto the bins: K = 5, N = 10 puts the votes at 1, 3.25, 5.5, 7.75, 10) and its mass is
    split between the two bins around ``x`` in proportion to closeness. So the distribution's mean is
    exactly ``1 + (mean vote - 1) (N - 1) / (K - 1)``: an image with every vote on 5 of 5 has mean 10,
    and the score mapped back is the MOS. (Spreading each of K equal intervals over the N bins instead
    put the extreme votes at bin centres 1.5 and 9.5, compressing predicted scores by 8/9.) The split
    widens a distribution slightly: by at most 1/4 bin in variance.
    """
    votes = np.asarray(votes, dtype=float)
    if votes.ndim == 1:
        votes = votes[None]
    k = votes.shape[1]
    if k == 1:
        raise ValueError("rebin_votes needs at least 2 vote columns")
    x = (np.arange(k) * (n_bins - 1) / (k - 1))  # 0-based positions on the N bins
    lo = np.floor(x).astype(int).clip(0, n_bins - 1)
    hi = np.minimum(lo + 1, n_bins - 1)
    frac = x - lo
    w = np.zeros((k, n_bins))
    np.add.at(w, (np.arange(k), lo), 1.0 - frac)
    np.add.at(w, (np.arange(k), hi), frac)
    out = votes @ w
    return out / out.sum(1, keepdims=True)


_CLAMP_WARNED = False


def feasible_std_band(mean, n_bins: int = 10, margin: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The open interval of standard deviations a distribution on bins 1..N can have with this mean.

    Lower bound: ``f (1 - f)`` (mass on the two bins around the mean, ``f = frac(mean)``);
    upper bound: ``(mean - 1)(N - mean)`` (mass on bins 1 and N), both as variances.
    ``margin`` shrinks the band by that fraction of its width on both sides.
    """
    mu = np.asarray(mean, dtype=np.float64)
    f = mu - np.floor(mu)
    lo_var = f * (1 - f)
    hi_var = (mu - 1) * (n_bins - mu)
    width = np.maximum(hi_var - lo_var, 0.0)
    return np.sqrt(lo_var + margin * width), np.sqrt(np.maximum(hi_var - margin * width, 0.0))


def max_entropy_distribution(mean, std, bins: int = 10, *, tol: float = 1e-12, max_iter: int = 200,
                             warn: bool = True) -> np.ndarray:
    """Maximum-entropy distribution on bins ``1..bins`` with the given mean and std.

    The solution has the form ``p_i ∝ exp(l1 s_i + l2 s_i^2)``; ``(l1, l2)`` minimise the
    convex dual ``g(l) = log sum_i exp(l1 z_i + l2 z_i^2) - l1 m1 - l2 m2`` (on standardised
    bins ``z`` in [-1, 1], with ``m1, m2`` the matching first and second moments). Newton's
    method with backtracking from ``l = 0``, vectorised over the batch, in float64.

    ``mean``, ``std``: arrays ``[B]`` in bin units (map a dataset's MOS range linearly onto
    [1, bins] first). Means are clipped into ``[1 + 1e-6, bins - 1e-6]``; stds outside the
    feasible band (see :func:`feasible_std_band`) are clamped just inside it, with one
    warning. Returns ``[B, bins]`` probabilities.
    """
    global _CLAMP_WARNED
    mu = np.atleast_1d(np.asarray(mean, dtype=np.float64)).copy()
    sd = np.broadcast_to(np.atleast_1d(np.asarray(std, dtype=np.float64)), mu.shape).copy()
    if not (np.isfinite(mu).all() and np.isfinite(sd).all()):
        raise ValueError("max_entropy_distribution: mean and std must be finite")
    mu = np.clip(mu, 1 + 1e-6, bins - 1e-6)
    lo, hi = feasible_std_band(mu, bins)
    clamped = (sd < lo) | (sd > hi)
    if clamped.any() and warn and not _CLAMP_WARNED:
        import warnings

        warnings.warn(f"max_entropy_distribution: {int(clamped.sum())} std value(s) outside the feasible band "
                      "for their mean were clamped just inside it (reported once)", RuntimeWarning, stacklevel=2)
        _CLAMP_WARNED = True
    sd = np.clip(sd, lo, hi)
    c, h = (bins + 1) / 2.0, (bins - 1) / 2.0
    z = (np.arange(1, bins + 1) - c) / h  # [N]
    feats = np.stack([z, z * z], 1)  # [N, 2]
    m = np.stack([(mu - c) / h, (sd**2 + (mu - c) ** 2) / h**2], 1)  # [B, 2]
    lam = np.zeros_like(m)

    def dual(lam_):
        a = lam_ @ feats.T  # [B, N]
        amax = a.max(1, keepdims=True)
        lse = amax[:, 0] + np.log(np.exp(a - amax).sum(1))
        return lse - (lam_ * m).sum(1), np.exp(a - lse[:, None])

    g, p = dual(lam)
    for _ in range(max_iter):
        ef = p @ feats  # [B, 2]
        grad = ef - m
        if np.abs(grad).max() < tol:
            break
        cov = np.einsum("bn,ni,nj->bij", p, feats, feats) - ef[:, :, None] * ef[:, None, :]
        cov += 1e-12 * np.eye(2)
        step = -np.linalg.solve(cov, grad[:, :, None])[:, :, 0]
        t = np.ones(len(lam))
        active = np.abs(grad).max(1) >= tol
        for _ in range(60):  # backtracking (Armijo) per sample
            g_new, p_new = dual(lam + t[:, None] * step)
            ok = g_new <= g + 1e-4 * t * (grad * step).sum(1)
            if ok[active].all():
                break
            t = np.where(ok | ~active, t, t * 0.5)
        lam = lam + np.where(active, t, 0.0)[:, None] * step
        g, p = dual(lam)
    return p
