"""LIVE Challenge protocol: 10 seeded 70/10/20 splits, the default-model recipe and its ablations.

For every split (records column ``split_seedN``: train / val / test), every frozen-feature variant
chooses its hyper-parameters by 5-fold cross-validation on train + val (more stable than the 88
validation photos alone), is fitted on train + val, and is measured on the test part, which no choice
ever saw. Fine-tuned variants (``--finetune``) use the val part for the best epoch. Besides SRCC/PLCC against human opinions (N = 176 test
photos per split), each variant's split-1 model ranks the held-out distortion levels of
``benchmarks/heldout_levels.py`` (9 photos no model saw, distortions made by code that training
never uses).

Variants (all on the frozen EfficientNet-Lite0 multi-level features of the default model):

- ``probe``: ridge regression on LIVE Challenge (the linear probe), alpha by cross-validation;
- ``recipe-linear``: the probe plus within-photo ranking pairs from synthetic distortions (all
  implementations: biqa.synth and the Pillow variants); ranking weight and margin: the best level
  SRCC of ranking groups from validation photos among the settings whose cross-validated LIVE
  Challenge SRCC is within 0.01 of the probe's (:func:`biqa.recipe.select_params`);
- ``recipe`` (the default model's): recipe-linear plus a residual MLP beside the linear layer that
  learns the ranking pairs a linear head cannot order, chosen by the same rule;
- ``recipe-synth-only``: ``recipe-linear`` with biqa.synth's implementations only (one per family);
- ``recipe-no-originals``: ``recipe-linear`` with ranking crops from the 768 px photos only (no originals);
- ``recipe-more-photos`` (when ``--pristine`` holds photos: ``biqa data pristine``): ``recipe`` with its
  ranking groups drawn from the 15 enlightenment-data photographs too (dark, foggy, smooth scenes);
- ``probe-kernel``: the probe plus a Gaussian-kernel term beside its linear one (:func:`biqa.probe.fit_kernel`;
  width and penalty by cross-validation, kept only if it beats the probe's cross-validated SRCC);
- ``recipe-kernel``: ``recipe-more-photos`` on top of ``probe-kernel`` (the ranking pairs constrain the
  kernel term too);
- ``recipe-noise-kernel`` (biqa-default v3's recipe, bundled as ``biqa-fast``): ``recipe-kernel`` on the features of
  ``lite0-mln-linear``: the same 1,024 statistics plus a classical noise floor of the image
  (:mod:`biqa.noisefloor`, 4 estimates repeated 8 times), cached in ``data/features-lite0-mln-linear``;
- ``recipe-lite02-noise-kernel`` (biqa-default v4's recipe, the default until v5; only with ``--variants``:
  ~2.4x the feature time): ``recipe-noise-kernel`` with EfficientNet-Lite2's statistics beside Lite0's (preset
  ``lite02-mln-linear``, ``data/features-lite02-mln-linear``);
- ``recipe-lite02-blocks-noise-kernel`` (a candidate, measured on 10 splits and not shipped; only with
  ``--variants``): v4's recipe with all 7 block groups of each backbone pooled instead of their 5 stages
  (preset ``lite02-mlbn-linear``);
- ``recipe-blocks-noise-kernel`` (a ``biqa-fast`` candidate, measured on 10 splits and not shipped; only with
  ``--variants``): ``recipe-noise-kernel`` with
  all 7 of Lite0's block groups pooled instead of its 5 stages (preset ``lite0-mlbn-linear``, the same compute);
- ``recipe-lite02-noise-kernel-lowkey``, ``-plain`` and ``-graphic`` (candidates; only with ``--variants``): v4's
  recipe with 100 more training ranking groups (and 15 validation groups) whose reference is first darkened, half of
  them also smoothed (:func:`biqa.synth.ranking.low_key`), made plain (:func:`biqa.synth.ranking.plain`) or
  replaced by a rendered flat graphic in the crop's colours (:func:`biqa.synth.ranking.graphic`;
  :func:`biqa.recipe.add_reference_groups`); ``-graphic50``: half as many graphic groups (50 per 400);
- ``recipe-lite02-noise-kernel-graphic-lowkey`` (biqa-default v5's recipe, the shipped default; only with
  ``--variants``): v4's recipe with the low-key and the graphic groups, 100 of each per 400;
- ``recipe-blocks-noise-kernel-graphic-lowkey`` and ``recipe-noise-kernel-graphic-lowkey`` (``biqa-fast``
  candidates; only with ``--variants``): v5's 200 extra groups added to ``recipe-blocks-noise-kernel`` (Lite0's 7
  block groups) and to ``recipe-noise-kernel`` (v3's recipe, Lite0's 5 stages);
- ``recipe-lite02-noise-kernel-graphic-lowkey-mild-cross`` (a candidate; only with ``--variants``): v6's recipe with
  cross-group pairs, every ordinary (photo-crop), graphic and mild reference above levels 4 and 5 of 2 other
  groups (:func:`biqa.recipe.with_cross_pairs`);
- classical baselines (BRISQUE, NIQE, PIQE; no fitting) and, with ``--old-default``, biqa-default v2.

Usage::

    python benchmarks/livec_protocol.py                 # all 10 splits (features cached in data/features)
    python benchmarks/livec_protocol.py --quick         # 2 splits, small ranking sets (CI smoke run)
    python benchmarks/livec_protocol.py --variants recipe-more-photos   # one row more; the other rows are kept
    python benchmarks/livec_protocol.py ... --resume    # after a kill: keeps the splits it finished, runs the rest

Every finished split's rows go to ``livec_protocol.partial.csv`` at once (removed when the run ends), so that
``--resume`` continues a killed run. Writes ``livec_protocol.csv`` (one row per variant and split: srcc, plcc, ...) and
``livec_protocol_summary.csv`` (mean and std over splits, level ranking) under ``--out``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from biqa.probe import FeatureExtractor, cached_path_features  # noqa: E402
from biqa.recipe import (NOISE_FEATURES, SHIPPED_MILD_GROUPS, SHIPPED_REFERENCE_GROUPS, add_reference_groups,  # noqa: E402
                         build_ranking_set, ensure_livec, feature_cache_dir, fit_recipe, pristine_files,
                         ranking_sources, select_params, with_cross_pairs)
sys.path.insert(0, str(HERE))
import heldout_levels as hl  # noqa: E402  (the held-out level-ranking check, benchmarks/heldout_levels.py)

SHARED = ROOT / ".." / "shared" / "data"
LIVEC_ROOT = SHARED / "livec" / "ChallengeDB_release"


VARIANTS = ("probe", "recipe-linear", "recipe", "recipe-synth-only", "recipe-no-originals", "recipe-more-photos",
            "probe-kernel", "recipe-kernel", "recipe-noise-kernel", "recipe-lite02-noise-kernel",
            "recipe-lite02-blocks-noise-kernel", "recipe-blocks-noise-kernel", "recipe-lite02-noise-kernel-lowkey",
            "recipe-lite02-noise-kernel-plain", "recipe-lite02-noise-kernel-graphic",
            "recipe-lite02-noise-kernel-graphic50", "recipe-lite02-noise-kernel-graphic-lowkey",
            "recipe-blocks-noise-kernel-graphic-lowkey", "recipe-noise-kernel-graphic-lowkey",
            "recipe-lite02-noise-kernel-graphic-lowkey-mild", "recipe-blocks-noise-kernel-graphic-lowkey-mild",
            "recipe-lite02-noise-kernel-graphic-lowkey-mild-cross", "brisque", "niqe", "piqe")
RANKING_OF = {"recipe-linear": "recipe", "recipe-kernel": "recipe-more-photos"}  # variants sharing another's groups
# variants on other features than lite0-ml-linear's (recipe-more-photos' ranking photos, recipe-kernel's rule):
# v3's recipe (lite0-mln-linear, biqa-fast), v4's, the default, with Lite2's statistics beside Lite0's, and the two
# candidates with every block group pooled (v4's on both backbones, v3's on Lite0) and v4's with low-key, plain or
# graphic ranking groups added (or low-key and graphic both), and the shipped recipes with mild-distortion groups added
FEATURE_VARIANTS = {"recipe-noise-kernel": NOISE_FEATURES, "recipe-lite02-noise-kernel": "lite02-mln-linear",
                    "recipe-lite02-blocks-noise-kernel": "lite02-mlbn-linear",
                    "recipe-blocks-noise-kernel": "lite0-mlbn-linear",
                    "recipe-lite02-noise-kernel-lowkey": "lite02-mln-linear",
                    "recipe-lite02-noise-kernel-plain": "lite02-mln-linear",
                    "recipe-lite02-noise-kernel-graphic": "lite02-mln-linear",
                    "recipe-lite02-noise-kernel-graphic50": "lite02-mln-linear",
                    "recipe-lite02-noise-kernel-graphic-lowkey": "lite02-mln-linear",
                    "recipe-blocks-noise-kernel-graphic-lowkey": "lite0-mlbn-linear",
                    "recipe-noise-kernel-graphic-lowkey": NOISE_FEATURES,
                    "recipe-lite02-noise-kernel-graphic-lowkey-mild": "lite02-mln-linear",
                    "recipe-blocks-noise-kernel-graphic-lowkey-mild": "lite0-mlbn-linear",
                    "recipe-lite02-noise-kernel-graphic-lowkey-mild-cross": "lite02-mln-linear"}
# variant -> ((kind of groups, training groups added), ...) in the order scripts/train_default_model.py adds
# them (biqa.recipe.add_reference_groups); the shipped recipes' low-key and graphic groups are SHIPPED
SHIPPED = tuple(SHIPPED_REFERENCE_GROUPS.items())  # biqa-default v5's and biqa-fast v4's
V6 = tuple(SHIPPED_MILD_GROUPS.items())  # biqa-default v6's and biqa-fast v5's: SHIPPED + mild
EXTRA_GROUPS = {"recipe-lite02-noise-kernel-lowkey": (("low_key", 100),),
                "recipe-lite02-noise-kernel-plain": (("plain", 100),),
                "recipe-lite02-noise-kernel-graphic": (("graphic", 100),),
                "recipe-lite02-noise-kernel-graphic50": (("graphic", 50),),
                "recipe-lite02-noise-kernel-graphic-lowkey": SHIPPED,
                "recipe-blocks-noise-kernel-graphic-lowkey": SHIPPED,
                "recipe-noise-kernel-graphic-lowkey": SHIPPED,
                "recipe-lite02-noise-kernel-graphic-lowkey-mild": V6,
                "recipe-blocks-noise-kernel-graphic-lowkey-mild": V6,
                "recipe-lite02-noise-kernel-graphic-lowkey-mild-cross": V6}
# variant -> cross-group partners of each reference (biqa.recipe.with_cross_pairs; train_default_model --cross-pairs)
CROSS_PAIRS = {"recipe-lite02-noise-kernel-graphic-lowkey-mild-cross": 2}
# only with --variants: every feature variant but v3's (v4's costs ~2.4x the feature time; the others are candidates)
ON_REQUEST = tuple(v for v in FEATURE_VARIANTS if v != "recipe-noise-kernel")


def uses_kernel(variant: str) -> bool:
    """Whether ``variant`` fits the Gaussian-kernel term: every variant with ``kernel`` among its name's parts
    (``recipe-lite02-noise-kernel-graphic`` too, not only the names that end in it)."""
    return "kernel" in variant.split("-")


def livec_records(path: Path, seeds: list[int]) -> pd.DataFrame:
    """The LIVE Challenge records with ``split_seedN`` columns (imported and split if absent)."""
    try:
        return ensure_livec(path, LIVEC_ROOT, seeds=seeds)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def summarise(per: pd.DataFrame) -> pd.DataFrame:
    """One row a variant: its splits, mean and std (ddof 0) of SRCC and PLCC, the level ranking of its
    first measured split's model, and its mean SRCC gain over the probe on the same splits."""
    summary = per.groupby("variant", sort=False).agg(
        splits=("split", "size"), srcc_mean=("srcc", "mean"), srcc_std=("srcc", lambda v: v.std(ddof=0)),
        plcc_mean=("plcc", "mean"), plcc_std=("plcc", lambda v: v.std(ddof=0)),
        level_srcc=("level_srcc", "first"), ref_highest=("ref_highest", "first")).reset_index()
    base = per[per.variant == "probe"].set_index("split")["srcc"]
    summary["d_srcc_vs_probe"] = [
        float((per[per.variant == v].set_index("split")["srcc"] - base).mean()) for v in summary["variant"]]
    return summary


def merge_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old``'s per-split rows with each (variant, split) that ``new`` has replaced by ``new``'s row;
    variants keep their first order (``old``'s, then new ones), splits are sorted within a variant."""
    order = list(dict.fromkeys([*old["variant"], *new["variant"]]))
    redone = pd.MultiIndex.from_frame(new[["variant", "split"]])
    per = pd.concat([old[~pd.MultiIndex.from_frame(old[["variant", "split"]]).isin(redone)], new], ignore_index=True)
    rank = per["variant"].map(order.index)
    return per.assign(_r=rank).sort_values(["_r", "split"], kind="stable").drop(columns="_r").reset_index(drop=True)


def resumed_rows(partial: Path) -> tuple[list[dict], set[tuple[str, int]]]:
    """The rows a killed run wrote to ``partial`` (after each split it finished), and their (variant, split)
    pairs, which a resumed run does not compute again; nothing if there is no such file."""
    if not partial.is_file():
        return [], set()
    rows = pd.read_csv(partial).to_dict("records")
    return rows, {(str(r["variant"]), int(r["split"])) for r in rows}


def metrics(pred, mos) -> tuple[float, float]:
    return float(spearmanr(pred, mos)[0]), float(pearsonr(pred, mos)[0])


def finetune_protocol(config: str, name: str, df: pd.DataFrame, records: Path, seeds: list[int], feats: Path,
                      out_csv: Path, runs: Path, hl, hdf, hdir: Path, overrides: list[str]) -> pd.DataFrame:
    """Train ``config`` once per split (its ``model.init_from`` replaced by that split's linear probe when
    the config starts from one; ``{split}`` in an override becomes the split number); rows appended to ``out_csv`` as splits finish. Splits already in
    ``out_csv`` are skipped, and a split killed mid-run resumes from its last epoch."""
    import biqa
    from biqa.config import load_config
    from biqa.probe import fit_probe
    from biqa.trainer import Trainer

    done = pd.read_csv(out_csv) if out_csv.is_file() else pd.DataFrame(columns=["variant", "split"])
    uses_probe = bool(load_config(config).get("model", {}).get("init_from"))
    for s in seeds:
        if ((done["variant"] == name) & (done["split"] == s)).any():
            print(f"{name} split {s}: done already (in {out_csv})")
            continue
        t = time.time()
        run = runs / name / f"s{s}"
        ov = [f"data.records={records.resolve()}", f"data.split_column=split_seed{s}", f"out_dir={run}",
              "progress=false", *(o.replace("{split}", str(s)) for o in overrides)]  # e.g. a split's teacher
        if uses_probe:
            probe = fit_probe(records, runs / "probe" / f"s{s}", split_column=f"split_seed{s}",
                              features_cache=feats / "livec.npz", progress=False)
            ov.append(f"model.init_from={probe['checkpoint']}")
        trainer = Trainer(load_config(config, ov), resume=(run / "state.pt").is_file())
        summary = trainer.fit()
        test = summary["test"]
        row = {"variant": name, "split": s, "srcc": test["srcc"]["value"], "plcc": test["plcc"]["value"],
               "n_test": test["n"], "best_epoch": summary["best_epoch"], "minutes": (time.time() - t) / 60}
        if s == seeds[0]:
            sc = biqa.load(str(run / "best.safetensors")).score([str(hdir / p) for p in hdf["path"]])
            _, hs = hl.evaluate(hdf, sc["score"].to_numpy(float))
            row.update(level_srcc=hs["srcc"], ref_highest=hs["ref_highest"], level_groups=hs["n"])
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        done.to_csv(out_csv, index=False, float_format="%.4f")
        print(f"{name} split {s}: SRCC {row['srcc']:.4f} PLCC {row['plcc']:.4f} (best epoch {row['best_epoch']}, "
              f"{row['minutes']:.1f} min)", flush=True)
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default=str(ROOT / "data" / "livec" / "livec.csv"))
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--groups", type=int, default=800, help="training ranking groups (6 images each)")
    ap.add_argument("--val-groups", type=int, default=120)
    ap.add_argument("--quick", action="store_true", help="2 splits, 48 + 24 ranking groups, heldout set --quick")
    ap.add_argument("--old-default", action="store_true", help="also score biqa-default v2 (needs its weights file)")
    ap.add_argument("--features", default=str(ROOT / "data" / "features"))
    ap.add_argument("--pristine", default=str(ROOT / "data" / "pristine"),
                    help="folder of `biqa data pristine` (if it has photos: the recipe-more-photos variant)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--finetune", default=None, metavar="CONFIG",
                    help="instead of the frozen-feature variants: train CONFIG (a YAML file or a shipped config's name, "
                         "e.g. livec_finetune) on every split, on --records (resumable; rows in "
                         "OUT/livec_finetune.csv)")
    ap.add_argument("--name", default=None, help="variant name of --finetune (default: the config's stem)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "livec_protocol"))
    ap.add_argument("--resume", action="store_true",
                    help="keep the (variant, split) rows of a killed run (OUT/livec_protocol.partial.csv, written "
                         "after every split) and compute only the others")
    ap.add_argument("--variants", default=None,
                    help="comma-separated variants to (re)compute, e.g. recipe-more-photos (the probe always runs: "
                         "the deltas need it); their rows replace the same (variant, split) rows in OUT's CSV and "
                         "the other rows are kept. "
                         f"Known: {', '.join(VARIANTS)}")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for --finetune's config")
    a = ap.parse_args(argv)
    wanted = [v for v in VARIANTS if v not in ON_REQUEST] if a.variants is None else ["probe"] + [
        v.strip() for v in a.variants.split(",") if v.strip() and v.strip() != "probe"]
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    from biqa.datasets.splits import parse_seeds

    seeds = parse_seeds("1-2" if a.quick and a.seeds == "1-10" else a.seeds)
    if a.quick:
        a.groups, a.val_groups = 48, 24
    feats = Path(a.features)
    t0 = time.time()
    df = livec_records(Path(a.records), seeds)
    fx = FeatureExtractor()
    X = cached_path_features(df["abspath"].tolist(), feats / "livec.npz", fx)
    z = df["mos"].to_numpy(float) / 100.0
    print(f"LIVE Challenge: {len(df)} photos, features {X.shape} ({time.time() - t0:.0f} s)")
    hdir = ROOT / "data" / ("heldout_levels_quick" if a.quick else "heldout_levels")
    hdf = hl.build(hdir, SHARED / "photos", photos=hl.HELDOUT_PHOTOS[:hl.QUICK_PHOTOS] if a.quick
                   else hl.HELDOUT_PHOTOS, short_side=hl.QUICK_SHORT_SIDE if a.quick else None)
    if a.finetune:
        name = a.name or Path(a.finetune).stem
        out_csv = Path(a.out) / ("livec_finetune_quick.csv" if a.quick else "livec_finetune.csv")
        ov = ["train.epochs=1", "train.max_steps_per_epoch=3"] if a.quick else []
        per = finetune_protocol(a.finetune, name, df, Path(a.records), seeds, feats, out_csv, Path(a.runs), hl, hdf,
                                hdir, ov + a.overrides)
        mine = per[per["variant"] == name]
        print(f"\n{name}: {len(mine)} splits, SRCC {mine['srcc'].mean():.4f} +- {mine['srcc'].std(ddof=0):.4f}, "
              f"PLCC {mine['plcc'].mean():.4f} +- {mine['plcc'].std(ddof=0):.4f}; wrote {out_csv}")
        return 0

    (photos, originals), (vphotos, voriginals) = ranking_sources(SHARED / "photos", SHARED / "originals")
    tag = "quick_" if a.quick else ""
    from biqa.synth.ranking import implementations

    synth_only = [k for k in implementations() if k.startswith("synth_")]
    extra = pristine_files(a.pristine)
    for v in ("recipe-more-photos", "recipe-kernel", *FEATURE_VARIANTS):
        if v in wanted and not extra:
            if a.variants is not None:
                raise SystemExit(f"{v} needs the photos of `biqa data pristine --out {a.pristine}`")
            wanted.remove(v)
    sources = {  # ranking variant -> (photos, originals, implementations, cache name)
        "recipe": (photos, originals, None, "rank_train"),
        "recipe-synth-only": (photos, originals, synth_only, "rank_train_synth_only"),
        "recipe-no-originals": (photos, [], None, "rank_train_no_originals"),
        "recipe-more-photos": (photos, originals + extra, None, "rank_train_more_photos"),
    }
    need = {RANKING_OF.get(v, v) for v in wanted} & set(sources)
    rank = {v: build_ranking_set(ph, orig, a.groups, seed=1, extractor=fx, impls=impls,
                                 cache=feats / f"{tag}{stem}_{a.groups}.npz")
            for v, (ph, orig, impls, stem) in sources.items() if v in need}
    rank_val = build_ranking_set(vphotos, voriginals, a.val_groups, seed=2, extractor=fx,
                                 cache=feats / f"{tag}rank_val_{a.val_groups}.npz") if need else None
    print(f"ranking groups: {a.groups} train ({len(photos)} photos + {len(originals)} originals; +{len(extra)} "
          f"pristine in recipe-more-photos), "
          f"{a.val_groups} val ({len(vphotos)} photos) ({time.time() - t0:.0f} s)")

    HX = cached_path_features([str(hdir / p) for p in hdf["path"]], feats / f"{tag}heldout_levels.npz", fx)
    other = {}  # FEATURE_VARIANTS' features: variant -> (X, ranking set, validation set, held-out set)
    for v, preset in FEATURE_VARIANTS.items():
        if v not in wanted:
            continue
        fxn = FeatureExtractor(preset)
        fn = feature_cache_dir(feats.parent, preset)
        ph, orig, impls, stem = sources["recipe-more-photos"]
        rs = build_ranking_set(ph, orig, a.groups, seed=1, extractor=fxn, impls=impls,
                               cache=fn / f"{tag}{stem}_{a.groups}.npz")
        rv = build_ranking_set(vphotos, voriginals, a.val_groups, seed=2, extractor=fxn,
                               cache=fn / f"{tag}rank_val_{a.val_groups}.npz")
        for reference, n_extra in EXTRA_GROUPS.get(v, ()):
            rs, rv = add_reference_groups(rs, rv, (ph, orig), (vphotos, voriginals), max(1, n_extra * a.groups // 400),
                                          reference=reference, extractor=fxn, cache_dir=fn, tag=tag)
        rs = with_cross_pairs(rs, CROSS_PAIRS.get(v, 0))
        other[v] = (cached_path_features(df["abspath"].tolist(), fn / "livec.npz", fxn), rs, rv,
                    cached_path_features([str(hdir / p) for p in hdf["path"]], fn / f"{tag}heldout_levels.npz", fxn))
        print(f"{v} features ({preset}): {other[v][0].shape[1]} columns ({time.time() - t0:.0f} s)")

    out = Path(a.out)
    stem = "livec_protocol_quick" if a.quick else "livec_protocol"
    partial = out / f"{stem}.partial.csv"  # this run's rows so far, rewritten after every split
    rows, done = resumed_rows(partial) if a.resume else ([], set())
    if done:
        print(f"resuming: {len(done)} (variant, split) rows from {partial}")
    for s in seeds:
        parts = df[f"split_seed{s}"].astype(str).to_numpy()
        fit = np.isin(parts, ["train", "val"])
        te = parts == "test"
        for name, ranking in [("probe", None), *rank.items(), ("probe-kernel", None),
                              *((v, rank.get(r)) for v, r in RANKING_OF.items()),
                              *((v, other[v][1] if v in other else None) for v in FEATURE_VARIANTS)]:
            if name not in wanted or (name, s) in done:
                continue
            Xv, rv, HXv = (other[name][0], other[name][2], other[name][3]) if name in other else (X, rank_val, HX)
            p, rep = select_params(Xv[fit], z[fit], ranking, rv, seed=s,
                                   residual=name in ("recipe", "recipe-more-photos", "recipe-kernel", *FEATURE_VARIANTS),
                                   kernel=uses_kernel(name))
            head = fit_recipe(Xv[fit], z[fit], ranking, p)
            srcc, plcc = metrics(head.predict(Xv[te]), z[te])
            row = {"variant": name, "split": s, "srcc": srcc, "plcc": plcc, "n_test": int(te.sum()),
                   "alpha": p.alpha, "rank_weight": p.rank_weight, "margin": p.margin,
                   "residual_weight": p.residual_weight, "residual_lam": p.residual_lam,
                   "kernel_gamma": p.kernel_gamma, "kernel_lam": p.kernel_lam, "cv_srcc": rep["cv_srcc"],
                   "val_level_srcc": rep["val_level_srcc"]}
            if s == seeds[0]:
                _, hs = hl.evaluate(hdf, head.predict(HXv))
                row.update(level_srcc=hs["srcc"], ref_highest=hs["ref_highest"], level_groups=hs["n"])
            rows.append(row)
            print(f"split {s:2d} {name:22s} SRCC {srcc:.4f} PLCC {plcc:.4f}  (alpha {p.alpha:g}, "
                  f"rank {p.rank_weight:g}, margin {p.margin:g}, residual {p.residual_weight:g}/{p.residual_lam:g}, "
                  f"kernel {p.kernel_gamma:g}/{p.kernel_lam:g})",
                  flush=True)
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(partial, index=False)  # a killed run keeps its finished splits (--resume)

    fixed = [v for v in ("brisque", "niqe", "piqe") if v in wanted] + (["biqa-default"] if a.old_default else [])
    import biqa

    for name in fixed:
        try:
            scorer = biqa.load(name)
        except Exception as e:  # an optional extra that is not installed
            print(f"skipping {name}: {e}")
            continue
        cache = feats / f"{tag}scores_{name}.npz"
        paths = df["abspath"].tolist() + [str(hdir / p) for p in hdf["path"]]
        z_ = np.load(cache) if cache.is_file() else None
        if z_ is not None and z_["paths"].tolist() == paths:
            allsc = z_["scores"]
        else:
            allsc = scorer.score(paths, progress=True)["score"].to_numpy(float)
            np.savez(cache, paths=np.array(paths), scores=allsc)
        sc, hsc = allsc[:len(df)], allsc[len(df):]
        _, hs = hl.evaluate(hdf, hsc)
        label = "biqa-default v2" if name == "biqa-default" else name
        for s in seeds:
            te = df[f"split_seed{s}"].astype(str).to_numpy() == "test"
            srcc, plcc = metrics(sc[te], z[te])
            row = {"variant": label, "split": s, "srcc": srcc, "plcc": plcc, "n_test": int(te.sum())}
            if s == seeds[0]:
                row.update(level_srcc=hs["srcc"], ref_highest=hs["ref_highest"], level_groups=hs["n"])
            rows.append(row)

    per = pd.DataFrame(rows)
    if a.variants is not None and (out / f"{stem}.csv").is_file():  # keep the rows of variants not recomputed
        per = merge_rows(pd.read_csv(out / f"{stem}.csv"), per)
    summary = summarise(per)
    out.mkdir(parents=True, exist_ok=True)
    per.to_csv(out / f"{stem}.csv", index=False, float_format="%.4f")
    summary.to_csv(out / f"{stem}_summary.csv", index=False, float_format="%.4f")
    partial.unlink(missing_ok=True)
    pd.set_option("display.width", 200)
    print(f"\nLIVE Challenge, `splits` per variant (this run: {len(seeds)}; test N = {int(per['n_test'].iloc[0])} "
          f"each); level ranking on {'the quick' if a.quick else 'the'} held-out set by each variant's model of the "
          "lowest-numbered split that measured it (the first split of the run that added it):")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out / f'{stem}.csv'} and {out / f'{stem}_summary.csv'} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
