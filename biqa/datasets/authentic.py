"""Readers for the authentic-distortion datasets: KonIQ-10k, SPAQ, LIVE-C, BID, UHD-IQA.

Each reads the dataset's original label file(s) as released (layouts described
in each docstring) and returns :class:`~biqa.datasets.base.RawLabels`.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .base import RawLabels, register_reader, split_value
from .files import find_dir, find_file, load_mat, mat_strings, mat_vector, read_table


def _column(t: pd.DataFrame, names, *, dataset: str, path: Path, required: bool = True) -> str | None:
    """The column of ``t`` whose normalised name is one of ``names``."""
    norm = {re.sub(r"[\s_]+", " ", str(c)).strip().lower(): c for c in t.columns}
    for n in names:
        if n in norm:
            return norm[n]
    if required:
        raise ValueError(f"{dataset}: {path} has no column {names[0]!r} (columns: {list(t.columns)})")
    return None


@register_reader("koniq10k")
def read_koniq10k(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """KonIQ-10k: ``koniq10k_distributions_sets.csv`` with columns image_name, c1..c5,
    c_total, MOS (1-5), SD, MOS_zscore, set (training/validation/test); images in
    ``1024x768/`` (default) or ``512x384/`` (``size="512x384"``)."""
    size = opts.get("size") or "1024x768"
    if size not in ("1024x768", "512x384"):
        raise ValueError(f"koniq10k: size must be '1024x768' or '512x384', not {size!r}")
    lf = labels_file or find_file(root, ["koniq10k_distributions_sets.csv", "koniq10k_scores_and_distributions.csv"],
                                  what="label file", dataset="koniq10k")
    t = read_table(lf)
    name_c = _column(t, ["image name"], dataset="koniq10k", path=lf)
    mos_c = _column(t, ["mos"], dataset="koniq10k", path=lf)
    img_dir = find_dir(root, [size], near=[lf.parent, lf.parent.parent]) or Path(root) / size
    df = pd.DataFrame({"path": [str(img_dir / str(n)) for n in t[name_c]],
                       "mos": pd.to_numeric(t[mos_c], errors="coerce")})
    sd_c = _column(t, ["sd", "std"], dataset="koniq10k", path=lf, required=False)
    if sd_c is not None:
        df["std"] = pd.to_numeric(t[sd_c], errors="coerce")
    for k in range(1, 6):
        c = _column(t, [f"c{k}"], dataset="koniq10k", path=lf, required=False)
        if c is not None:
            df[f"c{k}"] = pd.to_numeric(t[c], errors="coerce")
    z_c = _column(t, ["mos zscore"], dataset="koniq10k", path=lf, required=False)
    if z_c is not None:
        df["mos_zscore"] = pd.to_numeric(t[z_c], errors="coerce")
    set_c = _column(t, ["set"], dataset="koniq10k", path=lf, required=False)
    notes = [f"images from the {size} folder"]
    if set_c is not None:
        df["split_official"] = [split_value(v) for v in t[set_c]]
    else:
        notes.append("no 'set' column: no official split")
    return RawLabels(df, lf, [(img_dir, False)], notes=notes)


@register_reader("spaq")
def read_spaq(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (or a CSV export of
    it) with columns Image name, MOS (0-100), Brightness, Colorfulness, Contrast,
    Noisiness, Sharpness; images ``TestImage/00001.jpg`` .. ``11125.jpg``."""
    stem = "MOS and Image attribute scores"
    lf = labels_file or find_file(
        root, [f"Annotations/{stem}.csv", f"{stem}.csv", "MOS_and_Image_attribute_scores.csv",
               f"Annotations/{stem}.xlsx", f"{stem}.xlsx"], what="MOS file", dataset="spaq")
    t = read_table(lf)
    name_c = _column(t, ["image name", "image"], dataset="spaq", path=lf)
    mos_c = _column(t, ["mos"], dataset="spaq", path=lf)
    img_dir = find_dir(root, ["TestImage"], near=[lf.parent.parent, lf.parent]) or Path(root) / "TestImage"
    df = pd.DataFrame({"path": [str(img_dir / str(n)) for n in t[name_c]],
                       "mos": pd.to_numeric(t[mos_c], errors="coerce")})
    for a in ("brightness", "colorfulness", "contrast", "noisiness", "sharpness"):
        c = _column(t, [a], dataset="spaq", path=lf, required=False)
        if c is not None:
            df[a] = pd.to_numeric(t[c], errors="coerce")
    return RawLabels(df, lf, [(img_dir, False)])


LIVEC_PRACTICE = 7


@register_reader("livec")
def read_livec(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """LIVE In the Wild: ``Data/AllImages_release.mat`` (image names),
    ``Data/AllMOS_release.mat`` (MOS ~0-100) and ``Data/AllStdDev_release.mat``;
    images in ``Images/``.  The first 7 entries are the practice images
    (``Images/trainingImages/``): they are dropped, leaving 1,162.  The release's
    ``README.txt`` is UT Austin's copyright notice (``DatasetInfo.notice_file``):
    the import copies it beside the records.  A copy that stores the BMPs as
    lossless WebP under the same stem is matched by stem; one that withholds
    some images imports with ``partial=True``."""
    lf = labels_file or find_file(root, ["Data/AllMOS_release.mat", "AllMOS_release.mat"],
                                  what="MOS file", dataset="livec")
    names_f = find_file(lf.parent, ["AllImages_release.mat"], what="image-name file", dataset="livec")
    names = mat_strings(load_mat(names_f, ["AllImages_release"], dataset="livec")["AllImages_release"])
    mos = mat_vector(load_mat(lf, ["AllMOS_release"], dataset="livec")["AllMOS_release"])
    if len(names) != len(mos):
        raise ValueError(f"livec: {names_f} lists {len(names)} images but {lf} has {len(mos)} MOS values")
    std, notes = None, []
    std_f = lf.parent / "AllStdDev_release.mat"
    if std_f.is_file():
        std = mat_vector(load_mat(std_f, ["AllStdDev_release"], dataset="livec")["AllStdDev_release"])
        if len(std) != len(mos):
            notes.append(f"no std column: {std_f} has {len(std)} values for {len(mos)} MOS values")
            std = None
    else:
        notes.append(f"no std column: {std_f} not found")
    img_dir = find_dir(root, ["Images"], near=[lf.parent.parent]) or Path(root) / "Images"
    practice = names[:LIVEC_PRACTICE]
    keep = slice(LIVEC_PRACTICE, None)
    df = pd.DataFrame({"path": [str(img_dir / n) for n in names[keep]], "mos": mos[keep]})
    if std is not None:
        df["std"] = std[keep]
    known = [str(img_dir / "trainingImages" / n) for n in practice] + [str(img_dir / n) for n in practice]
    notes.insert(0, f"dropped the {len(practice)} practice images (first .mat entries: {', '.join(practice)})")
    return RawLabels(df, lf, [(img_dir, False)], known_files=known, notes=notes)


@register_reader("bid")
def read_bid(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """BID: ``DatabaseGrades.xlsx`` (or a CSV export), first column the image
    number, second the MOS (0-5); images ``DatabaseImage0001.JPG`` .. (586)."""
    lf = labels_file or find_file(root, ["DatabaseGrades.csv", "DatabaseGrades.xlsx", "DatabaseGrades.xls"],
                                  what="grades file", dataset="bid")
    t = read_table(lf)
    if t.shape[1] < 2:
        raise ValueError(f"bid: {lf} needs two columns (image number, MOS); found {list(t.columns)}")
    t = t.iloc[:, :2].dropna(how="all")
    img_dir = find_dir(root, ["ImageDatabase"], near=[lf.parent]) or lf.parent
    paths = []
    for v in t.iloc[:, 0]:
        num = pd.to_numeric(v, errors="coerce")
        name = f"DatabaseImage{int(num):04d}.JPG" if np.isfinite(num) else str(v).strip()
        paths.append(str(img_dir / name))
    df = pd.DataFrame({"path": paths, "mos": pd.to_numeric(t.iloc[:, 1], errors="coerce").to_numpy()})
    return RawLabels(df, lf, [(img_dir, False)])


_UHD_SPLITS = {"training": "train", "validation": "val", "test": "test"}


@register_reader("uhdiqa")
def read_uhdiqa(root: Path, labels_file: Path | None, opts: dict) -> RawLabels:
    """UHD-IQA: ``uhd-iqa-{training,validation,test}-metadata.csv`` with columns
    image_name, quality_mos (0-1) and Pixabay metadata; images in
    ``challenge/{training,validation,test}/``.  The file a row comes from is its
    official split (4269/904/900).  A single metadata CSV with a ``set`` or
    ``split`` column is read too."""
    files: dict[str, Path] = {}
    if labels_file is not None and not re.search(r"(training|validation|test)-metadata", labels_file.name):
        single = labels_file
    else:
        single = None
        base = labels_file.parent if labels_file is not None else root
        for folder, split in _UHD_SPLITS.items():
            try:
                files[folder] = find_file(base, [f"uhd-iqa-{folder}-metadata.csv"], what="metadata", dataset="uhdiqa")
            except FileNotFoundError:
                pass
        if not files:
            single = find_file(root, ["uhd-iqa-metadata.csv"], what="metadata CSVs (uhd-iqa-training-metadata.csv ...)",
                               dataset="uhdiqa")
    parts, notes, dirs = [], [], []
    if single is not None:
        t = read_table(single)
        sc = _column(t, ["set", "split"], dataset="uhdiqa", path=single)
        t["__split"] = [split_value(v) for v in t[sc]]
        t = t.drop(columns=[sc])
        tables = [(single, t)]
    else:
        tables = []
        for folder, f in files.items():
            t = read_table(f)
            t["__split"] = _UHD_SPLITS[folder]
            tables.append((f, t))
        for folder in _UHD_SPLITS:
            if folder not in files:
                notes.append(f"no uhd-iqa-{folder}-metadata.csv found")
    lf = tables[0][0]
    back = {v: k for k, v in _UHD_SPLITS.items()}
    split_dirs: dict[str, Path] = {}
    for f, t in tables:
        name_c = _column(t, ["image name"], dataset="uhdiqa", path=f)
        mos_c = _column(t, ["quality mos", "mos"], dataset="uhdiqa", path=f)
        rows = pd.DataFrame({"mos": pd.to_numeric(t[mos_c], errors="coerce")})
        paths = []
        for name, s in zip(t[name_c], t["__split"]):
            if s not in split_dirs:
                folder = back.get(s, s)
                d = find_dir(root, [folder], near=[f.parent / "challenge", f.parent, Path(root) / "challenge"])
                split_dirs[s] = d or Path(root) / "challenge" / folder
                dirs.append((split_dirs[s], False))
            paths.append(str(split_dirs[s] / str(name)))
        rows.insert(0, "path", paths)
        rows["split_official"] = t["__split"].to_numpy()
        extra = [c for c in t.columns if c not in (name_c, mos_c, "__split")]
        for c in extra:
            rows[c] = t[c].to_numpy()
        parts.append(rows)
    df = pd.concat(parts, ignore_index=True)
    return RawLabels(df, lf, dirs, notes=notes)
