"""``distill``: knowledge distillation from a frozen teacher checkpoint (KD; MobileIQA's terms).

The loss adds ``w_feature * L(P(f_s), f_t)`` with a learned linear projection ``P`` where the pooled
feature sizes differ (and ``w_output * L(z_s, z_t)``, a student-vs-teacher score term the methods do
not have: off by default), ``L`` = MSE or L1. The teacher never trains and stays in eval mode; it
sees the student's input in its own normalisation.

When teacher and student both have MobileIQA heads (outputs ``stage_features`` and
``opinion_features``), MobileIQA's terms are added: ``w_stage * L(P_s(stage_s), stage_t) +
w_opinion * L(P_o(opinion_s), opinion_t)``, with learned projections (a 1x1 conv per stage /
opinion where the channels differ, area pooling where S differs: :class:`MapProjection`) only where
the shapes differ. For such pairs ``w_feature`` defaults to 0 (the pooled 128-d tail vector is
downstream of the opinion features); set it to add the term. A weight of 0 skips its term.

Options (``strategy.distill``): ``teacher`` (checkpoint path, required), ``kd_loss`` (``"mse"`` |
``"l1"``), ``w_output`` (0.0), ``w_feature`` (1.0; 0 for MobileIQA pairs), ``w_stage`` (1.0),
``w_opinion`` (1.0). With mutual learning every peer is distilled.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Component

DISTILL_OPTIONS = ("teacher", "kd_loss", "w_output", "w_feature", "w_stage", "w_opinion")
KD_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


def _first_member(net: nn.Module) -> nn.Module:
    """A model itself, or the first member of an ensemble (its members share one architecture)."""
    return next(iter(net.members.values())) if hasattr(net, "members") else net


def _mal_head(net: nn.Module):
    """The MobileIQA head of a model (an ensemble: of its first member), else None."""
    head = getattr(_first_member(net), "head", None)
    return head if hasattr(head, "stage_shape") and hasattr(head, "opinion_shape") else None


def _feature_dim(net: nn.Module) -> int:
    net = _first_member(net)
    dim = getattr(net.head, "feature_dim", None)  # heads that pool their own "features" (MobileIQA)
    return int(dim if dim is not None else net.backbone.num_features)


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


class Distill(Component):
    name = "distill"
    OPTIONS = DISTILL_OPTIONS

    def __init__(self, opts, model, ctx):
        super().__init__(opts, model, ctx)
        if not self.opts.get("teacher"):
            raise ValueError("distill needs distill.teacher: a checkpoint (.safetensors) of a trained model")
        kd = self.opts.get("kd_loss", "mse")
        if kd not in KD_LOSSES:
            raise ValueError(f"distill.kd_loss must be one of {tuple(KD_LOSSES)}, not {kd!r}")
        self.kd_loss = KD_LOSSES[kd]
        # the methods distil features (KD) and MobileIQA's stage / opinion maps; a score term (student vs
        # teacher prediction) is not part of them, so it is off unless asked for
        self.w_output = float(self.opts.get("w_output", 0.0))
        self.w_stage = float(self.opts.get("w_stage", 1.0))
        self.w_opinion = float(self.opts.get("w_opinion", 1.0))
        self.teacher = None
        self.proj = nn.ModuleDict()
        self._t_out = None

    def attach(self, networks):
        """Load the teacher and build a projection per student network (every peer is distilled)."""
        super().attach(networks)
        from ..checkpoint import load_model

        teacher, meta = load_model(self.opts["teacher"])
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = teacher.eval()
        t_mal = _mal_head(self.teacher)
        self._mal_pairs = set()  # nets distilled with MobileIQA's stage / opinion terms
        if t_mal is not None:
            self._mal_pairs = {n for n, net in networks.items() if _mal_head(net) is not None}
        self.w_feature = float(self.opts.get("w_feature", 0.0 if self._mal_pairs else 1.0))
        pre = meta["preprocessing"]
        self._t_norm = (torch.tensor(pre["mean"]).view(1, 3, 1, 1), torch.tensor(pre["std"]).view(1, 3, 1, 1))
        mean, std = self.model.preset.normalisation()
        self._s_norm = (torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1))
        t_dim = _feature_dim(self.teacher)
        for name, net in networks.items():
            s_dim = _feature_dim(net)
            self.proj[name] = nn.Identity() if s_dim == t_dim or self.w_feature == 0 else nn.Linear(s_dim, t_dim)
            if name in self._mal_pairs:
                s_mal = _mal_head(net)
                self.proj[f"{name}_stage"] = MapProjection(s_mal.stage_shape, t_mal.stage_shape, "stage")
                self.proj[f"{name}_opinion"] = MapProjection(s_mal.opinion_shape, t_mal.opinion_shape, "opinion")

    def extra_nets(self):
        # learned projections train with the student; none when every shape matches
        return {"kd_proj": self.proj} if any(True for _ in self.proj.parameters()) else {}

    def frozen(self):
        return {"teacher": self.teacher}

    def prepare(self, x):
        with torch.no_grad():
            ms, ss = (t.to(x.device) for t in self._s_norm)
            mt, st = (t.to(x.device) for t in self._t_norm)
            self._t_out = self.teacher(((x * ss + ms) - mt) / st)

    def terms(self, name, out, outs, batch, add):
        t_out = self._t_out
        if self.w_output:
            add("kd_output", self.kd_loss(out["z"].float(), t_out["z"].float()), self.w_output)
        if self.w_feature:
            f_s = self.proj[name](out["features"].float())
            add("kd_feature", self.kd_loss(f_s, t_out["features"].float()), self.w_feature)
        if name in self._mal_pairs:
            for key, w in (("stage", self.w_stage), ("opinion", self.w_opinion)):
                if w:
                    f_s = self.proj[f"{name}_{key}"](out[f"{key}_features"].float())
                    add(f"kd_{key}", self.kd_loss(f_s, t_out[f"{key}_features"].float()), w)
