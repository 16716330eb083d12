"""``ranking``: supervised opinion scores plus within-photo ranking of synthetic distortions.

Each step the opinion-scored batch is joined by ``groups_per_step`` ranking groups
(:mod:`biqa.synth.ranking`: a pristine crop and 5 increasingly distorted versions of it, made by one
of several implementations of a distortion family) in the same forward pass, so BatchNorm sees one
batch. The loss is the supervised loss on the scored images plus

    weight * mean over pairs of relu(margin - (z_better - z_worse))^2

over the group's pairs (the reference above every level, each level above the next). The ranking
term needs no label scale: synthetic images are never mapped onto the human MOS scale.

The pool of groups never depends on the scored data, so it is made once and cached (``cache``), and
every split of a protocol shares it. The photos of the held-out level-ranking check
(:data:`biqa.recipe.HELDOUT_PHOTOS`) are always excluded.

Options (``strategy.ranking``): ``weight`` (1.0), ``margin`` (0.02, in z units), ``groups`` (pool
size, 400), ``groups_per_step`` (2), ``photos`` / ``originals`` (folders of pristine photos; default
``../shared/data/photos`` and ``../shared/data/originals``), ``exclude`` (more photo stems to leave
out), ``seed`` (0), ``cache`` (an ``.npz`` path; default none).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..losses import parse_loss_spec
from .base import Strategy
from .supervised import supervised_terms

_OPTIONS = {"weight", "margin", "groups", "groups_per_step", "photos", "originals", "exclude", "seed", "cache"}


def ranking_pool(photos, originals, n_groups: int, size: int, *, seed: int = 0, exclude=(), cache=None,
                 progress: bool = True) -> np.ndarray:
    """``[n_groups, 6, size, size, 3]`` uint8: square ranking groups (cached in ``cache`` when given)."""
    from tqdm.auto import tqdm

    from ..recipe import source_files
    from ..synth.ranking import load_sources, ranking_groups

    ph, orig = source_files(photos, originals, exclude=exclude)  # never the held-out check photos
    if not ph and not orig:
        raise FileNotFoundError(f"ranking: no pristine photos in {photos} / {originals} (PNG/JPEG files)")
    key = json.dumps({"photos": [p.name for p in ph], "originals": [p.name for p in orig], "n": n_groups,
                      "size": size, "seed": seed, "v": 1}, sort_keys=True)
    if cache and Path(cache).is_file():
        z = np.load(cache, allow_pickle=False)
        if str(z["key"]) == key:
            return z["groups"]
    rng = np.random.default_rng(seed)
    sources = load_sources(ph, orig, rng)
    out = np.zeros((n_groups, 6, size, size, 3), np.uint8)
    for i in tqdm(range(n_groups), disable=not progress, desc="ranking pool", unit="group", leave=False):
        g = ranking_groups(sources, 1, seed=seed * 1_000_003 + i, crop=(size, size), square=True)[0]
        out[i] = np.stack(g.images)
    if cache:
        from ..probe import save_npz_atomic

        save_npz_atomic(cache, key=np.array(key), groups=out)
    return out


class Ranking(Strategy):
    name = "ranking"

    def __init__(self, model, loss="mse", ranking: dict | None = None, *, crop_size: int = 224, seed: int = 0):
        super().__init__(model)
        opts = dict(ranking or {})
        unknown = sorted(set(opts) - _OPTIONS)
        if unknown:
            raise ValueError(f"strategy.ranking: unknown option(s) {unknown}; known: {sorted(_OPTIONS)}")
        self.weights = parse_loss_spec(loss)
        self.weight = float(opts.get("weight", 1.0))
        self.margin = float(opts.get("margin", 0.02))
        self.per_step = int(opts.get("groups_per_step", 2))
        if self.weight < 0 or self.margin < 0 or self.per_step < 1:
            raise ValueError("strategy.ranking: weight and margin must be >= 0 and groups_per_step >= 1")
        self.pool = ranking_pool(opts.get("photos", "../shared/data/photos"),
                                 opts.get("originals", "../shared/data/originals"),
                                 int(opts.get("groups", 400)), int(crop_size), seed=int(opts.get("seed", 0)),
                                 exclude=tuple(opts.get("exclude", ())), cache=opts.get("cache"))
        mean, std = model.preset.normalisation()
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self._rng = np.random.default_rng(seed + 7919)
        from ..synth.ranking import group_pairs

        self._pairs = torch.from_numpy(group_pairs(self.per_step))

    def ranking_batch(self) -> torch.Tensor:
        """``groups_per_step`` random groups, normalised ``[6 * k, 3, S, S]``."""
        idx = self._rng.choice(len(self.pool), size=self.per_step, replace=False)
        x = torch.from_numpy(self.pool[idx].reshape(-1, *self.pool.shape[2:])).permute(0, 3, 1, 2).float() / 255.0
        return (x - self._mean) / self._std

    def loss(self, batch):
        images = batch["image"]
        n = len(images)
        if self.weight > 0 and images.shape[-2:] == self.pool.shape[2:4]:
            extra = self.ranking_batch().to(images.device, images.dtype)
            x = torch.cat([images, extra.contiguous(memory_format=torch.channels_last)
                           if images.is_contiguous(memory_format=torch.channels_last) else extra])
        elif self.weight > 0:
            raise ValueError(f"ranking: training crops {tuple(images.shape[-2:])} differ from the pool's "
                             f"{tuple(self.pool.shape[2:4])}")
        else:
            x = images
        out = self.run("model", x)
        scored = {k: v[:n] for k, v in out.items() if torch.is_tensor(v) and v.dim() >= 1 and len(v) == len(x)}
        total, terms = supervised_terms(scored, batch, self.weights)
        if len(x) > n:
            z = out["z"][n:].float()
            gap = z[self._pairs[:, 0]] - z[self._pairs[:, 1]]
            rank = torch.relu(self.margin - gap).pow(2).mean()
            total = total + self.weight * rank
            terms["rank"] = float(rank.detach())
            terms["rank_ok"] = float((gap.detach() > 0).float().mean())
        return total, terms
