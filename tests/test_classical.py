"""Classical baselines (biqa.classical): each method against an independent reference, orientation
(degraded copies score lower), and the Scorer's rows (error rows for unreadable / unscorable inputs).

References used, none of them the code under test:
- MSCN coefficients: a direct 7x7 weighted sum over a replicate-padded image;
- AGGD fit: samples drawn with scipy.stats.gennorm (known shape and scales) and gennorm's own fit;
- MATLAB imresize(0.5): a dense matrix built from imresize's contribution formula;
- NIQE distance: scipy.spatial.distance.mahalanobis;
- BRISQUE: its 36 features recomputed here from the paper's definitions (against OpenCV's
  computeFeatures), and its score recomputed from the vendored SVR and range files (RBF kernel sum);
- PIQE: values of pypiqe 1.2 (MIT; a port of MATLAB's piqe), computed on the same grey images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import stats
from scipy.special import gamma as G

from biqa.classical import _nss
from biqa.classical._nss import aggd_fit, gaussian_window, imresize_half, mscn, rgb2gray_matlab

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"  # shared/ beside the clone
FACE = PHOTOS / "scipy__face.png"  # 1024x768, public domain
needs_photos = pytest.mark.skipif(not FACE.is_file(), reason="shared/data/photos not found")


def _has_cv2_quality() -> bool:
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2, "quality")


needs_cv2 = pytest.mark.skipif(not _has_cv2_quality(), reason="opencv-contrib (biqa[classical]) not installed")


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _direct_mscn(img: np.ndarray, c: float) -> np.ndarray:
    """(I - mu) / (sigma + c) with mu, sigma from an explicit 7x7 Gaussian-weighted sum (replicate border)."""
    y, x = np.mgrid[-3:4, -3:4]
    w = np.exp(-(x * x + y * y) / (2 * (7 / 6) ** 2))
    w /= w.sum()
    p = np.pad(img, 3, mode="edge")
    h, wd = img.shape
    mu = np.zeros_like(img)
    m2 = np.zeros_like(img)
    for i in range(7):
        for j in range(7):
            win = p[i:i + h, j:j + wd]
            mu += w[i, j] * win
            m2 += w[i, j] * win * win
    return (img - mu) / (np.sqrt(np.maximum(m2 - mu * mu, 0)) + c)


# ---------------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------------
def test_mscn_matches_direct_formula():
    img = np.random.default_rng(0).random((23, 31)) * 255
    np.testing.assert_allclose(mscn(img, c=1.0), _direct_mscn(img, 1.0), atol=1e-9)
    np.testing.assert_allclose(gaussian_window().sum(), 1.0)


@pytest.mark.parametrize("shape", [0.8, 1.5, 2.5])
def test_aggd_fit_recovers_gennorm_shape_and_scale(shape):
    rng = np.random.default_rng(1)
    x = stats.gennorm.rvs(shape, scale=0.7, size=200_000, random_state=rng)
    a, lstd, rstd = aggd_fit(x)
    k = np.sqrt(G(1 / a) / G(3 / a))
    assert abs(a - shape) < 0.05 * shape
    assert abs(lstd * k - 0.7) < 0.02 and abs(rstd * k - 0.7) < 0.02
    fit_shape, _, fit_scale = stats.gennorm.fit(x[:20_000], floc=0)  # maximum likelihood
    assert abs(a - fit_shape) < 0.1 * shape and abs((lstd + rstd) / 2 * k - fit_scale) < 0.05


def test_aggd_fit_asymmetric_scales():
    # AGGD: |x| ~ generalised Gaussian with scale beta_l (left) or beta_r (right), sides in proportion to the scales
    rng = np.random.default_rng(2)
    shape, bl, br, n = 1.2, 0.3, 0.9, 400_000
    mag = np.abs(stats.gennorm.rvs(shape, size=n, random_state=rng))
    left = rng.random(n) < bl / (bl + br)
    x = np.where(left, -bl * mag, br * mag)
    a, lstd, rstd = aggd_fit(x)
    k = np.sqrt(G(1 / a) / G(3 / a))
    assert abs(a - shape) < 0.05
    assert abs(lstd * k - bl) < 0.01 and abs(rstd * k - br) < 0.02
    # vectorised over rows = one fit per row
    rows = aggd_fit(np.stack([x[:1000], x[1000:2000]]))
    assert rows[0][1] == aggd_fit(x[1000:2000])[0]


def test_imresize_half_matches_matlab_contributions():
    def weights(n):  # imresize's contributions for scale 0.5: kernel 0.5*cubic(0.5*d), mirrored borders
        out = np.zeros(((n + 1) // 2, n))
        for i in range(1, len(out) + 1):
            u = 2 * i - 0.5
            for j in range(int(np.floor(u - 4)), int(np.floor(u - 4)) + 10):
                wt = 0.5 * _nss._cubic(np.array(0.5 * (u - j)))
                jj = j
                while jj < 1 or jj > n:
                    jj = 1 - jj if jj < 1 else 2 * n + 1 - jj
                out[i - 1, jj - 1] += wt
            out[i - 1] /= out[i - 1].sum()
        return out

    x = np.random.default_rng(3).random((37, 50)) * 255
    np.testing.assert_allclose(imresize_half(x), weights(37) @ x @ weights(50).T, atol=1e-9)


def test_rgb2gray_matlab_rounding():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    # MATLAB: rgb2gray(uint8([255 0 0])) = 76, green 150, blue 29, [10 20 30] -> 18
    np.testing.assert_array_equal(rgb2gray_matlab(rgb)[0], [76, 150, 29, 18])


# ---------------------------------------------------------------------------------------------------
# NIQE
# ---------------------------------------------------------------------------------------------------
def test_niqe_distance_is_mahalanobis_of_pooled_covariance():
    from scipy.spatial.distance import mahalanobis

    from biqa.classical.niqe import niqe_distance, pristine_model

    mu_p, cov_p = pristine_model()
    assert mu_p.shape == (36,) and cov_p.shape == (36, 36)
    feats = np.random.default_rng(4).normal(mu_p, 0.3, size=(200, 36))
    cov = np.cov(feats, rowvar=False)
    ref = mahalanobis(feats.mean(0), mu_p, np.linalg.inv((cov + cov_p) / 2))
    assert niqe_distance(feats, mu_p, cov_p) == pytest.approx(ref, rel=1e-6)
    feats[3, 5] = np.nan  # a block with an undefined feature is left out
    assert niqe_distance(feats, mu_p, cov_p) == pytest.approx(niqe_distance(np.delete(feats, 3, 0), mu_p, cov_p))


def test_niqe_block_features_match_direct_computation():
    from biqa.classical.niqe import block_features

    coef = _direct_mscn(np.random.default_rng(5).random((96, 192)) * 255, 1.0)
    f = block_features(coef, 96)
    assert f.shape == (2, 18)
    blk = coef[:, 96:]  # second block, features from the definitions
    a, l, r = aggd_fit(blk.ravel())
    k = np.sqrt(G(1 / a) / G(3 / a))
    expect = [a, (l + r) * k / 2]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        idx_r = (np.arange(96)[:, None] - dy) % 96  # circshift: B(i, j) = A(i - dy, j - dx)
        idx_c = (np.arange(96)[None, :] - dx) % 96
        a, l, r = aggd_fit((blk * blk[idx_r, idx_c]).ravel())
        k = np.sqrt(G(1 / a) / G(3 / a))
        expect += [a, (r - l) * k * G(2 / a) / G(1 / a), l * k, r * k]
    np.testing.assert_allclose(f[1], expect, rtol=1e-9)


def test_niqe_needs_two_blocks():
    from biqa.classical.niqe import niqe

    with pytest.raises(ValueError, match="too small"):
        niqe(np.zeros((100, 150, 3), np.uint8))


# ---------------------------------------------------------------------------------------------------
# BRISQUE
# ---------------------------------------------------------------------------------------------------
def _paper_brisque_features(gray_u8: np.ndarray) -> np.ndarray:
    """BRISQUE's 36 features from the paper's definitions (OpenCV's conventions: image in [0, 1],
    C = 1/255, products with zero-filled neighbours, (sigma_l^2 + sigma_r^2) / 2, variances)."""
    import cv2

    img = gray_u8.astype(np.float32) / 255.0
    out = []
    for scale in (1, 2):
        if scale == 2:
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_CUBIC)
        coef = _direct_mscn(img.astype(np.float64), 1 / 255)
        a, l, r = aggd_fit(coef.ravel())
        out += [a, (l * l + r * r) / 2]
        h, w = coef.shape
        for dy, dx in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            nb = np.zeros_like(coef)
            nb[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
                coef[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            a, l, r = aggd_fit((coef * nb).ravel())
            mean = (r - l) * G(2 / a) / G(1 / a) * np.sqrt(G(1 / a) / G(3 / a))
            out += [a, mean, l * l, r * r]
    return np.array(out)


def _svr_brisque(feats: np.ndarray) -> float:
    """Score from the vendored model files: features scaled to [-1, 1] by the range file, then the
    RBF epsilon-SVR's sum_i alpha_i exp(-gamma |x - sv_i|^2) - rho, clamped to [0, 100]."""
    import cv2

    from biqa.classical.brisque import MODEL_FILE, RANGE_FILE

    fs = cv2.FileStorage(str(RANGE_FILE), cv2.FILE_STORAGE_READ)
    rng = fs.getNode("range").mat().astype(np.float64)
    fs = cv2.FileStorage(str(MODEL_FILE), cv2.FILE_STORAGE_READ)
    svm = fs.getNode("opencv_ml_svm")
    gamma = svm.getNode("kernel").getNode("gamma").real()
    n_sv = int(svm.getNode("sv_total").real())
    node = svm.getNode("support_vectors")
    sv = np.array([[node.at(i).at(j).real() for j in range(36)] for i in range(n_sv)])
    df = svm.getNode("decision_functions").at(0)
    alpha = np.array([df.getNode("alpha").at(i).real() for i in range(n_sv)])
    rho = df.getNode("rho").real()
    x = -1 + 2 * (feats - rng[0]) / (rng[1] - rng[0])
    s = float(alpha @ np.exp(-gamma * ((sv - x) ** 2).sum(1)) - rho)
    return min(max(s, 0.0), 100.0)


@needs_cv2
@needs_photos
def test_brisque_features_and_score_match_independent_computation():
    from biqa.classical.brisque import brisque, brisque_features, to_gray

    for name in ("scipy__face.png", "scikit-image__coffee.png"):
        rgb = _rgb(PHOTOS / name)
        ours = _paper_brisque_features(to_gray(rgb))
        cv = brisque_features(rgb)
        shape_idx = [0, 2, 6, 10, 14, 18, 20, 24, 28, 32]  # AGGD shapes: grid steps of 0.001
        np.testing.assert_allclose(cv[shape_idx], ours[shape_idx], atol=3e-3)
        rest = [i for i in range(36) if i not in shape_idx]
        np.testing.assert_allclose(cv[rest], ours[rest], rtol=2e-3, atol=2e-4)
        assert brisque(rgb) == pytest.approx(_svr_brisque(cv), abs=1e-3)
        assert brisque(rgb) == pytest.approx(_svr_brisque(ours), abs=0.3)
    assert brisque(_rgb(FACE)) == pytest.approx(27.6483, abs=1e-3)  # regression pin (OpenCV 5.0.0.93)


def test_brisque_missing_opencv_names_the_extra(monkeypatch):
    import sys

    from biqa.classical import brisque as B

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    monkeypatch.setattr(B._local, "model", None, raising=False)
    with pytest.raises(ImportError, match=r"biqa\[classical\]"):
        B.check_available()
    import biqa

    with pytest.raises(ImportError, match=r"biqa\[classical\]"):
        biqa.load("brisque")


# ---------------------------------------------------------------------------------------------------
# PIQE
# ---------------------------------------------------------------------------------------------------
# pypiqe 1.2's piqe() on the grey images rgb2gray_matlab(photo) (uint8), lossless sources only
PYPIQE_REFERENCE = {
    "scipy__face.png": 30.424408,
    "scikit-image__coffee.png": 27.719668,
    "scikit-image__chelsea.png": 34.016981,  # max grey level 194: exercises the stretch to 255
    "scikit-learn__china.png": 50.015996,
}


@needs_photos
@pytest.mark.parametrize("name", sorted(PYPIQE_REFERENCE))
def test_piqe_matches_pypiqe(name):
    from biqa.classical.piqe import piqe

    assert piqe(_rgb(PHOTOS / name)) == pytest.approx(PYPIQE_REFERENCE[name], abs=1e-5)


def test_piqe_flat_image_scores_100():
    from biqa.classical.piqe import piqe

    assert piqe(np.full((40, 50, 3), 128, np.uint8)) == 100.0  # also pads 40x50 to 48x64


# ---------------------------------------------------------------------------------------------------
# as biqa models: orientation, one row per input, error rows
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def degraded(tmp_path_factory):
    d = tmp_path_factory.mktemp("classical")
    im = Image.open(FACE).convert("RGB")
    im.save(d / "a_src.png")
    im.save(d / "b_q10.jpg", quality=10)
    im.filter(ImageFilter.GaussianBlur(2)).save(d / "c_blur.png")
    (d / "d_broken.jpg").write_bytes(b"not an image")
    im.resize((120, 90)).save(d / "e_small.png")
    return d


@needs_photos
@pytest.mark.parametrize("method", ["brisque", "niqe", "piqe"])
def test_orientation_and_rows(method, degraded):
    if method == "brisque" and not _has_cv2_quality():
        pytest.skip("opencv-contrib (biqa[classical]) not installed")
    import biqa

    names = ["a_src.png", "b_q10.jpg", "c_blur.png", "d_broken.jpg", "e_small.png", "missing.png"]
    df = biqa.load(method).score([str(degraded / n) for n in names])
    assert list(df["path"]) == [str(degraded / n) for n in names]
    src, q10, blur = df["score"].iloc[:3]
    assert src > q10 and src > blur, (method, src, q10, blur)
    assert (df["error"].iloc[:3] == "").all()
    assert "not a readable image" in df["error"].iloc[3] and np.isnan(df["score"].iloc[3])
    assert "not found" in df["error"].iloc[5]
    if method == "niqe":  # 120x90 has no 96x96 block pair: an error row, not a crash
        assert "too small" in df["error"].iloc[4] and np.isnan(df["score"].iloc[4])
    else:
        assert df["error"].iloc[4] == "" and np.isfinite(df["score"].iloc[4])
    raw = {"brisque": 27.6483, "niqe": None, "piqe": PYPIQE_REFERENCE["scipy__face.png"]}[method]
    if raw is not None:  # score = -raw
        assert src == pytest.approx(-raw, abs=1e-3)


def test_cli_and_gmad_accept_the_names(capsys):
    from biqa.cli import main
    from biqa.gmad import parse_model_spec

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for n in ("brisque", "niqe", "piqe"):
        assert n in out
    spec = parse_model_spec("niqe")
    assert (spec.name, spec.kind, spec.source) == ("niqe", "classical-model", "niqe")
    assert parse_model_spec("B=classical:brisque").source == "brisque"
    assert parse_model_spec("classical:sharpness").kind == "classical"


@needs_photos
def test_evaluate_and_tensor_input(tmp_path, degraded):
    import pandas as pd
    import torch

    import biqa
    from biqa.evaluate import evaluate_checkpoint

    recs = tmp_path / "r.csv"
    pd.DataFrame({"path": [str(degraded / n) for n in ("a_src.png", "b_q10.jpg", "c_blur.png")],
                  "mos": [80.0, 30.0, 20.0]}).to_csv(recs, index=False)
    res = evaluate_checkpoint("piqe", recs, split="all", n_boot=10, progress=False)
    assert res["n"] == 3 and res["srcc"]["value"] > 0  # oriented: the clean image has the highest score
    x = torch.from_numpy(_rgb(FACE)).permute(2, 0, 1).float() / 255
    df = biqa.load("piqe").score(x)
    assert df["score"].iloc[0] == pytest.approx(-PYPIQE_REFERENCE["scipy__face.png"], abs=1e-5)


# ---------------------------------------------------------------------------------------------------
# single cues (gMAD's classical:sharpness and classical:noise)
# ---------------------------------------------------------------------------------------------------
def test_cues_follow_blur_and_noise_and_match_their_formulas(tmp_path):
    """Orientation on degraded copies, and each value against its formula written out with array slicing:
    the 4-neighbour Laplacian over a mirrored border, Immerkaer's 3x3 mask over the valid region."""
    from conftest import make_image

    from biqa.classical.cues import noise_score, sharpness_score

    rng = np.random.default_rng(0)
    paths = {}
    for name, kw in {"clean": {}, "blur": {"blur": 2.0}, "noisy": {"noise": 0.08}}.items():
        paths[name] = str(tmp_path / f"{name}.png")
        make_image(rng, size=(96, 80), **kw).save(paths[name])
    sh = {k: sharpness_score(p) for k, p in paths.items()}
    nz = {k: noise_score(p) for k, p in paths.items()}
    assert sh["blur"] < sh["clean"] < sh["noisy"]  # honest about blur, fooled by noise
    assert nz["noisy"] < nz["clean"] and nz["noisy"] < nz["blur"]
    for name, path in paths.items():  # 96x80: below the 512-pixel cap, read as is
        g = np.asarray(Image.open(path).convert("RGB").convert("L"), dtype=np.float64) / 255.0
        p = np.pad(g, 1, mode="symmetric")
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
        assert sh[name] == pytest.approx(np.log10(lap.var() + 1e-10), rel=1e-12)
        h, w = g.shape
        mask = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]
        r = sum(mask[i][j] * g[i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3))
        assert nz[name] == pytest.approx(-255.0 * np.sqrt(np.pi / 2) * np.abs(r).mean() / 6.0, rel=1e-12)
