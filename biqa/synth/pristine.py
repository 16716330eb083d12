"""More pristine photos for the synthetic ranking groups, built from Debian packages at data-build time.

The 57 photos in ``../shared/data/photos`` are mostly bright, detailed scenes. Enlightenment's desktop
backgrounds (Debian package ``enlightenment-data``, BSD-2-clause) add 15 high-resolution photographs
(3840 px wide) with the content the default model handled worst: dark, foggy, smooth and bokeh scenes.
Each background is an EET container (``.edj``) that holds the picture at several sizes as JPEG
streams; :func:`largest_jpeg` takes the largest. Nothing is committed: ``biqa data pristine`` (or
:func:`build_pristine`) downloads the package with ``apt-get download`` (or reads a ``.deb`` you give
it, or the installed files) and writes lossless PNGs plus ``SOURCES.csv``.

>>> from biqa.synth.pristine import build_pristine
>>> table = build_pristine("data/pristine")          # needs apt-get (Debian/Ubuntu) or deb=...

The illustrations in the package (Dunes, Flat-Fan, Flat-Stone-Pattern, Paper-Flower, the Squiggles)
are not photographs and are left out.
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

PACKAGE = "enlightenment-data"
LICENCE = "BSD-2-clause"
BACKGROUNDS = "usr/share/enlightenment/data/backgrounds/"
# The photographs among the package's backgrounds (file stem of each .edj).
PHOTOS = ("Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain", "Peaks", "Red-Maple",
          "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles", "Sunset-Clouds", "Sunset-Hills", "White-Flower",
          "Yellow-Flower")
_SOI = re.compile(rb"\xff\xd8\xff")


def largest_jpeg(blob: bytes):
    """The largest (by pixel count) JPEG stream embedded in ``blob`` (an EET container, or any bytes),
    decoded to an RGB :class:`PIL.Image.Image`. Raises ``ValueError`` if there is none."""
    from PIL import Image

    best, best_px = None, 0
    for m in _SOI.finditer(blob):
        try:
            im = Image.open(io.BytesIO(blob[m.start():]))
            w, h = im.size
        except Exception:  # a marker-like byte run that is not a JPEG header
            continue
        if w * h > best_px:
            best, best_px = m.start(), w * h
    if best is None:
        raise ValueError("no JPEG stream in this container")
    im = Image.open(io.BytesIO(blob[best:]))
    im.load()
    return im.convert("RGB")


def deb_members(deb: str | Path, prefix: str) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the files under ``prefix`` in a Debian package, read with the standard library
    (a ``.deb`` is an ``ar`` archive whose ``data.tar.*`` holds the files)."""
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb} is not a Debian package (no ar header)")
        while True:
            head = f.read(60)
            if len(head) < 60:
                break
            name = head[:16].decode().strip().rstrip("/")
            size = int(head[48:58].decode().strip())
            body = f.read(size)
            if size % 2:
                f.read(1)
            if name.startswith("data.tar"):
                if name.endswith(".zst"):  # Ubuntu's compression; Python's tarfile cannot read it
                    raise ValueError(f"{deb}: {name} is zstd-compressed; unpack it with 'dpkg-deb -x' and pass "
                                     "the backgrounds folder with --installed")
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                    for member in tar:
                        path = member.name.removeprefix("./")
                        if member.isfile() and path.startswith(prefix):
                            yield path, tar.extractfile(member).read()
                return
    raise ValueError(f"{deb} has no data.tar member")


def download_deb(package: str, dest: str | Path) -> Path:
    """``apt-get download package`` into ``dest``; a clear error where apt is missing or fails."""
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"apt-get not found: download the Debian package '{package}' elsewhere and pass it "
                           f"with --deb (biqa data pristine --deb {package}_VERSION_all.deb)")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["apt-get", "download", package], cwd=dest, capture_output=True, text=True)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if r.returncode != 0 or not debs:
        raise RuntimeError(f"apt-get download {package} failed (rc {r.returncode}): {r.stderr.strip()[-400:]}\n"
                           "run 'apt-get update' first, or pass a downloaded .deb with --deb")
    return debs[-1]


def _deb_version(deb: Path) -> str:
    parts = deb.stem.split("_")
    return parts[1] if len(parts) >= 2 else ""


def build_pristine(out: str | Path, *, deb: str | Path | None = None, installed: str | Path | None = None,
                   photos: tuple[str, ...] = PHOTOS, progress: bool = True):
    """Write ``photos`` (stems of :data:`PHOTOS`) as PNGs named ``enlightenment-data__STEM.png`` to ``out``,
    with ``SOURCES.csv`` (file, package, version, licence, width, height). Source: ``deb`` (a downloaded
    package), else ``installed`` (a folder of installed ``.edj`` files, e.g.
    ``/usr/share/enlightenment/data/backgrounds``), else the package fetched with ``apt-get download``.
    Existing PNGs are kept (re-runs are cheap). Returns the table as a DataFrame."""
    import pandas as pd
    from PIL import Image
    from tqdm.auto import tqdm

    from ..files import _atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = {f"{s}.edj": s for s in photos}
    unknown = sorted(set(photos) - set(PHOTOS))
    if unknown:
        raise ValueError(f"not among the package's photographs: {unknown}; choose from {list(PHOTOS)}")
    rows, done = [], set()

    def write(stem: str, blob: bytes, version: str) -> None:
        target = out / f"{PACKAGE}__{stem}.png"
        if target.is_file():  # kept from an earlier run: only its size is read
            with Image.open(target) as im:
                w, h = im.size
        else:
            im = largest_jpeg(blob)
            w, h = im.size
            _atomic_write_bytes(target, lambda p: im.save(p, format="PNG", compress_level=1))
        done.add(stem)
        rows.append({"file": target.name, "package": PACKAGE, "version": version, "licence": LICENCE,
                     "source": f"/{BACKGROUNDS}{stem}.edj", "width": w, "height": h})

    bar = tqdm(total=len(wanted), desc="pristine photos", unit="photo", disable=not progress)
    if deb is None and installed is not None:
        for name, stem in wanted.items():
            p = Path(installed) / name
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found (is {PACKAGE} installed?)")
            write(stem, p.read_bytes(), "installed")
            bar.update()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            deb = Path(deb) if deb is not None else download_deb(PACKAGE, tmp)
            if not deb.is_file():
                raise FileNotFoundError(f"{deb} not found")
            for path, blob in deb_members(deb, BACKGROUNDS):
                stem = wanted.get(Path(path).name)
                if stem is not None:
                    write(stem, blob, _deb_version(deb))
                    bar.update()
    bar.close()
    missing = sorted(set(wanted.values()) - done)
    if missing:
        raise ValueError(f"{PACKAGE} lacks these backgrounds: {missing}")
    table = pd.DataFrame(rows).sort_values("file").reset_index(drop=True)
    table.to_csv(out / "SOURCES.csv", index=False)
    return table
