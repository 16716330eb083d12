"""Maximum-entropy opinion-score distributions (NIMA labels from MOS mean and std)."""
from __future__ import annotations

import numpy as np
import pytest

from biqa.labels import feasible_std_band, max_entropy_distribution

S = np.arange(1, 11, dtype=float)


def moments(p):
    m = (p * S).sum(-1)
    return m, np.sqrt((p * (S - m[..., None]) ** 2).sum(-1))


def entropy(p):
    q = np.clip(p, 1e-300, None)
    return -(p * np.log(q)).sum(-1)


def feasible_grid(n_mu=40, n_sd=15, margin=0.01):
    mus, sds = [], []
    for mu in np.linspace(1.02, 9.98, n_mu):
        lo, hi = feasible_std_band(mu, margin=margin)
        for sd in np.linspace(lo, hi, n_sd):
            mus.append(mu)
            sds.append(sd)
    return np.array(mus), np.array(sds)


def test_moments_match_over_the_feasible_band():
    mu, sd = feasible_grid()
    p = max_entropy_distribution(mu, sd)
    assert p.shape == (len(mu), 10)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    assert (p >= 0).all()
    m, s = moments(p)
    assert np.abs(m - mu).max() < 1e-4
    assert np.abs(s - sd).max() < 1e-4


def test_entropy_beats_other_distributions_with_the_same_moments():
    """Perturb along the null space of the constraints (sum, mean, second moment):
    every feasible perturbation must lower the entropy."""
    rng = np.random.default_rng(0)
    A = np.stack([np.ones(10), S, S**2])  # constraints A p = const
    _, _, vt = np.linalg.svd(A)
    null = vt[3:]  # 7 directions that keep all three moments
    for mu, sd in [(5.5, 1.5), (3.2, 0.9), (7.7, 2.1), (2.0, 0.6), (8.9, 1.2)]:
        p = max_entropy_distribution([mu], [sd])[0]
        h = entropy(p)
        tried = 0
        for _ in range(300):
            d = null.T @ rng.normal(size=7)
            d *= 0.9 * np.min(p / np.maximum(np.abs(d), 1e-300))  # keeps q = p + t d >= 0 for t <= 1
            q = p + d * rng.uniform(0.05, 1.0)
            if (q < 0).any():
                continue
            tried += 1
            np.testing.assert_allclose(A @ q, A @ p, atol=1e-9)
            assert entropy(q) < h + 1e-12
        assert tried >= 100


def test_has_the_exponential_family_form():
    p = max_entropy_distribution([4.3], [1.7])[0]
    # log p must be a quadratic in s: second differences constant
    d2 = np.diff(np.log(p), 2)
    np.testing.assert_allclose(d2, d2.mean(), atol=1e-8)


@pytest.mark.parametrize("mu,sd", [(1.0, 0.0), (10.0, 0.0), (5.0, 0.0), (1.0, 3.0), (10.0, 1e-9),
                                   (5.5, 100.0), (6.3, 0.0), (1.5, 4.5)])
def test_boundary_cases_are_finite(mu, sd):
    p = max_entropy_distribution([mu], [sd], warn=False)
    assert np.isfinite(p).all() and abs(p.sum() - 1) < 1e-9 and (p >= 0).all()
    m, _ = moments(p)
    assert abs(m[0] - np.clip(mu, 1, 10)) < 1e-3


def test_infeasible_std_is_clamped_inside_the_band():
    lo, hi = feasible_std_band(5.5)
    p = max_entropy_distribution([5.5, 5.5], [0.0, 50.0], warn=False)
    _, s = moments(p)
    assert lo[()] - 1e-6 <= s[0] < 0.6 and 4.0 < s[1] <= hi[()] + 1e-6


def test_rejects_nan():
    with pytest.raises(ValueError, match="finite"):
        max_entropy_distribution([np.nan], [1.0])
