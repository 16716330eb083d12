"""Tiled scoring of large images: full resolution with bounded memory.

Resizing a 4K/5K photo to the few hundred pixels a network was trained near removes exactly the
defects (noise, slight blur, compression artefacts) a quality score is for. Scoring it whole at
full resolution needs memory in proportion to its pixels: on the CPU, about 0.33 GB of
activations per megapixel for ``biqa-default`` (EfficientNet-Lite0, multi-level pooling), on top of
a process of about 0.8 GB, so a 16 Mpx photo takes over 6 GB. A :class:`TilePolicy` cuts such an
image into equal tiles instead, scores each tile at full resolution, and averages.

**Grid.** Tile positions depend on the image size only. Along an axis of length ``L`` with tile side
``t`` (the tile is ``min(t, L)``: never upscaled) and overlap ``o``: ``n = 1 + ceil((L - t) / (t - o))``
tiles at ``round(k * (L - t) / (n - 1))``, ``k = 0..n-1``: the first flush with one border, the last
flush with the other, spaced evenly, neighbours overlapping by at least ``o`` pixels. The 2-D grid is
the product of the two axes, row by row; every tile has the same size, so tiles batch together.

**Budget.** ``auto`` tiles an image whose sized input (after ``--resolution``) holds more than
``budget`` pixels (default :data:`DEFAULT_BUDGET`, 2 Mi px: 1920x1080 and 1024x768 are scored whole,
2048x1536, 4K and 5K are tiled). A forward pass of tiles holds at most the scorer's batch size and
:data:`DEFAULT_PASS_PIXELS` (1 Mi px: one 768 or 1024 tile) on a CPU, where time per pixel does not
improve with bigger passes but memory grows (a MobileIQA student peaked at 1.68 GB with three 768
tiles a pass, 1.17 GB with one); on a GPU the scorer allows ``budget`` pixels of tiles a pass.

**Aggregation.** The image score is the plain mean of its tile scores (tiles are equal-sized; a pixel
inside an overlap counts once per tile that holds it). For distribution models the image's ``std``
is the root mean square of the tile stds, ``sqrt(mean(std_i ** 2))``: the predicted spread of
opinions about a tile, pooled. The spread of the tile scores themselves (how quality varies across
the photo) is not added: it is not disagreement between raters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:  # torch is imported by tile_batches only: the torch-free scorer (biqa.ortscore) uses the rest
    import torch

DEFAULT_TILE = 768
DEFAULT_BUDGET = 1 << 21  # pixels (2,097,152): 1920x1080 is scored whole, 2048x1536 is tiled
DEFAULT_PASS_PIXELS = 1 << 20  # CPU: pixels of tiles in one forward pass (one 768 or 1024 tile)
TILE_MODES = ("auto", "off", "fixed")


def axis_positions(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis (see the module docstring)."""
    if length <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be at least 0 and less than the tile side {tile}")
    n = 1 + math.ceil((length - tile) / (tile - overlap))
    span = length - tile
    return [(k * span * 2 + (n - 1)) // (2 * (n - 1)) for k in range(n)]  # round(k * span / (n - 1)), exact


@dataclass(frozen=True)
class TileGrid:
    """Tile width and height and the top-left corners ``(x, y)``, row by row."""

    width: int
    height: int
    positions: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def tile_pixels(self) -> int:
        return self.width * self.height

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """``(left, top, right, bottom)`` of each tile (PIL's crop box)."""
        return [(x, y, x + self.width, y + self.height) for x, y in self.positions]


def tile_grid(w: int, h: int, tile: int, overlap: int) -> TileGrid:
    """The grid of ``tile`` x ``tile`` tiles (clipped to the image) covering a ``w`` x ``h`` image."""
    tw, th = min(tile, w), min(tile, h)
    xs, ys = axis_positions(w, tw, overlap), axis_positions(h, th, overlap)
    return TileGrid(tw, th, tuple((x, y) for y in ys for x in xs))


@dataclass(frozen=True)
class TilePolicy:
    """When and how to tile: ``auto`` (above ``budget`` pixels), ``off``, or ``fixed`` (every image
    larger than one tile). ``tile``: the side; ``overlap``: pixels shared by neighbours (default
    ``tile // 8``); ``budget``: pixels, for ``auto`` and for the tiles in one forward pass."""

    mode: str = "auto"
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_TILE // 8
    budget: int = DEFAULT_BUDGET

    @classmethod
    def parse(cls, spec: "str | int | TilePolicy | None" = "auto", overlap: int | None = None,
              budget: int | None = None) -> "TilePolicy":
        """``"auto"`` / ``None``, ``"off"`` (also ``"none"``, ``"0"``, ``False``, ``0``), or a tile side ``N``."""
        if isinstance(spec, TilePolicy):
            if overlap is None and budget is None:
                return spec
            mode, tile = spec.mode, spec.tile
            overlap = spec.overlap if overlap is None else overlap
            budget = spec.budget if budget is None else budget
        else:
            s = "auto" if spec is None else ("off" if spec is False else str(spec).strip().lower())
            if s == "auto":
                mode, tile = "auto", DEFAULT_TILE
            elif s in ("off", "none", "0", "false", "no"):
                mode, tile = "off", DEFAULT_TILE
            else:
                try:
                    mode, tile = "fixed", int(s)
                except ValueError:
                    raise ValueError(f"bad tile setting {spec!r}: use auto, off or a tile side in pixels") from None
                if tile < 32:
                    raise ValueError(f"tile side {tile} is too small (at least 32 pixels)")
        overlap = tile // 8 if overlap is None else int(overlap)
        if not 0 <= overlap < tile:
            raise ValueError(f"tile overlap {overlap} must be at least 0 and less than the tile side {tile}")
        budget = DEFAULT_BUDGET if budget is None else int(budget)
        if budget < 1:
            raise ValueError(f"tile budget must be a positive number of pixels, got {budget}")
        return cls(mode, tile, overlap, budget)

    def __str__(self) -> str:
        if self.mode == "off":
            return "off"
        head = "auto" if self.mode == "auto" else str(self.tile)
        return f"{head}(tile={self.tile},overlap={self.overlap}" + (
            f",budget={self.budget})" if self.mode == "auto" else ")")

    def applies(self, w: int, h: int) -> bool:
        """Whether an image sized ``w`` x ``h`` (what the network would see) is tiled."""
        if self.mode == "off":
            return False
        if self.mode == "auto":
            return w * h > self.budget
        return w > self.tile or h > self.tile

    def grid(self, w: int, h: int) -> TileGrid:
        return tile_grid(w, h, self.tile, self.overlap)

    def tiles_per_forward(self, grid: TileGrid, batch_size: int, pass_pixels: int = DEFAULT_PASS_PIXELS) -> int:
        """At most ``batch_size`` tiles and ``pass_pixels`` pixels of tiles a forward pass; at least one tile."""
        return max(1, min(int(batch_size), int(pass_pixels) // max(1, grid.tile_pixels)))


def tile_batches(image: "torch.Tensor", grid: TileGrid, per_batch: int) -> Iterator["torch.Tensor"]:
    """Stacks of tiles cut from ``image`` ``[3, H, W]`` (any dtype and strides, e.g. the uint8 image
    as decoded), in grid order, ``per_batch`` at a time (the last may hold fewer).

    Each stack is ``[b, 3, th, tw]`` with channels-last strides (a fresh copy of those tiles only):
    the whole image is never converted to float, only the tiles of one batch at a time are.
    """
    import torch

    pos = grid.positions
    tw, th = grid.width, grid.height
    for k in range(0, len(pos), per_batch):
        hwc = torch.stack([image[:, y:y + th, x:x + tw].permute(1, 2, 0) for x, y in pos[k:k + per_batch]])
        yield hwc.permute(0, 3, 1, 2)


def aggregate(scores, stds=None) -> tuple[float, float | None]:
    """Image score (mean of the tile scores) and std (root mean square of the tile stds), in float64."""
    s = np.asarray(scores, dtype=np.float64)
    score = float(s.mean())
    if stds is None:
        return score, None
    sd = np.asarray(stds, dtype=np.float64)
    return score, float(np.sqrt(np.mean(sd * sd)))
