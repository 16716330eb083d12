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


def gaussian_distribution(mean_bins, std_bins, n_bins: int = 10) -> torch.Tensor:
    """Discretised normal distribution on bins 1..N (probability mass of each unit cell).

    ``mean_bins``/``std_bins``: ``[B]`` in bin units. Used as the EMD target when a
    records file has neither vote histograms nor a max-entropy label builder.
    """
    mean = torch.as_tensor(mean_bins, dtype=torch.float32).reshape(-1, 1)
    std = torch.as_tensor(std_bins, dtype=torch.float32).reshape(-1, 1).clamp_min(0.05)
    edges = torch.arange(0.5, n_bins + 1.0, 1.0).reshape(1, -1)
    cdf = torch.special.ndtr((edges - mean) / std)
    cdf[:, 0] = 0.0
    cdf[:, -1] = 1.0
    p = (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0)
    return p / p.sum(-1, keepdim=True)


def rebin_votes(votes: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Spread vote counts on K ordered bins linearly onto N bins (mass-preserving).

    ``votes``: ``[B, K]`` counts; returns ``[B, N]`` probabilities. Bin k of K covers
    the interval [k/K, (k+1)/K) of the unit range; mass is split by overlap.
    """
    votes = np.asarray(votes, dtype=float)
    if votes.ndim == 1:
        votes = votes[None]
    k = votes.shape[1]
    src = np.linspace(0, 1, k + 1)
    dst = np.linspace(0, 1, n_bins + 1)
    w = np.clip(np.minimum(src[1:, None], dst[None, 1:]) - np.maximum(src[:-1, None], dst[None, :-1]), 0, None)
    w = w / w.sum(1, keepdims=True)
    out = votes @ w
    return out / out.sum(1, keepdims=True)
