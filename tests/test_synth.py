"""biqa.synth: the 25 KADID-10k distortions, FR labels + calibration, and the dataset builder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa.synth import (DISTORTIONS, Calibrator, build_synthetic_dataset, calibration_report, fr_quality,
                        fr_quality_batch, get_distortion, kadid_level_means, resolve_types, split_by_reference)
from biqa.synth.distortions import from_uint8, to_uint8

KADID = Path("/work/shared/data/labels/KADID-10k.txt")
needs_kadid = pytest.mark.skipif(not KADID.is_file(), reason="KADID-10k label file not available")

KADID_NAMES = ["GBLUR", "Lens_Blur", "Motion_Blur", "Color_Diffusion", "Color_Shift", "Color_Quantization",
               "Saturation_Dist._HSV", "Saturation_Dist._Lab", "JP2K", "JPEG", "AWGN", "AWGN_YCbCr",
               "Impulse_Noise", "Multiplicative_Noise", "Denoising", "Brighten", "Darken", "Mean_Shift", "Jitter",
               "Non-eccentricity_patch", "Pixelate", "Quantization", "Color_Block", "High_Sharpen",
               "Contrast Dist."]


def _natural(size: int, which: str = "astronaut") -> np.ndarray:
    """A natural test image: a Lanczos-downscaled skimage photo, centre square ``size`` px, float32 [0, 1]."""
    from skimage import data

    a = getattr(data, which)()
    big = int(size * 1.6)
    im = Image.fromarray(a).resize((big * a.shape[1] // a.shape[0], big), Image.LANCZOS)
    arr = np.asarray(im)
    y0, x0 = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return from_uint8(arr[y0:y0 + size, x0:x0 + size])


# ---------------------------------------------------------------------------------------------------
# distortions
# ---------------------------------------------------------------------------------------------------
def test_registry_has_the_25_kadid_types_in_order():
    assert len(DISTORTIONS) == 25
    ds = list(DISTORTIONS.values())
    assert [d.id for d in ds] == list(range(1, 26))
    assert [d.kadid_name for d in ds] == KADID_NAMES
    assert all(len(d.params) == 5 for d in ds)
    assert get_distortion("GBLUR") is get_distortion(1) is get_distortion("01") is DISTORTIONS["gaussian_blur"]
    assert [d.id for d in resolve_types(["jpeg", 1, "JP2K", "jpeg"])] == [1, 9, 10]
    with pytest.raises(KeyError):
        get_distortion("no_such_type")


@needs_kadid
def test_registry_names_match_the_kadid_file():
    df = pd.read_csv(KADID)
    ids = df["dis_img_path"].str.extract(r"I\d+_(\d+)_\d+\.png")[0].astype(int)
    names = dict(zip(ids, df["dis_type"]))
    assert {d.id: d.kadid_name for d in DISTORTIONS.values()} == names


def test_each_distortion_keeps_shape_range_dtype_and_is_deterministic():
    img = _natural(64)[:, :56]  # non-square on purpose
    for d in DISTORTIONS.values():
        for level in (1, 5):
            a = d(img, level, np.random.default_rng(7))
            b = d(img, level, np.random.default_rng(7))
            assert a.shape == img.shape and a.dtype == np.float32, d.key
            assert 0.0 <= a.min() and a.max() <= 1.0, d.key
            np.testing.assert_array_equal(a, b, err_msg=d.key)
            assert np.abs(a - img).mean() > 1e-4, f"{d.key} level {level} changed nothing"
        if d.random:
            c = d(img, 5, np.random.default_rng(8))
            assert not np.array_equal(c, d(img, 5, np.random.default_rng(7))), d.key


def test_distortion_input_validation():
    d = DISTORTIONS["jpeg"]
    img = _natural(32)
    with pytest.raises(ValueError):
        d(img, 0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        d(img, 6, np.random.default_rng(0))
    with pytest.raises(TypeError):
        d(to_uint8(img), 1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        d(img[..., :2], 1, np.random.default_rng(0))


def test_quality_decreases_monotonically_with_level_for_every_type():
    img = _natural(96)
    big = _natural(160)  # JPEG 2000 saturates at its strongest levels below ~128 px (codestream floor)
    failures = []
    for d in DISTORTIONS.values():
        ref = big if d.key == "jpeg2000" else img
        outs = np.stack([from_uint8(to_uint8(d(ref, lv, np.random.default_rng(3)))) for lv in range(1, 6)])
        q = fr_quality_batch(ref, outs)
        if not (np.all(np.diff(q) < 0) and q[0] < 1.0):
            failures.append((d.key, np.round(q, 4).tolist()))
    assert not failures, failures


def test_fr_quality_is_one_for_identical_images_and_symmetric_inputs_accepted():
    img = _natural(64)
    assert fr_quality(img, img) == pytest.approx(1.0, abs=1e-4)
    noisy = DISTORTIONS["white_noise"](img, 3, np.random.default_rng(0))
    q = fr_quality(img, noisy)
    assert 0.0 < q < 0.99
    assert fr_quality(to_uint8(img), to_uint8(noisy)) == pytest.approx(q, abs=0.01)  # uint8 accepted
    with pytest.raises(ValueError):
        fr_quality(img, noisy[:32])


# ---------------------------------------------------------------------------------------------------
# labels and calibration
# ---------------------------------------------------------------------------------------------------
def _toy_table():
    """Two types, 5 levels, 40 'images' each: q falls with level, content adds spread."""
    rng = np.random.default_rng(0)
    rows, targets = [], []
    content = rng.normal(0, 0.02, 40)
    for t, (base, slope) in {3: (0.97, 0.06), 11: (0.9, 0.1)}.items():
        for lv in range(1, 6):
            q = np.clip(base - slope * (lv - 1) + content + rng.normal(0, 0.01, 40), 0, 1)
            rows += [(qq, t, lv) for qq in q]
            targets.append((t, lv, 4.6 - 0.7 * (lv - 1) - (0.3 if t == 11 else 0.0)))
    q, tid, lev = map(np.array, zip(*rows))
    lm = pd.DataFrame(targets, columns=["type_id", "level", "mos_mean"])
    lm["mos_target"] = lm["mos_mean"]
    return q, tid, lev, lm


def test_calibrator_reproduces_target_means_on_a_toy_table():
    q, tid, lev, lm = _toy_table()
    cal = Calibrator(reference_mos=4.8).fit(q, tid, lev, lm)
    y = cal.transform(q, tid)
    assert y.min() >= 1.0 and y.max() <= 4.8
    got = pd.DataFrame({"y": y, "t": tid, "l": lev}).groupby(["t", "l"]).y.mean()
    want = lm.set_index(["type_id", "level"]).mos_target
    np.testing.assert_allclose(got.to_numpy(), want.loc[got.index].to_numpy(), atol=0.03)
    # monotone in q within a type; references get reference_mos; content dependence survives
    for t in (3, 11):
        grid = np.linspace(0.3, 1.0, 50)
        assert np.all(np.diff(cal.transform(grid, np.full(50, t))) >= -1e-12)
    assert cal.transform([1.0], [0])[0] == 4.8
    assert np.std(y[(tid == 3) & (lev == 3)]) > 0.05
    rep = calibration_report(y, tid, lev, lm, q=q)
    assert rep["n_cells"] == 10 and rep["srcc"] > 0.99 and rep["rmse"] < 0.03
    # serialisation round trip
    cal2 = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_allclose(cal2.transform(q, tid), y)
    with pytest.raises(KeyError):
        cal.transform([0.5], [7])


@needs_kadid
def test_kadid_level_means_on_the_real_file():
    lm = kadid_level_means(KADID)
    assert len(lm) == 125 and set(lm.type_id) == set(range(1, 26)) and set(lm.level) == set(range(1, 6))
    assert (lm.n == 81).all()
    assert lm.mos_mean.between(1, 5).all()
    names = lm.drop_duplicates("type_id").set_index("type_id").type_name
    assert [names[i] for i in range(1, 26)] == KADID_NAMES
    gb = lm[lm.type_id == 1].sort_values("level")
    np.testing.assert_allclose(gb.mos_target, gb.mos_mean)
    assert gb.mos_mean.iloc[0] == pytest.approx(4.612, abs=1e-3)
    for _, g in lm.groupby("type_id"):  # targets of our monotone levels: non-increasing
        assert np.all(np.diff(g.sort_values("level").mos_target.to_numpy()) <= 0)


# ---------------------------------------------------------------------------------------------------
# splits and the builder
# ---------------------------------------------------------------------------------------------------
def test_split_by_reference():
    refs = [f"p{i}" for i in range(20)] * 3
    s = split_by_reference(refs, 0.15, 0.15, seed=1)
    assert set(s) == {f"p{i}" for i in range(20)}
    counts = pd.Series(s).value_counts()
    assert counts["test"] == 3 and counts["val"] == 3 and counts["train"] == 14
    assert s == split_by_reference(list(reversed(refs)), 0.15, 0.15, seed=1)  # order does not matter
    assert s != split_by_reference(refs, 0.15, 0.15, seed=2)
    tiny = split_by_reference(["a", "b", "c"], 0.15, 0.15, seed=0)
    assert sorted(tiny.values()) == ["test", "train", "val"]
    with pytest.raises(ValueError):
        split_by_reference(refs, 0.6, 0.5)


@pytest.fixture(scope="module")
def tiny_photos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee"):
        img = _natural(90, name)
        Image.fromarray(to_uint8(img)).save(d / f"{name}.png")
    Image.fromarray(to_uint8(_natural(50, "astronaut"))).save(d / "small.png")  # smaller than the crop
    return d


@needs_kadid
def test_build_writes_consistent_records(tiny_photos, tmp_path):
    out = tmp_path / "synth"
    csv = build_synthetic_dataset(tiny_photos, out, crops_per_photo=2, crop_size=64,
                                  types=["gaussian_blur", "jpeg", "color_block"], levels=(1, 4), seed=3,
                                  kadid_labels=KADID, progress=False)
    assert csv == out / "records.csv"
    df = pd.read_csv(csv)
    for c in ("path", "mos", "q_fr", "ref", "crop", "dist_type", "dist_id", "dist_level", "split"):
        assert c in df.columns, c
    # 3 photos x 2 crops + 1 small photo x 1 centred crop, each 3 types x 2 levels + the reference
    assert len(df) == (3 * 2 + 1) * (3 * 2 + 1)
    assert all((out / p).is_file() for p in df.path)
    assert df.path.str.match(r"images/[^/]+/\d+_\d\d_\d\.png$").all()
    assert df.mos.between(1, 5).all() and df.q_fr.between(0, 1).all()
    assert df.groupby("ref").split.nunique().max() == 1  # split by reference
    assert set(df.split) == {"train", "val", "test"}
    refs = df[df.dist_id == 0]
    assert (refs.dist_level == 0).all() and (refs.q_fr == 1).all() and (refs.dist_type == "reference").all()
    assert refs.mos.nunique() == 1 and refs.mos.iloc[0] >= df.mos.max() - 1e-9
    assert set(df.dist_level) == {0, 1, 4} and set(df.dist_id) == {0, 1, 10, 23}
    with Image.open(out / df.path.iloc[0]) as im:
        assert im.mode == "RGB" and im.size[0] in (50, 64)
    small = df[df.ref == "small"]
    assert set(small.crop) == {0}
    # labels fall with the level for every (crop, type)
    dist = df[df.dist_id > 0].pivot_table(index=["ref", "crop", "dist_id"], columns="dist_level", values="mos")
    assert (dist[1] >= dist[4]).all()
    meta = json.loads((out / "synth_meta.json").read_text())
    assert meta["seed"] == 3 and meta["n_images"] == len(df)
    assert meta["calibration"]["calibrated"] and meta["calibration"]["report_in_sample"]["n_cells"] == 6
    assert meta["timing"]["images_per_second"] > 0
    # same seed -> same dataset (labels and files)
    csv2 = build_synthetic_dataset(tiny_photos, tmp_path / "again", crops_per_photo=2, crop_size=64,
                                   types=["gaussian_blur", "jpeg", "color_block"], levels=(1, 4), seed=3,
                                   kadid_labels=KADID, progress=False)
    pd.testing.assert_frame_equal(df, pd.read_csv(csv2))


def test_build_without_kadid_labels_is_uncalibrated(tiny_photos, tmp_path):
    csv = build_synthetic_dataset(tiny_photos, tmp_path / "u", crops_per_photo=1, crop_size=64,
                                  types=[11], levels=(2,), include_reference=False, max_photos=2,
                                  val_fraction=0.0, test_fraction=0.0, progress=False)
    df = pd.read_csv(csv)
    assert len(df) == 2 and (df.split == "train").all() and (df.dist_id == 11).all()
    np.testing.assert_allclose(df.mos, 1 + 4 * df.q_fr, atol=1e-4)
    meta = json.loads((tmp_path / "u" / "synth_meta.json").read_text())
    assert meta["calibration"]["calibrated"] is False
