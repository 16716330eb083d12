"""Heads on the frozen features, LIVE Challenge, 10 splits: does a non-linear head agree better with people?

The default model's features (EfficientNet-Lite0 stage mean/std, 1,024 values, ``biqa.probe``) stay
fixed; only the map from features to MOS changes. Per split (``split_seedN`` of
``benchmarks/livec_protocol.py``) every head picks its hyper-parameters by 5-fold cross-validation on
train + val, is fitted on train + val and measured on the 176 test photos:

- ``ridge``: the linear probe (``biqa.recipe.select_params`` without ranking data: alpha by CV);
- ``rbf-krr``: kernel ridge regression with a Gaussian kernel on standardised features,
  ``k(x, y) = exp(-gamma / F * |x - y|^2)`` (F = 1,024), gamma and lambda from the grid below.

An exploration, not a shipped model: no ranking pairs, and a kernel head would carry its 704 training
feature vectors. ``--feature-preset`` swaps the features for another frozen backbone's (``lite1-ml-linear``,
``lite2-ml-linear``: the other EfficientNet-Lite weights that ship offline) or puts several side by side
(comma-separated); ``lite0-mlb-linear`` etc. pool all 7 block groups of the same forward pass instead of
its 5 stages. The feature pass of each is timed on the same photos in the same run. Usage::

    python benchmarks/livec_heads.py            # 10 splits, ~3 min with cached features
    python benchmarks/livec_heads.py --quick    # 2 splits, a smaller grid
    python benchmarks/livec_heads.py --feature-preset lite0-ml-linear,lite1-ml-linear,lite2-ml-linear \\
        --compare benchmarks/results/livec_heads.csv      # three backbones' features, paired with Lite0's
    python benchmarks/livec_heads.py --feature-preset lite0-mlb-linear --compare benchmarks/results/livec_heads.csv

Writes ``livec_heads.csv`` (``livec_heads_lite0+lite2.csv``, ``livec_heads_lite0-mlb.csv`` etc. for other
features; one row per head and split) under ``--out`` and prints the paired difference to the ridge head (and with ``--compare`` to the
same head of another run) with a 95% t-interval.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from biqa.probe import (KERNEL_GAMMAS, KERNEL_LAMS, PROBE_PRESET, FeatureExtractor, cached_path_features,  # noqa: E402
                        fit_ridge)
from biqa.recipe import _oof, ensure_livec, feature_cache_dir, select_params  # noqa: E402
from livec_protocol import LIVEC_ROOT, metrics  # noqa: E402  (the protocol's data path and SRCC / PLCC)
from strategies import t_interval  # noqa: E402  (95% t-interval of a paired difference)


class KernelRidge:
    """Gaussian-kernel ridge regression on standardised features (exact solve; fine for ~1,000 rows)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, gamma: float, lam: float):
        self.mu, self.sd = X.mean(0), X.std(0) + 1e-8
        self.S = (X - self.mu) / self.sd
        self.g = gamma / X.shape[1]
        self.b = float(y.mean())
        K = self._k(self.S)
        self.a = np.linalg.solve(K + lam * np.eye(len(K)), y - self.b)

    def _k(self, P: np.ndarray) -> np.ndarray:
        d2 = np.sum(P ** 2, 1)[:, None] + np.sum(self.S ** 2, 1)[None] - 2.0 * P @ self.S.T
        return np.exp(-self.g * np.maximum(d2, 0.0))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._k((X - self.mu) / self.sd) @ self.a + self.b


def select_krr(X: np.ndarray, y: np.ndarray, grid, *, seed: int, n_folds: int = 5) -> tuple[float, float, float]:
    """(gamma, lambda, out-of-fold SRCC) with the best pooled out-of-fold SRCC."""
    folds = np.random.default_rng(seed).permutation(len(y)) % n_folds
    best = (-np.inf, None, None)
    for g, lam in grid:
        s = float(spearmanr(_oof(X, y, folds, lambda A, b: KernelRidge(A, b, g, lam)), y)[0])
        if s > best[0]:
            best = (s, g, lam)
    return best[1], best[2], best[0]


def feature_matrix(paths: list[str], presets: list[str], lite0_cache: str | None) -> np.ndarray:
    """The frozen features of every preset in ``presets``, side by side (cached per preset)."""
    parts = []
    for preset in presets:
        folder = (Path(lite0_cache) if (preset == PROBE_PRESET and lite0_cache)
                  else feature_cache_dir(ROOT / "data", preset))
        parts.append(cached_path_features(paths, folder / "livec.npz", preset=preset, progress=True))
    return np.hstack(parts).astype(float)


def forward_ms(paths: list[str], presets: list[str], repeats: int = 3) -> dict[str, float]:
    """Median milliseconds per photo of each preset's feature pass on the same decoded photos, the presets
    measured in turn within each repeat (side by side, one process)."""
    import time

    import torch

    from biqa.imageio import load_image

    images = [np.asarray(load_image(p), np.uint8) for p in paths]
    extractors = {p: FeatureExtractor(p) for p in presets}
    for ex in extractors.values():
        ex.arrays(images[:2])  # warm-up
    times: dict[str, list[float]] = {p: [] for p in presets}
    with torch.inference_mode():
        for _ in range(repeats):
            for p, ex in extractors.items():
                t0 = time.perf_counter()
                ex.arrays(images)
                times[p].append((time.perf_counter() - t0) * 1000.0 / len(images))
    return {p: float(np.median(v)) for p, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default=str(ROOT / "data" / "livec" / "livec.csv"))
    ap.add_argument("--features", default=None,
                    help="feature cache folder of lite0-ml-linear (default data/features; other presets: "
                         "data/features-PRESET)")
    ap.add_argument("--feature-preset", default=PROBE_PRESET,
                    help="the frozen features' preset, or several joined by commas (their features side by side), "
                         "e.g. lite0-ml-linear,lite1-ml-linear,lite2-ml-linear")
    ap.add_argument("--compare", default=None, metavar="CSV",
                    help="another run's CSV: also print each head's paired difference to the same head there")
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--quick", action="store_true", help="splits 1-2, gamma 0.3, lambda 0.1 and 1")
    ap.add_argument("--out", default=str(HERE / "results"))
    a = ap.parse_args(argv)
    from biqa.datasets.splits import parse_seeds

    presets = [p.strip() for p in a.feature_preset.split(",") if p.strip()]
    seeds = parse_seeds("1-2" if a.quick and a.seeds == "1-10" else a.seeds)
    grid = [(0.3, 0.1), (0.3, 1.0)] if a.quick else [(g, lam) for g in KERNEL_GAMMAS for lam in KERNEL_LAMS]
    try:
        df = ensure_livec(Path(a.records), LIVEC_ROOT)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    missing = [s for s in seeds if f"split_seed{s}" not in df.columns]
    if missing:
        raise SystemExit(f"{a.records} has no split_seed{missing[0]}: run python benchmarks/livec_protocol.py first")
    paths = df["abspath"].tolist()
    X = feature_matrix(paths, presets, a.features)
    ms = forward_ms(paths[:8 if a.quick else 24], presets, repeats=1 if a.quick else 3)
    for p in presets:
        print(f"{p}: {ms[p]:.0f} ms per 500x500 photo (feature pass, batches of 8, this machine)")
    z = df["mos"].to_numpy(float) / 100.0
    rows = []
    for s in seeds:
        parts = df[f"split_seed{s}"].astype(str).to_numpy()
        fit, te = np.isin(parts, ["train", "val"]), parts == "test"
        p, rep = select_params(X[fit], z[fit], None, None, seed=s)
        preds = {"ridge": (fit_ridge(X[fit], z[fit], p.alpha).predict(X[te]), f"alpha {p.alpha:g}", rep["cv_srcc"])}
        g, lam, cv = select_krr(X[fit], z[fit], grid, seed=s)
        preds["rbf-krr"] = (KernelRidge(X[fit], z[fit], g, lam).predict(X[te]), f"gamma {g:g} lambda {lam:g}", cv)
        for head, (pred, params, cv) in preds.items():
            srcc, plcc = metrics(pred, z[te])
            rows.append({"head": head, "split": s, "srcc": srcc, "plcc": plcc, "n_test": int(te.sum()),
                         "params": params, "cv_srcc": cv, "features": "+".join(presets), "n_features": X.shape[1],
                         "ms_per_photo": sum(ms.values())})
            print(f"split {s:2d} {head:8s} SRCC {srcc:.4f} PLCC {plcc:.4f} ({params}; CV SRCC {cv:.4f})", flush=True)
    per = pd.DataFrame(rows)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "livec_heads" if presets == [PROBE_PRESET] else "livec_heads_" + "+".join(
        p.removesuffix("-linear").removesuffix("-ml") for p in presets)
    csv = out / (f"{stem}_quick.csv" if a.quick else f"{stem}.csv")
    per.to_csv(csv, index=False, float_format="%.4f")
    print(f"\nLIVE Challenge, {len(seeds)} splits (test N = {int(per['n_test'].iloc[0])} each), "
          f"features {'+'.join(presets)} ({X.shape[1]} columns, {sum(ms.values()):.0f} ms per photo):")
    base = per[per["head"] == "ridge"].set_index("split")
    other = pd.read_csv(a.compare) if a.compare else None
    for head, g in per.groupby("head", sort=False):
        g = g.set_index("split")
        line = f"  {head:8s} SRCC {g['srcc'].mean():.4f} +- {g['srcc'].std(ddof=0):.4f}  PLCC {g['plcc'].mean():.4f}"
        if head != "ridge":
            line += paired(g, base)
        print(line)
        if other is not None:
            ref = other[other["head"] == head].set_index("split")
            if len(ref.index.intersection(g.index)):
                print(f"  {'':8s} vs {head} of {Path(a.compare).name}:" + paired(g, ref))
    print(f"wrote {csv}")
    return 0


def paired(g: pd.DataFrame, ref: pd.DataFrame) -> str:
    """Paired SRCC / PLCC differences of ``g`` to ``ref`` over their common splits, 95% t-intervals."""
    common = g.index.intersection(ref.index)
    text = ""
    for m in ("srcc", "plcc"):
        d = (g.loc[common, m] - ref.loc[common, m]).to_numpy()
        lo, hi = t_interval(d)
        text += f"  d{m.upper()} {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}] (higher on {(d > 0).sum()} of {len(d)})"
    return text


if __name__ == "__main__":
    sys.exit(main())
