"""Composable learning strategies: OHEM, deep mutual learning and distillation over ``supervised``.

One engine, three optional components, any combination:

- ``mutual`` (DML, Yue et al. ICIP 2022): K >= 2 peers; peer k's loss adds
  ``lam * mean_{j != k} MSE(z_k, stopgrad(z_j))``. Peers differ by head initialisation
  (Kaiming for even, Xavier for odd peers) and view (odd peers see mirrored images, in
  training and at test time). All peers' predictions are computed before any update. The
  run predicts with the peers' mean; each peer can also be used alone.
- ``ohem`` (Wang et al., TMM 2023): every trained network also runs as a pruned copy of
  itself (global magnitude mask over the backbone's conv/linear weights, shared weights,
  no copy); loss adds ``L_sup(pruned) + lam * MSE(z_full, z_pruned)`` with no stop-gradient.
  Per-sample disagreement ``|z_full - z_pruned|`` of the main model is recorded: the
  "hardest samples" table written each epoch.
- ``distill`` (KD): a frozen teacher checkpoint; loss adds ``w_feature * L(P(f_s), f_t)`` with a
  learned linear projection ``P`` where the pooled feature sizes differ (and ``w_output * L(z_s, z_t)``,
  a student-vs-teacher score term the methods do not have: off by default), ``L`` = MSE or L1. The
  teacher never trains and stays in eval mode.
  When teacher and student both have MobileIQA heads (outputs ``stage_features`` and
  ``opinion_features``), MobileIQA's terms are added: ``w_stage * L(P_s(stage_s), stage_t) +
  w_opinion * L(P_o(opinion_s), opinion_t)``, with learned projections (a 1x1 conv per stage /
  opinion where the channels differ, area pooling where S differs) only where the shapes differ.
  For such pairs ``w_feature`` defaults to 0 (the pooled 128-d tail vector is downstream of the
  opinion features); set it to add the term. A weight of 0 skips its term.

Per network: ``L = L_sup + [ohem terms] + [distill terms] + [mutual term]``; the total is the
sum over networks. Every combination of the three is supported and tested.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..config import unknown_keys_error
from ..distributed import all_gather_object, broadcast_masks_
from ..heads import OUTPUT_INIT_STD
from ..losses import parse_loss_spec
from .base import Strategy
from .pruning import magnitude_masks, masked_forward, prunable_weights, sparsity
from .supervised import supervised_terms

COMPONENTS = ("ohem", "mutual", "distill")


HEAD_INIT_MODES = ("scaled", "full", "none")
OHEM_REFRESH = ("stage", "epoch")  # or a positive int: every N optimiser steps
OHEM_OPTIONS = ("ratio", "lam", "refresh", "stage_epochs", "view", "include_linear", "top_k", "crop_scale")
MUTUAL_OPTIONS = ("peers", "lam", "flip_odd", "init")
DISTILL_OPTIONS = ("teacher", "kd_loss", "w_output", "w_feature", "w_stage", "w_opinion")


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


def _first_member(net: nn.Module) -> nn.Module:
    """A model itself, or the first member of an ensemble (its members share one architecture)."""
    return next(iter(net.members.values())) if hasattr(net, "members") else net


def _mal_head(net: nn.Module):
    """The MobileIQA head of a model (an ensemble: of its first member), else None."""
    head = getattr(_first_member(net), "head", None)
    return head if hasattr(head, "stage_shape") and hasattr(head, "opinion_shape") else None


class MapProjection(nn.Module):
    """Maps a student's stacked feature maps onto the teacher's shape for distillation.

    ``kind="stage"``: ``[K, B, C, S, S]``; ``kind="opinion"``: ``[K, B, C, S*S]``. Shapes are given as
    ``(K, C, S)``. Where S differs: adaptive average pooling to the teacher's S (no parameters);
    where C differs: one learned 1x1 conv per entry k (stages are not interchangeable). Equal
    shapes: the identity, no parameters. K must match.
    """

    def __init__(self, student: tuple[int, int, int], teacher: tuple[int, int, int], kind: str = "stage"):
        super().__init__()
        (ks, cs, ss), (kt, ct, st) = student, teacher
        if ks != kt:
            raise ValueError(f"distill: the student has {ks} {kind} features, the teacher {kt}; they must match")
        self.kind, self.size_s, self.size_t = kind, int(ss), int(st)
        self.convs = nn.ModuleList(nn.Conv2d(cs, ct, 1) for _ in range(ks)) if cs != ct else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.convs is None and self.size_s == self.size_t:
            return x
        if self.kind == "opinion":
            x = x.unflatten(-1, (self.size_s, self.size_s))
        if self.size_s != self.size_t:
            x = torch.stack([F.adaptive_avg_pool2d(e, self.size_t) for e in x])
        if self.convs is not None:
            x = torch.stack([conv(e) for conv, e in zip(self.convs, x)])
        return x.flatten(-2) if self.kind == "opinion" else x


class Composite(Strategy):
    """``supervised`` plus any of ``ohem``, ``mutual``, ``distill`` (see the module docstring).

    Args:
        model: the main network (peer 0).
        components: names from ``COMPONENTS``.
        loss: the supervised loss spec (``"mse"``, ``{"mse": 1, "plcc": 0.5}``, ``"fidelity"`` ...).
        ohem: ``ratio`` (0.7), ``lam`` (1.0), ``refresh`` (``"stage"``: at each epoch listed in
            ``stage_epochs``, default ``[0]``; ``"epoch"``: every epoch; an int N: every N
            optimiser steps), ``view`` (what the pruned branch sees: ``"same"`` image, its ``"flip"``
            mirror, or a random ``"crop"`` of side ``crop_scale`` (0.5) of the batch, one window per
            step, which costs the pruned branch about ``crop_scale**2`` of a full pass),
            ``include_linear`` (True), ``top_k`` rows in the hardest-samples table (200).
        mutual: ``peers`` (2, or a list of preset names; the first is the main model's),
            ``lam`` (1.0), ``flip_odd`` (True), ``init`` (head re-initialisation, Kaiming for even and
            Xavier for odd peers: ``"scaled"`` (default, also ``true``): output layer rescaled to a
            fresh head's small std; ``"full"``: raw draws; ``"none"`` (``false``): untouched).
        distill: ``teacher`` (checkpoint path, required), ``kd_loss`` (``"mse"`` | ``"l1"``),
            ``w_output`` (0.0: a score term outside the methods; set it to add one), ``w_feature`` (1.0;
            0 for MobileIQA pairs), ``w_stage`` (1.0),
            ``w_opinion`` (1.0): the last two for MobileIQA (MAL-head) teacher and student.
        context: what the trainer knows: ``pretrained`` (for peers), ``label_scale``.
    """

    name = "composite"

    def __init__(self, model, *, components, loss="mse", ohem=None, mutual=None, distill=None, context=None):
        super().__init__(model)
        unknown = [c for c in components if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"unknown strategy component(s) {unknown}; combine any of {COMPONENTS}")
        self.components = list(components)
        for block, opts, known in (("ohem", ohem, OHEM_OPTIONS), ("mutual", mutual, MUTUAL_OPTIONS),
                                   ("distill", distill, DISTILL_OPTIONS)):
            unknown = set(opts or {}) - set(known)
            if unknown:
                raise unknown_keys_error(f"strategy.{block}", unknown, known)
        self.weights = parse_loss_spec(loss)
        ctx = context or {}
        self._peers: dict[str, nn.Module] = {"model": model}
        if "mutual" in components:
            self._build_peers(dict(mutual or {}), ctx)
        self.ohem = dict(ohem or {}) if "ohem" in components else None
        if self.ohem is not None:
            self.ohem.setdefault("ratio", 0.7)
            self.ohem.setdefault("lam", 1.0)
            self.ohem.setdefault("refresh", "stage")
            self.ohem.setdefault("stage_epochs", [0])
            self.ohem.setdefault("view", "same")
            self.ohem.setdefault("include_linear", True)
            self.ohem.setdefault("top_k", 200)
            self.ohem.setdefault("crop_scale", 0.5)
            r = self.ohem["refresh"]
            if not (r in OHEM_REFRESH or (isinstance(r, int) and not isinstance(r, bool) and r > 0)):
                raise ValueError(f"ohem.refresh must be one of {OHEM_REFRESH} or a positive number of steps, "
                                 f"not {r!r} (\"stage\": at ohem.stage_epochs; \"epoch\": every epoch; "
                                 f"N: every N optimiser steps)")
            bad = [e for e in self.ohem["stage_epochs"] if not isinstance(e, int) or isinstance(e, bool) or e < 0]
            if bad:
                raise ValueError(f"ohem.stage_epochs must list epoch numbers (0-based), not {bad}")
            if self.ohem["view"] not in ("same", "flip", "crop"):
                raise ValueError("ohem.view must be 'same', 'flip' or 'crop'")
            if not 0.0 < float(self.ohem["crop_scale"]) <= 1.0:
                raise ValueError("ohem.crop_scale must be in (0, 1]")
            self.masks: dict[str, dict[str, torch.Tensor]] = {}
            self._disagreement: dict[int, float] = {}
        self.teacher = None
        self._proj = nn.ModuleDict()
        if "distill" in components:
            self._build_teacher(dict(distill or {}))

    # ---------------------------------------------------------------- setup
    def _build_peers(self, cfg: dict, ctx: dict) -> None:
        from ..models import create_model

        peers = cfg.get("peers", 2)
        base = self.model.preset
        presets = [base.name] * int(peers) if isinstance(peers, int) else list(peers)
        if len(presets) < 2:
            raise ValueError("mutual learning needs at least 2 peers")
        self.mutual_lam = float(cfg.get("lam", 1.0))
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
        _init_head(self.model, "kaiming", init)
        for k, name in enumerate(presets[1:], start=1):
            over = {"score_range": base.score_range, "higher_is_better": base.higher_is_better,
                    "hflip_input": flip_odd and k % 2 == 1}
            if name == base.name:
                over["head_kwargs"] = base.head_kwargs
            peer = create_model(name, pretrained=ctx.get("pretrained", False),
                                label_scale=ctx.get("label_scale", self.model.label_scale), **over)
            if state is not None:
                peer.load_state_dict(state, strict=True)
            elif backbone_from:
                from ..checkpoint import load_backbone_weights

                load_backbone_weights(peer, backbone_from)
            _init_head(peer, "kaiming" if k % 2 == 0 else "xavier", init)
            self._peers[f"peer{k}"] = peer

    def _build_teacher(self, cfg: dict) -> None:
        from ..checkpoint import load_model

        if not cfg.get("teacher"):
            raise ValueError("distill needs distill.teacher: a checkpoint (.safetensors) of a trained model")
        teacher, meta = load_model(cfg["teacher"])
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = teacher.eval()
        self.kd_loss = {"mse": F.mse_loss, "l1": F.l1_loss}[cfg.get("kd_loss", "mse")]
        # the methods distil features (KD) and MobileIQA's stage / opinion maps; a score term (student vs
        # teacher prediction) is not part of them, so it is off unless asked for
        self.w_output = float(cfg.get("w_output", 0.0))
        self.w_stage = float(cfg.get("w_stage", 1.0))
        self.w_opinion = float(cfg.get("w_opinion", 1.0))
        t_mal = _mal_head(self.teacher)
        self._mal_pairs = set()  # nets distilled with MobileIQA's stage / opinion terms
        if t_mal is not None:
            self._mal_pairs = {n for n, net in self._peers.items() if _mal_head(net) is not None}
        self.w_feature = float(cfg.get("w_feature", 0.0 if self._mal_pairs else 1.0))
        pre = meta["preprocessing"]
        self._t_norm = (torch.tensor(pre["mean"]).view(1, 3, 1, 1), torch.tensor(pre["std"]).view(1, 3, 1, 1))
        mean, std = self.model.preset.normalisation()
        self._s_norm = (torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1))
        t_dim = self._feature_dim(self.teacher)
        for name, net in self._peers.items():
            s_dim = self._feature_dim(net)
            self._proj[name] = nn.Identity() if s_dim == t_dim or self.w_feature == 0 else nn.Linear(s_dim, t_dim)
            if name in self._mal_pairs:
                s_mal = _mal_head(net)
                self._proj[f"{name}_stage"] = MapProjection(s_mal.stage_shape, t_mal.stage_shape, "stage")
                self._proj[f"{name}_opinion"] = MapProjection(s_mal.opinion_shape, t_mal.opinion_shape, "opinion")

    @staticmethod
    def _feature_dim(net: nn.Module) -> int:
        net = _first_member(net)
        dim = getattr(net.head, "feature_dim", None)  # heads that pool their own "features" (MobileIQA)
        return int(dim if dim is not None else net.backbone.num_features)

    # ------------------------------------------------------------ interface
    @property
    def nets(self) -> dict[str, nn.Module]:
        nets = dict(self._peers)
        if any(True for _ in self._proj.parameters()):  # learned projections train with the student
            nets["kd_proj"] = self._proj
        return nets

    @property
    def frozen(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher} if self.teacher is not None else {}

    def forward_nets(self) -> list[str]:
        return list(self._peers)

    def checkpoint_meta(self) -> dict:
        meta = {"components": self.components}
        if len(self._peers) > 1:
            meta["ensemble"] = list(self._peers)
            meta["net_presets"] = {n: m.preset.to_dict() for n, m in self._peers.items()}
        if self.ohem is not None and self.masks:
            meta["ohem_sparsity"] = {n: sparsity(m) for n, m in self.masks.items()}
        return meta

    def predict(self, images):
        outs = [net(images) for net in self._peers.values()]
        if len(outs) == 1:
            return outs[0]
        return {k: torch.stack([o[k] for o in outs]).mean(0) for k in ("z", "score")}

    # ----------------------------------------------------------------- OHEM
    def pruned_view(self, x: torch.Tensor) -> torch.Tensor:
        """What the pruned branch sees: ``x``, its mirror image or a random sub-crop of it."""
        view = self.ohem["view"]
        if view == "flip":
            return torch.flip(x, dims=[-1])
        if view == "crop":
            H, W = x.shape[-2:]
            s = float(self.ohem["crop_scale"])
            h, w = max(1, round(H * s)), max(1, round(W * s))
            i = int(torch.randint(0, H - h + 1, (1,)))
            j = int(torch.randint(0, W - w + 1, (1,)))
            fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
            return x[..., i:i + h, j:j + w].contiguous(memory_format=fmt)
        return x

    def refresh_masks(self) -> None:
        for name, net in self._peers.items():
            self.masks[name] = magnitude_masks(prunable_weights(net, self.ohem["include_linear"]),
                                               float(self.ohem["ratio"]))
        broadcast_masks_(self.masks)  # several processes: rank 0's masks everywhere (identical weights anyway)

    def on_epoch_start(self, epoch: int) -> None:
        if self.ohem is None:
            return
        self._disagreement = {}
        r = self.ohem["refresh"]
        if not self.masks or r == "epoch" or (r == "stage" and epoch in set(self.ohem["stage_epochs"])):
            self.refresh_masks()

    def on_step_end(self, step: int) -> None:
        r = self.ohem["refresh"] if self.ohem is not None else None
        if isinstance(r, int) and r > 0 and (step + 1) % r == 0:
            self.refresh_masks()

    def epoch_report(self, epoch: int) -> dict:
        if self.ohem is None:
            return {}
        seen: dict[int, float] = {}
        for part in all_gather_object(self._disagreement):  # several processes: each saw its shard
            seen.update(part)
        if not seen:
            return {}
        idx = np.fromiter(seen.keys(), dtype=int)
        d = np.fromiter(seen.values(), dtype=float)
        order = np.argsort(-d)[: int(self.ohem["top_k"])]
        return {"hard_samples": pd.DataFrame({"rank": np.arange(1, len(order) + 1), "index": idx[order],
                                              "disagreement": d[order]})}

    def state_dict(self) -> dict:
        if self.ohem is None:
            return {}
        return {f"mask/{net}/{w}": m.cpu() for net, ms in self.masks.items() for w, m in ms.items()}

    def load_state_dict(self, state: dict) -> None:
        if self.ohem is None or not state:
            return
        self.masks = {}
        for key, m in state.items():
            _, net, w = key.split("/", 2)
            device = dict(self._peers[net].named_parameters())[w].device
            self.masks.setdefault(net, {})[w] = m.to(device)

    # ----------------------------------------------------------------- loss
    def loss(self, batch):
        x = batch["image"]
        outs = {name: self.run(name, x) for name in self._peers}  # all predictions before any update
        t_out = None
        if self.teacher is not None:
            with torch.no_grad():
                ms, ss = (t.to(x.device) for t in self._s_norm)
                mt, st = (t.to(x.device) for t in self._t_norm)
                t_out = self.teacher(((x * ss + ms) - mt) / st)
        total = 0.0
        terms: dict[str, float] = {}

        def add(key: str, value: torch.Tensor, weight: float = 1.0):
            nonlocal total
            total = total + weight * value
            terms[key] = terms.get(key, 0.0) + float(value.detach())

        for name, out in outs.items():
            sup, sup_terms = supervised_terms(out, batch, self.weights)
            add("sup", sup)
            for k, v in sup_terms.items():
                terms[k] = terms.get(k, 0.0) + v
            if self.ohem is not None:
                if name not in self.masks:
                    self.refresh_masks()
                xp = self.pruned_view(x)
                out_p = masked_forward(self._peers[name], self.masks[name], xp)
                sup_p, _ = supervised_terms(out_p, batch, self.weights)
                add("ohem_pruned_sup", sup_p)
                add("ohem_consistency", F.mse_loss(out["z"].float(), out_p["z"].float()), float(self.ohem["lam"]))
                if name == "model":
                    gap = (out["z"] - out_p["z"]).detach().abs().float().cpu().numpy()
                    for i, g in zip(batch["index"].tolist(), gap):
                        self._disagreement[int(i)] = float(g)
            if t_out is not None:
                if self.w_output:
                    add("kd_output", self.kd_loss(out["z"].float(), t_out["z"].float()), self.w_output)
                if self.w_feature:
                    f_s = self._proj[name](out["features"].float())
                    add("kd_feature", self.kd_loss(f_s, t_out["features"].float()), self.w_feature)
                if name in self._mal_pairs:
                    for key, w in (("stage", self.w_stage), ("opinion", self.w_opinion)):
                        if w:
                            f_s = self._proj[f"{name}_{key}"](out[f"{key}_features"].float())
                            add(f"kd_{key}", self.kd_loss(f_s, t_out[f"{key}_features"].float()), w)
            if len(outs) > 1:
                others = [o["z"].detach().float() for n, o in outs.items() if n != name]
                mim = torch.stack([F.mse_loss(out["z"].float(), z) for z in others]).mean()
                add("mutual_mimicry", mim, self.mutual_lam)
        return total, terms  # the trainer checks that the loss is finite
