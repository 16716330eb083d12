"""benchmarks/livec_heads.py: the kernel ridge head behaves as kernel ridge regression must."""
import numpy as np
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def heads():
    return load_benchmark("livec_heads")


def test_kernel_ridge_limits(heads):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.normal(size=30)
    # lambda -> 0 interpolates the training points; a huge lambda shrinks every prediction to the mean
    assert np.allclose(heads.KernelRidge(X, y, 1.0, 1e-9).predict(X), y, atol=1e-4)
    assert np.allclose(heads.KernelRidge(X, y, 1.0, 1e9).predict(rng.normal(size=(5, 4))), y.mean(), atol=1e-6)
    # far from every training point the kernel vanishes: the prediction is the mean
    assert heads.KernelRidge(X, y, 1.0, 0.1).predict(np.full((1, 4), 1e3))[0] == pytest.approx(y.mean())


def test_kernel_ridge_learns_a_nonlinear_map_a_linear_one_cannot(heads):
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(300, 2))
    y = np.exp(-np.sum(X ** 2, 1))          # a bump: no linear function of X ranks it
    Xt = rng.uniform(-2, 2, size=(200, 2))
    yt = np.exp(-np.sum(Xt ** 2, 1))
    g, lam, cv = heads.select_krr(X, y, [(0.3, 0.01), (3.0, 0.01)], seed=0)
    assert cv > 0.9
    assert spearmanr(heads.KernelRidge(X, y, g, lam).predict(Xt), yt)[0] > 0.95
    lin = np.c_[Xt, np.ones(len(Xt))] @ np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
    assert abs(spearmanr(lin, yt)[0]) < 0.3


def test_paired_difference_matches_a_one_sample_t_test(heads):
    import pandas as pd
    from scipy.stats import ttest_1samp

    g = pd.DataFrame({"srcc": [0.80, 0.82, 0.79, 0.85], "plcc": [0.81, 0.83, 0.80, 0.86]}, index=[1, 2, 3, 4])
    ref = pd.DataFrame({"srcc": [0.78, 0.80, 0.80, 0.81, 0.5], "plcc": [0.80, 0.80, 0.79, 0.85, 0.5]},
                       index=[1, 2, 3, 4, 9])                      # split 9 has no partner: left out
    text = heads.paired(g, ref)
    d = np.array([0.02, 0.02, -0.01, 0.04])
    ci = ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert f"dSRCC {d.mean():+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] (higher on 3 of 4)" in text
    assert "dPLCC +0.0150" in text and "(higher on 4 of 4)" in text.split("dPLCC")[1]   # 0.01, 0.03, 0.01, 0.01


def test_feature_matrix_puts_each_presets_cached_features_side_by_side(heads, monkeypatch, tmp_path):
    calls = []

    def fake(paths, cache, extractor=None, *, preset=None, **kw):
        calls.append((preset, str(cache)))
        return np.full((len(paths), 2 + len(calls)), float(len(calls)), np.float32)

    monkeypatch.setattr(heads, "cached_path_features", fake)
    X = heads.feature_matrix(["a.png", "b.png"], ["lite0-ml-linear", "lite2-ml-linear"], str(tmp_path))
    assert X.shape == (2, 3 + 4) and X.dtype == float
    assert (X[:, :3] == 1).all() and (X[:, 3:] == 2).all()
    assert calls == [("lite0-ml-linear", str(tmp_path / "livec.npz")),
                     ("lite2-ml-linear", str(heads.ROOT / "data" / "features-lite2-ml-linear" / "livec.npz"))]
