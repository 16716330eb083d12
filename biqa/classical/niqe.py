"""NIQE: Naturalness Image Quality Evaluator (Mittal, Soundararajan and Bovik, "Making a 'completely
blind' image quality analyzer", IEEE Signal Processing Letters 20(3), 2013).

Implemented from the paper with the feature definitions of the authors' MATLAB release, whose
pristine model (``mu_prisparam``, ``cov_prisparam``; fitted on 125 pristine photos) biqa ships in
``data/niqe_pristine.npz`` (see ``data/NOTICE.md`` for its provenance and licence).

The image (grey levels 0..255, MATLAB ``rgb2gray``) is cropped to a multiple of 96 px and cut into
96 x 96 blocks; at a second scale (``imresize(I, 0.5)``) into the same grid of 48 x 48 blocks. For each
block and scale, 18 features of its MSCN coefficients (C = 1): the AGGD shape and mean scale
``(beta_l + beta_r) / 2`` of the coefficients, and for the products of each coefficient with its
horizontal, vertical and two diagonal neighbours (circularly within the block) the AGGD shape,
mean ``(beta_r - beta_l) G(2/a) / G(1/a)``, ``beta_l`` and ``beta_r``. A multivariate Gaussian is fitted
to the 36-dimensional block features (blocks with an undefined feature are left out), and NIQE is
the distance between it and the pristine model:
``sqrt((mu_p - mu) ((S_p + S) / 2)^+ (mu_p - mu)^T)``.

Raw scale: >= 0, lower is better (about 2-5 for clean photos; 10+ for heavily distorted ones).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import gamma as G

from ._nss import aggd_fit, imresize_half, mscn, rgb2gray_matlab

BLOCK = 96
DATA = Path(__file__).resolve().parent / "data" / "niqe_pristine.npz"
# neighbour offsets (rows, cols) of the paired products, as MATLAB circshift shifts: H, V, D1, D2
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """(mu ``[36]``, cov ``[36, 36]``) of the pristine-image model."""
    with np.load(DATA) as d:
        return d["mu"].astype(np.float64).reshape(-1), d["cov"].astype(np.float64)


def _blocks(a: np.ndarray, size: int) -> np.ndarray:
    """``[H, W]`` (multiples of ``size``) -> ``[n_blocks, size, size]``."""
    h, w = a.shape
    return a.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3).reshape(-1, size, size)


def block_features(coef: np.ndarray, size: int) -> np.ndarray:
    """The 18 features of each ``size`` x ``size`` block of MSCN coefficients: ``[n_blocks, 18]``."""
    b = _blocks(coef, size)
    n = len(b)
    a, lstd, rstd = aggd_fit(b.reshape(n, -1))
    k = np.sqrt(G(1.0 / a) / G(3.0 / a))
    feats = [a, (lstd + rstd) * k / 2.0]
    for dy, dx in SHIFTS:
        prod = b * np.roll(b, (dy, dx), axis=(1, 2))
        a, lstd, rstd = aggd_fit(prod.reshape(n, -1))
        k = np.sqrt(G(1.0 / a) / G(3.0 / a))
        bl, br = lstd * k, rstd * k
        feats += [a, (br - bl) * G(2.0 / a) / G(1.0 / a), bl, br]
    return np.stack(feats, axis=1)


def niqe_features(gray: np.ndarray) -> np.ndarray:
    """``[n_blocks, 36]``: the 18 block features at full and at half scale, per block."""
    h, w = gray.shape
    if h < BLOCK or w < BLOCK or (h // BLOCK) * (w // BLOCK) < 2:
        raise ValueError(f"image too small for NIQE ({w}x{h}): needs at least two {BLOCK}x{BLOCK} blocks")
    im = np.asarray(gray, dtype=np.float64)[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    f1 = block_features(mscn(im), BLOCK)
    f2 = block_features(mscn(imresize_half(im)), BLOCK // 2)
    return np.concatenate([f1, f2], axis=1)


def niqe_distance(feats: np.ndarray, mu_p: np.ndarray, cov_p: np.ndarray) -> float:
    """Distance between the Gaussian fitted to ``feats`` (rows with non-finite values dropped) and
    the pristine model."""
    feats = feats[np.isfinite(feats).all(axis=1)]
    if len(feats) < 2:
        raise ValueError("NIQE: fewer than two blocks with defined features (flat image?)")
    mu = feats.mean(0)
    cov = np.cov(feats, rowvar=False)
    d = mu_p - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2.0) @ d))


def niqe(image: np.ndarray) -> float:
    """NIQE of an image: ``uint8 [H, W, 3]`` RGB or ``[H, W]`` grey levels 0..255. Lower is better."""
    mu_p, cov_p = pristine_model()
    return niqe_distance(niqe_features(rgb2gray_matlab(image)), mu_p, cov_p)
