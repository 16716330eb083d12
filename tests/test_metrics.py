"""Tests for biqa.metrics against scipy.stats and independent brute-force references."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats as ss
import torch

from biqa import metrics as M

# ----------------------------------------------------------------------------
# independent brute-force references (no scipy, no library code)
# ----------------------------------------------------------------------------


def _avg_ranks_bruteforce(x: np.ndarray) -> np.ndarray:
    """1-based average ranks by O(n^2) counting: 1 + #less + (#equal - 1) / 2."""
    x = np.asarray(x, dtype=float)
    less = (x[None, :] < x[:, None]).sum(axis=1)
    equal = (x[None, :] == x[:, None]).sum(axis=1)
    return 1.0 + less + (equal - 1) / 2.0


def srcc_ref(p, t) -> float:
    return float(np.corrcoef(_avg_ranks_bruteforce(p), _avg_ranks_bruteforce(t))[0, 1])


def krcc_ref(p, t) -> float:
    """Kendall tau-b by counting every pair."""
    n = len(p)
    conc = disc = tie_p = tie_t = 0
    for i in range(n):
        for j in range(i + 1, n):
            dp = np.sign(p[i] - p[j])
            dt = np.sign(t[i] - t[j])
            if dp == 0:
                tie_p += 1
            if dt == 0:
                tie_t += 1
            if dp * dt > 0:
                conc += 1
            elif dp * dt < 0:
                disc += 1
    n0 = n * (n - 1) / 2
    return (conc - disc) / math.sqrt((n0 - tie_p) * (n0 - tie_t))


def plcc_ref(p, t) -> float:
    p = [float(v) for v in p]
    t = [float(v) for v in t]
    mp, mt = sum(p) / len(p), sum(t) / len(t)
    sxy = sum((a - mp) * (b - mt) for a, b in zip(p, t))
    sxx = sum((a - mp) ** 2 for a in p)
    syy = sum((b - mt) ** 2 for b in t)
    return sxy / math.sqrt(sxx * syy)


def _data(seed: int, n: int = 40, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.normal(size=n)
    t = 0.6 * p + 0.8 * rng.normal(size=n)
    if ties:  # few distinct levels -> many ties in both
        p = np.round(p * 2) / 2
        t = np.round(t)
    return p, t


# ----------------------------------------------------------------------------
# correlations and RMSE
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_bruteforce_and_scipy(seed: int, ties: bool) -> None:
    p, t = _data(seed, n=35, ties=ties)
    if ties:
        assert len(np.unique(p)) < len(p) and len(np.unique(t)) < len(t)
    assert M.srcc(p, t) == pytest.approx(srcc_ref(p, t), abs=1e-12)
    assert M.srcc(p, t) == pytest.approx(ss.spearmanr(p, t).statistic, abs=1e-12)
    assert M.krcc(p, t) == pytest.approx(krcc_ref(p, t), abs=1e-12)
    assert M.krcc(p, t) == pytest.approx(ss.kendalltau(p, t).statistic, abs=1e-12)
    assert M.plcc(p, t) == pytest.approx(plcc_ref(p, t), abs=1e-12)
    assert M.plcc(p, t) == pytest.approx(ss.pearsonr(p, t).statistic, abs=1e-12)
    assert M.rmse(p, t) == pytest.approx(math.sqrt(sum((a - b) ** 2 for a, b in zip(p, t)) / len(p)))


def test_hand_computed_example() -> None:
    p = [1, 2, 3, 4, 5]
    t = [1, 3, 2, 5, 4]
    # d = (0, 1, 1, 1, 1): 1 - 6 * 4 / (5 * 24) = 0.8
    assert M.srcc(p, t) == pytest.approx(0.8)
    # 10 pairs, discordant (2,3) and (4,5): (8 - 2) / 10
    assert M.krcc(p, t) == pytest.approx(0.6)
    assert M.plcc(p, t) == pytest.approx(0.8)
    assert M.rmse(p, t) == pytest.approx(math.sqrt(4 / 5))
    # tau-b with ties: p has one tied pair, t none: C=5, D=0, n0=6 -> 5 / sqrt(5 * 6)
    assert M.krcc([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    assert M.srcc(p, [-v for v in t]) == pytest.approx(-0.8)


def test_accepts_torch_lists_and_column_vectors() -> None:
    p, t = _data(3)
    ref = M.srcc(p, t)
    assert M.srcc(torch.tensor(p, dtype=torch.float32), torch.tensor(t)) == pytest.approx(ref, abs=1e-6)
    assert M.srcc(list(p), tuple(t)) == pytest.approx(ref)
    assert M.plcc(p[:, None], t[None, :]) == pytest.approx(M.plcc(p, t))
    assert isinstance(M.srcc(p, t), float)
    assert isinstance(M.rmse(torch.tensor(p, dtype=torch.bfloat16), t), float)


def test_perfect_and_reversed() -> None:
    x = np.linspace(0, 1, 20)
    y = np.exp(3 * x)  # monotone, nonlinear
    assert M.srcc(x, y) == pytest.approx(1.0)
    assert M.krcc(x, y) == pytest.approx(1.0)
    assert M.srcc(x, -y) == pytest.approx(-1.0)
    assert M.plcc(x, 2 * x + 1) == pytest.approx(1.0)
    assert M.rmse(x, x) == 0.0


# ----------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [M.srcc, M.krcc, M.plcc, M.rmse, M.plcc_fitted, M.rmse_fitted, M.fit_logistic4])
def test_bad_input_errors(fn) -> None:
    with pytest.raises(ValueError, match="same length"):
        fn([1, 2, 3, 4], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 3"):
        fn([1, 2], [2, 1])
    with pytest.raises(ValueError, match="non-finite"):
        fn([1, 2, np.nan, 4], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="non-finite"):
        fn([1, 2, 3, 4], [1, np.inf, 3, 4])
    with pytest.raises(ValueError, match="1-D"):
        fn(np.ones((3, 3)), np.ones((3, 3)))


@pytest.mark.parametrize("fn", [M.srcc, M.krcc, M.plcc, M.plcc_fitted, M.rmse_fitted, M.evaluate_predictions])
def test_constant_input_errors(fn) -> None:
    with pytest.raises(ValueError, match="pred is constant"):
        fn([2, 2, 2, 2], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="target is constant"):
        fn([1, 2, 3, 4], [5, 5, 5, 5])


def test_rmse_allows_constant() -> None:
    assert M.rmse([1, 1, 1], [1, 2, 3]) == pytest.approx(math.sqrt(5 / 3))


def test_bootstrap_argument_errors() -> None:
    p, t = _data(0)
    with pytest.raises(ValueError, match="level"):
        M.bootstrap_ci(M.srcc, p, t, level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        M.bootstrap_ci(M.srcc, p, t, n_boot=0)
    with pytest.raises(ValueError, match="n_boot"):
        M.evaluate_predictions(p, t, n_boot=-1)


# ----------------------------------------------------------------------------
# logistic
# ----------------------------------------------------------------------------


def test_logistic4_shape_and_values() -> None:
    assert M.logistic4(3.0, 5.0, 1.0, 3.0, 2.0) == pytest.approx(3.0)  # midpoint
    x = np.linspace(-50, 50, 101)
    y = M.logistic4(x, 5.0, 1.0, 0.0, 2.0)
    assert y.shape == x.shape
    assert np.all(np.diff(y) >= 0) and y[0] == pytest.approx(1.0) and y[-1] == pytest.approx(5.0)
    # |b4|: sign of b4 does not matter; hand value at x = b3 + b4
    np.testing.assert_allclose(M.logistic4(x, 5, 1, 0, -2), y)
    assert M.logistic4(2.0, 5, 1, 0, 2) == pytest.approx(4 / (1 + math.exp(-1)) + 1)
    # no overflow for extreme arguments
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.logistic4(-1e6, 5, 1, 0, 1e-3) == pytest.approx(1.0)


@pytest.mark.parametrize("true", [(5.0, 1.0, 10.0, 1.5), (0.5, 80.0, -3.0, 0.7)])
def test_fit_recovers_parameters(true) -> None:
    rng = np.random.default_rng(0)
    b3, b4 = true[2], true[3]
    x = rng.uniform(b3 - 5 * b4, b3 + 5 * b4, size=300)
    y = M.logistic4(x, *true)
    params, mapped = M.fit_logistic4(x, y)
    assert params.shape == (4,)
    np.testing.assert_allclose(params, true, rtol=1e-4, atol=1e-6 * abs(true[0] - true[1]))
    np.testing.assert_allclose(mapped, y, atol=1e-6 * np.ptp(y))
    assert M.plcc_fitted(x, y) == pytest.approx(1.0, abs=1e-9)
    assert M.rmse_fitted(x, y) < 1e-5 * np.ptp(y)


def test_fit_invariant_to_prediction_scale() -> None:
    p, t = _data(4, n=200)
    _, m1 = M.fit_logistic4(p, t)
    _, m2 = M.fit_logistic4(1000.0 * p + 7.0, t)
    np.testing.assert_allclose(m1, m2, atol=1e-5 * np.ptp(t))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plcc_fitted_beats_raw_on_monotone_nonlinear(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=200)
    for y in (np.exp(1.2 * x), -np.exp(1.2 * x), np.tanh(2 * x) + 0.05 * rng.normal(size=200)):
        pf, pr = M.plcc_fitted(x, y), M.plcc(x, y)
        assert pf >= abs(pr) - 1e-12
        assert 0.0 <= pf <= 1.0
        # the fitted RMSE is never worse than the best straight line
        line = np.polyval(np.polyfit(x, y, 1), x)
        assert M.rmse_fitted(x, y) <= np.sqrt(np.mean((line - y) ** 2)) + 1e-9
    assert M.plcc_fitted(x, np.exp(1.2 * x)) > M.plcc(x, np.exp(1.2 * x)) + 0.05


def test_fit_never_raises_on_ordinary_data() -> None:
    rng = np.random.default_rng(5)
    cases = [
        (rng.normal(size=50), rng.normal(size=50)),  # no relation
        (np.array([0, 1, 0, 1, 1, 0, 1.0]), np.array([1, 3, 2, 4, 5, 1, 3.0])),  # binary pred
        (np.array([1, 2, 3.0]), np.array([3, 1, 2.0])),  # n = 3
        (rng.normal(size=100) * 1e-9 + 1e6, rng.uniform(0, 100, size=100)),  # badly scaled
        (np.round(rng.normal(size=80)), np.round(rng.normal(size=80))),  # heavy ties
    ]
    for p, t in cases:
        params, mapped = M.fit_logistic4(p, t)
        assert np.all(np.isfinite(params)) and np.all(np.isfinite(mapped))
        assert mapped.shape == p.shape
        assert np.isfinite(M.plcc_fitted(p, t)) and np.isfinite(M.rmse_fitted(p, t))
        # never worse than a constant (mean) predictor
        assert np.mean((mapped - t) ** 2) <= np.var(t) * (1 + 1e-9)


def test_fit_falls_back_to_linear(monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    p, t = _data(6, n=60)
    t = np.exp(t)  # clearly nonlinear
    # curve_fit failing alone: the grid-search start is still a valid logistic
    monkeypatch.setattr(M.optimize, "curve_fit", boom)
    line = np.polyval(np.polyfit(p, t, 1), p)
    _, mapped = M.fit_logistic4(p, t)
    assert np.mean((mapped - t) ** 2) < np.mean((line - t) ** 2)
    assert M.evaluate_predictions(p, t, n_boot=0)["fit"] == "logistic"
    # no logistic at all -> linear least squares
    monkeypatch.setattr(M, "_grid_start", lambda z, t: None)
    params, mapped = M.fit_logistic4(p, t)
    np.testing.assert_allclose(mapped, line, atol=1e-9 * np.ptp(t))
    # params describe (almost exactly) the same line as a logistic
    np.testing.assert_allclose(M.logistic4(p, *params), line, atol=1e-5 * np.ptp(t))
    assert M.plcc_fitted(p, t) == pytest.approx(abs(M.plcc(p, t)))
    assert M.evaluate_predictions(p, t, n_boot=0)["fit"] == "linear"


# ----------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [M.srcc, M.plcc, M.rmse])
@pytest.mark.parametrize("ties", [False, True])
def test_vectorised_bootstrap_equals_per_resample_loop(fn, ties: bool) -> None:
    p, t = _data(7, n=120, ties=ties)
    fast = M.bootstrap_ci(fn, p, t, n_boot=200, seed=3)
    slow = M.bootstrap_ci(lambda a, b: fn(a, b), p, t, n_boot=200, seed=3)  # not recognised -> loop
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", [M.srcc, M.krcc, M.plcc, M.rmse])
def test_bootstrap_contains_estimate_and_shrinks(fn) -> None:
    widths = []
    for n in (80, 2000):
        p, t = _data(8, n=n)
        lo, hi = M.bootstrap_ci(fn, p, t, n_boot=300, seed=0)
        assert lo <= fn(p, t) <= hi
        widths.append(hi - lo)
    # width ~ 1/sqrt(n): ratio ~5 expected
    assert widths[1] < widths[0] / 2.5


def test_bootstrap_deterministic_and_level() -> None:
    p, t = _data(9, n=150)
    a = M.bootstrap_ci(M.srcc, p, t, n_boot=300, seed=11)
    b = M.bootstrap_ci(M.srcc, p, t, n_boot=300, seed=11)
    c = M.bootstrap_ci(M.srcc, p, t, n_boot=300, seed=12)
    assert a == b and a != c
    lo50, hi50 = M.bootstrap_ci(M.srcc, p, t, n_boot=300, seed=11, level=0.5)
    assert a[0] < lo50 < hi50 < a[1]
    assert M.evaluate_predictions(p, t, n_boot=100, seed=1) == M.evaluate_predictions(p, t, n_boot=100, seed=1)


def test_bootstrap_warns_on_degenerate_resamples() -> None:
    # n = 3 with a tied pair: ~1/3 of resamples have a constant pred
    with pytest.warns(RuntimeWarning, match="undefined"):
        lo, hi = M.bootstrap_ci(M.srcc, [0, 0, 1], [1, 2, 3], n_boot=200)
    assert -1.0 <= lo <= hi <= 1.0


# ----------------------------------------------------------------------------
# evaluate_predictions
# ----------------------------------------------------------------------------


def test_evaluate_predictions_structure_and_values() -> None:
    p, t = _data(10, n=200)
    t = 3 + np.tanh(t)  # nonlinear MOS-like scale
    r = M.evaluate_predictions(p, t, n_boot=200, seed=0)
    assert r["n"] == 200 and r["higher_is_better"] is True
    assert set(M.METRICS) <= set(r)
    ref = {
        "srcc": M.srcc(p, t),
        "krcc": M.krcc(p, t),
        "plcc": M.plcc(p, t),
        "rmse": M.rmse(p, t),
        "plcc_fitted": M.plcc_fitted(p, t),
        "rmse_fitted": M.rmse_fitted(p, t),
    }
    for name, v in ref.items():
        assert r[name]["value"] == pytest.approx(v, abs=1e-12), name
        assert r[name]["ci_low"] <= r[name]["value"] <= r[name]["ci_high"], name
    np.testing.assert_allclose(M.logistic4(p, *r["logistic_params"]), M.fit_logistic4(p, t)[1])
    assert r["fit"] == "logistic"

    r0 = M.evaluate_predictions(p, t, n_boot=0)
    assert all(math.isnan(r0[k]["ci_low"]) and math.isnan(r0[k]["ci_high"]) for k in M.METRICS)
    assert r0["srcc"]["value"] == r["srcc"]["value"]


def test_evaluate_refit_bootstrap() -> None:
    p, t = _data(11, n=60)
    a = M.evaluate_predictions(p, t, n_boot=40, refit_bootstrap=True)
    b = M.evaluate_predictions(p, t, n_boot=40, refit_bootstrap=False)
    for k in ("plcc_fitted", "rmse_fitted"):
        assert a[k]["value"] == b[k]["value"]
        assert a[k]["ci_low"] <= a[k]["ci_high"]
    assert a["srcc"] == b["srcc"]


def test_higher_is_better_false_flips_correlations() -> None:
    p, mos = _data(12, n=150)
    dmos = 10.0 - mos  # lower = better
    good = M.evaluate_predictions(p, mos, n_boot=200, seed=0)
    flip = M.evaluate_predictions(p, dmos, n_boot=200, seed=0, higher_is_better=False)
    for k in ("srcc", "krcc", "plcc"):
        assert flip[k]["value"] > 0
        assert flip[k]["value"] == pytest.approx(good[k]["value"], abs=1e-12)
        assert flip[k]["ci_low"] == pytest.approx(good[k]["ci_low"], abs=1e-9)
        assert flip[k]["ci_high"] == pytest.approx(good[k]["ci_high"], abs=1e-9)
    # orientation-free metrics are unchanged by the flip
    for k in ("plcc_fitted", "rmse_fitted"):
        assert flip[k]["value"] == pytest.approx(good[k]["value"], rel=1e-6)
    assert flip["rmse"]["value"] == pytest.approx(M.rmse(p, dmos))
    # without the flag a good model on DMOS has negative correlations
    raw = M.evaluate_predictions(p, dmos, n_boot=0)
    assert raw["srcc"]["value"] == pytest.approx(-flip["srcc"]["value"])


def test_metrics_metadata() -> None:
    assert M.METRICS == {
        "srcc": True,
        "krcc": True,
        "plcc": True,
        "rmse": False,
        "plcc_fitted": True,
        "rmse_fitted": False,
    }
