"""Accuracy against input resolution: the synthetic benchmark at 1x, 2x and 4x its usual size.

The point of high-resolution IQA (MobileIQA) is that a photo resized to 224-512 px loses its
defects. This benchmark measures that, upscale-free:

1. Photos: the benchmark's held-out photos (validation and test of the split by photo, seed 0, that
   ``biqa-default`` v2 was trained on: no model here trained on them) whose original in
   ``../shared/data/originals`` has a short side of at least 4 x 384 = 1536 px. From each original,
   the centred square of its short side, downscaled with Lanczos to 384, 768 and 1536 px: the same
   content at 1x, 2x and 4x the usual size.
2. Sets: ``biqa data synth`` on each size (one crop = the whole square; 25 KADID-10k types, levels
   1/3/5 by default; labels calibrated per set onto KADID-10k's level means). Distortion parameters
   are in pixels (a blur sigma, a JPEG quality, a noise variance), so a level is the same per-pixel
   defect at every size, and it shrinks below visibility when a 4x image is resized to 384 px.
3. Each model scores each set at its native resolution (``full``) and resized to the usual 384x384;
   SRCC / PLCC against the labels with bootstrap 95% CIs, and the mean within-(photo, type) SRCC
   of prediction against level. Native-resolution scoring is `biqa score`'s default (``--tile
   auto``): the 1536 x 1536 images in 3 x 3 tiles of 768 px (the mean of the tile scores), the
   others whole.

  python benchmarks/resolution.py [--models biqa-default runs/x/best.safetensors ...]
  python benchmarks/resolution.py --quick        # 2 photos, 5 types, level 1/5: about 2 minutes

Sets are built once into data/resolution/<size>/ (git-ignored; ``--rebuild`` to redo them; about
6 min on 2 cores for the full run). Prints a table; writes benchmarks/results/resolution.csv (not
with --quick).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
USUAL = 384
QUICK_TYPES = "gaussian_blur,jpeg,white_noise,contrast_change,pixelate"


def held_out_photos(photos: Path, originals: Path, min_short: int, seed: int = 0) -> list[tuple[str, Path]]:
    """``(stem, original)`` of the benchmark's val/test photos whose original is large enough."""
    from PIL import Image

    from biqa.synth import list_photos, split_by_reference

    stems = [p.stem for p in list_photos(photos)]
    split = split_by_reference(stems, 0.15, 0.15, seed)
    out = []
    for stem in sorted(s for s, where in split.items() if where != "train"):
        for cand in sorted(originals.glob(stem + ".*")):
            with Image.open(cand) as im:
                if min(im.size) >= min_short:
                    out.append((stem, cand))
            break
    return out


def make_photo_sets(pairs, sizes: list[int], out: Path) -> dict[int, Path]:
    """The centred square of each original, Lanczos-downscaled to each size (PNG, lossless)."""
    from PIL import Image, ImageOps

    dirs = {}
    for s in sizes:
        d = out / str(s) / "photos"
        d.mkdir(parents=True, exist_ok=True)
        dirs[s] = d
    for stem, src in pairs:
        with Image.open(src) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            sq = im.crop((left, top, left + side, top + side))
            for s in sizes:
                sq.resize((s, s), Image.LANCZOS, reducing_gap=3.0).save(dirs[s] / f"{stem}.png", compress_level=1)
    return dirs


def build_sets(a, sizes: list[int]) -> dict[int, Path]:
    from biqa.synth import build_synthetic_dataset

    pairs = held_out_photos(Path(a.photos), Path(a.originals), max(sizes))
    if a.max_photos:
        pairs = pairs[: a.max_photos]
    if not pairs:
        sys.exit(f"no held-out photo has an original with a short side >= {max(sizes)} px in {a.originals}")
    root = Path(a.data)
    levels = tuple(int(v) for v in a.levels.split(","))
    types = a.types.split(",") if a.types else None
    records = {}
    stamp = f"{','.join(s for s, _ in pairs)}|{levels}|{types}|{a.seed}"
    for s in sizes:
        csv = root / str(s) / "records.csv"
        marker = root / str(s) / "built_from.txt"
        if csv.is_file() and marker.is_file() and marker.read_text() == stamp and not a.rebuild:
            records[s] = csv
            continue
        shutil.rmtree(root / str(s), ignore_errors=True)
        photo_dir = make_photo_sets(pairs, [s], root)[s]
        t0 = time.perf_counter()
        csv = build_synthetic_dataset(photo_dir, root / str(s), crops_per_photo=1, crop_size=s, levels=levels,
                                      types=types, val_fraction=0.0, test_fraction=0.0, seed=a.seed,
                                      kadid_labels=a.kadid_labels, workers=2, progress=True)
        df = pd.read_csv(csv)
        df["split"] = "test"
        df.to_csv(csv, index=False)
        marker.write_text(stamp)
        print(f"[resolution] built {s} px set: {len(df)} images from {len(pairs)} photos "
              f"in {time.perf_counter() - t0:.0f} s")
        records[s] = csv
    return records


def within_level_srcc(df: pd.DataFrame) -> float:
    from scipy.stats import spearmanr

    vals = []
    for _, g in df[df["dist_level"] > 0].groupby(["ref", "dist_type"]):
        if g["dist_level"].nunique() >= 2 and g["pred"].nunique() > 1:
            vals.append(spearmanr(g["pred"], -g["dist_level"]).statistic)
    return float(np.mean(vals)) if vals else float("nan")


def score(scorer, paths: list[str]) -> np.ndarray:
    df = scorer.score(paths, progress=True)
    bad = df[df["error"].fillna("").astype(str) != ""]
    if len(bad):
        raise RuntimeError(f"{len(bad)} images failed to score, e.g. {bad.iloc[0].to_dict()}")
    return df["score"].to_numpy(dtype=float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["biqa-default"],
                    help="bundled model names or checkpoints (default: biqa-default)")
    ap.add_argument("--photos", default=str(SHARED / "photos"))
    ap.add_argument("--originals", default=str(SHARED / "originals"))
    ap.add_argument("--kadid-labels", default=str(SHARED / "labels" / "KADID-10k.txt"))
    ap.add_argument("--data", default=str(ROOT / "data" / "resolution"), help="where the sets are built (cached)")
    ap.add_argument("--levels", default="1,3,5")
    ap.add_argument("--types", default=None, help="comma-separated distortion types (default: all 25)")
    ap.add_argument("--max-photos", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="build (or check) the sets and stop")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "resolution.csv"))
    a = ap.parse_args()

    from biqa.metrics import evaluate_predictions

    tmp = None
    if a.quick:
        tmp = tempfile.TemporaryDirectory()
        a.data, a.max_photos, a.levels, a.types = tmp.name, 2, "1,5", QUICK_TYPES
    sizes = [USUAL, 2 * USUAL, 4 * USUAL]
    records = build_sets(a, sizes)
    if a.build_only:
        return
    import biqa

    rows = []
    for model in a.models:
        # one scorer per input resolution, loaded once, tiling as `biqa score` does by default (auto:
        # the 1536 px images in 3x3 tiles of 768 px, score = mean of the tiles; smaller ones whole)
        scorers = {res: biqa.load(model, resolution=res, tile="auto") for res in ("full", f"{USUAL}x{USUAL}")}
        for s in sizes:
            rec = pd.read_csv(records[s])
            paths = [str((records[s].parent / p).resolve()) for p in rec["path"]]
            for res in (["full"] if s == USUAL else ["full", f"{USUAL}x{USUAL}"]):
                t0 = time.perf_counter()
                rec["pred"] = score(scorers[res], paths)
                dt = time.perf_counter() - t0
                m = evaluate_predictions(rec["pred"], rec["mos"], n_boot=1000, seed=0)
                rows.append({"model": model, "set": f"{s // USUAL}x ({s} px)", "set_px": s,
                             "input": f"native {s}x{s}" if res == "full" else f"resized {res}",
                             "input_px": s if res == "full" else USUAL, "n": m["n"],
                             "n_photos": int(rec["ref"].nunique()),
                             "srcc": m["srcc"]["value"], "srcc_ci_low": m["srcc"]["ci_low"],
                             "srcc_ci_high": m["srcc"]["ci_high"], "plcc": m["plcc"]["value"],
                             "plcc_ci_low": m["plcc"]["ci_low"], "plcc_ci_high": m["plcc"]["ci_high"],
                             "within_level_srcc": within_level_srcc(rec), "seconds": dt,
                             "mode": "quick" if a.quick else "full"})
                r = rows[-1]
                print(f"[resolution] {model:>28} | {r['set']:>12} | {r['input']:>20} | SRCC {r['srcc']:.3f} "
                      f"[{r['srcc_ci_low']:.3f}, {r['srcc_ci_high']:.3f}] | PLCC {r['plcc']:.3f} | "
                      f"within-level {r['within_level_srcc']:.3f} | {dt:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    show = df.assign(srcc=lambda d: d.apply(lambda r: f"{r.srcc:.3f} [{r.srcc_ci_low:.3f}, {r.srcc_ci_high:.3f}]",
                                             axis=1),
                     plcc=lambda d: d.apply(lambda r: f"{r.plcc:.3f} [{r.plcc_ci_low:.3f}, {r.plcc_ci_high:.3f}]",
                                            axis=1))
    print(show[["model", "set", "input", "n", "srcc", "plcc", "within_level_srcc"]].to_string(index=False))
    if not a.quick:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out, index=False)
        print(f"-> {a.out}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
