"""gMAD at scale: how long the competition takes once scores exist.

Synthetic score tables: a ground truth uniform on [1, 5]; models "truth" (= it), "weak" (+ noise sd
0.6), "noise" (pure noise), and with 5 models also "weak2" (+ noise sd 1.2) and "reversed" (= -truth).
Stages, each timed on its own (best of ``--repeats``):

- ``read score CSVs``: M ``path,score`` CSVs read and aligned to the pool's paths;
- ``select pairs``: :func:`biqa.gmad.select_pairs` (6 levels, band 0.02, >= 5 candidates);
- ``judge + matrices``: simulated judgements (3 raters), checking them, the two matrices and ranking;
- ``end to end``: ``run_gmad`` from score CSVs on a pool of real (tiny, 64x48 PNG) image files:
  everything ``biqa gmad`` does after scoring — pairs.json/csv, the HTML page with its thumbnails,
  contact sheets, judgements, matrices plot (N = 5,000, 3 models only).

Usage: python benchmarks/gmad.py [--quick] [--repeats 3]
Prints a table and writes benchmarks/results/gmad.csv.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from biqa.gmad import (competition_matrices, load_score_csv, read_judgements, run_gmad,  # noqa: E402
                       select_pairs, simulate_judgements)


def score_table(n: int, m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1, 5, n)
    cols = {"truth": truth, "weak": truth + rng.normal(0, 0.6, n), "noise": rng.normal(3, 1, n),
            "weak2": truth + rng.normal(0, 1.2, n), "reversed": -truth}
    names = list(cols)[:m]
    return truth, np.stack([cols[k] for k in names], 1), names


def best_of(fn, repeats):
    """(best time, the output of the fastest run)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        o = fn()
        t = time.perf_counter() - t0
        if t < best:
            best, out = t, o
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 5,000 only, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "gmad.csv"))
    a = ap.parse_args()
    repeats = 1 if a.quick else a.repeats
    sizes = [5_000] if a.quick else [5_000, 50_000, 500_000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in sizes:
            for m in (3, 5):
                truth, scores, names = score_table(n, m)
                paths = [str(tmp / f"img{i:06d}.png") for i in range(n)]
                csvs = []
                for j, name in enumerate(names):
                    f = tmp / f"{name}_{n}.csv"
                    pd.DataFrame({"path": paths, "score": scores[:, j]}).to_csv(f, index=False)
                    csvs.append(f)
                t_read, _ = best_of(lambda: np.stack([load_score_csv(f, paths) for f in csvs], 1), repeats)
                t_sel, sel = best_of(lambda: select_pairs(scores, names, levels=6, band_width=0.02, min_candidates=5,
                                                          paths=paths), repeats)

                def judge():
                    j = simulate_judgements(sel.pairs, truth, tolerance=0.3, n_raters=3, noise=0.05, seed=1)
                    return competition_matrices(sel.pairs, read_judgements(j, sel.pairs), names)

                t_judge, res = best_of(judge, repeats)
                order = res["models"]["model"].tolist()
                common = {"images": n, "models": m, "pairs": len(sel.pairs),
                          "sparse_levels": int((~sel.bands["ok"]).sum()), "ranking": " > ".join(order)}
                rows += [{"stage": "read score CSVs", "seconds": t_read, **common},
                         {"stage": "select pairs", "seconds": t_sel, **common},
                         {"stage": "judge + matrices", "seconds": t_judge, **common}]
                for f in csvs:
                    f.unlink()
        # end to end on real files: N = 5,000 tiny PNGs, 3 models from CSVs
        n, m = 5_000, 3
        truth, scores, names = score_table(n, m)
        img_dir = tmp / "pool"
        img_dir.mkdir()
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        paths = []
        for i in range(n):
            p = img_dir / f"img{i:05d}.png"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(p, compress_level=1)
            paths.append(str(p))
        t_make = time.perf_counter() - t0
        records = tmp / "records.csv"
        pd.DataFrame({"path": paths, "mos": truth}).to_csv(records, index=False)
        specs = []
        for j, name in enumerate(names):
            f = tmp / f"{name}.csv"
            pd.DataFrame({"path": paths, "score": scores[:, j]}).to_csv(f, index=False)
            specs.append(str(f))

        def e2e():
            return run_gmad(specs, [str(records)], tmp / "out", levels=6, band_width=0.02, min_candidates=5,
                            simulate_from="mos", simulate_tolerance=0.3)

        t_e2e, res = best_of(e2e, repeats)
        tm = res["timing"]
        rows.append({"stage": "end to end (run_gmad from CSVs: pool, HTML, sheets, matrices)", "seconds": t_e2e,
                     "images": n, "models": m, "pairs": len(res["selection"].pairs),
                     "sparse_levels": int((~res["selection"].bands["ok"]).sum()),
                     "ranking": " > ".join(res["results"]["models"]["model"]),
                     "detail": f"scores {tm['scoring_s']:.2f} s, selection {tm['selection_s']:.3f} s, "
                               f"outputs {tm['outputs_s']:.2f} s; making the 5,000 PNGs took {t_make:.1f} s "
                               f"(not counted)"})
    df = pd.DataFrame(rows)
    df["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    df["numpy"] = np.__version__
    df["python"] = platform.python_version()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.4f")
    show = df[["stage", "images", "models", "pairs", "sparse_levels", "seconds", "ranking"]].copy()
    show["seconds"] = show["seconds"].map(lambda x: f"{x:.4f}")
    with pd.option_context("display.width", 200, "display.max_colwidth", 70):
        print(show.to_string(index=False))
    if "detail" in df.columns and df["detail"].notna().any():
        print("end to end:", df["detail"].dropna().iloc[0])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
