"""Train biqa-default v6 and ship it (biqa/weights/biqa-default.safetensors), or biqa-fast v5.

    biqa data pristine --out data/pristine && python scripts/train_default_model.py --pristine data/pristine
        # v6, the default model: ~20 min on 2 CPU cores from scratch, most of it features
    python scripts/train_default_model.py --pristine data/pristine --name biqa-fast
        # biqa-fast v5: EfficientNet-Lite0 alone (its 7 block groups), ~12 min
    ... --no-ship                                    # train only (runs/<name>/best.safetensors)

The recipe (biqa.recipe): EfficientNet-Lite0 and EfficientNet-Lite2 side by side with their ImageNet
weights, frozen (biqa.models.SideBySide); mean and std of each of their 5 stages (1,024 + 1,120
features) plus a classical noise floor of the image (biqa.noisefloor: 4 estimates repeated 8 times so
that the head's penalty weighs them like 8 columns); --name biqa-fast: Lite0 alone, mean and std of all 7 of
its block groups (1,568 features; --feature-preset lite0-mlbn-linear) and the noise floor (biqa-fast v4, v5);
--feature-preset lite0-mln-linear: Lite0's 5 stages (biqa-fast v3), lite0-ml-linear: without the noise floor
(v3's first release); a linear head fitted to the 880 LIVE Challenge photos' mean opinion scores with within-photo ranking
pairs of synthetic distortions (400 groups from 42 pristine photos and their high-resolution originals,
plus 15 with --pristine; 26 implementations in 10 families; biqa-default v6 and biqa-fast v5 add 100 groups whose
reference is first darkened and 100 whose reference is a rendered flat graphic: --low-key-groups, --graphic-groups;
and 100 of mild distortions, JPEG quality 90-50, faint blur, noise and motion blur: --mild-groups),
and optionally a small residual MLP beside it for the pairs a linear head cannot order; a Gaussian-kernel term beside the linear one
(biqa.probe.fit_kernel: its landmarks are the 880 photos' standardised features), kept if it beats the
plain probe's cross-validated SRCC (--no-kernel: without). Ridge penalty, kernel width and penalty,
ranking weight, margin and the residual are chosen by 5-fold cross-validation on LIVE Challenge and by
level ranking on groups from 6 other photos (biqa.recipe.select_params); the 9 photos of
benchmarks/heldout_levels.py are never used.
Every step caches its output (data/features-<preset>; data/features for lite0-ml-linear), so a killed run continues
where it stopped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from biqa.recipe import SHIPPED_EXTRA_GROUPS  # noqa: E402  (the groups the shipped recipes add)

SHARED = ROOT / ".." / "shared" / "data"
LIVEC_ROOT = SHARED / "livec" / "ChallengeDB_release"
# the features each bundled model ships with (biqa.recipe.FEATURE_PRESETS); --feature-preset defaults to --name's.
# Any other preset makes a candidate or an earlier version, fitted with --no-ship only: lite02-mlbn-linear is an
# earlier v5 candidate, measured and not shipped (docs/default_model.md, "A v5 candidate: block groups");
# lite0-mln-linear is biqa-fast v3, lite0-ml-linear v3's first release
SHIPPED_PRESETS = {"biqa-default": "lite02-mln-linear",  # v6 (and v4, v5): Lite0 + noise floor + Lite2 statistics
                   "biqa-fast": "lite0-mlbn-linear"}  # v5 (and v4): Lite0's 7 block groups + noise floor
# the model version a preset makes (every FEATURE_PRESETS key needs one; versions count per bundled name since
# biqa-fast split off: biqa-fast v3 was biqa-default v3)
VERSIONS = {"lite02-mlbn-linear": 5, "lite02-mln-linear": 6, "lite0-mlbn-linear": 5, "lite0-mln-linear": 3,
            "lite0-ml-linear": 3}
# the extra ranking groups (biqa.recipe.REFERENCE_SEEDS' kinds, added in their order) that a preset's shipped recipe
# adds to the 400 plain ones (biqa.recipe.SHIPPED_EXTRA_GROUPS): biqa-default v6 and biqa-fast v5 add 100 low-key, 100
# rendered-graphic and 100 mild-distortion groups; biqa-default v5 and biqa-fast v4 were their recipes without the
# mild ones (--mild-groups 0 --no-ship), biqa-default v4 without any (--low-key-groups 0 --graphic-groups 0
# --mild-groups 0 --no-ship); other counts make a candidate (--no-ship)
SHIPPED_GROUPS = {SHIPPED_PRESETS[name]: dict(groups) for name, groups in SHIPPED_EXTRA_GROUPS.items()}
REFERENCE_WORDS = {"low_key": "whose reference is first darkened (low-key, half also smoothed)",
                   "plain": "whose reference is first made plain (texture flattened)",
                   "graphic": "whose reference is a rendered flat graphic in the crop's colours",
                   "mild": "of faint distortions (JPEG quality 90-50, Gaussian blur 0.45-1 px, noise std 2-6.5 of 255, "
                           "motion blur 1.5-4 px)"}
WHERE = {r: f"biqa.synth.ranking.{'MILD_VARIANTS' if r == 'mild' else r}" for r in REFERENCE_WORDS}
CREDIT = ("LIVE In the Wild Image Quality Challenge Database (D. Ghadiyaram and A.C. Bovik, UT Austin): trained on "
          "the 880 of its 1,162 photos present in ../shared. Its copyright notice (the database's README.txt) "
          "travels with every copy of the database; these weights contain none of its images (a kernel head holds "
          "pooled backbone statistics of each photo (biqa-default: 1,024 of Lite0's and 1,120 of Lite2's; biqa-fast "
          "v5: 1,568 of Lite0's; with the noise floor, 4 noise estimates), from which "
          "the photo cannot be rebuilt).")


def main(argv=None) -> int:
    from biqa.recipe import FEATURE_PRESETS, REFERENCE_SEEDS  # the presets and reference transforms the recipe knows
    from biqa.zoo import DEFAULT_MODEL, TRAINED_MODELS  # the bundled models it can ship as

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default=str(ROOT / "data" / "livec" / "livec.csv"))
    ap.add_argument("--features", default=None,
                    help="feature cache folder (default: data/features-<preset>; data/features for "
                         "--feature-preset lite0-ml-linear)")
    ap.add_argument("--feature-preset", default=None,
                    choices=list(FEATURE_PRESETS),
                    help="the frozen features (default: --name's shipped ones): Lite0's 1,024 statistics, a classical "
                         "noise floor (biqa.noisefloor) and Lite2's 1,120 statistics (lite02-mln-linear: biqa-default "
                         "v4 to v6); Lite0's 7 block groups (1,568 statistics) and the noise floor (lite0-mlbn-linear: "
                         "biqa-fast v4, v5); Lite0's 5 stages and the noise floor (lite0-mln-linear: biqa-fast v3); "
                         "Lite0's statistics alone (lite0-ml-linear: v3 before the noise floor); all 7 block groups "
                         "of both backbones (lite02-mlbn-linear: a v5 candidate, not shipped). A preset that is not "
                         "--name's shipped one needs --no-ship")
    ap.add_argument("--name", default=DEFAULT_MODEL, choices=list(TRAINED_MODELS),
                    help="the bundled model it ships as: biqa/weights/NAME.safetensors (biqa-default: v6; biqa-fast: "
                         "v5, EfficientNet-Lite0 alone)")
    ap.add_argument("--out", default=None, help="run folder (default: runs/NAME)")
    ap.add_argument("--groups", type=int, default=400, help="training ranking groups (6 images each)")
    ap.add_argument("--val-groups", type=int, default=60, help="ranking groups of the validation photos")
    for r in REFERENCE_SEEDS:  # --low-key-groups, --plain-groups, --graphic-groups, --mild-groups
        ap.add_argument(f"--{r.replace('_', '-')}-groups", type=int, default=None, metavar="N",
                        help=f"N more training ranking groups {REFERENCE_WORDS[r]} "
                             f"({WHERE[r]}), and the same share of validation groups (default: the "
                             "preset's shipped count, SHIPPED_GROUPS: "
                             f"{SHIPPED_EXTRA_GROUPS['biqa-default'].get(r, 0)} for biqa-default v6, "
                             f"{SHIPPED_EXTRA_GROUPS['biqa-fast'].get(r, 0)} for biqa-fast v5, 0 for other "
                             "presets; another count makes a candidate: needs --no-ship)")
    ap.add_argument("--cross-pairs", type=int, default=0, metavar="K",
                    help="a candidate (with --no-ship): rank the reference of every ordinary (photo-crop), graphic "
                         "and mild ranking group above levels 4 and 5 of K other groups (biqa.recipe.with_cross_pairs); "
                         "0: none, as the shipped recipes")
    ap.add_argument("--pristine", default=None, metavar="DIR",
                    help="also draw ranking groups from the photos of `biqa data pristine --out DIR` "
                         "(15 enlightenment-data photographs: dark, foggy and smooth scenes)")
    ap.add_argument("--no-kernel", action="store_true",
                    help="no Gaussian-kernel term beside the linear head (the head of v3's releases before it)")
    ap.add_argument("--no-ship", action="store_true", help="do not overwrite biqa/weights/NAME.safetensors")
    a = ap.parse_args(argv)
    if a.cross_pairs < 0:
        ap.error("--cross-pairs is a count of other groups: 0 or more")
    a.feature_preset = a.feature_preset or SHIPPED_PRESETS[a.name]
    if a.feature_preset != SHIPPED_PRESETS[a.name] and not a.no_ship:
        print(f"--feature-preset {a.feature_preset} makes a candidate or an earlier version, not shipped as {a.name} "
              f"(its preset is {SHIPPED_PRESETS[a.name]}; docs/default_model.md: the candidates' sections): add "
              f"--no-ship to fit it under runs/ without replacing biqa/weights/{a.name}.safetensors", file=sys.stderr)
        return 2
    shipped_groups = {r: SHIPPED_GROUPS.get(a.feature_preset, {}).get(r, 0) for r in REFERENCE_SEEDS}
    asked = {r: getattr(a, f"{r}_groups") for r in REFERENCE_SEEDS}
    extra_groups = {r: shipped_groups[r] if n is None else n for r, n in asked.items()}
    if (extra_groups != shipped_groups or a.cross_pairs) and not a.no_ship:
        flags = ", ".join(f"--{r.replace('_', '-')}-groups" for r in REFERENCE_SEEDS)
        print(f"these {flags} (or --cross-pairs) make a candidate, not the shipped recipe "
              f"of {a.feature_preset} ({', '.join(f'{r}: {n}' for r, n in shipped_groups.items())}; "
              "docs/default_model.md): add --no-ship", file=sys.stderr)
        return 2

    from biqa.checkpoint import export_checkpoint
    from biqa.labels import LabelScale
    from biqa.models import backbone_names, get_preset
    from biqa.probe import FeatureExtractor, cached_path_features, save_linear_checkpoint
    from biqa.recipe import (add_reference_groups, build_ranking_set, ensure_livec, feature_cache_dir, fit_recipe,
                             pristine_files, ranking_sources, select_params, with_cross_pairs)

    t0 = time.time()
    records, out = Path(a.records), Path(a.out or ROOT / "runs" / a.name)
    feats = Path(a.features) if a.features else feature_cache_dir(ROOT / "data", a.feature_preset)
    try:
        df = ensure_livec(records, LIVEC_ROOT)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    extra = pristine_files(a.pristine) if a.pristine else []
    if a.pristine and not extra:
        print(f"no photos in {a.pristine}: make them with `biqa data pristine --out {a.pristine}` "
              "(downloads Debian's enlightenment-data package), or leave out --pristine", file=sys.stderr)
        return 1
    fx = FeatureExtractor(a.feature_preset)
    X = cached_path_features(df["abspath"].tolist(), feats / "livec.npz", fx)
    z = df["mos"].to_numpy(float) / 100.0
    (photos, originals), (vphotos, voriginals) = ranking_sources(SHARED / "photos", SHARED / "originals")
    originals = originals + extra
    ranking = build_ranking_set(photos, originals, a.groups, seed=1, extractor=fx,
                                cache=feats / f"rank_train{'_more_photos' if extra else ''}_{a.groups}.npz")
    rank_val = build_ranking_set(vphotos, voriginals, a.val_groups, seed=2, extractor=fx,
                                 cache=feats / f"rank_val_{a.val_groups}.npz")
    for reference, n in extra_groups.items():
        if n:
            ranking, rank_val = add_reference_groups(ranking, rank_val, (photos, originals), (vphotos, voriginals),
                                                     n, reference=reference, extractor=fx, cache_dir=feats)
    ranking = with_cross_pairs(ranking, a.cross_pairs)
    print(f"features: {len(df)} LIVE Challenge photos, {ranking.n_groups} + {rank_val.n_groups} ranking groups, "
          f"{len(ranking.pairs)} training pairs ({time.time() - t0:.0f} s)")
    params, rep = select_params(X, z, ranking, rank_val, seed=0, kernel=not a.no_kernel)
    head = fit_recipe(X, z, ranking, params)
    print(f"chosen: alpha {params.alpha:g}, ranking weight {params.rank_weight:g}, margin {params.margin:g}, "
          f"residual MLP weight {params.residual_weight:g} (lam {params.residual_lam:g}), "
          f"kernel gamma {params.kernel_gamma:g} (lam {params.kernel_lam:g}) "
          f"(5-fold CV SRCC {rep['cv_srcc']:.4f}, probe {rep['probe_cv_srcc']:.4f}; validation level SRCC "
          f"{rep['val_level_srcc']:.4f}); {head.info.get('pairs_violated', 0):.1%} of training pairs below the margin")
    scale = LabelScale(1.0, 5.0)  # z = MOS / 100 -> score = 1 + 4 * MOS / 100
    body = get_preset(a.feature_preset)
    provenance = {
        "name": a.name, "version": VERSIONS[a.feature_preset],
        "trained_on": ("LIVE Challenge: the 880 photos in ../shared (MOS 0-100 of ~175 people each; the score is "
                       "1 + 4 * MOS / 100) and within-photo ranking of synthetic distortions of "
                       f"{len({p.stem for p in photos + originals})} pristine photos (biqa.synth.ranking"
                       + (f"; {len(extra)} of them from Debian's enlightenment-data, BSD-2-clause, via "
                          "`biqa data pristine`" if extra else "")
                       + "".join(f"; {n} more groups {REFERENCE_WORDS[r]}"
                                 for r, n in extra_groups.items() if n) + "); "
                       + ("backbones EfficientNet-Lite0 and Lite2 side by side with their ImageNet weights, frozen"
                          if len(backbone_names(body.backbone)) > 1
                          else "backbone EfficientNet-Lite0 with its ImageNet weights, frozen")
                       + ("; a classical noise-floor estimate of the image beside it (biqa.noisefloor)"
                          if body.pooling == "multilevel-noise" else "")
                       + ". Scores on a 1-5 scale, higher is better."),
        "credit": CREDIT, "reproduce": ("biqa data pristine --out data/pristine && python scripts/train_default_model.py "
                                         "--pristine data/pristine" if extra else "python scripts/train_default_model.py")
                                        + ("" if a.feature_preset == SHIPPED_PRESETS[a.name]
                                           else f" --feature-preset {a.feature_preset}")
                                        + ("" if a.name == DEFAULT_MODEL else f" --name {a.name}")
                                        + "".join(f" --{r.replace('_', '-')}-groups {n}"
                                                  for r, n in extra_groups.items() if n != shipped_groups[r])
                                        + (f" --cross-pairs {a.cross_pairs}" if a.cross_pairs else ""),
        "recipe": {"features": a.feature_preset, "alpha": params.alpha, "rank_weight": params.rank_weight, "margin": params.margin,
                   "residual_weight": params.residual_weight, "residual_lam": params.residual_lam,
                   "kernel_gamma": params.kernel_gamma, "kernel_lam": params.kernel_lam,
                   "ranking_groups": ranking.n_groups, "extra_groups": extra_groups,
                   **({"cross_pairs": a.cross_pairs} if a.cross_pairs else {}),
                   "ranking_photos": [p.stem for p in photos],
                   "ranking_originals": [p.stem for p in originals], "selection": rep},
    }
    ckpt = save_linear_checkpoint(head, out / "best.safetensors", label_scale=scale, extra=provenance,
                                  preset=FEATURE_PRESETS[a.feature_preset],
                                  metrics={"cv_srcc": rep["cv_srcc"], "val_level_srcc": rep["val_level_srcc"]})
    (out / "recipe.json").write_text(json.dumps(provenance["recipe"], indent=2))
    print(f"wrote {ckpt} ({time.time() - t0:.0f} s)")
    if a.no_ship:
        return 0
    dst = TRAINED_MODELS[a.name]
    export_checkpoint(ckpt, dst, half=True)
    print(f"shipped {dst} ({dst.stat().st_size / 1e6:.1f} MB, float16 weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
