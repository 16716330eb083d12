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
