"""A classical noise-floor estimate that sits beside a frozen backbone's pooled statistics.

On EfficientNet-Lite0's multi-level statistics, added white noise looks like texture: a photo of a smooth
scene gains "detail" when noise is added, and a head fitted on them can score the noisy version higher.
These 4 numbers measure the noise directly, the way a classical estimator does, so the head can tell the
two apart.

The estimator is J. Immerkaer's ("Fast noise variance estimation", Computer Vision and Image
Understanding 64(2), 1996): the absolute response of the luma to the 3x3 mask
``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` (a second difference across and then down), times
``sqrt(pi / 2) / 6``, is an unbiased estimate of the standard deviation of Gaussian noise wherever the
image is locally planar (the mask annihilates planes). Texture and edges inflate it, so it is averaged
over 8x8 blocks and, besides its mean over the image, a *floor* is taken: the mean over the image of
the minimum over each 4x4 neighbourhood of blocks. Smooth areas dominate the floor; texture does not.
Both are computed on the luma (0-255 scale, ITU-R BT.601 weights) and on its 2x2 average (the noise
at half resolution, where fine texture has faded and noise keeps ``sigma / 2``), and returned as
``log(1 + value)``: 4 numbers per image.

Every step is a fixed operation (slices, subtraction, absolute value, pooling, mean, log): no learnt
weight, no convolution, no addition of two activations, so ONNX export keeps it and the int8 export
leaves it in float32 (its quantiser only touches convolutions, clips and activation additions). It
works at any input size from 6x6 up: the pooling windows at the borders are partial (padding that
counts neither towards an average nor a minimum).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 8  # pixels a side of the blocks the absolute mask response is averaged over
NEIGHBOURS = 4  # blocks a side of the neighbourhood whose minimum makes the floor
SIGMA_GAIN = math.sqrt(math.pi / 2) / 6.0  # Immerkaer: E|mask * noise| = 6 sigma sqrt(2 / pi)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
N_FEATURES = 4  # per scale (1x, 2x): log1p(floor), log1p(mean)


def second_difference(g: torch.Tensor) -> torch.Tensor:
    """``g`` ``[B, 1, H, W]`` filtered by Immerkaer's mask, valid part ``[B, 1, H - 2, W - 2]``.

    The mask is the outer product of ``[1, -2, 1]`` with itself, so it is a second difference along W
    and then along H, written with subtractions only."""
    d = (g[..., :-2] - g[..., 1:-1]) - (g[..., 1:-1] - g[..., 2:])
    return (d[..., :-2, :] - d[..., 1:-1, :]) - (d[..., 1:-1, :] - d[..., 2:, :])


def block_noise(g: torch.Tensor) -> torch.Tensor:
    """Immerkaer's sigma estimate of luma ``g`` ``[B, 1, H, W]`` averaged over 8x8 blocks (partial
    blocks at the borders average what they hold)."""
    e = second_difference(g).abs() * SIGMA_GAIN
    return F.avg_pool2d(e, BLOCK, stride=BLOCK, padding=BLOCK // 2, count_include_pad=False)


def noise_floor_features(g: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` luma on a 0-255 scale -> ``[B, 4]``: per scale (1x, 2x),
    ``log1p(floor)`` and ``log1p(mean)`` of :func:`block_noise` (module docstring). Float32."""
    with torch.autocast(g.device.type, enabled=False):
        g = g.float()
        out = []
        for scale in (1, 2):
            gs = F.avg_pool2d(g, scale) if scale > 1 else g
            e = block_noise(gs)
            floor = -F.max_pool2d(-e, NEIGHBOURS, stride=1, padding=NEIGHBOURS // 2)
            out += [torch.log1p(floor.mean((1, 2, 3))), torch.log1p(e.mean((1, 2, 3)))]
        return torch.stack(out, 1)


class NoiseFloor(nn.Module):
    """:func:`noise_floor_features` of a *normalised* batch (``(rgb01 - mean) / std``), ``[B, 4 * repeat]``.

    The luma is recovered up to a constant offset (which the mask annihilates) as one weighted sum of
    the normalised channels, so only the normalisation's ``std`` is needed. ``repeat`` repeats the 4
    columns: a ridge or kernel head on standardised features penalises every column alike, and r copies
    of a column weigh it like a column scaled by ``sqrt(r)`` (benchmarks/noise_floor.py chooses r on
    validation data)."""

    def __init__(self, std, repeat: int = 1):
        super().__init__()
        coef = [255.0 * w * s for w, s in zip(LUMA, std)]
        self.register_buffer("luma_coef", torch.tensor(coef, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.repeat = int(repeat)
        self.num_features = N_FEATURES * self.repeat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            g = (x.float() * self.luma_coef).sum(1, keepdim=True)
            f = noise_floor_features(g)
        return f.repeat(1, self.repeat) if self.repeat > 1 else f
