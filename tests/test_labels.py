"""Label scales and opinion-score distributions, against hand values and numpy/scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from biqa.labels import (
    LabelScale,
    bin_centres,
    distribution_moments,
    rebin_votes,
)


def test_label_scale_hand_values_and_round_trip():
    s = LabelScale(1.0, 5.0)
    np.testing.assert_allclose(s.normalise(np.array([1.0, 3.0, 5.0, 2.0])), [0.0, 0.5, 1.0, 0.25])
    np.testing.assert_allclose(s.denormalise(np.array([0.0, 0.5, 1.0])), [1.0, 3.0, 5.0])
    mos = np.random.default_rng(0).uniform(1, 5, 50)
    np.testing.assert_allclose(s.denormalise(s.normalise(mos)), mos, rtol=1e-12)
    t = torch.tensor([1.5, 4.5])
    assert torch.allclose(s.normalise(t), torch.tensor([0.125, 0.875]))


def test_label_scale_reversed_direction():
    # DMOS-style 0..100, lower is better: z stays higher-is-better.
    s = LabelScale(0.0, 100.0, higher_is_better=False)
    np.testing.assert_allclose(s.normalise(np.array([0.0, 25.0, 100.0])), [1.0, 0.75, 0.0])
    np.testing.assert_allclose(s.denormalise(np.array([1.0, 0.75, 0.0])), [0.0, 25.0, 100.0])
    dmos = np.random.default_rng(1).uniform(0, 100, 50)
    np.testing.assert_allclose(s.denormalise(s.normalise(dmos)), dmos, rtol=1e-12, atol=1e-10)
    # Better image (lower DMOS) -> larger z.
    assert s.normalise(10.0) > s.normalise(90.0)


def test_label_scale_dict_and_validation():
    s = LabelScale(0.0, 10.0, False)
    assert s.to_dict() == {"lo": 0.0, "hi": 10.0, "higher_is_better": False}
    assert LabelScale.from_dict(s.to_dict()) == s
    assert LabelScale.from_dict({"lo": 1, "hi": 5}) == LabelScale()
    with pytest.raises(ValueError, match="hi > lo"):
        LabelScale(5.0, 5.0)
    with pytest.raises(ValueError):
        LabelScale(5.0, 1.0)


def test_bin_centres():
    assert bin_centres(5).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(bin_centres()) == 10


def test_distribution_moments_vs_numpy():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(10) * 0.7, size=6)
    mean, std = distribution_moments(torch.tensor(probs, dtype=torch.float32))
    s = np.arange(1, 11)
    ref_mean = probs @ s
    ref_std = np.sqrt(((s[None, :] - ref_mean[:, None]) ** 2 * probs).sum(1))
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-4)


def test_distribution_moments_hand_values():
    onehot = torch.zeros(1, 10)
    onehot[0, 2] = 1.0
    uniform = torch.full((1, 10), 0.1)
    two = torch.tensor([[0.5, 0.0, 0.0, 0.5]])
    m, s = distribution_moments(torch.cat([onehot, uniform]))
    assert m.tolist() == pytest.approx([3.0, 5.5])
    assert s.tolist() == pytest.approx([0.0, math.sqrt((10**2 - 1) / 12)], abs=1e-5)
    m2, s2 = distribution_moments(two)
    assert float(m2) == pytest.approx(2.5) and float(s2) == pytest.approx(1.5)


def test_rebin_votes_5_to_10_hand_values():
    """KonIQ's votes 1..5 land at 1, 3.25, 5.5, 7.75, 10 on the 10 bins, split by closeness."""
    out = rebin_votes(np.eye(5), n_bins=10)
    want = np.zeros((5, 10))
    want[0, 0] = 1.0                              # vote 1 -> bin 1
    want[1, 2], want[1, 3] = 0.75, 0.25           # 3.25
    want[2, 4], want[2, 5] = 0.5, 0.5             # 5.5
    want[3, 6], want[3, 7] = 0.25, 0.75           # 7.75
    want[4, 9] = 1.0                              # vote 5 -> bin 10
    np.testing.assert_allclose(out, want, atol=1e-12)
    votes = np.array([[3, 0, 5, 2, 10], [1, 1, 1, 1, 1]], dtype=float)
    np.testing.assert_allclose(rebin_votes(votes, 10), (votes / votes.sum(1, keepdims=True)) @ want, atol=1e-12)


def test_rebin_votes_hand_values_and_1d():
    # 3 scores onto 2 bins: the middle score sits half-way
    np.testing.assert_allclose(rebin_votes([[1, 0, 0], [0, 1, 0], [0, 0, 4]], n_bins=2),
                               [[1, 0], [0.5, 0.5], [0, 1]], atol=1e-12)
    one = rebin_votes(np.array([2, 2]), n_bins=4)  # scores 1 and 2 -> bins 1 and 4
    assert one.shape == (1, 4)
    np.testing.assert_allclose(one[0], [0.5, 0, 0, 0.5])
    # Same number of bins: just normalised counts.
    v = np.array([[4, 1, 0, 5]])
    np.testing.assert_allclose(rebin_votes(v, n_bins=4), v / 10)


def test_rebin_votes_mean_maps_back_to_the_mos():
    """The score a NIMA head reports for a rebinned target, z = (mean - 1) / (N - 1) on the label range
    1..5, is the vote mean (MOS) itself: no 8/9 compression. Every vote on 5 gives MOS 5 exactly."""
    rng = np.random.default_rng(3)
    votes = rng.integers(0, 20, size=(50, 5)).astype(float) + 1
    votes[0] = [0, 0, 0, 0, 9]
    votes[1] = [7, 0, 0, 0, 0]
    out = rebin_votes(votes, n_bins=10)
    np.testing.assert_allclose(out.sum(1), 1.0)
    mos = (votes / votes.sum(1, keepdims=True)) @ np.arange(1, 6)
    mean_bins, _ = distribution_moments(torch.from_numpy(out))
    scale = LabelScale(1.0, 5.0)
    np.testing.assert_allclose(scale.denormalise((mean_bins.numpy() - 1) / 9), mos, atol=1e-9)
    assert float(mean_bins[0]) == pytest.approx(10.0) and float(mean_bins[1]) == pytest.approx(1.0)
