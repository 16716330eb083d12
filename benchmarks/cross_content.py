"""Clean above heavy: does a clean image, whatever its content, score above heavily distorted photos?

Why this exists: :mod:`heldout_levels` compares an image only with distorted versions of itself, so a model
can rank every group perfectly and still score a clean, flat wallpaper below a photo ruined by JPEG at quality 5.
Issue 17 names that failure ("plain content gets low scores whatever its quality"), and a user who ranks a
folder of mixed images sees it at once. This check compares across images: for each photo set's clean
references (level 0 of :mod:`heldout_levels`' sets) and every image at level 4 or 5 (:data:`HEAVY`) of the two
photograph sets (:data:`POOL`: the first set and mvtb; 31 photos x 6 families x 2 levels = 372 images) whose
photo is not the reference's own, the share of (reference, heavy image) pairs in which the reference scores
strictly higher. 1.0: every clean image above every heavily distorted photo; 0.5: no better than chance.

The sets and their distortions are :mod:`heldout_levels`' (built, cached and fetched the same way: ``--debs``,
``--mvtb-wheel``), so this check shares no code with training either.

Usage: python benchmarks/cross_content.py --model biqa-default [--model CKPT ...] [--debs DIR] [--mvtb-wheel WHL]
    [--sets shared,mvtb,dark,plain,desktop,plasma] [--quick] [--out CSV]
Prints a table (sets as columns) and writes one CSV row per model and set
(default ``benchmarks/results/cross_content.csv``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import heldout_levels as hl  # noqa: E402

SETS = ("shared", "mvtb", *hl.PACKAGED_SETS)
POOL = ("shared", "mvtb")  # the photograph sets whose heavy levels the clean images are compared with
HEAVY = (4, 5)


def clean_above_heavy(ref_scores, ref_photos, heavy_scores, heavy_photos) -> tuple[float, int]:
    """The share of (reference, heavy image) pairs of different photos in which the reference scores strictly
    higher, and the number of such pairs. NaN scores (failed images) leave their pairs out."""
    r, rp = np.asarray(ref_scores, float), np.asarray(ref_photos, object)
    h, hp = np.asarray(heavy_scores, float), np.asarray(heavy_photos, object)
    r, rp, h, hp = r[~np.isnan(r)], rp[~np.isnan(r)], h[~np.isnan(h)], hp[~np.isnan(h)]
    other = rp[:, None] != hp[None, :]
    n = int(other.sum())
    return (float(((r[:, None] > h[None, :]) & other).sum() / n) if n else float("nan")), n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="trained model name or checkpoint (repeatable)")
    ap.add_argument("--sets", default=",".join(SETS), help=f"the sets whose clean references are compared "
                                                            f"(default all: {','.join(SETS)})")
    ap.add_argument("--quick", action="store_true", help="the first set only, its --quick version (3 photos, "
                                                         "short side 256): a smoke run")
    ap.add_argument("--mvtb-wheel", help="the mvtb-data wheel, already downloaded (else: pip download)")
    ap.add_argument("--debs", help="a folder with the packaged sets' .deb files (else: apt-get download)")
    ap.add_argument("--out", help="CSV (default benchmarks/results/cross_content[_quick].csv)")
    a = ap.parse_args(argv)
    sets = ["shared"] if a.quick else [s.strip() for s in a.sets.split(",") if s.strip()]
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        ap.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    pool = ["shared"] if a.quick else list(POOL)
    a.out = a.out or str(HERE / "results" / f"cross_content{'_quick' if a.quick else ''}.csv")
    sys.path.insert(0, str(ROOT))
    import biqa

    built = {s: hl.prepare_set(s, mvtb_wheel=a.mvtb_wheel, debs=a.debs, quick=a.quick) for s in dict.fromkeys(sets + pool)}
    items = []  # (set, photo, level, path): every set's references, the pool's heavy levels
    for s, (df, data) in built.items():
        keep = ((df["level"] == 0) & (s in sets)) | (df["level"].isin(HEAVY) & (s in pool))
        items += [(s, r.photo, r.level, str(data / r.path)) for r in df[keep].itertuples()]
    items = pd.DataFrame(items, columns=["set", "photo", "level", "path"])
    print(f"{int((items['level'] == 0).sum())} clean references of {len(sets)} sets, "
          f"{int((items['level'] > 0).sum())} heavy images (levels {HEAVY}) of {', '.join(pool)}")
    heavy = (items["level"] > 0).to_numpy()
    refs = {s: ((items["set"] == s) & (items["level"] == 0)).to_numpy() for s in sets}
    rows = []
    for model in a.model:
        res = biqa.load(model).score(items["path"].tolist(), progress=True)
        sc = pd.to_numeric(res["score"], errors="coerce").to_numpy(float)
        for s, ref in refs.items():
            share, n = clean_above_heavy(sc[ref], items.loc[ref, "photo"], sc[heavy], items.loc[heavy, "photo"])
            rows.append({"model": model, "set": s, "clean_above_heavy": share, "n_refs": int(ref.sum()), "n_pairs": n,
                         "ref_median": float(np.nanmedian(sc[ref])), "heavy_median": float(np.nanmedian(sc[heavy]))})
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print("\nclean above heavy (share of pairs):")
    print(table.pivot(index="model", columns="set", values="clean_above_heavy")[sets].to_string(
        float_format=lambda v: f"{v:.3f}"))
    print("\nmedian score of the clean references (heavy images: "
          + ", ".join(f"{m} {v:.2f}" for m, v in table.groupby("model", sort=False)["heavy_median"].first().items()) + "):")
    print(table.pivot(index="model", columns="set", values="ref_median")[sets].to_string(
        float_format=lambda v: f"{v:.2f}"))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out, index=False, float_format="%.4f")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
