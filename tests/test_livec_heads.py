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
