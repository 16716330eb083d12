"""The 25 KADID-10k distortion types, each at 5 levels, re-implemented from the paper's descriptions.

Lin, Hosu, Saupe, "KADID-10k: A Large-scale Artificially Distorted IQA Database", QoMEX 2019.
Only the *kinds* of distortion follow the paper; the level parameters below are our own choices
for 384-512 px images: levels 1 and 5 were set by eye, and levels 2-4 placed so that the mean FR
quality ``q`` (:func:`biqa.synth.labels.fr_quality`) of 10 of the bundled photos (384 px crops)
falls from level to level in proportion to KADID's mean-MOS drop plus 0.15 (so that flat stretches
of KADID's scale still give distinct levels). The calibration in :mod:`biqa.synth.labels` then maps
our levels onto KADID's human ratings with nearly linear per-type maps.

Every distortion is a callable ``f(img, level, rng) -> out`` where

* ``img`` is a float32 array ``H x W x 3`` with values in ``[0, 1]`` (RGB),
* ``level`` is an int in ``1..5`` (1 = mildest, 5 = strongest),
* ``rng`` is a :class:`numpy.random.Generator` (only random types use it),
* ``out`` has the same shape, dtype float32, values in ``[0, 1]``.

Random types draw the *same* random numbers at every level and only scale them with the level, so
calling a distortion at levels 1..5 with generators seeded alike gives nested, monotonically
stronger distortions of one image. Directional distortions have one fixed direction per type
(brighten vs darken; desaturate (07) vs over-saturate (08); mean shift upwards; contrast
decrease), so quality is monotone in the level. KADID itself mixes directions within Mean_Shift and
Contrast Dist.; see :func:`biqa.synth.labels.kadid_level_means` for how that is handled.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, features
from scipy import ndimage, signal
from scipy.cluster.vq import kmeans2, vq

__all__ = ["Distortion", "DISTORTIONS", "get_distortion", "resolve_types", "apply_distortion",
           "JPEG2000_BACKEND", "to_uint8", "from_uint8", "rgb_to_lab", "lab_to_rgb"]

_LEVELS = 5


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _check_image(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a numpy array H x W x 3, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape H x W x 3, got shape {img.shape}")
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"expected a float image in [0, 1], got dtype {img.dtype} (divide uint8 images by 255)")
    if img.size and (float(img.min()) < -1e-4 or float(img.max()) > 1 + 1e-4):
        raise ValueError(f"image values must lie in [0, 1], got [{img.min():.4g}, {img.max():.4g}]")
    return np.clip(img.astype(np.float32, copy=False), 0.0, 1.0)


def _out(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0).astype(np.float32, copy=False)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 in [0, 255] (rounded)."""
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def from_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 in [0, 1]."""
    return np.asarray(img, dtype=np.float32) / 255.0


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, None)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


# sRGB (D65) <-> XYZ, IEC 61966-2-1
_RGB2XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                     [0.2126729, 0.7151522, 0.0721750],
                     [0.0193339, 0.1191920, 0.9503041]])
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(img: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (H x W x 3) -> CIELAB (D65): L in [0, 100], a and b roughly in [-128, 127]."""
    xyz = _srgb_to_linear(img.astype(np.float64)) @ _RGB2XYZ.T / _WHITE
    d = 6 / 29
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> sRGB in [0, 1] (out-of-gamut colours are clipped), float64."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    d = 6 / 29
    xyz = np.where(f > d, f ** 3, 3 * d * d * (f - 4 / 29)) * _WHITE
    return np.clip(_linear_to_srgb(xyz @ _XYZ2RGB.T), 0.0, 1.0)


def _luma(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (H x W), same weights as JPEG's YCbCr."""
    return img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _ycbcr(img: np.ndarray) -> np.ndarray:
    """RGB [0, 1] -> full-range YCbCr with Y in [0, 1] and Cb, Cr in [-0.5, 0.5] (JFIF)."""
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return img @ m.T.astype(np.float32)


def _ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    m = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])
    return ycc @ m.T.astype(np.float32)


def _per_channel(img: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(img[..., c]) for c in range(img.shape[2])], -1)


def _convolve_reflect(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with a 2-D kernel (FFT), reflecting the borders; same size out."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(img, ((ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)), mode="reflect")
    return signal.fftconvolve(padded, kernel[:, :, None].astype(np.float32), mode="valid", axes=(0, 1))


def _disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """Anti-aliased uniform disk (pill-box) of the given radius in pixels, sum 1."""
    r = int(np.ceil(radius))
    s = supersample
    ax = (np.arange((2 * r + 1) * s) + 0.5) / s - (r + 0.5)
    inside = (ax[None, :] ** 2 + ax[:, None] ** 2) <= radius ** 2
    k = inside.reshape(2 * r + 1, s, 2 * r + 1, s).mean(axis=(1, 3))
    return k / k.sum()


def _line_kernel(length: float, angle: float) -> np.ndarray:
    """Anti-aliased straight line of ``length`` pixels at ``angle`` radians (motion path), sum 1."""
    r = int(np.ceil(length / 2)) + 1
    k = np.zeros((2 * r + 1, 2 * r + 1))
    n = max(2, int(np.ceil(length * 8)))
    t = np.linspace(-length / 2, length / 2, n)
    xs, ys = r + t * np.cos(angle), r - t * np.sin(angle)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), w)
    return k / k.sum()


def _pil_roundtrip(img: np.ndarray, fmt: str, **save_kwargs) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format=fmt, **save_kwargs)
    buf.seek(0)
    with Image.open(buf) as im:
        return from_uint8(np.asarray(im.convert("RGB")))


def _patch_size(img: np.ndarray) -> int:
    """Patch / block side for the patch-based types: 16 px at 384 px, scaled with image size."""
    return int(max(3, round(min(img.shape[:2]) / 24)))


def _count(p: tuple[float, int], img: np.ndarray) -> int:
    """Number of patches for ``p = (k, minimum)``: ``k`` patches per 384 x 384 px, at least ``minimum``."""
    k, minimum = p
    return int(max(minimum, round(k * img.shape[0] * img.shape[1] / (384 * 384))))


# --------------------------------------------------------------------------------------------
# the 25 types: fn(img, p, rng) with p = the level's parameter
# --------------------------------------------------------------------------------------------
def _gaussian_blur(img, sigma, rng):
    return ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="reflect", truncate=3.0)


def _lens_blur(img, radius, rng):
    return _convolve_reflect(img, _disk_kernel(radius))


def _motion_blur(img, length, rng):
    angle = rng.uniform(0, np.pi)
    return _convolve_reflect(img, _line_kernel(length, angle))


def _color_diffusion(img, sigma, rng):
    lab = rgb_to_lab(img)
    lab[..., 1:] = ndimage.gaussian_filter(lab[..., 1:], sigma=(sigma, sigma, 0), mode="reflect", truncate=3.0)
    return lab_to_rgb(lab)


def _color_shift(img, shift, rng):
    angle = rng.uniform(0, 2 * np.pi)
    out = img.copy()
    out[..., 1] = ndimage.shift(img[..., 1], (shift * np.sin(angle), shift * np.cos(angle)), order=1, mode="nearest")
    return out


def _color_quantization(img, colors, rng):
    # Median-cut palette (Pillow) on a 2x-reduced copy, refined by 8 k-means steps (scipy), then
    # every pixel mapped to its nearest palette colour (no dithering). Deterministic.
    n = int(colors)
    u8 = to_uint8(img)
    small = Image.fromarray(u8).reduce(2) if min(u8.shape[:2]) >= 2 * n else Image.fromarray(u8)
    pal = small.quantize(colors=n, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    k = len(pal.getcolors(n) or []) or n
    init = np.asarray(pal.getpalette()[:3 * k], dtype=np.float64).reshape(-1, 3)
    data = np.asarray(small, dtype=np.float64).reshape(-1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty clusters keep their colour
        centres, _ = kmeans2(data, init, iter=8, minit="matrix", missing="warn")
    centres = np.clip(np.rint(centres), 0, 255)
    code, _ = vq(u8.reshape(-1, 3).astype(np.float64), centres)
    return (centres[code] / 255.0).reshape(img.shape)


def _saturation_hsv(img, factor, rng):
    # Scaling HSV saturation by `factor` at fixed hue and value is, per channel: V - factor * (V - c).
    v = img.max(axis=2, keepdims=True)
    return v - factor * (v - img)


def _saturation_lab(img, factor, rng):
    lab = rgb_to_lab(img)
    lab[..., 1:] *= factor
    return lab_to_rgb(lab)


def _jpeg2000(img, ratio, rng):
    # Below ~128 px the codestream cannot shrink much further: the strongest levels saturate.
    if JPEG2000_BACKEND == "openjpeg":
        return _pil_roundtrip(img, "JPEG2000", quality_mode="rates", quality_layers=[float(ratio)],
                              irreversible=True)
    return _wavelet_quantise(img, ratio)


def _wavelet_quantise(img: np.ndarray, ratio: float) -> np.ndarray:
    """JPEG2000 substitute when Pillow lacks OpenJPEG: keep the largest Haar coefficients of YCbCr.

    A 4-level orthonormal Haar transform of each YCbCr channel; only ``1/ratio`` of the detail
    coefficients (the largest in magnitude, over all channels) are kept, the rest are set to 0.
    Produces the ringing-free blur and blockiness typical of coarse wavelet coding.
    """
    ycc = _ycbcr(img).astype(np.float64)
    h, w = img.shape[:2]
    lv = 4
    ph, pw = (-h) % (2 ** lv), (-w) % (2 ** lv)
    x = np.pad(ycc, ((0, ph), (0, pw), (0, 0)), mode="reflect")
    details = []
    ll = x
    for _ in range(lv):
        a, b = ll[0::2, 0::2], ll[0::2, 1::2]
        c, d = ll[1::2, 0::2], ll[1::2, 1::2]
        details.append([(a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2])
        ll = (a + b + c + d) / 2
    allc = np.concatenate([np.abs(t).ravel() for lvl in details for t in lvl])
    keep = max(1, int(allc.size / ratio))
    thr = np.partition(allc, allc.size - keep)[allc.size - keep]
    for lvl in reversed(details):
        hl, lh, hh = (np.where(np.abs(t) >= thr, t, 0.0) for t in lvl)
        out = np.empty((ll.shape[0] * 2, ll.shape[1] * 2, 3))
        out[0::2, 0::2] = (ll + hl + lh + hh) / 2
        out[0::2, 1::2] = (ll - hl + lh - hh) / 2
        out[1::2, 0::2] = (ll + hl - lh - hh) / 2
        out[1::2, 1::2] = (ll - hl - lh + hh) / 2
        ll = out
    return _ycbcr_to_rgb(ll[:h, :w].astype(np.float32))


def _jpeg(img, quality, rng):
    return _pil_roundtrip(img, "JPEG", quality=int(quality), subsampling="4:2:0")


def _white_noise(img, sigma, rng):
    return img + sigma * rng.standard_normal(img.shape, dtype=np.float32)


def _white_noise_color(img, sigma, rng):
    ycc = _ycbcr(img)
    noise = rng.standard_normal(img.shape[:2] + (2,), dtype=np.float32)
    ycc[..., 1:] += sigma * noise
    return _ycbcr_to_rgb(ycc)


def _impulse_noise(img, density, rng):
    hit = rng.random(img.shape, dtype=np.float32)
    salt = rng.random(img.shape, dtype=np.float32) < 0.5
    return np.where(hit < density, salt.astype(np.float32), img)


def _multiplicative_noise(img, sigma, rng):
    return img * (1 + sigma * rng.standard_normal(img.shape, dtype=np.float32))


def _denoise(img, sigma, rng):
    # white noise, then a local adaptive Wiener filter told the true noise power (window grows with sigma)
    window = 3 + 2 * int(sigma / 0.04)
    noisy = np.clip(img + sigma * rng.standard_normal(img.shape, dtype=np.float32), 0, 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # flat windows: wiener falls back to the local mean
        return _per_channel(noisy, lambda c: signal.wiener(c.astype(np.float64), mysize=int(window),
                                                           noise=sigma ** 2))


def _brighten(img, gamma, rng):
    # gamma on the HSV value (max of R, G, B) at fixed hue and saturation: never clips
    v = img.max(axis=2, keepdims=True)
    return img * (np.power(v, 1 / gamma) / np.maximum(v, 1e-6))


def _darken(img, gamma, rng):
    v = img.max(axis=2, keepdims=True)
    return img * (np.power(v, gamma) / np.maximum(v, 1e-6))


def _mean_shift(img, delta, rng):
    return img + delta


def _jitter(img, amount, rng):
    h, w = img.shape[:2]
    d = rng.standard_normal((2, h, w)).astype(np.float32) * amount
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys = np.clip(np.rint(yy + d[0]), 0, h - 1).astype(np.intp)
    xs = np.clip(np.rint(xx + d[1]), 0, w - 1).astype(np.intp)
    return img[ys, xs]


def _non_eccentricity_patch(img, k, rng):
    # Patches copied from a random place to a nearby place (an offset of 1-2 patch sizes).
    h, w = img.shape[:2]
    p = min(_patch_size(img), h, w)
    n_all = _count(_NEP_MAX, img)
    sy, sx = rng.integers(0, h - p + 1, n_all), rng.integers(0, w - p + 1, n_all)
    ang = rng.uniform(0, 2 * np.pi, n_all)
    dist = rng.uniform(1.0, 2.0, n_all) * p
    ty = np.clip(np.rint(sy + dist * np.sin(ang)), 0, h - p).astype(int)
    tx = np.clip(np.rint(sx + dist * np.cos(ang)), 0, w - p).astype(int)
    out = img.copy()
    for i in range(min(_count(k, img), n_all)):
        out[ty[i]:ty[i] + p, tx[i]:tx[i] + p] = img[sy[i]:sy[i] + p, sx[i]:sx[i] + p]
    return out


def _pixelate(img, block, rng):
    b = int(block)
    h, w = img.shape[:2]
    ph, pw = (-h) % b, (-w) % b
    x = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
    m = x.reshape(x.shape[0] // b, b, x.shape[1] // b, b, 3).mean(axis=(1, 3))
    return np.repeat(np.repeat(m, b, axis=0), b, axis=1)[:h, :w]


def _lloyd_max(hist: np.ndarray, n: int, iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Optimal (MSE) scalar quantiser of a 256-bin histogram: ``(thresholds [n-1], levels [n])`` in 0..255.

    1-D k-means (Lloyd-Max) started from the histogram's quantiles; the same optimum that
    multi-level Otsu thresholding seeks (maximal between-class variance).
    """
    v = np.arange(256, dtype=np.float64)
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    levels = np.interp((np.arange(n) + 0.5) / n, cdf, v)
    for _ in range(iters):
        thr = (levels[1:] + levels[:-1]) / 2
        idx = np.digitize(v, thr)
        w = np.bincount(idx, weights=hist, minlength=levels.size)
        s = np.bincount(idx, weights=hist * v, minlength=levels.size)
        new = np.where(w > 0, s / np.maximum(w, 1e-12), levels)
        if np.allclose(new, levels, atol=1e-3):
            break
        levels = np.sort(new)
    return (levels[1:] + levels[:-1]) / 2, levels


def _quantization(img, n_levels, rng):
    # Each channel quantised to n levels by content-adaptive (Lloyd-Max / multi-Otsu) thresholds.
    u8 = to_uint8(img)
    out = np.empty(img.shape, np.float32)
    for c in range(3):
        thr, levels = _lloyd_max(np.bincount(u8[..., c].ravel(), minlength=256).astype(np.float64), int(n_levels))
        out[..., c] = levels[np.digitize(u8[..., c], thr)] / 255.0
    return out


def _color_block(img, k, rng):
    h, w = img.shape[:2]
    p = min(_patch_size(img), h, w)
    n_all = _count(_CB_MAX, img)
    ys, xs = rng.integers(0, h - p + 1, n_all), rng.integers(0, w - p + 1, n_all)
    colors = rng.random((n_all, 3)).astype(np.float32)
    out = img.copy()
    for i in range(min(_count(k, img), n_all)):
        out[ys[i]:ys[i] + p, xs[i]:xs[i] + p] = colors[i]
    return out


def _high_sharpen(img, amount, rng):
    blurred = ndimage.gaussian_filter(img, sigma=(1.5, 1.5, 0), mode="reflect", truncate=3.0)
    return img + amount * (img - blurred)


def _contrast_change(img, c, rng):
    m = float(_luma(img).mean())
    return m + c * (img - m)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
JPEG2000_BACKEND: str = "openjpeg" if features.check("jpg_2000") else "haar-substitute"
"""``"openjpeg"`` (Pillow's JPEG 2000 codec) or ``"haar-substitute"`` (see :func:`_wavelet_quantise`)."""


@dataclass(frozen=True)
class Distortion:
    """One distortion type: ``d(img, level, rng)`` applies it (see the module docstring).

    Attributes:
        id: KADID-10k type number, 1..25.
        key: our snake_case name (used in records' ``dist_type``).
        kadid_name: KADID-10k's ``dis_type`` name (e.g. ``"GBLUR"``).
        params: the parameter at levels 1..5 (units in ``unit``).
        unit: what ``params`` mean.
        random: whether the result depends on ``rng``.
    """

    id: int
    key: str
    kadid_name: str
    fn: Callable[[np.ndarray, object, np.random.Generator], np.ndarray]
    params: tuple
    unit: str
    random: bool = False

    def __call__(self, img: np.ndarray, level: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if isinstance(level, bool) or int(level) != level or not 1 <= int(level) <= len(self.params):
            raise ValueError(f"{self.key}: level must be an int in 1..{len(self.params)}, got {level!r}")
        x = _check_image(img)
        if rng is None:
            rng = np.random.default_rng(0)
        out = self.fn(x, self.params[int(level) - 1], rng)
        return _out(out)


_NEP_MAX = (64.0, 5)   # (patches per 384^2, at least) at level 5 (non-eccentricity patch)
_CB_MAX = (16.0, 5)    # (blocks per 384^2, at least) at level 5 (colour block)

_SPECS = [
    (1, "gaussian_blur", "GBLUR", _gaussian_blur, (0.6, 0.9, 2.75, 4.6, 6.0), "Gaussian sigma, px"),
    (2, "lens_blur", "Lens_Blur", _lens_blur, (1.5, 3.8, 6.1, 7.2, 8.0), "disk radius, px"),
    (3, "motion_blur", "Motion_Blur", _motion_blur, (2.0, 4.3, 9.8, 14.0, 18.0),
     "line length, px (random angle)"),
    (4, "color_diffusion", "Color_Diffusion", _color_diffusion, (2.0, 8.0, 13.8, 16.3, 20.0),
     "Gaussian sigma on Lab a*, b*, px"),
    (5, "color_shift", "Color_Shift", _color_shift, (1.0, 4.75, 8.4, 9.8, 11.0),
     "green-channel shift, px (random direction)"),
    (6, "color_quantization", "Color_Quantization", _color_quantization, (64, 43, 27, 18, 10),
     "palette size (median cut + k-means, no dither)"),
    (7, "color_saturation_1", "Saturation_Dist._HSV", _saturation_hsv, (0.6, 0.32, 0.23, 0.165, 0.0),
     "HSV saturation factor (desaturation)"),
    (8, "color_saturation_2", "Saturation_Dist._Lab", _saturation_lab, (1.3, 1.73, 2.18, 2.91, 3.5),
     "Lab a*, b* factor (over-saturation)"),
    (9, "jpeg2000", "JP2K", _jpeg2000, (24, 43, 69, 215, 384), "compression ratio"),
    (10, "jpeg", "JPEG", _jpeg, (45, 29, 16, 6, 3), "JPEG quality (Pillow, 4:2:0)"),
    (11, "white_noise", "AWGN", _white_noise, (0.025, 0.049, 0.069, 0.091, 0.12), "noise std in RGB"),
    (12, "white_noise_color", "AWGN_YCbCr", _white_noise_color, (0.03, 0.066, 0.093, 0.124, 0.15),
     "noise std in Cb, Cr"),
    (13, "impulse_noise", "Impulse_Noise", _impulse_noise, (0.005, 0.019, 0.032, 0.0505, 0.07),
     "salt-and-pepper density per channel"),
    (14, "multiplicative_noise", "Multiplicative_Noise", _multiplicative_noise, (0.05, 0.112, 0.161, 0.212, 0.28),
     "speckle std (x * (1 + n))"),
    (15, "denoise", "Denoising", _denoise, (0.03, 0.072, 0.102, 0.131, 0.15),
     "noise std before Wiener filtering (window 3 + 2 * floor(std / 0.04) px)"),
    (16, "brighten", "Brighten", _brighten, (1.2, 1.35, 1.72, 2.29, 3.0), "gamma on HSV value (v^(1/g))"),
    (17, "darken", "Darken", _darken, (1.15, 1.25, 1.45, 1.8, 2.5), "gamma on HSV value (v^g)"),
    (18, "mean_shift", "Mean_Shift", _mean_shift, (0.04, 0.076, 0.124, 0.168, 0.23),
     "constant added to R, G, B (upwards)"),
    (19, "jitter", "Jitter", _jitter, (0.4, 0.68, 1.49, 3.11, 4.0), "pixel displacement std, px"),
    (20, "non_eccentricity_patch", "Non-eccentricity_patch", _non_eccentricity_patch,
     ((4.0, 1), (16.4, 2), (26.6, 3), (44.2, 4), _NEP_MAX),
     "(displaced patches per 384^2, at least); patch side = short side / 24"),
    (21, "pixelate", "Pixelate", _pixelate, (3, 5, 6, 7, 12), "block size, px"),
    (22, "quantization", "Quantization", _quantization, (12, 9, 7, 5, 4),
     "levels per channel (Lloyd-Max thresholds)"),
    (23, "color_block", "Color_Block", _color_block, ((2.0, 1), (5.7, 2), (7.4, 3), (12.3, 4), _CB_MAX),
     "(random-colour blocks per 384^2, at least); block side = short side / 24"),
    (24, "high_sharpen", "High_Sharpen", _high_sharpen, (1.0, 2.73, 4.22, 6.24, 8.0),
     "unsharp-mask amount (sigma 1.5 px)"),
    (25, "contrast_change", "Contrast Dist.", _contrast_change, (0.85, 0.706, 0.565, 0.429, 0.36),
     "contrast factor around the mean luma (decrease)"),
]
_RANDOM = {"motion_blur", "color_shift", "white_noise", "white_noise_color", "impulse_noise",
           "multiplicative_noise", "denoise", "jitter", "non_eccentricity_patch", "color_block"}

DISTORTIONS: dict[str, Distortion] = {
    key: Distortion(i, key, kname, fn, tuple(params), unit, key in _RANDOM)
    for i, key, kname, fn, params, unit in _SPECS
}
"""All 25 types keyed by :attr:`Distortion.key`, in KADID-10k order (ids 1..25)."""

assert len(DISTORTIONS) == 25 and all(len(d.params) == _LEVELS for d in DISTORTIONS.values())


def get_distortion(name: str | int) -> Distortion:
    """Look a type up by key (``"gaussian_blur"``), KADID name (``"GBLUR"``) or id (``1`` or ``"01"``)."""
    if isinstance(name, (int, np.integer)) or (isinstance(name, str) and name.strip().isdigit()):
        i = int(name)
        for d in DISTORTIONS.values():
            if d.id == i:
                return d
        raise KeyError(f"no distortion with id {i} (ids are 1..25)")
    s = str(name).strip()
    if s in DISTORTIONS:
        return DISTORTIONS[s]
    for d in DISTORTIONS.values():
        if s.lower() in (d.kadid_name.lower(), d.key.replace("_", "").lower()):
            return d
    raise KeyError(f"unknown distortion {name!r}; known: {', '.join(DISTORTIONS)}")


def resolve_types(types=None) -> list[Distortion]:
    """``None`` -> all 25 in id order; else a list of keys / KADID names / ids (duplicates dropped)."""
    if types is None:
        return list(DISTORTIONS.values())
    if isinstance(types, (str, int)):
        types = [types]
    out: list[Distortion] = []
    for t in types:
        d = get_distortion(t)
        if d not in out:
            out.append(d)
    if not out:
        raise ValueError("no distortion types selected")
    return sorted(out, key=lambda d: d.id)


def apply_distortion(img: np.ndarray, name: str | int, level: int,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """Apply one distortion by name or id: float32 H x W x 3 in [0, 1] -> same."""
    return get_distortion(name)(img, level, rng)
