"""PIQE: Perception-based Image Quality Evaluator (Venkatanath N, Praneeth D, Maruthi Chandrasekhar Bh,
S. S. Channappayya and S. S. Medasani, "Blind image quality evaluation using perception based
features", NCC 2015). Opinion-unaware and training-free; implemented from the paper and the
documented behaviour of MATLAB's ``piqe``, vectorised over blocks with NumPy.

1. Grey image (MATLAB ``rgb2gray``), padded symmetrically at the bottom / right to a multiple of
   16 px and scaled so that its maximum is 255; MSCN coefficients with C = 1.
2. 16 x 16 non-overlapping blocks; a block is *spatially active* when the (sample) variance ``v`` of
   its coefficients exceeds 0.1.
3. An active block shows a *noticeable artefact* (blockiness, sudden change) when any of the 11
   overlapping 6-px segments along any of its four edges has a (sample) standard deviation below 0.1.
4. It shows *noise* when ``sigma > 2 beta``, ``sigma = sqrt(v)``, ``beta = |sigma - r| / max(sigma, r)``,
   where ``r`` is the ratio of the standard deviations of the block's two centre columns and of its
   surround (MATLAB's column bookkeeping: the surround is the block without columns 8 and 10,
   1-based).
5. ``PIQE = 100 (sum_active [A (1 - v) + N v] + 1) / (n_active + 1)`` with A, N the two indicators.

Raw scale: 0..100, lower is better (MATLAB's bands: 0-20 excellent, 21-35 good, 36-50 fair, 51-80
poor, 81-100 bad). A flat image (no active block) scores 100.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._nss import mscn, rgb2gray_matlab

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6
# 0-based columns of the block's centre, and those left out of its surround (see the module docstring)
CENTRE_COLS = (7, 8)
SURROUND_DROP = (7, 9)


def piqe_blocks(gray: np.ndarray) -> dict[str, np.ndarray]:
    """Per-block quantities of PIQE for a grey image (0..255): ``variance``, ``active``,
    ``artefact``, ``noise`` (each ``[rows, cols]`` of blocks)."""
    g = np.asarray(gray, dtype=np.float64)
    h, w = g.shape
    ph, pw = (-h) % BLOCK, (-w) % BLOCK
    if ph or pw:
        g = np.pad(g, ((0, ph), (0, pw)), mode="symmetric")
    top = g.max()
    if top > 0:
        g = np.round(255.0 * g / top)
    coef = mscn(g)
    nr, nc = g.shape[0] // BLOCK, g.shape[1] // BLOCK
    b = coef.reshape(nr, BLOCK, nc, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    n = len(b)
    var = b.reshape(n, -1).var(axis=1, ddof=1)
    active = var > ACTIVITY_THRESHOLD
    edges = np.stack([b[:, 0, :], b[:, -1, :], b[:, :, 0], b[:, :, -1]], axis=1)  # [n, 4, 16]
    seg_std = sliding_window_view(edges, SEGMENT, axis=2).std(axis=-1, ddof=1)  # [n, 4, 11]
    artefact = (seg_std < IMPAIRED_THRESHOLD).any(axis=(1, 2))
    keep = [c for c in range(BLOCK) if c not in SURROUND_DROP]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = b[:, :, list(CENTRE_COLS)].reshape(n, -1).std(1, ddof=1) / b[:, :, keep].reshape(n, -1).std(1, ddof=1)
        ratio = np.where(np.isnan(ratio), 0.0, ratio)
        sigma = np.sqrt(var)
        beta = np.abs(sigma - ratio) / np.maximum(sigma, ratio)
        noise = sigma > 2.0 * beta
    shape = (nr, nc)
    return {"variance": var.reshape(shape), "active": active.reshape(shape),
            "artefact": (artefact & active).reshape(shape), "noise": (noise & active).reshape(shape)}


def piqe(image: np.ndarray) -> float:
    """PIQE of an image: ``uint8 [H, W, 3]`` RGB or ``[H, W]`` grey levels 0..255. Lower is better."""
    blk = piqe_blocks(rgb2gray_matlab(image))
    v, act = blk["variance"], blk["active"]
    dist = (blk["artefact"] * (1.0 - v) + blk["noise"] * v)[act].sum()
    return float(100.0 * (dist + 1.0) / (act.sum() + 1.0))
