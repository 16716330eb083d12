"""The mild implementations (biqa.synth.ranking.MILD_VARIANTS) and the recipe's "mild" ranking groups, checked
against hand-written references (a sampled Gaussian, the noise's measured spread, a point's centre of mass) and
against the main implementations they extend."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import MeanStdExtractor

from biqa.synth.ranking import GROUP_KINDS, MILD_VARIANTS, apply, implementations, ranking_groups


def _textured(seed=0, side=96, channels=3):
    """Flat 8 x 8 blocks of random colours (or greys: ``channels=1``) with a little noise."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.uniform(40, 215, (side // 8, side // 8, channels)), np.ones((8, 8, 1)))
    noisy = blocks + rng.normal(0, 3, (side, side, channels))
    return np.ascontiguousarray(np.broadcast_to(np.clip(noisy, 0, 255), (side, side, 3))).astype(np.uint8)


def _at(impl, img, t, seed=7):
    return apply(impl, img, t, np.random.default_rng(seed))


def test_mild_implementations_are_not_drawn_by_the_plain_groups():
    assert not set(MILD_VARIANTS) & set(implementations())
    src = [("a", _textured(side=160))]
    assert all(g.impl in implementations() for g in ranking_groups(src, 12, seed=3, crop=(64, 96)))
    mild = ranking_groups(src, 12, seed=3, crop=(64, 96), impls=tuple(MILD_VARIANTS))
    assert {g.impl for g in mild} <= set(MILD_VARIANTS)
    assert all(g.family == MILD_VARIANTS[g.impl][0] for g in mild)
    assert GROUP_KINDS["mild"] == (None, tuple(MILD_VARIANTS))  # untransformed crops


@pytest.mark.parametrize("impl", sorted(MILD_VARIANTS))
def test_mild_implementations_degrade_monotonically(impl):
    base = _textured()
    d = [np.abs(_at(impl, base, t).astype(float) - base).mean() for t in (0.6, 1.0, 2.0, 3.0, 4.0, 5.0, 5.4)]
    assert d[0] > 0 and all(a < b for a, b in zip(d, d[1:])), d


@pytest.mark.parametrize("impl", sorted(MILD_VARIANTS))
def test_mild_levels_are_milder_than_the_main_level_one(impl):
    """Level 1 of a mild implementation changes the photo less than level 1 of every main implementation of its
    family that the mild one extends (the same kind of change: JPEG, Gaussian noise, blur, motion blur). A grey
    photo: JPEG's chroma subsampling (drawn for mild_jpeg, 4:4:4 for pil_jpeg444) changes nothing on it."""
    main = {"mild_jpeg": ("synth_jpeg", "pil_jpeg444"), "mild_noise": ("synth_white_noise", "synth_white_noise_color"),
            "mild_blur": ("synth_gaussian_blur", "pil_gaussian_blur"), "mild_motion_blur": ("synth_motion_blur",)}
    base = _textured(1, channels=1)
    mild = np.abs(_at(impl, base, 1.0).astype(float) - base).mean()
    for other in main[impl]:
        assert implementations()[other] == MILD_VARIANTS[impl][0]
        assert mild < np.abs(_at(other, base, 1.0).astype(float) - base).mean(), other


def test_mild_blur_is_a_sampled_gaussian():
    """An impulse comes out as the outer product of a Gaussian sampled at the integers (std 0.45 px at level 1,
    1 px at level 5), truncated at 4 std and normalised."""
    img = np.zeros((21, 21, 3), np.uint8)
    img[10, 10] = 255
    for t, sigma in ((1.0, 0.45), (5.0, 1.0)):
        r = int(4 * sigma + 0.5)
        x = np.arange(-r, r + 1)
        g = np.exp(-x ** 2 / (2 * sigma ** 2))
        g /= g.sum()
        want = np.zeros((21, 21))
        want[10 - r:11 + r, 10 - r:11 + r] = 255 * np.outer(g, g)
        out = _at("mild_blur", img, t)
        assert np.abs(out[..., 0].astype(float) - want).max() <= 0.5 + 1e-6
        assert np.array_equal(out[..., 0], out[..., 2])


def test_mild_noise_has_the_stated_spread_on_luma_or_per_channel():
    flat = np.full((256, 256, 3), 128, np.uint8)
    modes = set()
    for seed in range(8):
        for t, std in ((1.0, 2.0), (5.0, 6.5)):
            diff = _at("mild_noise", flat, t, seed).astype(float) - 128
            assert abs(diff.std() - std) < 0.05 * std + 0.3, (t, diff.std())  # rounding adds 1/12 of variance
            assert abs(diff.mean()) < 0.1
        diff = _at("mild_noise", flat, 5.0, seed).astype(float) - 128
        same = np.array_equal(diff[..., 0], diff[..., 1]) and np.array_equal(diff[..., 1], diff[..., 2])
        modes.add(same)
        if not same:  # independent per channel
            assert abs(np.corrcoef(diff[..., 0].ravel(), diff[..., 1].ravel())[0, 1]) < 0.05
    assert modes == {True, False}  # both are drawn


def test_mild_motion_blur_keeps_flat_areas_and_does_not_shift():
    flat = np.full((32, 32, 3), 90, np.uint8)
    assert np.array_equal(_at("mild_motion_blur", flat, 3.0), flat)
    img = np.zeros((31, 31, 3), np.uint8)
    img[15, 15] = 255
    spreads = []
    for t in (1.0, 5.0):
        out = _at("mild_motion_blur", img, t)[..., 0].astype(float)
        assert abs(out.sum() - 255) < 255 * 0.05  # the kernel is normalised (up to rounding)
        yy, xx = np.mgrid[:31, :31]
        cy, cx = (out * yy).sum() / out.sum(), (out * xx).sum() / out.sum()
        assert abs(cy - 15) < 0.05 and abs(cx - 15) < 0.05  # point-symmetric: the centre stays
        spreads.append((out * ((yy - 15) ** 2 + (xx - 15) ** 2)).sum() / out.sum())
    assert spreads[1] > 2 * spreads[0]  # 4 px long at level 5 against 1.5 px at level 1


def test_mild_jpeg_is_pillow_at_quality_90_to_50():
    base = _textured(2)

    def pil(q, sub):
        buf = io.BytesIO()
        Image.fromarray(base).save(buf, format="JPEG", quality=q, subsampling=sub)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    for t, q in ((1.0, 90), (3.0, 70), (5.0, 50)):
        out = _at("mild_jpeg", base, t)
        assert any(np.array_equal(out, pil(q, sub)) for sub in (0, 2)), t


def test_recipe_mild_groups_draw_only_the_mild_implementations(tmp_path):
    from biqa.recipe import REFERENCE_SEEDS, add_reference_groups, build_ranking_set

    d = Path(tmp_path)
    for i, name in enumerate(("a", "b", "c")):
        Image.fromarray(_textured(i, side=160)).save(d / f"{name}.png")
    photos = sorted(d.glob("*.png"))
    fx = MeanStdExtractor()
    mild = build_ranking_set(photos[:2], [], 10, seed=9, extractor=fx, reference="mild", progress=False)
    assert set(mild.impl) <= set(MILD_VARIANTS) and len(set(mild.impl)) > 1
    with pytest.raises(ValueError, match="own implementations"):
        build_ranking_set(photos[:2], [], 2, extractor=fx, reference="mild", impls=["synth_jpeg"], progress=False)
    train = build_ranking_set(photos[:2], [], 8, seed=1, extractor=fx, progress=False)
    val = build_ranking_set(photos[2:], [], 4, seed=2, extractor=fx, progress=False)
    t2, v2 = add_reference_groups(train, val, (photos[:2], []), (photos[2:], []), 4, reference="mild", extractor=fx,
                                  cache_dir=tmp_path / "c", progress=False)
    assert (t2.n_groups, v2.n_groups) == (12, 6) and set(t2.impl[8:]) <= set(MILD_VARIANTS)
    assert REFERENCE_SEEDS["mild"] == (9, 10)
