"""A trained model as a ready metric for code: ``biqa.create_metric(name)`` -> ``torch.nn.Module``.

>>> metric = biqa.create_metric("biqa-default")     # device="auto"
>>> s = metric(x)                                   # x: [B, 3, H, W] in [0, 1] -> s: [B]
>>> metric.higher_is_better, metric.score_range     # (True, (1.0, 5.0))

The metric preprocesses a tensor the way ``biqa score`` preprocesses a decoded image: normalised
with the checkpoint's mean and std, sized by its resolution policy, and, above the tiling budget
(``tile="auto"``: more than 2 Mi pixels), scored in tiles whose scores are averaged (see
:mod:`biqa.tiling`). For a PNG that ``biqa score`` reads, ``metric(x)`` with ``x`` the same
pixels divided by 255 gives the same score (tested, within float rounding).

``as_loss=True`` keeps the graph, so the score can be back-propagated to the input (e.g. to train an
image-restoration network against it). The sign is the score's own: for a higher-is-better model,
minimise ``-metric(x).mean()``; :meth:`QualityMetric.loss` does exactly that (and ``+mean`` for a
lower-is-better model). The metric's own weights are frozen either way.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .data import Resolution, check_image_batch
from .host import resolve_device
from .tiling import DEFAULT_PASS_PIXELS, TilePolicy, tile_batches


class QualityMetric(nn.Module):
    """A trained quality model as ``x [B, 3, H, W] in [0, 1] -> scores [B]``. Build it with
    :func:`create_metric`.

    Attributes: ``name``, ``higher_is_better``, ``lower_better`` (its negation, pyiqa's spelling),
    ``score_range`` (the nominal ``(lo, hi)`` of the label scale the model was fitted on; a linear
    head is not bounded by it, see ``clip``), ``trained``, ``as_loss``, ``meta`` (the checkpoint's JSON).
    """

    def __init__(self, model: nn.Module, meta: dict, *, name: str = "", as_loss: bool = False,
                 tile: "str | int | TilePolicy | None" = "auto", tile_overlap: int | None = None,
                 resolution: str | None = None, clip: bool = False, batch_size: int = 8):
        super().__init__()
        from .models import warn_if_untrained

        self.net = model.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.meta = meta
        self.name = name
        self.as_loss = bool(as_loss)
        self.clip = bool(clip)
        self.batch_size = int(batch_size)
        scale = meta.get("label_scale", {})
        self.higher_is_better = bool(scale.get("higher_is_better", True))
        self.score_range = (float(scale.get("lo", 0.0)), float(scale.get("hi", 1.0)))
        self.trained = bool(getattr(model, "trained", meta.get("trained", True)))
        pre = meta.get("preprocessing", {})
        self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pre["std"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.resolution = Resolution.parse(resolution or pre.get("resolution", "full"))
        self.tiling = TilePolicy.parse(tile, tile_overlap)
        warn_if_untrained(model, self.trained, name or "this model")

    @property
    def lower_better(self) -> bool:
        return not self.higher_is_better

    def train(self, mode: bool = True) -> "QualityMetric":
        """The metric stays in eval mode (its network is never trained through it)."""
        super().train(mode)
        self.net.eval()
        return self

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, higher_is_better={self.higher_is_better}, score_range={self.score_range}, "
                f"as_loss={self.as_loss}, resolution={self.resolution}, tile={self.tiling}")

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        tw, th = self.resolution.target_size(w, h)
        if (tw, th) == (w, h):
            return x
        # biqa score resizes with Pillow's bicubic filter; this is torch's antialiased bicubic (close, not identical)
        return F.interpolate(x, size=(th, tw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)["score"].float().reshape(-1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_image_batch(x, who="QualityMetric")
        x = self._resize(x.to(self.mean.device, torch.float32))
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if not self.tiling.applies(w, h):  # as biqa score: the whole image, batch_size images a pass
            out = torch.cat([self._scores(x[k:k + self.batch_size]) for k in range(0, len(x), self.batch_size)])
        else:  # as biqa score: the mean of its tile scores
            grid = self.tiling.grid(w, h)
            pass_px = self.tiling.budget if x.device.type == "cuda" else DEFAULT_PASS_PIXELS
            per = self.tiling.tiles_per_forward(grid, self.batch_size, pass_px)
            out = torch.stack([torch.cat([self._scores(t) for t in tile_batches(img, grid, per)]).double().mean()
                               .float() for img in x])
        if self.clip:
            out = out.clamp(*self.score_range)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of images ``x`` ``[B, 3, H, W]`` (or ``[3, H, W]``) with values in [0, 1]."""
        if self.as_loss:
            return self._forward(x)
        with torch.no_grad():
            return self._forward(x)

    def loss(self, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """A loss to minimise: ``-score`` for a higher-is-better model, ``+score`` otherwise, reduced by
        ``mean``, ``sum`` or ``none``. Needs ``as_loss=True`` for gradients."""
        s = self.forward(x)
        s = -s if self.higher_is_better else s
        return {"mean": s.mean, "sum": s.sum}.get(reduction, lambda: s)()


def create_metric(name_or_checkpoint: "str | os.PathLike | None" = None, *, device: str = "auto",
                  as_loss: bool = False, peer: str | None = None, fold_bn: bool = True, **kwargs) -> QualityMetric:
    """A trained model as a ready metric, a :class:`QualityMetric` (``torch.nn.Module``): ``metric(x)``
    takes ``[B, 3, H, W]`` in [0, 1] and returns ``[B]`` scores, preprocessed as ``biqa score`` does.

    ``name_or_checkpoint``: a trained model name (default ``biqa-default``; ``biqa models`` lists them),
    a checkpoint ``.safetensors`` or a run folder. Presets (``biqa.create_model``) are untrained
    architectures and are refused; classical models (``brisque``, ``niqe``, ``piqe``) are not torch
    modules: use ``biqa.load(name).score(...)`` for them.
    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ...
    ``as_loss``: keep gradients (see the module's docstring for the sign; :meth:`QualityMetric.loss`).
    ``peer``: one network of a multi-network checkpoint. ``fold_bn``: fold BatchNorms into convolutions
    as ``biqa score`` does (same scores within float rounding).
    Keyword arguments: ``tile`` (``auto`` | ``off`` | N), ``tile_overlap``, ``resolution`` (default: the
    checkpoint's), ``clip`` (clamp scores to ``score_range``; default off, as ``biqa score``),
    ``batch_size`` (images, or tiles, a forward pass).
    """
    from pathlib import Path

    from .checkpoint import load_model
    from .classical import is_classical
    from .zoo import DEFAULT_MODEL, resolve_checkpoint

    name = str(name_or_checkpoint or DEFAULT_MODEL)
    if is_classical(name) and not Path(name).exists():
        raise ValueError(f"{name!r} is a classical model (NumPy/OpenCV, not differentiable), not a torch metric: "
                         f"score with biqa.load({name!r}).score(images)")
    path = resolve_checkpoint(name)
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is an ONNX model: create_metric needs a checkpoint (.safetensors) or a trained "
                         "model name; score ONNX files with biqa.load(path).score(...)")
    device = resolve_device(device)
    model, meta = load_model(path, net=peer)
    if fold_bn:
        from .inference import fold_batchnorm

        fold_batchnorm(model.eval())
    return QualityMetric(model, meta, name=name, as_loss=as_loss, **kwargs).to(device)
