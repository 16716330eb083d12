"""Finding label files and image folders, and reading the label formats.

Datasets are unpacked in many ways (an extra top folder, upper-case
extensions), so lookups are case-insensitive and search a few folder levels
below the root.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_MAX_DEPTH = 4


def _walk(root: Path, max_depth: int = _MAX_DEPTH):
    """``os.walk`` limited to ``max_depth`` levels, sorted for determinism."""
    root = Path(root)
    base = len(root.parts)
    for d, dirs, files in os.walk(root):
        dirs.sort()
        if len(Path(d).parts) - base >= max_depth:
            dirs[:] = []
        yield Path(d), dirs, sorted(files)


def find_file(root: Path, names, *, what: str, dataset: str) -> Path:
    """First file called one of ``names`` (case-insensitive) in or below ``root``.

    ``names`` may contain sub-paths (``"Data/AllMOS_release.mat"``); they are
    tried under ``root`` first, then under every folder below it (breadth by name order).
    """
    names = [names] if isinstance(names, (str, os.PathLike)) else list(names)
    root = Path(root)
    for n in names:
        c = _ci_child(root, str(n))
        if c is not None and c.is_file():
            return c
    for d, _dirs, _files in _walk(root):
        for n in names:
            c = _ci_child(d, str(n))
            if c is not None and c.is_file():
                return c
    raise FileNotFoundError(
        f"{dataset}: could not find the {what} ({' or '.join(map(str, names))}) in or below {root}. "
        "Pass the folder the dataset was unpacked to, or the file itself with labels_file=..."
    )


def _ci_child(d: Path | None, rel: str) -> Path | None:
    """``d / rel`` matched case-insensitively, one component at a time."""
    if d is None:
        return None
    cur = Path(d)
    for part in Path(rel).parts:
        if (cur / part).exists():
            cur = cur / part
            continue
        try:
            match = [c for c in os.listdir(cur) if c.lower() == part.lower()]
        except OSError:
            return None
        if not match:
            return None
        cur = cur / sorted(match)[0]
    return cur


def find_dir(root: Path, names, *, near=()) -> Path | None:
    """A folder called one of ``names`` (case-insensitive): first next to each
    folder in ``near``, then directly in ``root``, then anywhere below it."""
    names = [names] if isinstance(names, str) else list(names)
    for base in [*near, root]:
        for n in names:
            c = _ci_child(Path(base), n)
            if c is not None and c.is_dir():
                return c
    wanted = {n.lower() for n in names}
    for d, dirs, _files in _walk(root):
        for sub in dirs:
            if sub.lower() in wanted:
                return d / sub
    return None


def is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def image_index(dirs) -> dict[str, str]:
    """Case-insensitive index of the image files in ``dirs``.

    ``dirs``: iterable of ``(folder, recursive)``.  Returns ``{key: real path}``
    where ``key`` is the lower-cased normalised absolute path.
    """
    index: dict[str, str] = {}
    for d, recursive in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        if recursive:
            it = ((Path(p), f) for p, _ds, fs in os.walk(d) for f in fs)
        else:
            it = ((d, e.name) for e in os.scandir(d) if e.is_file())
        for parent, f in it:
            if is_image(f):
                p = os.path.normpath(os.path.abspath(parent / f))
                index.setdefault(p.lower(), p)
    return index


def path_key(p) -> str:
    return os.path.normpath(os.path.abspath(str(p))).lower()


def read_table(path: Path, **kwargs) -> pd.DataFrame:
    """Read a CSV / TSV / Excel label table with a clear error for a missing reader."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".xlsx", ".xlsm", ".xls"):
        engine = "xlrd" if ext == ".xls" else "openpyxl"
        if importlib.util.find_spec(engine) is None:
            raise ImportError(
                f"{path}: reading {ext} files needs the '{engine}' package: pip install {engine} "
                f"(or export the sheet to CSV and pass labels_file=<the .csv>)"
            )
        return pd.read_excel(path, engine=engine, **kwargs)
    if ext == ".tsv":
        kwargs.setdefault("sep", "\t")
    return pd.read_csv(path, **kwargs)


def load_mat(path: Path, keys, *, dataset: str) -> dict[str, np.ndarray]:
    """Variables ``keys`` of a MATLAB (v5/v7) file; clear errors for v7.3 and missing keys."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except NotImplementedError as e:  # v7.3 files are HDF5
        raise ImportError(
            f"{path}: MATLAB v7.3 (HDF5) file; scipy cannot read it. pip install h5py and convert it, "
            "or re-save it in MATLAB with save(..., '-v7')"
        ) from e
    missing = [k for k in keys if k not in mat]
    if missing:
        have = [k for k in mat if not k.startswith("__")]
        raise ValueError(f"{dataset}: {path} has no variable(s) {missing}; it has {have}")
    return {k: mat[k] for k in keys}


def mat_strings(a: np.ndarray) -> list[str]:
    """Flatten a MATLAB cell array (or char matrix) of strings to a list of str."""
    a = np.asarray(a)
    if a.dtype.kind in "US":
        if a.ndim == 2 and a.shape[0] > 1 and a.shape[1] > 1:  # char matrix, one name per row
            return ["".join(r).strip() for r in a]
        return [str(x).strip() for x in a.ravel()]
    out = []
    for x in a.ravel():
        while isinstance(x, np.ndarray) and x.dtype == object and x.size == 1:
            x = x.ravel()[0]
        if isinstance(x, np.ndarray):
            x = "".join(map(str, x.ravel())) if x.dtype.kind in "US" else str(x.ravel()[0])
        out.append(str(x).strip())
    return out


def mat_vector(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=float).ravel()


# ----------------------------------------------------------------------------- stand-ins under the same stem

#: Formats that store pixels exactly.  A ``.webp`` or ``.tif`` counts only when
#: its header says so (:func:`is_lossless_file`).
LOSSLESS_EXTS = frozenset({".png", ".bmp", ".tif", ".tiff", ".webp"})
_LOSSY_TIFF = frozenset({"jpeg", "tiff_jpeg", "webp"})


def webp_is_lossless(path) -> bool | None:
    """True for a still WebP whose image is a VP8L (lossless) bitstream, False for
    VP8 (lossy, also with an alpha chunk) or an animation, None when the file is
    not a readable WebP.  Reads only the RIFF chunk headers (a few bytes each)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
                return None
            while True:
                ch = f.read(8)
                if len(ch) < 8:
                    return None
                tag, size = ch[:4], int.from_bytes(ch[4:], "little")
                if tag == b"VP8L":
                    return True
                if tag in (b"VP8 ", b"ANIM", b"ANMF"):
                    return False
                f.seek(size + (size & 1), os.SEEK_CUR)  # VP8X, ICCP, ALPH, EXIF ...: skip (padded to even)
    except OSError:
        return None


def is_lossless_file(path) -> bool:
    """Whether ``path`` holds its pixels exactly: PNG and BMP always; a WebP only
    with a VP8L bitstream (:func:`webp_is_lossless`); a TIFF unless its
    compression is JPEG or WebP (header read by Pillow, no pixel decoding);
    everything else (JPEG ...) not."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext in (".png", ".bmp"):
        return True
    if ext == ".webp":
        return bool(webp_is_lossless(path))
    if ext in (".tif", ".tiff"):
        from PIL import Image

        try:
            with Image.open(path) as im:
                return str(im.info.get("compression", "raw")).lower() not in _LOSSY_TIFF
        except OSError:
            return False
    return False


def stem_index(index: dict[str, str]) -> dict[str, list[str]]:
    """``{lower-cased absolute path without extension: [real paths]}`` of an :func:`image_index`."""
    out: dict[str, list[str]] = {}
    for key, real in index.items():
        out.setdefault(os.path.splitext(key)[0], []).append(real)
    for v in out.values():
        v.sort()
    return out


_PREFERENCE = {".png": 0, ".bmp": 1, ".tif": 2, ".tiff": 2, ".webp": 3}


def find_stand_in(path, stems: dict[str, list[str]], taken=frozenset()) -> tuple[str | None, list[str]]:
    """A stand-in for the missing image ``path``: a file under the same stem
    (same folder, case-insensitive) in a lossless format, other than the files
    whose :func:`path_key` is in ``taken`` (labelled by other rows).

    Returns ``(stand_in or None, lossy)`` where ``lossy`` lists the same-stem
    files that were not accepted because they are (or may be) lossy, e.g.
    ``100.jpg`` for ``100.bmp``: re-encoding changed the pixels the MOS was
    given for, so they are reported, never used.  A lossless stand-in is
    accepted for any original (decoding it gives the original's pixels).
    """
    cands = [c for c in stems.get(os.path.splitext(path_key(path))[0], [])
             if path_key(c) != path_key(path) and path_key(c) not in taken]
    good = sorted((c for c in cands if is_image(c) and is_lossless_file(c)),
                  key=lambda c: (_PREFERENCE.get(os.path.splitext(c)[1].lower(), 9), c))
    lossy = [c for c in cands if c not in good]
    return (good[0] if good else None), lossy
