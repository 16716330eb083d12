"""Readers for the synthetic-distortion datasets: TID2013, KADID-10k, CSIQ, LIVE.

Every row carries ``ref`` (the reference image it was made from; splits must be
grouped by it), ``dist_type`` and, where the dataset has discrete levels,
``dist_level`` (1 = mildest).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .base import RawLabels, register_reader
from .files import find_dir, find_file, load_mat, mat_strings, mat_vector, read_table
from .registry import KADID10K_TYPES, TID2013_TYPES

_TID_NAME = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)
_KADID_NAME = re.compile(r"^i(\d{2})_(\d{2})_(\d{2})\.png$", re.IGNORECASE)
_CSIQ_NAME = re.compile(r"^(.+)\.([^.]+)\.(\d+)\.png$", re.IGNORECASE)


def parse_tid2013_name(name: str) -> tuple[str, int, int]:
    """``"i01_17_3.bmp"`` -> ``("i01", 17, 3)`` (reference, distortion type, level)."""
    m = _TID_NAME.match(Path(name).name)
    if not m:
        raise ValueError(f"tid2013: {name!r} is not a TID2013 image name like i01_01_1.bmp")
    return f"i{m.group(1)}", int(m.group(2)), int(m.group(3))


def parse_kadid10k_name(name: str) -> tuple[str, int, int]:
    """``"I01_03_05.png"`` -> ``("I01", 3, 5)`` (reference, distortion type, level)."""
    m = _KADID_NAME.match(Path(name).name)
    if not m:
        raise ValueError(f"kadid10k: {name!r} is not a KADID-10k image name like I01_01_01.png")
    return f"I{m.group(1)}", int(m.group(2)), int(m.group(3))


#: CSIQ ``dst_type`` values (csiq.DMOS.xlsx) -> (folder / file tag, canonical dist_type).
CSIQ_TYPES = {
    "noise": ("AWGN", "awgn"), "awgn": ("AWGN", "awgn"),
    "jpeg": ("JPEG", "jpeg"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"), "jpeg2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("BLUR", "blur"),
    "contrast": ("contrast", "contrast"),
}


def parse_csiq_name(name: str) -> tuple[str, str, int]:
    """``"1600.AWGN.3.png"`` -> ``("1600", "awgn", 3)``."""
    m = _CSIQ_NAME.match(Path(name).name)
    if not m or m.group(2).lower() not in CSIQ_TYPES:
        raise ValueError(f"csiq: {name!r} is not a CSIQ image name like 1600.AWGN.1.png")
    return m.group(1), CSIQ_TYPES[m.group(2).lower()][1], int(m.group(3))


def _add_parsed(df: pd.DataFrame, names, parse, type_names: dict[int, str]) -> pd.DataFrame:
    parsed = [parse(n) for n in names]
    df["ref"] = [p[0] for p in parsed]
    df["dist_type"] = [p[1] for p in parsed]
    df["dist_level"] = [p[2] for p in parsed]
    df["dist_name"] = [type_names.get(p[1], "") for p in parsed]
    return df


@register_reader("tid2013")
def read_tid2013(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """TID2013: ``mos_with_names.txt`` (lines ``"5.51429 i01_01_1.bmp"``, MOS 0-9)
    and ``mos_std.txt`` (one std per line, same order); images in
    ``distorted_images/``, references ``reference_images/I01.BMP`` ..
    Reference, type (1-24) and level (1-5) are parsed from the names."""
    lf = labels_file or find_file(root, ["mos_with_names.txt"], what="MOS file", dataset="tid2013")
    mos, names = [], []
    for i, line in enumerate(Path(lf).read_text(errors="replace").splitlines()):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"tid2013: {lf} line {i + 1}: expected '<mos> <name>', got {line!r}")
        mos.append(float(parts[0]))
        names.append(parts[1])
    df = pd.DataFrame({"mos": mos})
    notes = []
    std_f = Path(lf).parent / "mos_std.txt"
    if std_f.is_file():
        std = [float(s) for s in std_f.read_text().split()]
        if len(std) == len(mos):
            df["std"] = std
        else:
            notes.append(f"mos_std.txt has {len(std)} values for {len(mos)} images: std not used")
    dist_dir = find_dir(root, ["distorted_images"], near=[Path(lf).parent]) or Path(root) / "distorted_images"
    ref_dir = find_dir(root, ["reference_images"], near=[Path(lf).parent]) or Path(root) / "reference_images"
    df.insert(0, "path", [str(dist_dir / n) for n in names])
    _add_parsed(df, names, parse_tid2013_name, TID2013_TYPES)
    known = [str(ref_dir / f"{r.upper()}.BMP") for r in sorted(set(df["ref"]))]
    return RawLabels(df, Path(lf), [(dist_dir, False), (ref_dir, False)], known_files=known, notes=notes)


@register_reader("kadid10k")
def read_kadid10k(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """KADID-10k: ``dmos.csv`` with columns dist_img, ref_img, dmos, var (the
    'dmos' is a MOS, 1-5, higher is better); distorted and reference images
    together in ``images/``.  Type (1-25) and level (1-5) come from the names."""
    lf = labels_file or find_file(root, ["dmos.csv"], what="label file", dataset="kadid10k")
    t = read_table(lf)
    for c in ("dist_img", "ref_img", "dmos"):
        if c not in t.columns:
            raise ValueError(f"kadid10k: {lf} has no column {c!r} (columns: {list(t.columns)})")
    img_dir = find_dir(root, ["images"], near=[Path(lf).parent]) or Path(root) / "images"
    names = [str(n) for n in t["dist_img"]]
    df = pd.DataFrame({"path": [str(img_dir / n) for n in names], "mos": pd.to_numeric(t["dmos"], errors="coerce")})
    if "var" in t.columns:
        df["std"] = np.sqrt(pd.to_numeric(t["var"], errors="coerce").clip(lower=0))
    _add_parsed(df, names, parse_kadid10k_name, KADID10K_TYPES)
    df["ref"] = [Path(str(r)).stem for r in t["ref_img"]]
    known = [str(img_dir / str(r)) for r in sorted(set(t["ref_img"].astype(str)))]
    return RawLabels(df, Path(lf), [(img_dir, False)], known_files=known)


@register_reader("csiq")
def read_csiq(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """CSIQ: ``csiq.DMOS.xlsx`` sheet ``all_by_image`` (or a CSV export) with
    columns image, dst_idx, dst_type, dst_lev, dmos_std, dmos (0-1, lower is
    better); images ``dst_imgs/<TYPE>/<image>.<TYPE>.<level>.png``, references
    ``src_imgs/<image>.png``."""
    lf = labels_file or find_file(root, ["csiq.DMOS.csv", "csiq_dmos.csv", "csiq.DMOS.xlsx"],
                                  what="DMOS file", dataset="csiq")
    kw = {"sheet_name": "all_by_image"} if Path(lf).suffix.lower() in (".xlsx", ".xls") else {}
    t = read_table(lf, **kw)
    t.columns = [str(c).strip().lower() for c in t.columns]
    for c in ("image", "dst_type", "dst_lev", "dmos"):
        if c not in t.columns:
            raise ValueError(f"csiq: {lf} has no column {c!r} (columns: {list(t.columns)})")
    t = t.dropna(subset=["image", "dst_type"])
    unknown = sorted({str(v) for v in t["dst_type"] if str(v).strip().lower() not in CSIQ_TYPES})
    if unknown:
        raise ValueError(f"csiq: unknown dst_type value(s) {unknown}; known: {sorted(CSIQ_TYPES)}")
    dst_dir = find_dir(root, ["dst_imgs"], near=[Path(lf).parent]) or Path(root) / "dst_imgs"
    src_dir = find_dir(root, ["src_imgs"], near=[Path(lf).parent]) or Path(root) / "src_imgs"
    refs, types, levels, paths = [], [], [], []
    for img, typ, lev in zip(t["image"], t["dst_type"], t["dst_lev"]):
        num = pd.to_numeric(img, errors="coerce")
        ref = str(int(num)) if np.isfinite(num) else str(img).strip()
        tag, canon = CSIQ_TYPES[str(typ).strip().lower()]
        lev = int(lev)
        refs.append(ref)
        types.append(canon)
        levels.append(lev)
        paths.append(str(dst_dir / tag / f"{ref}.{tag}.{lev}.png"))
    df = pd.DataFrame({"path": paths, "mos": pd.to_numeric(t["dmos"], errors="coerce").to_numpy()})
    if "dmos_std" in t.columns:
        df["std"] = pd.to_numeric(t["dmos_std"], errors="coerce").to_numpy()
    df["ref"], df["dist_type"], df["dist_level"] = refs, types, levels
    known = [str(src_dir / f"{r}.png") for r in sorted(set(refs))]
    return RawLabels(df, Path(lf), [(dst_dir, True), (src_dir, False)], known_files=known)


#: LIVE release 2: folders in .mat order and their number of entries (982 in all).
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


@register_reader("live")
def read_live(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """LIVE IQA release 2: ``dmos_realigned.mat`` (dmos_new, orgs, dmos_std; or
    ``dmos.mat`` with dmos, orgs) and ``refnames_all.mat`` (refnames_all), 982
    entries in the order jp2k(227), jpeg(233), wn, gblur, fastfading (174 each),
    images ``<folder>/img<k>.bmp``.  Entries with ``orgs == 1`` are copies of the
    reference images and are dropped: 779 distorted images remain (DMOS, lower
    is better)."""
    lf = labels_file or find_file(root, ["dmos_realigned.mat", "dmos.mat"], what="DMOS file", dataset="live")
    base = Path(lf).parent
    realigned = "realigned" in Path(lf).name.lower()
    key = "dmos_new" if realigned else "dmos"
    m = load_mat(lf, [key, "orgs"], dataset="live")
    dmos, orgs = mat_vector(m[key]), mat_vector(m["orgs"]).astype(bool)
    std = None
    if realigned:
        try:
            std = mat_vector(load_mat(lf, ["dmos_std"], dataset="live")["dmos_std"])
        except ValueError:
            std = None
    ref_f = find_file(base, ["refnames_all.mat"], what="reference-name file", dataset="live")
    refnames = mat_strings(load_mat(ref_f, ["refnames_all"], dataset="live")["refnames_all"])
    total = sum(n for _, n in LIVE_FOLDERS)
    if not (len(dmos) == len(orgs) == len(refnames) == total):
        raise ValueError(f"live: expected {total} entries in {lf} and {ref_f}; found dmos {len(dmos)}, "
                         f"orgs {len(orgs)}, refnames {len(refnames)}")
    folders = [(f, k + 1) for f, n in LIVE_FOLDERS for k in range(n)]
    dirs = {f: (find_dir(base, [f]) or base / f) for f, _ in LIVE_FOLDERS}
    ref_dir = find_dir(base, ["refimgs"]) or base / "refimgs"
    rows, known = [], [str(ref_dir / r) for r in sorted(set(refnames))]
    for i, (f, k) in enumerate(folders):
        p = str(dirs[f] / f"img{k}.bmp")
        if orgs[i]:
            known.append(p)
            continue
        rows.append({"path": p, "mos": dmos[i], **({"std": std[i]} if std is not None and len(std) == total else {}),
                     "ref": Path(refnames[i]).stem, "dist_type": f})
    df = pd.DataFrame(rows)
    notes = [f"dropped {int(orgs.sum())} reference copies (orgs == 1); labels from {Path(lf).name}"]
    return RawLabels(df, Path(lf), [(d, False) for d in dirs.values()] + [(ref_dir, False)],
                     known_files=known, notes=notes)
