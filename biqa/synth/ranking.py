"""Within-photo ranking groups: a pristine crop and 5 increasingly distorted versions of it.

Human opinion scores say how good a photo is; they say little about *which change* makes a photo
worse. Synthetic distortions say exactly that, without any label scale: a photo is better than any
degraded version of itself, and a milder degradation is better than a stronger one of the same
kind. :func:`ranking_groups` makes such groups, and :func:`group_pairs` turns them into (better,
worse) index pairs for a ranking loss (:func:`biqa.probe.fit_linear`).

What keeps a model from learning one implementation instead of the distortion:

- crops of random size (256-512 px) from the 768 px photos and from the high-resolution originals
  downscaled 2-4x (content and scale variety);
- continuous severities: level k's parameter is interpolated at ``k + U(-0.4, 0.4)`` between the
  5 KADID-style levels of :mod:`biqa.synth.distortions`;
- several implementations per family: biqa's own (SciPy/NumPy/Pillow, KADID-10k's 25 types) and
  Pillow variants written here (Gaussian and box blur filters, 4:4:4 JPEG, down/up-sampling blur,
  pixelation by resizing, contrast enhancement, signal-dependent noise).

Only degradations whose direction is unambiguous are used (no brightening, darkening, saturation
or sharpening changes: a photo may look better after them).

Low-key references (:func:`low_key`): the photos are mostly bright, textured daylight scenes, so
nothing tells a model that noise on a dark, smooth photo is a degradation (it reads as "more
texture"). ``ranking_groups(..., reference=low_key)`` first darkens the crop in linear light, and
smooths half of them, then distorts that reference as usual. The reference is only compared with
its own distorted versions, so a darker reference is no claim that dark photos are worse.
``reference=plain`` (:func:`plain`) flattens the texture of the crop instead (flat regions, clean
edges: the "plain content" on which noise reads as detail), and ``reference=graphic`` (:func:`graphic`)
replaces it by a rendered flat graphic in the crop's colours.

Mild groups (:data:`MILD_VARIANTS`, ``ranking_groups(..., impls=MILD_VARIANTS)``): the implementations above start at
a visible level 1 (JPEG quality 45-55, blur 0.6-0.7 px); four more cover the faint end of JPEG, blur, noise and motion
blur (JPEG quality 90-50, ...), so that a photo saved at quality 85 also ranks below its original.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from .distortions import DISTORTIONS

LEVELS = 5


def _pil(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a)


def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _interp(params: Sequence[float], t: float) -> float:
    """Parameter at fractional level ``t`` in [0.6, 5.4] (linear between the 5 levels, extrapolated at the ends)."""
    p = np.asarray(params, float)
    k = int(np.clip(np.floor(t), 1, 4))
    return float(p[k - 1] + (t - k) * (p[k] - p[k - 1]))


# Pillow variants: (family, name, fn(uint8 image, t in [0.6, 5.4], rng) -> uint8 image)
def _pil_gaussian(a, t, rng):
    return _arr(_pil(a).filter(ImageFilter.GaussianBlur(_interp((0.7, 1.2, 2.2, 3.5, 5.5), t))))


def _pil_box(a, t, rng):
    return _arr(_pil(a).filter(ImageFilter.BoxBlur(_interp((0.8, 1.5, 2.5, 4.0, 6.0), t))))


def _down_up(a, f: float, down, up, least: int):
    """Downscale by ``f`` with filter ``down`` (at least ``least`` px a side), back up with ``up``."""
    h, w = a.shape[:2]
    small = _pil(a).resize((max(least, round(w / f)), max(least, round(h / f))), down)
    return _arr(small.resize((w, h), up))


def _resample_blur(a, t, rng):
    return _down_up(a, _interp((1.5, 2.2, 3.2, 4.5, 6.5), t), Image.BILINEAR, Image.BICUBIC, 8)


def _pil_jpeg444(a, t, rng):
    q = int(round(_interp((55, 35, 20, 10, 4), t)))
    buf = io.BytesIO()
    _pil(a).save(buf, format="JPEG", quality=max(1, q), subsampling=0)
    buf.seek(0)
    return _arr(Image.open(buf))


def _pil_pixelate(a, t, rng):
    return _down_up(a, _interp((2.0, 3.5, 5.5, 8.0, 12.0), t), Image.BOX, Image.NEAREST, 2)


def _pil_contrast(a, t, rng):
    return _arr(ImageEnhance.Contrast(_pil(a)).enhance(_interp((0.85, 0.7, 0.55, 0.42, 0.3), t)))


def _shot_noise(a, t, rng):
    """Signal-dependent (Poisson-like) noise: std grows with the square root of the intensity."""
    k = _interp((0.02, 0.04, 0.065, 0.09, 0.13), t)
    x = a.astype(np.float32) / 255.0
    y = x + rng.standard_normal(x.shape).astype(np.float32) * k * np.sqrt(np.maximum(x, 1e-3))
    return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)


PIL_VARIANTS: dict[str, tuple[str, Callable]] = {
    "pil_gaussian_blur": ("blur", _pil_gaussian),
    "pil_box_blur": ("blur", _pil_box),
    "resample_blur": ("blur", _resample_blur),
    "pil_jpeg444": ("jpeg", _pil_jpeg444),
    "pil_pixelate": ("pixelate", _pil_pixelate),
    "pil_contrast": ("contrast", _pil_contrast),
    "shot_noise": ("noise", _shot_noise),
}

# Mild implementations: the faint end of four families, from barely visible to about where the others' level 1
# starts. The groups above begin at level 1 (JPEG quality 45-55, Gaussian blur 0.6-0.7 px, noise std ~6/255), so
# nothing in them says that a photo saved at quality 85, or softened by a 0.5 px blur, is worse than the original;
# users' photos mostly live there. Not in :func:`implementations` (the groups' default draw): they make their own
# groups (``ranking_groups(..., impls=MILD_VARIANTS)``; ``biqa.recipe``'s ``"mild"`` groups).
def _mild_jpeg(a, t, rng):
    """Pillow JPEG at quality 90 .. 50, with 4:2:0 or 4:4:4 chroma (one draw a group)."""
    q = int(round(_interp((90, 80, 70, 60, 50), t)))
    buf = io.BytesIO()
    _pil(a).save(buf, format="JPEG", quality=q, subsampling=int(rng.choice([0, 2])))
    buf.seek(0)
    return _arr(Image.open(buf))


def _mild_blur(a, t, rng):
    """A separable Gaussian of std 0.45 .. 1 px (sampled, not Pillow's box approximation; below ~0.4 px the
    sampled kernel is all but the identity)."""
    from scipy.ndimage import gaussian_filter

    s = _interp((0.45, 0.55, 0.65, 0.8, 1.0), t)
    return np.clip(gaussian_filter(a.astype(np.float32), (s, s, 0), mode="reflect") + 0.5, 0, 255).astype(np.uint8)


def _mild_noise(a, t, rng):
    """Gaussian noise of std 2 .. 6.5 (of 255), on the luma or independently per channel (one draw a group)."""
    k = _interp((2.0, 3.0, 4.0, 5.0, 6.5), t)
    shape = a.shape if rng.random() < 0.5 else a.shape[:2] + (1,)
    y = a.astype(np.float32) + k * rng.standard_normal(shape).astype(np.float32)
    return np.clip(y + 0.5, 0, 255).astype(np.uint8)


def _mild_motion(a, t, rng):
    """Linear motion blur 1.5 .. 4 px long at a random angle (one a group): an anti-aliased line kernel,
    drawn at 8x and box-reduced."""
    from scipy.ndimage import convolve

    length = _interp((1.5, 2.0, 2.5, 3.0, 4.0), t)
    angle = rng.uniform(0, np.pi)
    side = 2 * int(np.ceil(length / 2)) + 3
    big = Image.new("L", (8 * side, 8 * side))
    c, dx, dy = 4 * side, 4 * length * np.cos(angle), 4 * length * np.sin(angle)
    ImageDraw.Draw(big).line([(c - dx, c - dy), (c + dx, c + dy)], fill=255, width=8)
    k = np.asarray(big.resize((side, side), Image.BOX), np.float32)
    k = k + k[::-1, ::-1]  # point-symmetric: no shift
    k /= k.sum()
    out = np.stack([convolve(a[..., i].astype(np.float32), k, mode="reflect") for i in range(a.shape[2])], -1)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


MILD_VARIANTS: dict[str, tuple[str, Callable]] = {
    "mild_jpeg": ("jpeg", _mild_jpeg),
    "mild_blur": ("blur", _mild_blur),
    "mild_noise": ("noise", _mild_noise),
    "mild_motion_blur": ("motion_blur", _mild_motion),
}

# biqa.synth types used (family of each); the rest change brightness, colour saturation or sharpness,
# which can make a photo look better, so "the reference is best" would not hold.
SYNTH_TYPES: dict[str, str] = {
    "gaussian_blur": "blur", "lens_blur": "blur", "motion_blur": "motion_blur", "color_diffusion": "color",
    "color_shift": "color", "color_quantization": "quantization", "jpeg2000": "jpeg2000", "jpeg": "jpeg",
    "white_noise": "noise", "white_noise_color": "noise", "impulse_noise": "noise",
    "multiplicative_noise": "noise", "denoise": "noise", "jitter": "spatial",
    "non_eccentricity_patch": "spatial", "pixelate": "pixelate", "quantization": "quantization",
    "color_block": "spatial", "contrast_change": "contrast",
}
_SCALAR = {k for k in SYNTH_TYPES if not isinstance(DISTORTIONS[k].params[0], tuple)}


def implementations() -> dict[str, str]:
    """Every implementation name -> its family."""
    return {**{f"synth_{k}": f for k, f in SYNTH_TYPES.items()}, **{k: f for k, (f, _) in PIL_VARIANTS.items()}}


def apply(impl: str, img: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """Implementation ``impl`` (a name in :func:`implementations` or :data:`MILD_VARIANTS`) at fractional
    level ``t`` on a uint8 RGB image."""
    variant = PIL_VARIANTS.get(impl) or MILD_VARIANTS.get(impl)  # (family, fn) of a hand-written implementation
    if variant is not None:
        return variant[1](img, t, rng)
    key = impl[len("synth_"):]
    d = DISTORTIONS[key]
    x = img.astype(np.float32) / 255.0
    if key in _SCALAR:
        p = _interp(d.params, t)
        if isinstance(d.params[0], (int, np.integer)):  # palette sizes, block sizes, JPEG qualities
            p = max(1, int(round(p)))
        out = d.fn(x, p, rng)
    else:
        out = d(x, int(np.clip(round(t), 1, LEVELS)), rng)
    return np.clip(np.asarray(out, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def low_key(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark (and, half the time, smooth) version of a uint8 RGB crop: exposure scaled by
    ``U(0.03, 0.3)`` in linear light (sRGB decoded with gamma 2.2), after a Gaussian blur of radius
    ``U(1.5, 4)`` px with probability 1/2 (defocused, low-texture content)."""
    im = _pil(img)
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 4.0))))
    return _expose(np.asarray(im), float(rng.uniform(0.03, 0.3)))


def _expose(img: np.ndarray, k: float) -> np.ndarray:
    """Exposure scaled by ``k`` in linear light (sRGB approximated by gamma 2.2)."""
    lin = (img.astype(np.float32) / 255.0) ** 2.2 * k
    return np.clip(lin ** (1 / 2.2) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def plain(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plain version of a uint8 RGB crop: its texture flattened by a median filter (size 5, 7 or 9) at half
    resolution, edges kept, scaled back up (bicubic); darkened as :func:`low_key` does with probability 1/2.
    Flat regions with clean edges, like rendered graphics, walls, sky or studio backdrops."""
    im = _pil(img)
    small = im.resize((max(8, im.width // 2), max(8, im.height // 2)), Image.LANCZOS)
    small = small.filter(ImageFilter.MedianFilter(int(rng.choice([5, 7, 9]))))
    out = np.asarray(small.resize(im.size, Image.BICUBIC))
    return _expose(out, float(rng.uniform(0.03, 0.3))) if rng.random() < 0.5 else out


def graphic(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rendered flat graphic of the crop's size in colours drawn from the crop's pixels: a linear or radial
    gradient background, 1-5 flat polygons or ellipses with anti-aliased edges (drawn at 2x, downscaled),
    and with probability 1/2 a soft glow; darkened as :func:`low_key` does with probability 1/2. The
    content of wallpapers, slides and interfaces: large flat areas, smooth ramps, clean edges."""
    h, w = img.shape[:2]
    pix = img.reshape(-1, 3)

    def colour():
        return pix[int(rng.integers(len(pix)))].astype(np.float32)

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:  # linear ramp along a random direction
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(a) + yy * np.sin(a))
    else:  # radial ramp from a random centre
        t = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    c0, c1 = colour(), colour()
    out = c0 + t[..., None] * (c1 - c0)
    big = Image.new("L", (2 * w, 2 * h))
    for _ in range(int(rng.integers(1, 6))):
        big.paste(0, (0, 0, 2 * w, 2 * h))
        draw = ImageDraw.Draw(big)
        cx, cy, r = rng.uniform(0, 2 * w), rng.uniform(0, 2 * h), rng.uniform(0.1, 0.6) * 2 * min(w, h)
        if rng.random() < 0.5:
            draw.ellipse([cx - r, cy - r * rng.uniform(0.4, 1.0), cx + r, cy + r * rng.uniform(0.4, 1.0)], fill=255)
        else:
            ang = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            draw.polygon([(cx + r * np.cos(q), cy + r * np.sin(q)) for q in ang], fill=255)
        m = np.asarray(big.resize((w, h), Image.BOX), np.float32)[..., None] / 255.0 * rng.uniform(0.6, 1.0)
        out = out * (1 - m) + colour() * m
    if rng.random() < 0.5:  # a soft glow
        s = rng.uniform(0.1, 0.3) * min(w, h)
        g = np.exp(-((xx - rng.uniform(0, w)) ** 2 + (yy - rng.uniform(0, h)) ** 2) / (2 * s * s))[..., None]
        out = out + g * rng.uniform(0.2, 0.6) * (colour() - out)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return _expose(out, float(rng.uniform(0.03, 0.3))) if rng.random() < 0.5 else out


# named reference transforms
REFERENCES: dict[str, Callable] = {"low_key": low_key, "plain": plain, "graphic": graphic}
# named kinds of extra ranking groups: (reference transform or None, implementations or None for all of
# :func:`implementations`): the reference transforms above, and ``"mild"``: untransformed crops, the mild implementations
GROUP_KINDS: dict[str, tuple[Callable | None, tuple[str, ...] | None]] = {
    **{k: (fn, None) for k, fn in REFERENCES.items()}, "mild": (None, tuple(MILD_VARIANTS))}


@dataclass
class Group:
    photo: str
    impl: str
    family: str
    levels: list[float]          # fractional levels of images[1:], increasing
    images: list[np.ndarray]     # [reference, level 1 .. level 5], uint8 RGB


def _crop(img: np.ndarray, rng: np.random.Generator, lo: int = 256, hi: int = 512, square: bool = False) -> np.ndarray:
    h, w = img.shape[:2]
    side = int(rng.integers(lo, hi + 1))
    ch, cw = min(h, side), min(w, side if square else int(side * rng.uniform(0.75, 1.33)))
    if square and (ch < side or cw < side):  # a source smaller than the crop: upscale it first
        f = side / min(h, w)
        img = np.asarray(Image.fromarray(img).resize((max(side, round(w * f)), max(side, round(h * f))),
                                                     Image.BICUBIC))
        h, w = img.shape[:2]
        ch = cw = side
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(img[y:y + ch, x:x + cw])


def load_sources(photos: Sequence[Path], originals: Sequence[Path] = (), rng: np.random.Generator | None = None
                 ) -> list[tuple[str, np.ndarray]]:
    """(stem, uint8 image) for every photo, and every original downscaled by a random 2-4x."""
    rng = rng or np.random.default_rng(0)
    out = []
    for p in photos:
        out.append((Path(p).stem, np.asarray(Image.open(p).convert("RGB"))))
    for p in originals:
        im = Image.open(p).convert("RGB")
        f = rng.uniform(2.0, 4.0)
        im = im.resize((max(256, round(im.width / f)), max(256, round(im.height / f))), Image.LANCZOS)
        out.append((Path(p).stem, np.asarray(im)))
    return out


def ranking_groups(sources: Sequence[tuple[str, np.ndarray]], n_groups: int, *, seed: int = 0,
                   impls: Sequence[str] | None = None, crop: tuple[int, int] = (256, 512),
                   square: bool = False, reference: Callable | None = None) -> list[Group]:
    """``n_groups`` groups, each a random crop of a random source with one implementation at 5
    increasing continuous severities. Implementations are drawn family-balanced (a family first,
    then one of its implementations). ``crop``: the side range; ``square``: square crops of exactly
    that side (``crop=(s, s)``); ``reference``: ``fn(uint8 crop, rng) -> uint8 image`` applied to
    the crop before distorting it (e.g. :func:`low_key`). Deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    table = implementations()
    impls = list(impls or table)
    table.update((k, family) for k, (family, _) in MILD_VARIANTS.items())  # drawn only when named in impls
    families = sorted({table[i] for i in impls})
    groups = []
    for _ in range(n_groups):
        stem, img = sources[int(rng.integers(len(sources)))]
        fam = families[int(rng.integers(len(families)))]
        options = [i for i in impls if table[i] == fam]
        impl = options[int(rng.integers(len(options)))]
        ref = _crop(img, rng, *crop, square=square)
        if reference is not None:
            ref = reference(ref, rng)
        ts = [k + float(rng.uniform(-0.4, 0.4)) for k in range(1, LEVELS + 1)]
        sub = np.random.default_rng(rng.integers(2**63))
        state = sub.bit_generator.state
        images = [ref]
        for t in ts:  # the same random draws at every level: only the severity changes
            sub.bit_generator.state = state
            images.append(apply(impl, ref, t, sub))
        groups.append(Group(stem, impl, fam, ts, images))
    return groups


def group_pairs(n_groups: int, size: int = LEVELS + 1) -> np.ndarray:
    """(better, worse) index pairs into the flattened groups: the reference above every level, and
    each level above the next (``[P, 2]``)."""
    pairs = []
    for g in range(n_groups):
        base = g * size
        pairs += [(base, base + k) for k in range(1, size)]
        pairs += [(base + k, base + k + 1) for k in range(1, size - 1)]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
