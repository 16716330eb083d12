"""``mutual``: deep mutual learning (DML, Yue et al. ICIP 2022).

K >= 2 peers; peer k's loss adds ``lam * mean_{j != k} MSE(z_k, stopgrad(z_j))``. Peers differ by
head initialisation (Kaiming for even, Xavier for odd peers) and view (odd peers see mirrored
images, in training and at test time). All peers' predictions are computed before any update. The
run predicts with the peers' mean (:class:`biqa.models.Ensemble`); each peer can also be used alone.

Options (``strategy.mutual``): ``peers`` (2, or a list of preset names; the first is the main
model's), ``lam`` (1.0), ``flip_odd`` (True), ``init`` (head re-initialisation, Kaiming for even and
Xavier for odd peers: ``"scaled"`` (default, also ``true``): output layer rescaled to a fresh head's
small std; ``"full"``: raw draws; ``"none"`` (``false``): untouched; with ``model.init_from`` the
default is ``"none"``: every peer starts from the checkpoint's trained network, head included).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..heads import OUTPUT_INIT_STD
from .base import Component

MUTUAL_OPTIONS = ("peers", "lam", "flip_odd", "init")
HEAD_INIT_MODES = ("scaled", "full", "none")
FAMILY_GAIN = {"kaiming": math.sqrt(2.0), "xavier": 1.0}  # the families' variance-scaling gains


def _init_head(model: nn.Module, kind: str, mode: str = "scaled") -> None:
    """Re-initialise a peer's head: every Linear with Kaiming (``kind="kaiming"``) or Xavier uniform.

    ``mode="scaled"`` then rescales the output layer (the last Linear) to std ``OUTPUT_INIT_STD`` times
    the family's gain (Kaiming: sqrt(2), the ReLU gain; Xavier: 1) and keeps its bias, so the peer starts
    predicting near the middle of the label range like a fresh head (at full scale, a 1280-feature score
    head starts with a spread of about a whole label range: see the README's strategies benchmark) and
    the two families still start measurably apart. A single ``Linear(F, 1)`` head shows why the gain is
    kept: for it the raw draws have the same std (Kaiming sqrt(2/F), Xavier sqrt(2/(F+1))), so
    normalising each peer to one std erased the method's only difference. ``"full"`` keeps the raw
    draws; ``"none"`` leaves the head alone."""
    if mode == "none":
        return
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    for m in linears:
        (nn.init.kaiming_uniform_ if kind == "kaiming" else nn.init.xavier_uniform_)(m.weight)
    if mode == "scaled" and linears:
        with torch.no_grad():
            w = linears[-1].weight
            w.mul_(OUTPUT_INIT_STD * FAMILY_GAIN[kind] / w.std().clamp_min(1e-12))


class Mutual(Component):
    name = "mutual"
    OPTIONS = MUTUAL_OPTIONS

    def __init__(self, opts, model, ctx):
        super().__init__(opts, model, ctx)
        from ..models import create_model

        cfg = self.opts
        peers = cfg.get("peers", 2)
        base = model.preset
        presets = [base.name] * int(peers) if isinstance(peers, int) else list(peers)
        if len(presets) < 2:
            raise ValueError("mutual learning needs at least 2 peers")
        self.lam = float(cfg.get("lam", 1.0))
        flip_odd = bool(cfg.get("flip_odd", True))
        init_from, backbone_from = ctx.get("init_from"), ctx.get("init_backbone_from")
        # model.init_from: every peer starts from the checkpoint's trained network, head included, so by
        # default no head is re-initialised (an explicit mutual.init still re-draws them all)
        init = cfg.get("init", "none" if init_from else "scaled")
        init = ("scaled" if init else "none") if isinstance(init, bool) else str(init)
        if init not in HEAD_INIT_MODES:
            raise ValueError(f"mutual.init must be one of {HEAD_INIT_MODES} (or true = scaled, false = none)")
        if init_from and any(n != base.name for n in presets[1:]):
            raise ValueError(f"mutual: model.init_from holds one {base.name!r} network, but the peers {presets} "
                             f"differ from it; use peers of the same preset, or model.init_backbone_from")
        state = None
        if init_from:
            from ..checkpoint import read_state_dicts

            state = read_state_dicts(init_from)["model"]
        _init_head(model, "kaiming", init)
        for k, name in enumerate(presets[1:], start=1):
            over = {"score_range": base.score_range, "higher_is_better": base.higher_is_better,
                    "hflip_input": flip_odd and k % 2 == 1}
            if name == base.name:
                over["head_kwargs"] = base.head_kwargs
            peer = create_model(name, pretrained=ctx.get("pretrained", False),
                                label_scale=ctx.get("label_scale", model.label_scale), **over)
            if state is not None:
                peer.load_state_dict(state, strict=True)
            elif backbone_from:
                from ..checkpoint import load_backbone_weights

                load_backbone_weights(peer, backbone_from)
            _init_head(peer, "kaiming" if k % 2 == 0 else "xavier", init)
            self.peers[f"peer{k}"] = peer

    def terms(self, name, out, outs, batch, add):
        others = [o["z"].detach().float() for n, o in outs.items() if n != name]
        mim = torch.stack([F.mse_loss(out["z"].float(), z) for z in others]).mean()
        add("mutual_mimicry", mim, self.lam)
