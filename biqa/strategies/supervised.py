"""``supervised``: the baseline strategy, a weighted sum of supervised losses."""
from __future__ import annotations

import torch

from ..losses import DISTRIBUTION_LOSSES, SCORE_LOSSES, parse_loss_spec
from .base import Strategy


def supervised_terms(out: dict, batch: dict, weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted supervised loss of one model output against a batch's labels.

    Score losses compare ``out["z"]`` with the normalised target ``batch["z"]``;
    ``emd`` compares ``out["probs"]`` with ``batch["dist"]`` (needs a distribution head).
    """
    total = 0.0
    terms: dict[str, float] = {}
    for name, w in weights.items():
        if name in SCORE_LOSSES:
            value = SCORE_LOSSES[name](out["z"], batch["z"])
        else:
            if "probs" not in out:
                raise ValueError(f"loss {name!r} needs a distribution head (e.g. preset nima-lite0)")
            if "dist" not in batch:
                raise ValueError(f"loss {name!r} needs target distributions (dataset built with n_bins)")
            value = DISTRIBUTION_LOSSES[name](out["probs"], batch["dist"])
        total = total + w * value
        terms[name] = float(value.detach())
    return total, terms


class Supervised(Strategy):
    name = "supervised"

    def __init__(self, model, loss="mse"):
        super().__init__(model)
        self.weights = parse_loss_spec(loss)

    def loss(self, batch):
        out = self.run("model", batch["image"])
        total, terms = supervised_terms(out, batch, self.weights)
        return total, terms
