"""Build the synthetic-distortion benchmark: crops of pristine photos x 25 KADID types x 5 levels.

Layout written under ``out_dir``::

    images/<photo_stem>/<crop>_<type:02d>_<level>.png    (reference: <crop>_00_0.png)
    records.csv                                          (see build_synthetic_dataset)
    synth_meta.json                                      (parameters, calibration, report, timing)

Images are PNG (lossless), so JPEG / JPEG2000 are the only compression artefacts. The FR
quality ``q_fr`` is computed on exactly the stored 8-bit images.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import platform
import time
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from .distortions import JPEG2000_BACKEND, from_uint8, get_distortion, resolve_types, to_uint8
from .labels import (COMPONENT_SCALES, Calibrator, analysis_factor, calibration_report, cross_fitted_labels,
                     fr_scores, kadid_level_means)

__all__ = ["build_synthetic_dataset", "split_by_reference", "list_photos", "crop_boxes", "RECORD_COLUMNS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
RECORD_COLUMNS = ("path", "mos", "q_fr", "ref", "crop", "dist_type", "dist_id", "dist_level", "split")
_FR_BATCH = 32


# --------------------------------------------------------------------------------------------
# splits and crops
# --------------------------------------------------------------------------------------------
def split_by_reference(refs: Iterable[str], val_fraction: float = 0.15, test_fraction: float = 0.15,
                       seed: int = 0) -> dict[str, str]:
    """Assign whole references (photos) to ``train`` / ``val`` / ``test``.

    The unique references are sorted, shuffled with ``seed``, and the first
    ``round(test_fraction * n)`` go to test, the next ``round(val_fraction * n)`` to val, the rest
    to train. A non-zero fraction gets at least one reference as long as one is left for train.

    Returns:
        ``{ref: split}`` for every unique reference.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}")
    uniq = sorted({str(r) for r in refs})
    n = len(uniq)
    order = [uniq[i] for i in np.random.default_rng(seed).permutation(n)]
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    if test_fraction > 0 and n_test == 0 and n - n_val > 1:
        n_test = 1
    if val_fraction > 0 and n_val == 0 and n - n_test > 1:
        n_val = 1
    while n_test + n_val >= n and n_test + n_val > 0:  # keep one for training
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    out = {r: "test" for r in order[:n_test]}
    out.update({r: "val" for r in order[n_test:n_test + n_val]})
    out.update({r: "train" for r in order[n_test + n_val:]})
    return out


def list_photos(photos_dir: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``photos_dir`` (not recursive), sorted by name."""
    d = Path(photos_dir)
    if not d.is_dir():
        raise NotADirectoryError(f"photos folder not found: {d}")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {d}")
    stems = [p.stem for p in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"photos with the same name but different extensions: {dup}")
    return files


def _photo_key(stem: str) -> int:
    return zlib.crc32(stem.encode("utf-8"))


def crop_boxes(width: int, height: int, n: int, size: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """``n`` random square crops ``(left, top, side)`` of ``size`` px inside a ``width x height`` photo.

    A photo smaller than ``size`` on either side gives one centred square of its short side.
    """
    if n < 1 or size < 1:
        raise ValueError(f"need n >= 1 and size >= 1, got n={n}, size={size}")
    if width < size or height < size:
        s = min(width, height)
        return [((width - s) // 2, (height - s) // 2, s)]
    xs = rng.integers(0, width - size + 1, n)
    ys = rng.integers(0, height - size + 1, n)
    return [(int(x), int(y), size) for x, y in zip(xs, ys)]


# --------------------------------------------------------------------------------------------
# per-crop work (runs in worker processes when workers > 1)
# --------------------------------------------------------------------------------------------
def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _process_crop(job: dict) -> list[dict]:
    """Distort one crop at every (type, level), write the PNGs, return records without ``mos``."""
    with Image.open(job["photo"]) as im:
        x, y, s = job["box"]
        ref_u8 = np.asarray(im.convert("RGB").crop((x, y, x + s, y + s)))
    ref = from_uint8(ref_u8)
    out_dir = Path(job["out_dir"])
    rel_dir = Path("images") / job["stem"]
    (out_dir / rel_dir).mkdir(parents=True, exist_ok=True)
    crop = job["crop"]
    rows: list[dict] = []
    pending: list[np.ndarray] = []

    def save(img_u8: np.ndarray, tid: int, level: int, name: str) -> None:
        rel = rel_dir / f"{crop}_{tid:02d}_{level}.png"
        Image.fromarray(img_u8).save(out_dir / rel, compress_level=job["png_compress_level"])
        rows.append({"path": rel.as_posix(), "ref": job["stem"], "crop": crop, "dist_type": name,
                     "dist_id": tid, "dist_level": level})

    if job["include_reference"]:
        save(ref_u8, 0, 0, "reference")
    for tid in job["types"]:
        d = get_distortion(tid)
        for level in job["levels"]:
            # the same seed at every level: random types are nested, stronger with the level
            rng = np.random.default_rng([job["seed"], job["photo_key"], crop, tid])
            img_u8 = to_uint8(d(ref, level, rng))
            save(img_u8, tid, level, d.key)
            pending.append(from_uint8(img_u8))
    scores = {k: [] for k in list(COMPONENT_SCALES) + ["q"]}
    for i in range(0, len(pending), _FR_BATCH):
        sc = fr_scores(ref, np.stack(pending[i:i + _FR_BATCH]), batch_size=_FR_BATCH)
        for k in scores:
            scores[k].append(sc[k])
    dist_rows = [r for r in rows if r["dist_id"] > 0]
    for k, v in scores.items():
        col = "q_fr" if k == "q" else f"fr_{k}"
        for r, val in zip(dist_rows, np.concatenate(v) if v else []):
            r[col] = float(val)
        for r in rows:
            if r["dist_id"] == 0:
                r[col] = 1.0  # the reference is identical to itself
    return rows


# --------------------------------------------------------------------------------------------
# the builder
# --------------------------------------------------------------------------------------------
def build_synthetic_dataset(
    photos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    crops_per_photo: int = 2,
    crop_size: int = 384,
    types: Sequence[str | int] | None = None,
    levels: Sequence[int] = (1, 2, 3, 4, 5),
    include_reference: bool = True,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    kadid_labels: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = True,
    max_photos: int | None = None,
    png_compress_level: int = 1,
    reference_mos: float | None = None,
) -> Path:
    """Distort random crops of pristine photos and label them with calibrated FR quality.

    Args:
        photos_dir: folder of pristine photos (png/jpg/...; not recursive). One photo = one
            reference = the grouping key for splits.
        out_dir: output folder (created; existing files of the same names are overwritten).
        crops_per_photo: random crops per photo (a photo smaller than ``crop_size`` gives one
            centred square of its short side instead).
        crop_size: crop side in px.
        types: distortion keys / KADID names / ids (default: all 25).
        levels: levels to build, subset of 1..5.
        include_reference: also store the undistorted crop (``dist_id = dist_level = 0``).
        val_fraction, test_fraction: fractions of *photos* for val / test (see
            :func:`split_by_reference`).
        seed: seeds crops, random distortions and the split (same seed = same dataset).
        kadid_labels: KADID-10k label file for the calibration (see
            :func:`~biqa.synth.labels.kadid_level_means`). ``None``: no calibration,
            ``mos = 1 + 4 * q_fr`` (uncalibrated; noted in synth_meta.json).
        workers: processes (1 = in this process; >1 uses spawn workers with 1 torch thread each).
        progress: show a tqdm progress bar.
        max_photos: use only the first N photos (sorted by name).
        png_compress_level: zlib level of the PNGs (0-9; lossless at every level; 1 is fast).
        reference_mos: label of references (default: the highest KADID level mean).

    Returns:
        Path of ``out_dir/records.csv`` with columns ``path`` (relative to the CSV's folder),
        ``mos`` (calibrated label in [1, 5], higher = better), ``q_fr`` (raw FR ensemble in [0, 1]),
        ``ref`` (photo stem), ``crop``, ``dist_type`` (distortion key or ``"reference"``),
        ``dist_id`` (1-25, 0 = reference), ``dist_level`` (1-5, 0 = reference), ``split``
        (train/val/test by photo), plus the FR components ``fr_ms_ssim``, ``fr_haarpsi``, ``fr_mdsi``.
    """
    from tqdm.auto import tqdm

    from .labels import require_piq

    require_piq()  # before any output exists: a missing extra must not leave a partial folder
    t0 = time.perf_counter()
    dists = resolve_types(types)
    levels = tuple(sorted({int(v) for v in levels}))
    if not levels or any(not 1 <= v <= 5 for v in levels):
        raise ValueError(f"levels must be a non-empty subset of 1..5, got {levels}")
    if crop_size < 16:
        raise ValueError(f"crop_size must be at least 16 px, got {crop_size}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    level_means = kadid_level_means(kadid_labels) if kadid_labels is not None else None
    photos = list_photos(photos_dir)
    if max_photos is not None:
        photos = photos[:max(1, int(max_photos))]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = split_by_reference([p.stem for p in photos], val_fraction, test_fraction, seed)

    jobs = []
    for p in photos:
        with Image.open(p) as im:
            w, h = im.size
        key = _photo_key(p.stem)
        boxes = crop_boxes(w, h, crops_per_photo, crop_size, np.random.default_rng([seed, key, 0xC809]))
        for c, box in enumerate(boxes):
            if box[2] < 16:
                raise ValueError(f"{p.name}: too small ({w}x{h}) for a crop of at least 16 px")
            jobs.append({"photo": str(p), "stem": p.stem, "photo_key": key, "crop": c, "box": box,
                         "types": [d.id for d in dists], "levels": list(levels), "seed": int(seed),
                         "out_dir": str(out_dir), "include_reference": bool(include_reference),
                         "png_compress_level": int(png_compress_level)})
    per_job = len(dists) * len(levels) + int(include_reference)
    rows: list[dict] = []
    t_img = time.perf_counter()
    with tqdm(total=len(jobs) * per_job, unit="img", disable=not progress, desc="synth") as bar:
        if workers == 1:
            for job in jobs:
                rows.extend(_process_crop(job))
                bar.update(per_job)
        else:
            with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
                for res in pool.imap_unordered(_process_crop, jobs):
                    rows.extend(res)
                    bar.update(per_job)
    seconds_images = time.perf_counter() - t_img

    df = pd.DataFrame(rows)
    df["split"] = df["ref"].map(splits)
    meta_cal: dict = {"calibrated": level_means is not None}
    if level_means is not None:
        cal = Calibrator(reference_mos=reference_mos)
        dist_rows = df["dist_id"] > 0
        cal.fit(df.loc[dist_rows, "q_fr"], df.loc[dist_rows, "dist_id"], df.loc[dist_rows, "dist_level"],
                level_means)
        df["mos"] = cal.transform(df["q_fr"], df["dist_id"])
        report = calibration_report(df["mos"], df["dist_id"], df["dist_level"], level_means, q=df["q_fr"])
        meta_cal.update({"kadid_labels": os.fspath(kadid_labels), "calibrator": cal.to_dict(),
                         "table": cal.table().to_dict(orient="records"), "report_in_sample": report})
        if df["ref"].nunique() >= 2:
            cv = cross_fitted_labels(df["q_fr"], df["dist_id"], df["dist_level"], df["ref"], level_means,
                                     n_folds=min(5, df["ref"].nunique()), seed=seed, reference_mos=reference_mos)
            rep_cv = calibration_report(cv, df["dist_id"], df["dist_level"], level_means)
            rep_cv.pop("cells")
            meta_cal["report_cross_fitted_by_photo"] = rep_cv
    else:
        df["mos"] = 1.0 + 4.0 * df["q_fr"]
        meta_cal["note"] = "no KADID labels given: mos = 1 + 4 * q_fr (uncalibrated)"
    extra = [c for c in df.columns if c not in RECORD_COLUMNS]
    df = df[list(RECORD_COLUMNS) + sorted(extra)].sort_values(["ref", "crop", "dist_id", "dist_level"])
    csv_path = out_dir / "records.csv"
    df.to_csv(csv_path, index=False, float_format="%.6g")

    total = time.perf_counter() - t0
    meta = {
        "seed": int(seed),
        "parameters": {"photos_dir": os.fspath(photos_dir), "crops_per_photo": crops_per_photo,
                       "crop_size": crop_size, "types": [d.key for d in dists], "levels": list(levels),
                       "include_reference": include_reference, "val_fraction": val_fraction,
                       "test_fraction": test_fraction, "workers": workers, "max_photos": max_photos,
                       "png_compress_level": png_compress_level},
        "n_photos": len(photos), "n_crops": len(jobs), "n_images": int(len(df)),
        "splits": {s: sorted(r for r, v in splits.items() if v == s) for s in ("train", "val", "test")},
        "distortions": [{"id": d.id, "key": d.key, "kadid_name": d.kadid_name,
                         "params": [list(p) if isinstance(p, tuple) else p for p in d.params], "unit": d.unit}
                        for d in dists],
        "jpeg2000_backend": JPEG2000_BACKEND,
        "fr_ensemble": {"components": list(COMPONENT_SCALES), "scales": COMPONENT_SCALES,
                        "analysis_factor": analysis_factor(crop_size, crop_size),
                        "combine": "mean of components rescaled to [0, 1]"},
        "calibration": meta_cal,
        "timing": {"seconds_total": round(total, 2), "seconds_images": round(seconds_images, 2),
                   "images_per_second": round(len(df) / max(seconds_images, 1e-9), 2),
                   "machine": platform.machine(), "cpus": os.cpu_count()},
        "versions": _versions(),
    }
    with open(out_dir / "synth_meta.json", "w") as fh:
        json.dump(_jsonable(meta), fh, indent=1)
    return csv_path


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("biqa", "piq", "torch", "numpy", "scipy", "pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    return x
