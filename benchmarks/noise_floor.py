"""How much the noise floor (biqa.noisefloor) buys beside the frozen backbone, and its weight.

The default model's weakest held-out family was white noise on smooth photos: on EfficientNet-Lite0's
pooled statistics added noise looks like texture. :mod:`biqa.noisefloor` adds 4 classical estimates
(Immerkaer's noise sigma, averaged over 8x8 blocks, its floor and its mean, on the luma and on its 2x2
average; see that module). This script runs the default model's recipe selection unchanged
(``biqa.recipe.select_params(kernel=True)``: 5-fold CV on the 880 LIVE Challenge photos, level ranking
on the validation groups) on the 1,024 backbone statistics alone and with the 4 noise columns repeated
``rep`` times (ridge penalises every standardised column alike: r copies weigh a column like scaling
it by sqrt(r)), then scores the held-out level set (``benchmarks/heldout_levels.py``: its photos and
distortion code are never used in training or selection). ``rep`` is chosen on the validation groups,
never on the held-out set; the preset ``lite0-mln-linear`` repeats them 8 times.

One feature pass serves every variant: ``lite0-mln-linear``'s features (the 1,024 statistics, then the
4 estimates 8 times; the first 1,028 columns are used), cached in ``data/features-lite0-mln-linear``
and shared with ``scripts/train_default_model.py`` (``--quick``: ``...-quick``; 160 LIVE Challenge
photos, 48 + 12 groups, the 3-photo quick held-out set).

Usage: python benchmarks/noise_floor.py [--quick] [--reps 1,8,32] [--out benchmarks/results/noise_floor.csv]
Prints a table; writes the CSV (not with --quick): one row per (variant, family) and one per variant
("all"), with the selection's CV SRCC and validation level SRCC. ~25 min on 2 cores (features ~10).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
from biqa.noisefloor import N_FEATURES  # noqa: E402  (the 4 estimates per image)

N_BACKBONE = 1024
FEATURES = "lite0-mln-linear"


def with_reps(A: np.ndarray, rep: int) -> np.ndarray:
    """The backbone columns, then the (first) 4 noise columns ``rep`` times (``rep = 0``: the backbone alone)."""
    return np.concatenate([A[:, :N_BACKBONE]] + [A[:, N_BACKBONE:N_BACKBONE + N_FEATURES]] * rep, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="160 photos, 48 + 12 groups, the quick held-out set; no CSV")
    ap.add_argument("--reps", default="1,8,32", help="repeats of the 4 noise columns to try (the baseline, 0, always runs)")
    ap.add_argument("--pristine", default=str(ROOT / "data" / "pristine"),
                    help="`biqa data pristine` photos (as the shipped model; skipped if absent)")
    ap.add_argument("--out", default=str(HERE / "results" / "noise_floor.csv"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import heldout_levels as hl
    import pandas as pd

    from biqa.probe import FeatureExtractor, cached_path_features
    from biqa.recipe import (build_ranking_set, ensure_livec, feature_cache_dir, fit_recipe, pristine_files,
                             ranking_sources, select_params)

    t0 = time.time()
    fx = FeatureExtractor(FEATURES)
    feats = feature_cache_dir(ROOT / "data", FEATURES)
    feats = feats.with_name(feats.name + "-quick") if a.quick else feats
    df = ensure_livec(ROOT / "data" / "livec" / "livec.csv", SHARED / "livec" / "ChallengeDB_release")
    if a.quick:
        df = df.iloc[:160]
    X = cached_path_features(df["abspath"].tolist(), feats / "livec.npz", fx)
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
    H = cached_path_features([str(data / p) for p in levels["path"]], feats / "heldout_levels.npz", fx)
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
        variant = "backbone only (the recipe before the noise floor)" if rep == 0 else f"+ noise floor x{rep}"
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
