"""biqa.noisefloor against what Immerkaer's estimator is known to give (the noise sigma of Gaussian noise
on a flat image, zero on a planar ramp, half the sigma after 2x2 averaging, a floor that textured parts do
not raise), its mask against a plain convolution, and its place in the lite0-mln presets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from biqa.noisefloor import NoiseFloor, noise_floor_features, second_difference
from conftest import load_benchmark

nf = load_benchmark("noise_floor")


def sigmas(img: np.ndarray) -> np.ndarray:
    """[floor 1x, mean 1x, floor 2x, mean 2x] as sigmas (the features are log1p of them)."""
    return np.expm1(noise_floor_features(torch.from_numpy(img[None, None].astype(np.float32))).numpy()[0])


def test_second_difference_is_immerkaers_mask():
    g = torch.randn(2, 1, 37, 23, dtype=torch.float64)
    mask = torch.tensor([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=torch.float64).view(1, 1, 3, 3)
    torch.testing.assert_close(second_difference(g), F.conv2d(g, mask))


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
    assert b[1] > 1.4 * a[1] and abs(b[0] - a[0]) < 0.05 * a[0]


@pytest.mark.parametrize("size", [(6, 6), (7, 40), (33, 65)])
def test_small_and_odd_sizes_give_finite_estimates(size):
    f = noise_floor_features(128 + 5 * torch.randn(1, 1, *size))
    assert f.shape == (1, 4) and torch.isfinite(f).all() and (f > 0).all()


def test_normalised_input_gives_the_luma_estimates():
    """The module sees (rgb / 255 - mean) / std; its estimates are those of the BT.601 luma (0-255), whose
    constant offset the mask annihilates. Grey noise: the luma is the grey level itself."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    rng = np.random.default_rng(2)
    grey = np.clip(128 + 7 * rng.standard_normal((96, 80)), 0, 255)
    rgb01 = torch.from_numpy(np.repeat(grey[None, None] / 255.0, 3, 1).astype(np.float32))
    x = (rgb01 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    got = NoiseFloor(std, repeat=3)(x)
    assert got.shape == (1, 12)
    want = torch.from_numpy(np.log1p(sigmas(grey))).float()
    for k in range(3):
        torch.testing.assert_close(got[0, 4 * k:4 * k + 4], want, atol=2e-4, rtol=1e-4)


def test_mln_preset_appends_the_repeated_estimates_to_the_statistics():
    from biqa.models import create_model

    model = create_model("lite0-mln-linear").eval()
    plain = create_model("lite0-ml-linear").eval()
    plain.backbone.load_state_dict(model.backbone.state_dict(), strict=False)
    assert model.backbone.num_features == 1024 + 32 and "noise.luma_coef" not in model.state_dict()
    x = torch.randn(2, 3, 64, 72)
    with torch.no_grad():
        f, g = model.backbone(x), plain.backbone(x)
    torch.testing.assert_close(f[:, :1024], g)
    assert torch.equal(f[:, 1024:1028], f[:, 1052:])


def test_with_reps_repeats_only_the_noise_columns():
    A = np.arange(2 * 1056, dtype=float).reshape(2, 1056)
    assert nf.with_reps(A, 0).shape == (2, 1024)
    B = nf.with_reps(A, 3)
    assert B.shape == (2, 1036) and np.array_equal(B[:, 1024:1028], B[:, 1032:]) and np.array_equal(B[:, :1028], A[:, :1028])
