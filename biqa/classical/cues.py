"""Two single-cue no-reference scorers of an image file, each blind to most of what quality is: the
sharpness of the luminance (variance of its Laplacian) and its noise level (after Immerkaer 1996).
gMAD uses them as baselines (``classical:sharpness``, ``classical:noise``): they are what a strong model
should falsify. Higher = better for both; images are read downscaled to at most 512 pixels on the long
side, so that the numbers do not depend on the image size.
"""
from __future__ import annotations

import math

import numpy as np


def _gray(path: str, max_side: int = 512) -> np.ndarray:
    """Luminance in [0, 1], downscaled so that the long side is at most ``max_side`` (size-independent)."""
    from ..data import Resolution, load_image

    im = load_image(path, Resolution.parse(f"max:{max_side}"))
    return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def sharpness_score(path: str) -> float:
    """log10 of the variance of the Laplacian of the luminance: higher = more fine detail.

    A classic focus measure. It is honest about blur and fooled by noise (noise is "detail")."""
    from scipy import ndimage

    g = _gray(path)
    return float(np.log10(ndimage.laplace(g).var() + 1e-10))


def noise_score(path: str) -> float:
    """Minus the noise standard deviation (in 8-bit grey levels) estimated after Immerkaer (1996).

    The image is filtered with the difference of two Laplacians, which cancels smooth structure;
    sigma = sqrt(pi/2) * mean |filtered| / 6. Higher = cleaner; blind to blur, fooled by texture."""
    from scipy import ndimage

    g = _gray(path)
    if min(g.shape) < 3:
        raise ValueError("image smaller than 3x3")
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    r = ndimage.convolve(g, k, mode="reflect")[1:-1, 1:-1]
    sigma = math.sqrt(math.pi / 2.0) * np.abs(r).mean() / 6.0
    return float(-255.0 * sigma)
