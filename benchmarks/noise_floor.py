"""Exploration (not in the shipped model): a classical noise-floor estimate beside the frozen backbone.

The default model's weakest held-out family is white noise on smooth photos: on EfficientNet-Lite0's
pooled statistics added noise looks like texture. This script appends 4 hand-made features to the
1,024 backbone statistics and runs the default model's recipe selection on them unchanged
(``biqa.recipe.select_params(kernel=True)``: 5-fold CV on the 880 LIVE Challenge photos, level ranking
on the validation groups), then scores the held-out level set (``benchmarks/heldout_levels.py``: its
photos and distortion code are never used in training or selection).

The features, per scale (the image and its 2x2 average): the fast noise estimate of J. Immerkaer
("Fast noise variance estimation", CVIU 1996: the absolute response to the 3x3 mask
[[1,-2,1],[-2,4,-2],[1,-2,1]] of the luma, times sqrt(pi/2)/6, an unbiased sigma for Gaussian noise
on a locally planar image) averaged over 8x8 blocks; then ``log(1 + mean over the image of the minimum
over each 4x4 neighbourhood of blocks)`` (the *floor*: the smooth parts of a photo, where texture does
not inflate the estimate) and ``log(1 + mean of all blocks)``. Ridge penalises all standardised features
alike, so the 4 columns are repeated ``rep`` times (a repeat of r divides their effective penalty by r);
``rep`` is a variant, chosen like the recipe's other settings (validation level SRCC), not on this set.

One feature pass serves every variant (the baseline is the first 1,024 columns). Features are cached in
``data/features_noise`` (``--quick``: ``data/features_noise_quick``; 160 LIVE Challenge photos, 48 + 12
groups, the 3-photo quick held-out set).

Usage: python benchmarks/noise_floor.py [--quick] [--reps 1,8,32] [--out benchmarks/results/noise_floor.csv]
Prints a table; writes the CSV (not with --quick): one row per (variant, family) and one per variant
("all"), with the selection's CV SRCC and validation level SRCC. ~25 min on 2 cores (features ~10).
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
N_BACKBONE = 1024
IMMERKAER = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
BLOCK, NEIGHBOURS = 8, 4


def noise_features(x255):
    """``[B, 3, H, W]`` float tensor (0-255 RGB) -> ``[B, 4]``: per scale (1x, 2x), the log noise floor and
    the log mean block noise estimate (module docstring). Images must be at least 2 * (2 + 8 * 4) pixels."""
    import torch
    import torch.nn.functional as F

    mask = torch.tensor(IMMERKAER, dtype=x255.dtype).view(1, 1, 3, 3)
    g = (0.299 * x255[:, 0] + 0.587 * x255[:, 1] + 0.114 * x255[:, 2]).unsqueeze(1)
    out = []
    for s in (1, 2):
        gs = F.avg_pool2d(g, s) if s > 1 else g
        e = F.avg_pool2d(F.conv2d(gs, mask).abs() * (math.sqrt(math.pi / 2) / 6.0), BLOCK)
        floor = -F.max_pool2d(-e, NEIGHBOURS, stride=1)
        out += [torch.log1p(floor.mean((1, 2, 3))), torch.log1p(e.mean((1, 2, 3)))]
    return torch.stack(out, 1)


def extractor():
    """A :class:`biqa.probe.FeatureExtractor` whose rows are the 1,024 statistics + the 4 noise features."""
    import torch

    from biqa.probe import FeatureExtractor

    class NoiseFloorExtractor(FeatureExtractor):
        @torch.inference_mode()
        def _forward_u8(self, batch):
            nf = noise_features(torch.from_numpy(batch).permute(0, 3, 1, 2).float()).numpy()
            return np.concatenate([super()._forward_u8(batch), nf], 1)

    fx = NoiseFloorExtractor()
    fx.num_features += 4
    fx.preset_name += "+noise-v1"  # the feature caches are keyed by it
    return fx


def with_reps(A: np.ndarray, rep: int) -> np.ndarray:
    """The backbone columns, then the noise columns ``rep`` times (``rep = 0``: the backbone alone)."""
    return np.concatenate([A[:, :N_BACKBONE]] + [A[:, N_BACKBONE:]] * rep, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="160 photos, 48 + 12 groups, the quick held-out set; no CSV")
    ap.add_argument("--reps", default="1,8,32", help="repeats of the 4 noise columns to try (the baseline, 0, always runs)")
    ap.add_argument("--pristine", default=str(ROOT / "data" / "pristine"),
                    help="`biqa data pristine` photos (as the shipped model; skipped if absent)")
    ap.add_argument("--out", default=str(HERE / "results" / "noise_floor.csv"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    import heldout_levels as hl
    import pandas as pd

    from biqa.probe import cached_path_features
    from biqa.recipe import build_ranking_set, ensure_livec, fit_recipe, pristine_files, ranking_sources, select_params

    t0 = time.time()
    fx = extractor()
    feats = ROOT / "data" / ("features_noise_quick" if a.quick else "features_noise")
    df = ensure_livec(ROOT / "data" / "livec" / "livec.csv", SHARED / "livec" / "ChallengeDB_release")
    if a.quick:
        df = df.iloc[:160]
    X = cached_path_features(df["abspath"].tolist(), feats / "livec.npz", fx, preset=fx.preset_name)
    z = df["mos"].to_numpy(float) / 100.0
    (photos, originals), (vphotos, voriginals) = ranking_sources(SHARED / "photos", SHARED / "originals")
    extra = pristine_files(a.pristine) if Path(a.pristine).is_dir() else []
    n_train, n_val = (48, 12) if a.quick else (400, 60)
    ranking = build_ranking_set(photos, originals + extra, n_train, seed=1, extractor=fx,
                                cache=feats / f"rank_train{'_more_photos' if extra else ''}_{n_train}.npz")
    rank_val = build_ranking_set(vphotos, voriginals, n_val, seed=2, extractor=fx, cache=feats / f"rank_val_{n_val}.npz")
    data = ROOT / "data" / ("heldout_levels_quick" if a.quick else "heldout_levels")
    photos_h = hl.HELDOUT_PHOTOS[:hl.QUICK_PHOTOS] if a.quick else hl.HELDOUT_PHOTOS
    levels = hl.build(data, hl.PHOTOS_DIR, photos=photos_h, short_side=hl.QUICK_SHORT_SIDE if a.quick else None)
    H = cached_path_features([str(data / p) for p in levels["path"]], feats / "heldout.npz", fx, preset=fx.preset_name)
    print(f"[noise_floor] features: {len(df)} LIVE Challenge photos, {ranking.n_groups} + {rank_val.n_groups} ranking "
          f"groups, {len(levels)} held-out images ({time.time() - t0:.0f} s)", file=sys.stderr)

    rows = []
    for rep in [0] + [int(r) for r in a.reps.split(",") if r.strip()]:
        r_set, v_set = copy.copy(ranking), copy.copy(rank_val)
        r_set.X, v_set.X = with_reps(ranking.X, rep), with_reps(rank_val.X, rep)
        Xr = with_reps(X, rep)
        params, info = select_params(Xr, z, r_set, v_set, seed=0, kernel=True)
        head = fit_recipe(Xr, z, r_set, params)
        per, summary = hl.evaluate(levels, head.predict(with_reps(H, rep)))
        variant = "backbone only (the shipped recipe)" if rep == 0 else f"+ noise floor x{rep}"
        common = {"variant": variant, "rep": rep, "cv_srcc": info["cv_srcc"], "val_level_srcc": info["val_level_srcc"],
                  "alpha": params.alpha, "rank_weight": params.rank_weight, "margin": params.margin,
                  "residual_weight": params.residual_weight, "kernel_gamma": params.kernel_gamma,
                  "kernel_lam": params.kernel_lam}
        rows += [{**common, "distortion": r.distortion, "srcc": r.srcc, "ref_highest": r.ref_highest, "n": r.n}
                 for r in per.itertuples()]
        rows.append({**common, "distortion": "all", "srcc": summary["srcc"], "ref_highest": summary["ref_highest"],
                     "n": summary["n"]})
        print(f"[noise_floor] {variant}: CV SRCC {info['cv_srcc']:.4f}, validation level SRCC "
              f"{info['val_level_srcc']:.4f}; held-out {summary['srcc']:.4f}, reference on top "
              f"{summary['ref_highest']:.0%}", file=sys.stderr)
    res = pd.DataFrame(rows)
    wide = res.pivot_table(index=["variant", "cv_srcc", "val_level_srcc"], columns="distortion", values="srcc",
                           sort=False).reset_index()
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(wide.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    best = max({r["rep"]: r for r in rows}.values(), key=lambda r: (round(r["val_level_srcc"] or 0, 6), -r["rep"]))
    print(f"chosen on the validation groups (not the held-out set): {best['variant']}")
    if not a.quick:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(a.out, index=False, float_format="%.4f")
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
