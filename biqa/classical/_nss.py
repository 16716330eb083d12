"""Natural-scene-statistics building blocks shared by NIQE and PIQE (NumPy / SciPy).

- :func:`rgb2gray_matlab`: MATLAB's ``rgb2gray`` for 8-bit input (ITU-R BT.601 weights, rounded);
- :func:`gaussian_window`: the normalised 7-tap Gaussian (sigma 7/6) of BRISQUE, NIQE and PIQE;
- :func:`mscn`: mean-subtracted contrast-normalised coefficients
  ``(I - mu) / (sigma + C)`` with Gaussian-weighted local mean and deviation;
- :func:`aggd_fit`: moment-matching fit of an asymmetric generalised Gaussian
  (Lasmar, Stitou and Berthoumieu 2009, as used by BRISQUE and NIQE), vectorised over rows;
- :func:`imresize_half`: MATLAB's ``imresize(I, 0.5)`` (bicubic, antialiased).

Written from the papers (Mittal, Moorthy and Bovik 2012; Mittal, Soundararajan and Bovik 2013) and
the documented behaviour of the MATLAB functions their reference implementations call.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import gamma as _gamma

# MATLAB's rgb2gray coefficients (inverse of its YIQ transform, first row)
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def rgb2gray_matlab(rgb: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB (or ``[H, W]`` grey) -> float64 grey levels 0..255, rounded like
    MATLAB's ``rgb2gray`` on uint8 input (round half away from zero)."""
    a = np.asarray(rgb)
    if a.ndim == 2:
        return a.astype(np.float64)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {a.shape}")
    a = a[..., :3].astype(np.float64)
    g = a[..., 0] * RGB2GRAY[0] + a[..., 1] * RGB2GRAY[1] + a[..., 2] * RGB2GRAY[2]
    return np.floor(g + 0.5)


def gaussian_window(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """1-D Gaussian taps summing to 1 (the 2-D window is their outer product, as ``fspecial``'s)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return w / w.sum()


def _blur(img: np.ndarray, w: np.ndarray, mode: str) -> np.ndarray:
    out = ndimage.correlate1d(img, w, axis=0, mode=mode)
    return ndimage.correlate1d(out, w, axis=1, mode=mode)


def mscn(img: np.ndarray, c: float = 1.0, window: np.ndarray | None = None, mode: str = "nearest"
         ) -> np.ndarray:
    """MSCN coefficients of a grey image (float). ``mode='nearest'`` replicates the border
    (MATLAB ``imfilter(..., 'replicate')``, OpenCV ``BORDER_REPLICATE``)."""
    img = np.asarray(img, dtype=np.float64)
    w = gaussian_window() if window is None else window
    mu = _blur(img, w, mode)
    var = _blur(img * img, w, mode) - mu * mu
    return (img - mu) / (np.sqrt(np.abs(var)) + c)


# the shape grid of the reference implementations: 0.2, 0.201, ..., 10
AGGD_SHAPES = np.arange(200, 10001, dtype=np.float64) / 1000.0
_RHO = _gamma(2.0 / AGGD_SHAPES) ** 2 / (_gamma(1.0 / AGGD_SHAPES) * _gamma(3.0 / AGGD_SHAPES))  # increasing


def _nearest_shape(rhat_norm: np.ndarray) -> np.ndarray:
    """The grid shape whose generalised-Gaussian ratio rho(a) = G(2/a)^2 / (G(1/a) G(3/a)) is
    nearest to ``rhat_norm`` (argmin of the squared difference; rho is increasing in a)."""
    r = np.asarray(rhat_norm, dtype=np.float64)
    ok = np.isfinite(r)
    i = np.searchsorted(_RHO, np.where(ok, r, 0.0))
    lo = np.clip(i - 1, 0, len(_RHO) - 1)
    hi = np.clip(i, 0, len(_RHO) - 1)
    pick = np.where(np.abs(_RHO[hi] - r) < np.abs(_RHO[lo] - r), hi, lo)
    return np.where(ok, AGGD_SHAPES[pick], np.nan)


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit an asymmetric generalised Gaussian to each row of ``x`` (``[N, M]``, or one vector).

    Returns ``(shape, left_std, right_std)``: the shape ``alpha`` from the grid 0.2:0.001:10 and the
    root mean squares of the negative and of the positive values. The AGGD scales follow as
    ``beta = std * sqrt(G(1/alpha) / G(3/alpha))``. Rows without negative or positive values give NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    one = x.ndim == 1
    x = np.atleast_2d(x)
    sq = x * x
    neg, pos = x < 0, x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lstd = np.sqrt(np.where(neg, sq, 0.0).sum(1) / neg.sum(1))
        rstd = np.sqrt(np.where(pos, sq, 0.0).sum(1) / pos.sum(1))
        g = lstd / rstd
        rhat = np.abs(x).mean(1) ** 2 / sq.mean(1)
        rhat_norm = rhat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alpha = _nearest_shape(rhat_norm)
    if one:
        return alpha[0], lstd[0], rstd[0]
    return alpha, lstd, rstd


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``imresize`` 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return np.where(ax <= 1, 1.5 * ax3 - 2.5 * ax2 + 1,
                    np.where(ax <= 2, -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2, 0.0))


# imresize(.., 0.5): output sample i sits at input coordinate 2i + 0.5 (0-based); the antialiased kernel
# is 0.5 * cubic(0.5 * d), non-zero for the 8 inputs at distances +-0.5, +-1.5, +-2.5, +-3.5
_HALF_TAPS = 0.5 * _cubic(0.5 * (np.arange(8) - 3.5))
_HALF_TAPS = _HALF_TAPS / _HALF_TAPS.sum()


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic with antialiasing, symmetric border) of a 2-D float
    image; output size ``ceil(H / 2) x ceil(W / 2)``."""
    out = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        # correlate so that output k sums inputs k-3 .. k+4, then keep k = 0, 2, 4, ...
        out = ndimage.correlate1d(out, _HALF_TAPS, axis=axis, mode="reflect", origin=-1)
        out = out[::2] if axis == 0 else out[:, ::2]
    return out
