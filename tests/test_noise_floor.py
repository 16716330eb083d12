"""benchmarks/noise_floor.py's features against what Immerkaer's estimator is known to give: the noise
sigma of Gaussian noise on a flat image, zero on a planar ramp, half the sigma after 2x2 averaging, and a
floor that textured parts of the photo do not raise."""
from __future__ import annotations

import numpy as np
import torch

from conftest import load_benchmark

nf = load_benchmark("noise_floor")


def sigmas(img: np.ndarray) -> np.ndarray:
    """[floor 1x, mean 1x, floor 2x, mean 2x] as sigmas (the features are log1p of them)."""
    x = torch.from_numpy(np.repeat(img[None, None], 3, 1).astype(np.float32))
    return np.expm1(nf.noise_features(x).numpy()[0])


def test_gaussian_noise_on_a_flat_image():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((512, 512))
    s10, s20 = sigmas(128 + 10 * noise), sigmas(128 + 20 * noise)
    assert abs(s10[1] - 10) < 0.3  # the mean over the image: unbiased for Gaussian noise
    assert abs(s10[3] - 5) < 0.2  # 2x2 averaging halves the noise's sigma
    assert 0.6 * 10 < s10[0] < 10  # the floor: the least of neighbouring 8x8 estimates, biased low
    np.testing.assert_allclose(s20, 2 * s10, rtol=1e-4)  # and every estimate is proportional to sigma


def test_a_planar_ramp_has_no_noise():
    yy, xx = np.mgrid[:256, :256]
    assert np.all(sigmas(20 + 0.3 * xx + 0.2 * yy) < 1e-3)


def test_sparse_texture_raises_the_mean_not_the_floor():
    """Texture on one 8x8 block in 16: every 4x4-block neighbourhood still has smooth blocks, so the floor
    (the mean of the neighbourhood minima) stays with the noise while the mean estimate rises."""
    rng = np.random.default_rng(1)
    flat = 128 + 4 * rng.standard_normal((512, 512))
    textured = flat.copy()
    for y in range(0, 512, 32):
        for x in range(0, 512, 32):
            textured[y:y + 8, x:x + 8] += 60 * (rng.random((8, 8)) > 0.5)
    a, b = sigmas(flat), sigmas(textured)
    assert b[1] > 1.4 * a[1] and abs(b[0] - a[0]) < 0.05 * a[0]  # measured: +50% and +3%


def test_with_reps_repeats_only_the_noise_columns():
    A = np.arange(2 * 1028, dtype=float).reshape(2, 1028)
    assert nf.with_reps(A, 0).shape == (2, 1024)
    B = nf.with_reps(A, 3)
    assert B.shape == (2, 1036) and np.array_equal(B[:, 1024:1028], B[:, 1032:]) and np.array_equal(B[:, :1028], A)
