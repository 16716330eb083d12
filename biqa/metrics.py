"""Evaluation metrics for image quality assessment (docs/methods.md §6).

All functions are pure and take 1-D array-likes of equal length ``n >= 3``:

* ``pred``   -- model predictions, shape ``(n,)`` (any real scale),
* ``target`` -- subjective scores (MOS, or DMOS with ``higher_is_better=False``),
  shape ``(n,)``.

Inputs may be lists, numpy arrays or torch tensors (any device / float dtype;
they are detached and copied to float64 numpy). Arrays of shape ``(n, 1)`` or
``(1, n)`` are flattened; anything else that is not 1-D is rejected. NaN/inf,
length mismatch, fewer than 3 samples and (for correlations and fits) constant
input raise :class:`ValueError` with a clear message.

Metrics
-------
``srcc``         Spearman rank-order correlation (average ranks for ties), in [-1, 1].
``krcc``         Kendall rank correlation, tau-b (tie corrected), in [-1, 1].
``plcc``         Pearson linear correlation of raw predictions, in [-1, 1].
``rmse``         Root mean squared error of raw predictions (same scale as target), >= 0.
``plcc_fitted``  PLCC after the VQEG 4-parameter monotonic logistic mapping
                 (:func:`fit_logistic4`) of predictions onto the target scale, in [0, 1].
``rmse_fitted``  RMSE after the same mapping, >= 0, in target units.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "METRICS",
    "srcc",
    "krcc",
    "plcc",
    "rmse",
    "logistic4",
    "fit_logistic4",
    "plcc_fitted",
    "rmse_fitted",
    "bootstrap_ci",
    "evaluate_predictions",
]

#: Metric name -> ``higher_is_better`` (as torchmetrics' ``Metric.higher_is_better``).
#: Correlations are reported so that higher is better even for DMOS-style
#: targets (see :func:`evaluate_predictions`).
METRICS: dict[str, bool] = {
    "srcc": True,
    "krcc": True,
    "plcc": True,
    "rmse": False,
    "plcc_fitted": True,
    "rmse_fitted": False,
}

# Correlations whose sign depends on the orientation of the target scale.
# plcc_fitted is not among them: the logistic fit has free b1, b2, so it absorbs
# the orientation and corr(mapped, target) is >= 0 either way.
_SIGNED = ("srcc", "krcc", "plcc")

Metric = Callable[[Any, Any], float]

# Bound the working set of vectorised computations to ~ this many elements per chunk.
_CHUNK_ELEMS = 2_000_000


# ----------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------


def _to_numpy_1d(x: Any, name: str) -> np.ndarray:
    """Convert an array-like / torch tensor to a float64 1-D numpy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of real numbers: {exc}") from exc
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (shape (n,)), got shape {arr.shape}")
    return arr


def _check_pair(
    pred: Any, target: Any, *, nonconstant: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a (pred, target) pair; returns float64 arrays of shape (n,)."""
    p = _to_numpy_1d(pred, "pred")
    t = _to_numpy_1d(target, "target")
    if p.shape[0] != t.shape[0]:
        raise ValueError(
            f"pred and target must have the same length, got {p.shape[0]} and {t.shape[0]}"
        )
    if p.shape[0] < 3:
        raise ValueError(f"need at least 3 samples, got {p.shape[0]}")
    for arr, name in ((p, "pred"), (t, "target")):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{name} contains {int(bad.sum())} non-finite value(s) (NaN/inf), "
                f"first at index {int(np.flatnonzero(bad)[0])}"
            )
    if nonconstant:
        for arr, name in ((p, "pred"), (t, "target")):
            if np.all(arr == arr[0]):
                raise ValueError(
                    f"{name} is constant (all values {arr[0]!r}); correlation is undefined"
                )
    return p, t


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    yc = y - y.mean()
    den = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
    if den == 0.0:
        return float("nan")
    return float(np.clip(np.dot(xc, yc) / den, -1.0, 1.0))


# ----------------------------------------------------------------------------
# point metrics
# ----------------------------------------------------------------------------


def srcc(pred: Any, target: Any) -> float:
    """Spearman rank-order correlation coefficient in [-1, 1].

    Pearson correlation of the average ranks (ties get the mean of their ranks).
    """
    p, t = _check_pair(pred, target)
    return _pearson(stats.rankdata(p), stats.rankdata(t))


def krcc(pred: Any, target: Any) -> float:
    """Kendall rank correlation coefficient, tau-b (tie corrected), in [-1, 1].

    ``(C - D) / sqrt((n0 - n1) (n0 - n2))`` with ``C``/``D`` concordant/discordant
    pairs, ``n0 = n(n-1)/2`` and ``n1``/``n2`` pairs tied in pred/target.
    """
    p, t = _check_pair(pred, target)
    return float(stats.kendalltau(p, t, variant="b").statistic)


def plcc(pred: Any, target: Any) -> float:
    """Pearson linear correlation coefficient of raw predictions, in [-1, 1]."""
    p, t = _check_pair(pred, target)
    return _pearson(p, t)


def rmse(pred: Any, target: Any) -> float:
    """Root mean squared error ``sqrt(mean((pred - target)^2))`` of raw predictions.

    Only meaningful if ``pred`` is on the target scale; see :func:`rmse_fitted`.
    Constant inputs are allowed.
    """
    p, t = _check_pair(pred, target, nonconstant=False)
    return float(np.sqrt(np.mean((p - t) ** 2)))


# ----------------------------------------------------------------------------
# VQEG 4-parameter logistic
# ----------------------------------------------------------------------------


def logistic4(x: Any, b1: float, b2: float, b3: float, b4: float) -> np.ndarray | float:
    """VQEG 4-parameter monotonic logistic.

    ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``

    ``b2`` / ``b1`` are the lower / upper asymptotes (for ``b1 > b2`` the curve is
    increasing, otherwise decreasing), ``b3`` the midpoint and ``|b4|`` the scale.
    Evaluated with :func:`scipy.special.expit`, so large arguments do not overflow.
    ``x``: scalar or array of any shape; returns the same shape (float for scalars).
    """
    xa = np.asarray(x, dtype=np.float64)
    scale = max(abs(float(b4)), np.finfo(np.float64).tiny)
    out = (b1 - b2) * special.expit((xa - b3) / scale) + b2
    return float(out) if out.ndim == 0 else out


# If the logistic cannot be fitted (or fits worse than a straight line), the
# linear least-squares fit is returned expressed as logistic4 parameters: a
# logistic whose scale is _LINEAR_SCALE times the prediction range is linear on
# that range up to a relative error of about (1 / _LINEAR_SCALE)^2 / 12.
_LINEAR_SCALE = 1.0e3


def _grid_start(z: np.ndarray, t: np.ndarray) -> tuple[float, float, float, float] | None:
    """Data-driven starting point for the logistic fit (standardised predictions z).

    For fixed midpoint b3 and scale b4 the logistic is linear in (b1 - b2, b2), so the
    least-squares asymptotes are closed-form (variable projection). Scan a grid of
    (b3, b4) covering and extending beyond the data range (a far-away midpoint gives
    the convex/concave tails, e.g. exponential-looking data) and return the best
    ``(b1, b2, b3, b4)``, or None if nothing is usable.
    """
    n = z.size
    zlo, zhi = float(z.min()), float(z.max())
    span = zhi - zlo
    b3 = np.linspace(zlo - span, zhi + span, 31)
    b4 = np.geomspace(span / 200.0, 2.0 * span, 20)
    B3, B4 = (a.ravel() for a in np.meshgrid(b3, b4, indexing="ij"))
    tc = t - t.mean()
    best_score, best = -np.inf, None
    chunk = max(1, _CHUNK_ELEMS // (4 * n))
    for s0 in range(0, B3.size, chunk):
        c3, c4 = B3[s0 : s0 + chunk, None], B4[s0 : s0 + chunk, None]
        S = special.expit((z[None, :] - c3) / c4)  # (K, n)
        sm = S.mean(axis=1, keepdims=True)
        Sc = S - sm
        sss = np.einsum("kn,kn->k", Sc, Sc)
        sst = Sc @ tc
        ok = sss > 1e-12 * n
        score = np.where(ok, sst**2 / np.where(ok, sss, 1.0), -np.inf)  # SSE reduction
        k = int(np.argmax(score))
        if score[k] > best_score:
            amp = sst[k] / sss[k]  # b1 - b2
            low = float(t.mean() - amp * sm[k, 0])  # b2
            best_score = float(score[k])
            best = (low + float(amp), low, float(c3[k, 0]), float(c4[k, 0]))
    return best


def _fit_logistic4(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Fit on validated arrays; returns (params (4,), mapped (n,), method)."""
    # Work on standardised predictions for conditioning, map parameters back after.
    mu = float(p.mean())
    sd = float(p.std())
    z = (p - mu) / sd

    def sse(mapped: np.ndarray) -> float:
        r = mapped - t
        return float(np.dot(r, r))

    # Linear reference fit (always available).
    slope, intercept = np.polyfit(z, t, 1)
    best_sse = sse(slope * z + intercept)
    best_z: tuple[float, ...] | None = None

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        candidates: list[tuple[float, ...]] = []
        start = _grid_start(z, t)
        if start is not None:
            candidates.append(start)
            if p.size >= 5:  # refine all 4 parameters (needs more points than parameters)
                try:
                    popt, _ = optimize.curve_fit(logistic4, z, t, p0=start, maxfev=2000)
                    candidates.append(tuple(float(v) for v in popt))
                except (RuntimeError, ValueError, TypeError, optimize.OptimizeWarning):
                    pass
        for cand in candidates:
            if not np.all(np.isfinite(cand)):
                continue
            s = sse(logistic4(z, *cand))
            # prefer the logistic unless it is worse than the straight line
            if np.isfinite(s) and s <= best_sse * (1.0 + 1e-9) + 1e-300:
                best_sse, best_z = s, cand

    if best_z is not None:
        b1, b2, b3z, b4z = best_z
        params = np.array([b1, b2, mu + sd * b3z, sd * abs(b4z)])
        mapped = logistic4(p, *params)
        if np.all(np.isfinite(mapped)):
            return params, mapped, "logistic"

    # Linear fallback as a (nearly linear) logistic: around b3 the logistic is
    # (b1 + b2) / 2 + (b1 - b2) (x - b3) / (4 |b4|).
    a = float(slope) / sd  # slope in original units
    mid = float(intercept)  # value of the line at x = mu (z = 0)
    b4 = _LINEAR_SCALE * float(np.ptp(p))
    half = 2.0 * b4 * a  # (b1 - b2) / 2
    params = np.array([mid + half, mid - half, mu, b4])
    mapped = a * (p - mu) + mid
    return params, mapped, "linear"


def fit_logistic4(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Fit the VQEG monotonic logistic mapping predictions onto the target scale.

    Least squares on standardised predictions: a grid search over midpoint and
    scale with closed-form asymptotes gives the starting point, refined by
    :func:`scipy.optimize.curve_fit` (skipped for n < 5). If the fit fails, or
    does not beat a straight line, the linear least-squares fit is used,
    expressed as logistic4 parameters with a very large scale ``|b4|`` (exactly
    linear up to ~1e-7 relative error on the prediction range).

    Args:
        pred: predictions, shape (n,), n >= 3, finite, not constant.
        target: subjective scores, shape (n,), finite, not constant.

    Returns:
        ``(params, mapped_pred)``: ``params`` float64 array ``[b1, b2, b3, b4]``
        (``b4 > 0``) in the original prediction units, and ``mapped_pred``, shape
        (n,), the predictions mapped onto the target scale.

    Never raises for valid (finite, non-constant, equal-length) input.
    """
    p, t = _check_pair(pred, target)
    params, mapped, _ = _fit_logistic4(p, t)
    return params, mapped


def plcc_fitted(pred: Any, target: Any) -> float:
    """PLCC between logistic-mapped predictions and target, in [0, 1].

    Orientation-free: the fit absorbs a decreasing relationship. Returns 0.0 in the
    degenerate case where the best fit is constant (predictions carry no
    information on the target).
    """
    p, t = _check_pair(pred, target)
    _, mapped, _ = _fit_logistic4(p, t)
    r = _pearson(mapped, t)
    return 0.0 if math.isnan(r) else r


def rmse_fitted(pred: Any, target: Any) -> float:
    """RMSE between logistic-mapped predictions and target (target units), >= 0."""
    p, t = _check_pair(pred, target)
    _, mapped, _ = _fit_logistic4(p, t)
    return float(np.sqrt(np.mean((mapped - t) ** 2)))


# ----------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------

def _resample_indices(n: int, n_boot: int, seed: int | None) -> np.ndarray:
    """Bootstrap indices, shape (n_boot, n), drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Multiplicity of each sample in each resample: (B, n) int -> (B, n) float64."""
    b = idx.shape[0]
    flat = (idx + (np.arange(b)[:, None] * n)).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


class _RankPlan:
    """Precomputed sort order / tie groups of one variable, for resampled ranks."""

    def __init__(self, x: np.ndarray) -> None:
        self.order = np.argsort(x, kind="stable")
        xs = x[self.order]
        starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
        self.starts = starts
        # group id of each sorted position
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, x.size]))
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(x.size)
        self.item_group = group[inverse]  # group id of each original sample

    def ranks(self, counts: np.ndarray) -> np.ndarray:
        """Average ranks (1-based, ties averaged) of every original sample within
        each resample described by ``counts`` (B, n); returns (B, n) float64.

        Equals ``scipy.stats.rankdata(x[idx], axis=1)`` mapped back to the
        original samples (samples with count 0 get a harmless, unused value).
        """
        gsum = np.add.reduceat(counts[:, self.order], self.starts, axis=1)  # (B, G)
        grank = np.cumsum(gsum, axis=1) - (gsum - 1.0) / 2.0
        return grank[:, self.item_group]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation with integer weights w; all (B, n) -> (B,)."""
    sw = w.sum(axis=1, keepdims=True)
    xc = x - (w * x).sum(axis=1, keepdims=True) / sw
    yc = y - (w * y).sum(axis=1, keepdims=True) / sw
    sxy = (w * xc * yc).sum(axis=1)
    sxx = (w * xc * xc).sum(axis=1)
    syy = (w * yc * yc).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    # constant resamples: the centred sums are pure rounding noise -> undefined
    const_x = sxx <= 1e-24 * (w * x * x).sum(axis=1)
    const_y = syy <= 1e-24 * (w * y * y).sum(axis=1)
    r[const_x | const_y] = np.nan
    return np.clip(r, -1.0, 1.0)


def _boot_values_vectorised(name: str, p: np.ndarray, t: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Statistic on every resample for the vectorisable metrics; returns (B,)."""
    n = p.size
    chunk = max(1, _CHUNK_ELEMS // n)
    plan_p = _RankPlan(p) if name == "srcc" else None
    plan_t = _RankPlan(t) if name == "srcc" else None
    out = np.empty(idx.shape[0])
    for s in range(0, idx.shape[0], chunk):
        c = _counts(idx[s : s + chunk], n)
        if name == "srcc":
            assert plan_p is not None and plan_t is not None
            out[s : s + chunk] = _weighted_pearson(plan_p.ranks(c), plan_t.ranks(c), c)
        elif name == "plcc":
            bp = np.broadcast_to(p, c.shape)
            bt = np.broadcast_to(t, c.shape)
            out[s : s + chunk] = _weighted_pearson(bp, bt, c)
        elif name == "rmse":
            out[s : s + chunk] = np.sqrt(c @ ((p - t) ** 2) / n)
        else:  # pragma: no cover - guarded by caller
            raise KeyError(name)
    return out


_VECTORISED: dict[Metric, str] = {srcc: "srcc", plcc: "plcc", rmse: "rmse"}


def _boot_values(fn: Metric, p: np.ndarray, t: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Statistic ``fn`` on every resample ``idx`` (B, n); failures -> NaN; returns (B,)."""
    name = _VECTORISED.get(fn)
    if name is not None:
        return _boot_values_vectorised(name, p, t, idx)
    out = np.full(idx.shape[0], np.nan)
    for i, row in enumerate(idx):
        try:
            out[i] = float(fn(p[row], t[row]))
        except ValueError:  # e.g. a (rare) constant resample
            pass
    return out


def _percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    vals = values[np.isfinite(values)]
    if vals.size == 0:
        warnings.warn("bootstrap: statistic undefined on every resample", RuntimeWarning, stacklevel=3)
        return float("nan"), float("nan")
    if vals.size < 0.9 * values.size:
        warnings.warn(
            f"bootstrap: statistic undefined on {values.size - vals.size} of {values.size} "
            "resamples (e.g. constant resamples); they were dropped",
            RuntimeWarning,
            stacklevel=3,
        )
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(vals, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(lo), float(hi)


def _check_boot_args(n_boot: int, level: float) -> None:
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def bootstrap_ci(
    fn: Metric,
    pred: Any,
    target: Any,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``fn(pred, target)``.

    Resamples the n (pred, target) pairs with replacement ``n_boot`` times
    (indices from ``numpy.random.default_rng(seed)``, so results are deterministic
    for a given seed) and returns the ``(1 - level) / 2`` and ``(1 + level) / 2``
    percentiles of the statistic. :func:`srcc`, :func:`plcc` and :func:`rmse` are
    computed for all resamples at once (resample multiplicities as weights, O(B n),
    no sorting per resample); any other callable is evaluated per resample. Resamples
    on which the statistic is undefined (``ValueError``/NaN, e.g. constant) are
    dropped, with a ``RuntimeWarning`` if more than 10 % are.

    Args:
        fn: metric ``fn(pred, target) -> float``.
        pred, target: shape (n,), n >= 3, finite.
        n_boot: number of resamples (>= 1).
        level: confidence level in (0, 1).
        seed: seed for the resampling RNG.

    Returns:
        ``(low, high)`` floats (NaN if the statistic was undefined on every resample).
    """
    _check_boot_args(n_boot, level)
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1 for bootstrap_ci")
    p, t = _check_pair(pred, target, nonconstant=False)
    fn(p, t)  # surface fn's own errors on the full sample (e.g. constant input)
    idx = _resample_indices(p.size, int(n_boot), seed)
    return _percentile_ci(_boot_values(fn, p, t, idx), level)


# ----------------------------------------------------------------------------
# all-in-one evaluation
# ----------------------------------------------------------------------------


def evaluate_predictions(
    pred: Any,
    target: Any,
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    higher_is_better: bool = True,
    level: float = 0.95,
    refit_bootstrap: bool = False,
) -> dict[str, Any]:
    """Compute every metric in :data:`METRICS` with percentile bootstrap CIs.

    Args:
        pred: predictions, shape (n,), higher = better quality.
        target: subjective scores, shape (n,). ``higher_is_better=True`` for MOS;
            ``False`` for DMOS-style targets where lower means better quality.
        n_boot: bootstrap resamples; 0 skips the bootstrap (CIs are NaN).
        seed: bootstrap seed; all metrics share the same resamples.
        higher_is_better: orientation of ``target``. If False, SRCC, KRCC and
            PLCC (value and CI) are reported with their sign flipped, so a good
            model is positive on either scale. ``plcc_fitted`` needs no flip (the
            fitted logistic is decreasing then) and RMSE values are unaffected.
        level: confidence level of the CIs.
        refit_bootstrap: if False (default, fast) the CIs of ``plcc_fitted`` /
            ``rmse_fitted`` resample (mapped prediction, target) pairs using the
            logistic fitted once on all data, i.e. they are conditional on that
            fit; if True the logistic is refitted on every resample (slow).

    Returns:
        ``{metric: {"value", "ci_low", "ci_high"}}`` for each metric in
        :data:`METRICS` (floats), plus ``"n"`` (int), ``"n_boot"``, ``"level"``,
        ``"seed"``, ``"higher_is_better"``, ``"logistic_params"`` (list of 4
        floats ``[b1, b2, b3, b4]``) and ``"fit"`` (``"logistic"`` or ``"linear"``
        when the logistic fit fell back to a straight line).
    """
    _check_boot_args(n_boot, level)
    p, t = _check_pair(pred, target)
    params, mapped, method = _fit_logistic4(p, t)

    values: dict[str, float] = {
        "srcc": _pearson(stats.rankdata(p), stats.rankdata(t)),
        "krcc": float(stats.kendalltau(p, t, variant="b").statistic),
        "plcc": _pearson(p, t),
        "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
        "plcc_fitted": _pearson(mapped, t),
        "rmse_fitted": float(np.sqrt(np.mean((mapped - t) ** 2))),
    }
    if math.isnan(values["plcc_fitted"]):
        values["plcc_fitted"] = 0.0

    cis: dict[str, tuple[float, float]] = {}
    if n_boot > 0:
        idx = _resample_indices(p.size, int(n_boot), seed)
        cis["srcc"] = _percentile_ci(_boot_values(srcc, p, t, idx), level)
        cis["krcc"] = _percentile_ci(_boot_values(krcc, p, t, idx), level)
        cis["plcc"] = _percentile_ci(_boot_values(plcc, p, t, idx), level)
        cis["rmse"] = _percentile_ci(_boot_values(rmse, p, t, idx), level)
        if refit_bootstrap:
            cis["plcc_fitted"] = _percentile_ci(_boot_values(plcc_fitted, p, t, idx), level)
            cis["rmse_fitted"] = _percentile_ci(_boot_values(rmse_fitted, p, t, idx), level)
        else:
            cis["plcc_fitted"] = _percentile_ci(_boot_values(plcc, mapped, t, idx), level)
            cis["rmse_fitted"] = _percentile_ci(_boot_values(rmse, mapped, t, idx), level)
    else:
        cis = {k: (float("nan"), float("nan")) for k in METRICS}

    result: dict[str, Any] = {}
    for name in METRICS:
        v = values[name]
        lo, hi = cis[name]
        if not higher_is_better and name in _SIGNED:
            v, lo, hi = -v, -hi, -lo
        result[name] = {"value": float(v), "ci_low": float(lo), "ci_high": float(hi)}
    result.update(
        n=int(p.size),
        n_boot=int(n_boot),
        level=float(level),
        seed=seed,
        higher_is_better=bool(higher_is_better),
        logistic_params=[float(v) for v in params],
        fit=method,
    )
    return result
