"""``ohem``: online hard example mining by a pruned self-competitor (Wang et al., TMM 2023).

Every trained network also runs as a pruned copy of itself (a global magnitude mask over the
backbone's conv/linear weights, shared weights, no copy: :mod:`biqa.strategies.pruning`); its loss
adds ``L_sup(pruned) + lam * MSE(z_full, z_pruned)`` with no stop-gradient. The per-sample
disagreement ``|z_full - z_pruned|`` of the main model is recorded: the "hardest samples" table
written each epoch.

Options (``strategy.ohem``): ``ratio`` (0.7), ``lam`` (1.0), ``refresh`` (``"stage"``: at each epoch
listed in ``stage_epochs``, default ``[0]``; ``"epoch"``: every epoch; an int N: every N optimiser
steps), ``view`` (what the pruned branch sees: ``"same"`` image, its ``"flip"`` mirror, or a random
``"crop"`` of side ``crop_scale`` (0.5) of the batch, one window per step, which costs the pruned
branch about ``crop_scale**2`` of a full pass), ``include_linear`` (True), ``top_k`` rows in the
hardest-samples table (200).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..distributed import all_gather_object, broadcast_masks_
from .base import Component
from .pruning import magnitude_masks, masked_forward, prunable_weights, sparsity
from .supervised import supervised_terms

OHEM_REFRESH = ("stage", "epoch")  # or a positive int: every N optimiser steps
OHEM_OPTIONS = ("ratio", "lam", "refresh", "stage_epochs", "view", "include_linear", "top_k", "crop_scale")
OHEM_DEFAULTS = {"ratio": 0.7, "lam": 1.0, "refresh": "stage", "stage_epochs": [0], "view": "same",
                 "include_linear": True, "top_k": 200, "crop_scale": 0.5}


class Ohem(Component):
    name = "ohem"
    OPTIONS = OHEM_OPTIONS

    def __init__(self, opts, model, ctx):
        super().__init__(opts, model, ctx)
        self.opts = {**OHEM_DEFAULTS, **self.opts}
        self.weights = ctx["loss_weights"]  # the run's supervised loss, also applied to the pruned branch
        r = self.opts["refresh"]
        if not (r in OHEM_REFRESH or (isinstance(r, int) and not isinstance(r, bool) and r > 0)):
            raise ValueError(f"ohem.refresh must be one of {OHEM_REFRESH} or a positive number of steps, "
                             f"not {r!r} (\"stage\": at ohem.stage_epochs; \"epoch\": every epoch; "
                             f"N: every N optimiser steps)")
        bad = [e for e in self.opts["stage_epochs"] if not isinstance(e, int) or isinstance(e, bool) or e < 0]
        if bad:
            raise ValueError(f"ohem.stage_epochs must list epoch numbers (0-based), not {bad}")
        if self.opts["view"] not in ("same", "flip", "crop"):
            raise ValueError("ohem.view must be 'same', 'flip' or 'crop'")
        if not 0.0 < float(self.opts["crop_scale"]) <= 1.0:
            raise ValueError("ohem.crop_scale must be in (0, 1]")
        self.masks: dict[str, dict[str, torch.Tensor]] = {}
        self._disagreement: dict[int, float] = {}

    def pruned_view(self, x: torch.Tensor) -> torch.Tensor:
        """What the pruned branch sees: ``x``, its mirror image or a random sub-crop of it."""
        view = self.opts["view"]
        if view == "flip":
            return torch.flip(x, dims=[-1])
        if view == "crop":
            H, W = x.shape[-2:]
            s = float(self.opts["crop_scale"])
            h, w = max(1, round(H * s)), max(1, round(W * s))
            i = int(torch.randint(0, H - h + 1, (1,)))
            j = int(torch.randint(0, W - w + 1, (1,)))
            fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
            return x[..., i:i + h, j:j + w].contiguous(memory_format=fmt)
        return x

    def refresh_masks(self) -> None:
        for name, net in self.networks.items():
            self.masks[name] = magnitude_masks(prunable_weights(net, self.opts["include_linear"]),
                                               float(self.opts["ratio"]))
        broadcast_masks_(self.masks)  # several processes: rank 0's masks everywhere (identical weights anyway)

    def terms(self, name, out, outs, batch, add):
        if name not in self.masks:
            self.refresh_masks()
        out_p = masked_forward(self.networks[name], self.masks[name], self.pruned_view(batch["image"]))
        sup_p, _ = supervised_terms(out_p, batch, self.weights)
        add("ohem_pruned_sup", sup_p)
        add("ohem_consistency", F.mse_loss(out["z"].float(), out_p["z"].float()), float(self.opts["lam"]))
        if name == "model":
            gap = (out["z"] - out_p["z"]).detach().abs().float().cpu().numpy()
            for i, g in zip(batch["index"].tolist(), gap):
                self._disagreement[int(i)] = float(g)

    def on_epoch_start(self, epoch: int) -> None:
        self._disagreement = {}
        r = self.opts["refresh"]
        if not self.masks or r == "epoch" or (r == "stage" and epoch in set(self.opts["stage_epochs"])):
            self.refresh_masks()

    def on_step_end(self, step: int) -> None:
        r = self.opts["refresh"]
        if isinstance(r, int) and r > 0 and (step + 1) % r == 0:
            self.refresh_masks()

    def epoch_report(self, epoch: int) -> dict:
        seen: dict[int, float] = {}
        for part in all_gather_object(self._disagreement):  # several processes: each saw its shard
            seen.update(part)
        if not seen:
            return {}
        idx = np.fromiter(seen.keys(), dtype=int)
        d = np.fromiter(seen.values(), dtype=float)
        order = np.argsort(-d)[: int(self.opts["top_k"])]
        return {"hard_samples": pd.DataFrame({"rank": np.arange(1, len(order) + 1), "index": idx[order],
                                              "disagreement": d[order]})}

    def checkpoint_meta(self) -> dict:
        return {"ohem_sparsity": {n: sparsity(m) for n, m in self.masks.items()}} if self.masks else {}

    def state_dict(self) -> dict:
        return {f"mask/{net}/{w}": m.cpu() for net, ms in self.masks.items() for w, m in ms.items()}

    def load_state_dict(self, state: dict) -> None:
        mine = {k: v for k, v in (state or {}).items() if k.startswith("mask/")}
        if not mine:
            return
        self.masks = {}
        for key, m in mine.items():
            _, net, w = key.split("/", 2)
            device = dict(self.networks[net].named_parameters())[w].device
            self.masks.setdefault(net, {})[w] = m.to(device)
