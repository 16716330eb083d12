"""Finding and decoding the images to score, with Pillow and NumPy only (no torch).

Both scoring paths use these: the torch one (:mod:`biqa.scorer`, :mod:`biqa.data`) and the torch-free
onnxruntime one of the command line (:mod:`biqa.ortscore`), so an image is found, decoded, oriented and
sized the same way whichever path scores it.
"""
from __future__ import annotations

import glob
import os

from PIL import Image, ImageOps

from .paths import printable
from .resolution import Resolution
from .timelimit import time_limit

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def load_image(path: str, resolution: Resolution | None = None) -> Image.Image:
    """Decode an image to RGB (EXIF orientation applied), sized by ``resolution``.

    JPEGs that will be downscaled are decoded at reduced size with ``draft()``
    (DCT scaling), then resized exactly with a bicubic filter; for a rotated JPEG (EXIF
    orientation 5-8) the draft size is asked for in the file's own orientation.
    """
    with Image.open(path) as im:
        orientation = im.getexif().get(0x0112, 1)
        swap = orientation in (5, 6, 7, 8)
        w, h = im.size
        resolution = resolution or Resolution()
        tw, th = resolution.target_size(*((h, w) if swap else (w, h)))
        dw, dh = (th, tw) if swap else (tw, th)  # the target in the stored orientation
        if im.format == "JPEG" and (dw < w and dh < h):
            im.draft("RGB", (dw, dh))
        im = ImageOps.exif_transpose(im) if orientation != 1 else im
        im = im.convert("RGB")
        im.load()
    if im.size != (tw, th):
        im = im.resize((tw, th), Image.BICUBIC, reducing_gap=None)
    return im


def image_size(path: str, resolution: Resolution | None = None) -> tuple[int, int] | None:
    """The (w, h) the network will see, from the header only; ``None`` if unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
    except Exception:
        return None
    return (resolution or Resolution()).target_size(w, h)


def header_size(path: str, resolution: Resolution | None, timeout: float | None) -> tuple[int, int] | None:
    """:func:`image_size` of a regular file within ``timeout`` seconds (:func:`biqa.timelimit.time_limit`);
    ``None`` when unknown: the scorers then decode the image alone and report its error, if any, on its row."""
    try:
        if not os.path.isfile(path):
            return None
        with time_limit(timeout):
            return image_size(path, resolution)
    except Exception:
        return None


def check_scorable_file(path: str) -> None:
    """Raise the error a scoring row reports for a path that is not a non-empty regular file (it may
    have gone or changed since it was listed; opening a pipe would wait forever)."""
    if not os.path.exists(path):
        raise FileNotFoundError("file not found")
    if not os.path.isfile(path):
        raise ValueError("not a regular file")
    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")


def error_text(e: BaseException) -> str:
    """The text of a scoring row's ``error`` column for an exception."""
    msg = str(e) or type(e).__name__
    if "cannot identify image file" in msg:
        msg = "not a readable image (unknown or corrupt format)"
    return printable(f"{type(e).__name__}: {msg}")


def size_batches(sizes: list, batch_size: int, max_pixels: int | None = None) -> list[list[int]]:
    """Batches of indices whose images share one size, in first-appearance order.

    ``sizes[i]`` is the (w, h) the network will see, or ``None`` for unreadable items (each gets a
    batch of its own so that its error is reported on its own row). ``max_pixels``: a batch of large
    images holds fewer than ``batch_size`` of them, at most ``max_pixels`` pixels in all (at least one).
    """
    batches: list[list[int]] = []
    open_: dict = {}
    for i, s in enumerate(sizes):
        if s is None:
            batches.append([i])
            continue
        b = open_.setdefault(s, [])
        b.append(i)
        cap = batch_size if not max_pixels else max(1, min(batch_size, max_pixels // max(1, s[0] * s[1])))
        if len(b) >= cap:
            batches.append(b)
            open_[s] = []
    return batches + [b for b in open_.values() if b]


def collect_inputs(specs: list[str] | str, recursive: bool = True) -> list[str]:
    """Expand files, folders (recursively, image extensions only, sorted) and globs, in order.

    Files named explicitly are kept whatever their extension (so a broken file is
    reported, not skipped); a spec that matches nothing is kept too, to be reported
    as "not found". Symbolic links to folders are followed, but every real folder is walked
    once: a link loop (a link to its own parent) or two links to one folder add nothing more.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [str(specs)]
    out: list[str] = []
    for s in map(os.fsdecode, specs):
        if os.path.isdir(s):
            out += sorted(_walk_images(s, recursive))
        elif os.path.exists(s):
            out.append(s)
        elif any(ch in s for ch in "*?["):
            out += sorted(p for p in glob.glob(s, recursive=True) if os.path.isfile(p))
        else:
            out.append(s)
    return out


def _walk_images(folder: str, recursive: bool) -> list[str]:
    """Image files under ``folder`` (each real folder once, links to folders followed)."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:  # vanished while walking
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # reached again through a link: walked already
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        found += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not recursive:
            break
    return found
