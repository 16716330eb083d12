"""Content-dependent quality labels for synthetic distortions, calibrated onto KADID-10k's human scale.

Two steps:

1. **Full-reference ensemble** :func:`fr_quality`: ``q in [0, 1]`` (1 = identical to the reference)
   from three piq metrics chosen to complement each other:

   * MS-SSIM on R, G, B (structure and contrast at 5 scales; the metric that sees mild pixelation
     and jitter, which HaarPSI barely registers),
   * HaarPSI (Haar-wavelet phase/magnitude similarity in YIQ: luminance *and* chroma; the best of
     the three on KADID in piq's benchmarks, strong on blur, noise and compression),
   * MDSI (gradient similarity plus a chromaticity term: catches colour shifts, saturation and
     colour quantisation).

   Each component is rescaled to ``[0, 1]`` by a fixed "fully degraded" distance (see
   :data:`COMPONENT_SCALES`) so that the three have comparable spread (raw MS-SSIM hardly leaves
   0.9-1.0), and ``q`` is their mean. The metrics run at an *analysis resolution*: both images are
   area-downscaled by ``f = max(1, round(min(H, W) / 256))`` (the rule SSIM's reference code uses
   to model viewing distance; 384 px -> 192 px) and the metrics' own internal subsampling is
   switched off. This halves the cost and matches how HaarPSI / GMSD / MDSI see a 384 px image.
   MS-SSIM uses as many of its 5 scales as the analysis size allows (3 at 64 px).

   MS-SSIM and HaarPSI disagree about contrast and saturation changes, and the metrics' scales
   differ between distortion types. Hence step 2 is *per type*.

2. **Calibration** :class:`Calibrator`: for each distortion type ``t`` a monotone piecewise-linear
   map ``g_t: q -> MOS`` with one knot at the mean ``q`` of each level. Its knot heights (which the
   level means of ``g_t(q)`` depend on linearly) are fitted by bounded least squares so that the
   *mean of g_t(q)* over the images at ``(t, level)`` comes close to KADID-10k's mean human score
   at ``(t, level)``, with a penalty (``smoothing``) towards plain interpolation through the
   (mean q, KADID mean) points. Between the mildest level's knot and ``q = 1`` (the undistorted
   reference) ``g_t`` rises linearly to the reference label; below the strongest level's knot it
   decays exponentially towards 1 (same slope at the knot), so labels never tie at the floor.
   Within one (type, level) the labels keep the content dependence of ``q``; each image's labels
   fall with the level (``q`` does, and ``g_t`` is monotone); the level means approximate the
   human ratings (exactly only where content spreads ``q`` less than the levels do; the report
   says how close). References get ``reference_mos`` (default: the highest KADID level mean,
   4.61 = GBLUR level 1: a reference is at least as good as the best rated distorted image).

   KADID's own levels are not monotone for Mean_Shift (levels alternate brighter/darker) and
   Contrast Dist. (level 3 is best): our types are one-directional and monotone, so the target of
   our level ``k`` is KADID's ``k``-th best level mean of that type (``mos_target``; identical to
   ``mos_mean`` for the other types up to ties).
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import lsq_linear

__all__ = ["COMPONENT_SCALES", "analysis_factor", "fr_scores", "fr_quality_batch", "fr_quality",
           "kadid_level_means", "Calibrator", "calibration_report", "cross_fitted_labels"]

COMPONENT_SCALES: dict[str, float] = {"ms_ssim": 0.25, "haarpsi": 1.0, "mdsi": 0.6}
"""Distance ``1 - similarity`` (MDSI: the MDSI value itself) that counts as fully degraded (component 0)."""

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003
_MS_SSIM_KERNEL = 11
_FILE_RE = re.compile(r"I(\d+)_(\d+)_(\d+)\.\w+$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# full-reference ensemble
# --------------------------------------------------------------------------------------------
def analysis_factor(height: int, width: int) -> int:
    """Integer area-downscaling factor of the analysis resolution: ``max(1, round(min(H, W) / 256))``."""
    return max(1, int(round(min(height, width) / 256)))


def _as_batch(x, name: str):
    import torch

    if isinstance(x, torch.Tensor):
        t = x.detach().float()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"{name}: expected a tensor N x 3 x H x W, got {tuple(x.shape)}")
        return t
    a = np.asarray(x)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"{name}: expected an array H x W x 3 or N x H x W x 3, got {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(0, 3, 1, 2)


PIQ_MISSING = "biqa data synth labels its images with piq, which is not installed: pip install 'biqa[synth]'"


def require_piq() -> None:
    """Raise ``ImportError`` (saying what to install) unless piq, the ``synth`` extra, can be imported."""
    import importlib

    try:
        importlib.import_module("piq")
    except ImportError:
        raise ImportError(PIQ_MISSING) from None


def fr_scores(refs, dists, *, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Full-reference ensemble for a batch: the rescaled components and their mean ``q``.

    Args:
        refs: reference image(s): float ``H x W x 3`` / ``N x H x W x 3`` in ``[0, 1]`` (or uint8),
            or a torch tensor ``(N,) 3 x H x W``. A single reference is compared with every image.
        dists: distorted images, same layout and size as the reference(s), ``N`` of them.
        batch_size: images per piq call (memory ~ 4 * batch * 3 * H * W bytes per metric).

    Returns:
        ``{"ms_ssim", "haarpsi", "mdsi", "q"}``: float64 arrays of length ``N`` in ``[0, 1]``,
        1 = identical to the reference.
    """
    require_piq()
    import piq
    import torch

    r, d = _as_batch(refs, "refs"), _as_batch(dists, "dists")
    if r.shape[0] == 1 and d.shape[0] > 1:
        r = r.expand(d.shape[0], -1, -1, -1)
    if r.shape != d.shape:
        raise ValueError(f"reference and distorted images differ in shape: {tuple(r.shape)} vs {tuple(d.shape)}")
    h, w = d.shape[-2:]
    f = analysis_factor(h, w)
    s = min(h, w) // f
    n_scales = 0
    while n_scales < 5 and (_MS_SSIM_KERNEL - 1) * 2 ** n_scales + 1 <= s:
        n_scales += 1
    if n_scales == 0 or s < 16:
        raise ValueError(f"images too small for the FR ensemble: {h}x{w} (need at least 16 px after "
                         f"the {f}x analysis downscale)")
    weights = torch.tensor(_MS_SSIM_WEIGHTS[:n_scales])
    out = {k: [] for k in COMPONENT_SCALES}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(0, d.shape[0], batch_size):
            x = d[i:i + batch_size].clamp(0, 1)
            y = r[i:i + batch_size].clamp(0, 1)
            if f > 1:
                x, y = torch.nn.functional.avg_pool2d(x, f), torch.nn.functional.avg_pool2d(y, f)
            out["ms_ssim"].append(piq.multi_scale_ssim(x, y, data_range=1.0, reduction="none",
                                                       scale_weights=weights).double().numpy())
            out["haarpsi"].append(piq.haarpsi(x, y, data_range=1.0, reduction="none",
                                              subsample=False).double().numpy())
            out["mdsi"].append(piq.mdsi(x, y, data_range=1.0, reduction="none").double().numpy())
    res: dict[str, np.ndarray] = {}
    for k, scale in COMPONENT_SCALES.items():
        v = np.concatenate(out[k]) if out[k] else np.zeros(0)
        dist = v if k == "mdsi" else 1.0 - v
        res[k] = np.clip(1.0 - np.nan_to_num(dist, nan=scale) / scale, 0.0, 1.0)
    res["q"] = np.mean([res[k] for k in COMPONENT_SCALES], axis=0)
    return res


def fr_quality_batch(refs, dists, *, batch_size: int = 32) -> np.ndarray:
    """Ensemble quality ``q`` in ``[0, 1]`` for ``N`` distorted images (see :func:`fr_scores`)."""
    return fr_scores(refs, dists, batch_size=batch_size)["q"]


def fr_quality(ref, dist) -> float:
    """Ensemble quality ``q`` in ``[0, 1]`` of one distorted image (``H x W x 3``) against its reference."""
    return float(fr_quality_batch(ref, dist)[0])


# --------------------------------------------------------------------------------------------
# KADID-10k targets
# --------------------------------------------------------------------------------------------
def kadid_level_means(path: str | os.PathLike) -> pd.DataFrame:
    """Mean human score of KADID-10k per (distortion type, level).

    Reads either the republished layout ``dis_img_path,dis_type,ref_img_path,score`` or KADID's
    own ``dmos.csv`` (``dist_img,ref_img,dmos,var``); type and level come from the file names
    ``I01_<type>_<level>.png``.

    Returns:
        DataFrame with one row per (type, level), sorted: ``type_id`` (1..25), ``type_name``
        (KADID's ``dis_type``, or ours for dmos.csv), ``level`` (1..5), ``mos_mean`` (1-5),
        ``n`` (images), ``mos_target`` (KADID's level means of the type sorted best-first, i.e.
        the target of our monotone level; equals ``mos_mean`` where KADID is monotone).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"KADID-10k label file not found: {path}")
    df = pd.read_csv(path)
    cols = {c.lower(): c for c in df.columns}
    img_col = next((cols[c] for c in ("dis_img_path", "dist_img", "image", "path") if c in cols), None)
    score_col = next((cols[c] for c in ("score", "dmos", "mos") if c in cols), None)
    if img_col is None or score_col is None:
        raise ValueError(f"{path}: expected columns dis_img_path/dist_img and score/dmos, got {list(df.columns)}")
    m = df[img_col].astype(str).str.extract(_FILE_RE)
    bad = m.isna().any(axis=1)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} file names do not match I<ref>_<type>_<level>.png, "
                         f"e.g. {df.loc[bad, img_col].iloc[0]!r}")
    t = pd.DataFrame({"type_id": m[1].astype(int), "level": m[2].astype(int),
                      "score": pd.to_numeric(df[score_col], errors="raise")})
    if "dis_type" in cols:
        t["type_name"] = df[cols["dis_type"]].astype(str)
    else:
        from .distortions import get_distortion

        t["type_name"] = [get_distortion(i).kadid_name for i in t["type_id"]]
    g = (t.groupby(["type_id", "level"], as_index=False)
         .agg(type_name=("type_name", "first"), mos_mean=("score", "mean"), n=("score", "size")))
    g["mos_target"] = g["mos_mean"]
    for _, idx in g.groupby("type_id").groups.items():
        sub = g.loc[idx].sort_values("level")
        g.loc[sub.index, "mos_target"] = np.sort(sub["mos_mean"].to_numpy())[::-1]
    return g[["type_id", "type_name", "level", "mos_mean", "n", "mos_target"]].sort_values(
        ["type_id", "level"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------
def _basis(q: np.ndarray, xs: np.ndarray, top_flat: bool) -> np.ndarray:
    """Hat-function weights ``[n, K]`` of piecewise-linear interpolation through knots ``xs`` (ascending).

    Below ``xs[0]``: linear extrapolation of the first segment; above ``xs[-1]``: flat.
    """
    q = np.asarray(q, dtype=np.float64)
    k = xs.size
    b = np.zeros((q.size, k))
    if k == 1:
        b[:, 0] = 1.0
        return b
    seg = np.clip(np.searchsorted(xs, q, side="right") - 1, 0, k - 2)
    t = (q - xs[seg]) / (xs[seg + 1] - xs[seg])
    if top_flat:
        t = np.minimum(t, 1.0)
    rows = np.arange(q.size)
    b[rows, seg] = 1.0 - t
    b[rows, seg + 1] += t
    return b


@dataclass
class _TypeMap:
    knots_q: np.ndarray      # ascending, the last one is q = 1 when anchored
    knots_mos: np.ndarray
    anchored: bool

    def __call__(self, q: np.ndarray) -> np.ndarray:
        q = np.minimum(np.asarray(q, dtype=np.float64), 1.0)
        y = _basis(q, self.knots_q, top_flat=True) @ self.knots_mos
        x0, y0 = self.knots_q[0], self.knots_mos[0]
        if self.knots_q.size > 1 and y0 > 1.0:
            # below the lowest knot: exponential approach to 1 with the first segment's slope at the knot,
            # so labels stay strictly ordered (no ties at the floor)
            slope = max((self.knots_mos[1] - y0) / (self.knots_q[1] - x0), 0.0)
            lo = q < x0
            y[lo] = 1.0 + (y0 - 1.0) * np.exp(slope * (q[lo] - x0) / (y0 - 1.0))
        return np.clip(y, 1.0, 5.0)


@dataclass
class Calibrator:
    """Per-type monotone map from FR quality ``q`` to the human 1-5 scale (see the module docstring).

    Args:
        reference_mos: label of undistorted references (``type_id == 0``) and the value of every
            ``g_t`` at ``q = 1``; ``None`` = the highest KADID level mean seen in :meth:`fit`.
        anchor_reference: rise linearly from the mildest level's knot to ``(1, reference_mos)``;
            ``False`` = flat above that knot.
        smoothing: weight of a penalty pulling the knot heights towards plain interpolation through
            the (mean q, target) points. 0 = match the level means as closely as a monotone map can
            (which, where content spreads q more than the levels do, makes steep maps and many
            labels tied at the reference value); large = plain interpolation. On a 24-photo
            build (384 px, all types) the per-(type, level) RMSE against KADID was 0.16 for
            smoothing 0.1-1.0 (4% of labels at the reference value) and 0.135 for 0 with 5 refits
            (12% tied); the default 0.3 keeps labels ordered by q almost everywhere.
        refit_iterations: fits of the knot heights; each refit corrects the targets by the
            residual left by the non-linear parts (the floor below the lowest knot, clamping).
    """

    reference_mos: float | None = None
    anchor_reference: bool = True
    smoothing: float = 0.3
    refit_iterations: int = 1
    maps_: dict[int, _TypeMap] = field(default_factory=dict, repr=False)

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, q, type_id, level, level_means: pd.DataFrame, *, target: str = "mos_target") -> "Calibrator":
        """Fit one map per type present in ``type_id`` (rows with ``type_id == 0`` are ignored).

        Args:
            q: FR quality per image, ``[N]`` in ``[0, 1]``.
            type_id: distortion type per image ``[N]`` (1..25; 0 = reference).
            level: level per image ``[N]`` (1..5).
            level_means: :func:`kadid_level_means` output (or any frame with ``type_id``, ``level``
                and the ``target`` column).
            target: which column of ``level_means`` the level means must match.
        """
        q = np.asarray(q, dtype=np.float64)
        tid = np.asarray(type_id).astype(int)
        lev = np.asarray(level).astype(int)
        if not (q.shape == tid.shape == lev.shape):
            raise ValueError(f"q, type_id and level differ in length: {q.shape}, {tid.shape}, {lev.shape}")
        if target not in level_means.columns:
            raise ValueError(f"level_means has no column {target!r}")
        tgt = {(int(a), int(b)): float(c) for a, b, c in
               level_means[["type_id", "level", target]].itertuples(index=False)}
        if self.reference_mos is None:
            self.reference_mos = float(level_means[target].max())
        if not 1.0 <= self.reference_mos <= 5.0:
            raise ValueError(f"reference_mos must lie in [1, 5], got {self.reference_mos}")
        self.maps_ = {}
        for t in sorted(set(tid[tid > 0].tolist())):
            sel = tid == t
            levels = sorted(set(lev[sel].tolist()))
            missing = [lv for lv in levels if (t, lv) not in tgt]
            if missing:
                raise KeyError(f"no KADID target for type {t} level(s) {missing}")
            groups = [q[sel & (lev == lv)] for lv in levels]
            targets = np.array([tgt[(t, lv)] for lv in levels])
            self.maps_[t] = self._fit_type(groups, targets)
        return self

    def _fit_type(self, groups: list[np.ndarray], targets: np.ndarray) -> _TypeMap:
        ref = float(self.reference_mos)
        means = np.array([g.mean() for g in groups])
        cand = np.sort(means[means < 1.0 - 1e-6]) if self.anchor_reference else np.sort(means)
        xs: list[float] = []
        for x in cand:  # merge near-identical knots
            if not xs or x - xs[-1] > 1e-6:
                xs.append(float(x))
        anchored = self.anchor_reference
        k = len(xs)
        if anchored and k == 0:  # the distortion left every image unchanged: q = 1 -> reference label
            return _TypeMap(np.array([1.0]), np.array([ref]), True)
        if anchored:
            xs_all = np.array(xs + [1.0])
        else:
            if k == 0:
                xs = [float(means.mean())]
                k = 1
            xs_all = np.array(xs)
        # y (free knots, ascending q) = c0 + M @ theta with theta >= 0 (monotone non-decreasing in q)
        if anchored:  # y_j = ref - sum_{i >= j} d_i
            m_mat = -np.triu(np.ones((k, k)))
            c0 = np.full(k, ref)
            lb, ub = np.zeros(k), np.full(k, 4.0)
        else:  # theta = (top, d_0..d_{k-2}); y_j = top - sum_{i >= j, i < k-1} d_i
            m_mat = np.zeros((k, k))
            m_mat[:, 0] = 1.0
            if k > 1:
                m_mat[:, 1:] = -np.triu(np.ones((k, k - 1)))
                m_mat[k - 1, 1:] = 0.0
            c0 = np.zeros(k)
            lb = np.r_[1.0, np.zeros(k - 1)]
            ub = np.r_[5.0, np.full(k - 1, 4.0)]
        a_rows, b_rows = [], []
        for g in groups:
            basis = _basis(np.minimum(g, 1.0), xs_all, top_flat=True).mean(axis=0)
            a_rows.append(basis[:k])
            b_rows.append(basis[k:].sum() * ref if anchored else 0.0)
        a, b = np.array(a_rows), np.array(b_rows)
        goal = targets.astype(np.float64).copy()
        # prior: the knot heights of plain interpolation through (mean q, target) of each level
        order = np.argsort(means)
        prior = np.interp(np.array(xs), means[order], np.maximum.accumulate(targets[order]))
        w = np.sqrt(max(self.smoothing, 0.0))
        ys = c0.copy()
        for _ in range(max(1, self.refit_iterations)):
            lhs = np.vstack([a @ m_mat, w * m_mat])
            rhs = np.r_[goal - b - a @ c0, w * (prior - c0)]
            sol = lsq_linear(lhs, rhs, bounds=(lb, ub), method="bvls")
            ys = c0 + m_mat @ sol.x
            fmap = _TypeMap(xs_all, np.r_[ys, ref] if anchored else ys, anchored)
            achieved = np.array([fmap(g).mean() for g in groups])
            resid = targets - achieved
            if np.max(np.abs(resid)) < 1e-6:
                break
            goal = goal + resid
        return _TypeMap(xs_all, np.r_[ys, ref] if anchored else ys, anchored)

    # -- applying ------------------------------------------------------------------------------
    def transform(self, q, type_id) -> np.ndarray:
        """Labels in ``[1, 5]`` for images of fitted types (``type_id == 0``: ``reference_mos``)."""
        if self.reference_mos is None or not self.maps_:
            raise RuntimeError("Calibrator is not fitted: call fit() first")
        q = np.atleast_1d(np.asarray(q, dtype=np.float64))
        tid = np.broadcast_to(np.asarray(type_id).astype(int), q.shape)
        out = np.full(q.shape, float(self.reference_mos))
        for t in np.unique(tid[tid > 0]):
            if int(t) not in self.maps_:
                raise KeyError(f"Calibrator was not fitted for type {int(t)}; fitted: {sorted(self.maps_)}")
            sel = tid == t
            out[sel] = self.maps_[int(t)](q[sel])
        return out

    def table(self) -> pd.DataFrame:
        """Knots of every map: ``type_id, knot, q, mos`` (the anchored last knot has ``q = 1``)."""
        rows = [(t, i, float(x), float(y)) for t, m in sorted(self.maps_.items())
                for i, (x, y) in enumerate(zip(m.knots_q, m.knots_mos))]
        return pd.DataFrame(rows, columns=["type_id", "knot", "q", "mos"])

    def to_dict(self) -> dict:
        """JSON-serialisable state (see :meth:`from_dict`)."""
        return {"reference_mos": self.reference_mos, "anchor_reference": self.anchor_reference,
                "smoothing": self.smoothing, "refit_iterations": self.refit_iterations,
                "maps": {str(t): {"q": m.knots_q.tolist(), "mos": m.knots_mos.tolist(), "anchored": m.anchored}
                         for t, m in sorted(self.maps_.items())}}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        c = cls(reference_mos=d["reference_mos"], anchor_reference=d["anchor_reference"],
                smoothing=d.get("smoothing", 0.3), refit_iterations=d.get("refit_iterations", 1))
        c.maps_ = {int(t): _TypeMap(np.asarray(m["q"], float), np.asarray(m["mos"], float), bool(m["anchored"]))
                   for t, m in d["maps"].items()}
        return c


# --------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------
def cross_fitted_labels(q, type_id, level, groups, level_means: pd.DataFrame, *, n_folds: int = 5,
                        seed: int = 0, **calibrator_kwargs) -> np.ndarray:
    """Labels of each group (e.g. reference photo) from a Calibrator fitted on the *other* groups.

    Honest version of the calibration report: how well per-(type, level) means transfer to
    unseen content. Folds are formed from the unique groups with ``seed``.
    """
    q = np.asarray(q, dtype=np.float64)
    tid, lev, grp = np.asarray(type_id).astype(int), np.asarray(level).astype(int), np.asarray(groups)
    uniq = np.unique(grp)
    if uniq.size < 2:
        raise ValueError("cross-fitting needs at least 2 groups")
    perm = np.random.default_rng(seed).permutation(uniq)
    folds = np.array_split(perm, min(n_folds, uniq.size))
    out = np.full(q.shape, np.nan)
    for fold in folds:
        test = np.isin(grp, fold)
        cal = Calibrator(**calibrator_kwargs).fit(q[~test], tid[~test], lev[~test], level_means)
        ok = test & ((tid == 0) | np.isin(tid, list(cal.maps_)))
        out[ok] = cal.transform(q[ok], tid[ok])
    return out


def calibration_report(labels, type_id, level, level_means: pd.DataFrame, q=None) -> dict:
    """Agreement over (type, level) cells between our mean labels and KADID-10k's mean scores.

    Args:
        labels: our labels per image ``[N]`` (NaN = skipped); references (``type_id == 0``) ignored.
        type_id, level: per image ``[N]``.
        level_means: :func:`kadid_level_means` output.
        q: optional raw FR quality ``[N]``: adds how well *uncalibrated* ``q`` ranks the cells.

    Returns:
        ``n_cells``; ``srcc``, ``plcc``, ``rmse`` against ``mos_target`` (what was fitted);
        ``srcc_kadid``, ``plcc_kadid``, ``rmse_kadid`` against KADID's raw level means (differs
        only for KADID's non-monotone Mean_Shift and Contrast Dist.); with ``q``: ``raw_q_srcc``,
        ``raw_q_plcc``; and ``cells``: the per-cell table as a list of dicts.
    """
    df = pd.DataFrame({"label": np.asarray(labels, float), "type_id": np.asarray(type_id).astype(int),
                       "level": np.asarray(level).astype(int)})
    if q is not None:
        df["q"] = np.asarray(q, float)
    df = df[(df.type_id > 0) & df.label.notna()]
    agg = {"label_mean": ("label", "mean"), "n_images": ("label", "size")}
    if q is not None:
        agg["q_mean"] = ("q", "mean")
    cells = df.groupby(["type_id", "level"], as_index=False).agg(**agg)
    cells = cells.merge(level_means[["type_id", "level", "mos_mean", "mos_target"]], on=["type_id", "level"],
                        how="inner")
    rep: dict = {"n_cells": int(len(cells))}

    def _agree(x: np.ndarray, y: np.ndarray, suffix: str) -> None:
        ok = len(x) >= 3 and np.std(x) > 0 and np.std(y) > 0
        rep[f"srcc{suffix}"] = float(stats.spearmanr(x, y)[0]) if ok else float("nan")
        rep[f"plcc{suffix}"] = float(stats.pearsonr(x, y)[0]) if ok else float("nan")
        rep[f"rmse{suffix}"] = float(np.sqrt(np.mean((x - y) ** 2))) if len(x) else float("nan")

    _agree(cells.label_mean.to_numpy(), cells.mos_target.to_numpy(), "")
    _agree(cells.label_mean.to_numpy(), cells.mos_mean.to_numpy(), "_kadid")
    if q is not None:
        ok = len(cells) >= 3
        rep["raw_q_srcc"] = float(stats.spearmanr(cells.q_mean, cells.mos_target)[0]) if ok else float("nan")
        rep["raw_q_plcc"] = float(stats.pearsonr(cells.q_mean, cells.mos_target)[0]) if ok else float("nan")
    rep["cells"] = cells.round(4).to_dict(orient="records")
    return rep
