"""Linear heads on frozen features (biqa.probe), ranking groups (biqa.synth.ranking) and the recipe."""
from __future__ import annotations

from conftest import MeanStdExtractor, load_benchmark
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from biqa.probe import BN_EPS, LinearHead, fit_linear, fit_ridge, linear_model, save_linear_checkpoint, select_alpha
from biqa.recipe import HELDOUT_PHOTOS, RANK_VAL_PHOTOS
from biqa.synth.ranking import LEVELS, apply, group_pairs, implementations, ranking_groups

ROOT = Path(__file__).resolve().parents[1]


def _data(n=60, f=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)) * rng.uniform(0.1, 10, size=f) + rng.normal(size=f) * 5
    w = rng.normal(size=f)
    y = ((X - X.mean(0)) / X.std(0)) @ w * 0.1 + 0.5 + rng.normal(scale=0.05, size=n)
    return X, y


def test_ridge_matches_augmented_least_squares():
    X, y = _data()
    alpha = 3.0
    head = fit_ridge(X, y, alpha)
    # independent: least squares on [Xs 1; sqrt(alpha) I 0] (the intercept is not penalised)
    Xs = (X - X.mean(0)) / np.sqrt(X.var(0) + BN_EPS)
    n, f = Xs.shape
    A = np.vstack([np.hstack([Xs, np.ones((n, 1))]), np.hstack([np.sqrt(alpha) * np.eye(f), np.zeros((f, 1))])])
    sol = np.linalg.lstsq(A, np.concatenate([y, np.zeros(f)]), rcond=None)[0]
    np.testing.assert_allclose(head.w, sol[:f], atol=1e-8)
    assert head.b == pytest.approx(sol[f], abs=1e-8)
    np.testing.assert_allclose(head.predict(X), A[:n] @ sol, atol=1e-8)


def test_ranked_fit_matches_scipy_on_the_same_objective():
    X, y = _data(f=6)
    rng = np.random.default_rng(1)
    hi, lo = X[rng.integers(0, 60, 40)], X[rng.integers(0, 60, 40)]
    alpha, lam, m = 2.0, 5.0, 0.05
    head = fit_linear(X, y, alpha, pairs=(hi, lo), rank_weight=lam, margin=m)
    sd = np.sqrt(X.var(0) + BN_EPS)
    Xs, D = (X - X.mean(0)) / sd, (hi - lo) / sd

    def obj(v):
        w, b = v[:-1], v[-1]
        return np.mean((Xs @ w + b - y) ** 2) + alpha / len(y) * w @ w + lam * np.mean(np.maximum(0, m - D @ w) ** 2)

    ref = minimize(obj, np.zeros(X.shape[1] + 1), method="BFGS", options={"gtol": 1e-10})
    assert obj(np.append(head.w, head.b)) == pytest.approx(ref.fun, rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(head.w, ref.x[:-1], atol=1e-4)
    # the ranking penalty of the ranked fit is below plain ridge's (which minimises the rest alone)
    ridge = fit_ridge(X, y, alpha)
    hinge = lambda w: np.mean(np.maximum(0, m - D @ w) ** 2)  # noqa: E731
    assert hinge(head.w) < hinge(ridge.w)


def test_select_alpha_picks_the_best_validation_srcc():
    X, y = _data(n=120)
    best, scores = select_alpha(X[:80], y[:80], X[80:], y[80:], (0.1, 10.0, 1e5))
    assert scores[best] == max(scores.values())
    assert scores[1e5] < scores[best]


def test_linear_model_computes_the_head_on_its_backbone_features():
    rng = np.random.default_rng(0)
    f = 1024
    head = LinearHead(rng.normal(size=f) * 0.01, 0.4, rng.normal(size=f), rng.uniform(0.5, 2, size=f))
    model = linear_model(head, pretrained=False)
    x = torch.rand(2, 3, 64, 80)
    with torch.inference_mode():
        out = model(x)
        feats = model.backbone(x).double().numpy()
    np.testing.assert_allclose(out["z"].double().numpy(), head.predict(feats), atol=1e-5)


def test_saved_checkpoint_scores_like_the_head(tmp_path):
    import biqa
    from biqa.labels import LabelScale

    rng = np.random.default_rng(1)
    f = 1024
    head = LinearHead(rng.normal(size=f) * 0.01, 0.5, rng.normal(size=f), rng.uniform(0.5, 2, size=f))
    path = save_linear_checkpoint(head, tmp_path / "probe.safetensors", label_scale=LabelScale(1.0, 5.0))
    scorer = biqa.load(str(path))
    x = torch.rand(3, 3, 96, 128)
    df = scorer.score(x)
    model = linear_model(head, pretrained=True)
    mean, std = model.preset.normalisation()
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.inference_mode():
        feats = model.backbone(xn).double().numpy()
    np.testing.assert_allclose(df["score"].to_numpy(), 1.0 + 4.0 * head.predict(feats), atol=1e-4)


def test_group_pairs_structure():
    p = group_pairs(2)
    assert p.shape == (2 * (LEVELS + LEVELS - 1), 2)
    assert (0, 1) in map(tuple, p) and (0, 5) in map(tuple, p) and (4, 5) in map(tuple, p) and (6, 11) in map(tuple, p)
    assert np.all(p[:, 0] < p[:, 1]) and p.max() == 11


@pytest.mark.parametrize("impl", sorted(implementations()))
def test_every_implementation_degrades_monotonically(impl):
    rng = np.random.default_rng(0)
    base = np.clip(np.kron(rng.uniform(40, 215, (12, 12, 3)), np.ones((8, 8, 1))) + rng.normal(0, 3, (96, 96, 3)),
                   0, 255).astype(np.uint8)
    dists = []
    for t in (1.0, 3.0, 5.0):
        out = apply(impl, base, t, np.random.default_rng(7))
        assert out.shape == base.shape and out.dtype == np.uint8
        dists.append(np.abs(out.astype(float) - base).mean())
    assert dists[0] > 0 and dists[0] <= dists[1] <= dists[2] + 1e-9, dists


def test_ranking_groups_are_deterministic_and_family_labelled():
    rng = np.random.default_rng(0)
    src = [("a", (rng.uniform(0, 255, (300, 320, 3))).astype(np.uint8))]
    g1 = ranking_groups(src, 3, seed=5, crop=(96, 128))
    g2 = ranking_groups(src, 3, seed=5, crop=(96, 128))
    table = implementations()
    for a, b in zip(g1, g2):
        assert a.impl == b.impl and table[a.impl] == a.family and len(a.images) == LEVELS + 1
        assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
        assert np.all(np.diff(a.levels) > 0)


def test_low_key_scales_exposure_in_linear_light():
    """On a flat grey image (which the optional blur leaves unchanged) low_key multiplies linear light by
    k in [0.03, 0.3], so the sRGB value (gamma 2.2) is scaled by k ** (1 / 2.2), between 0.203 and 0.579."""
    from biqa.synth.ranking import low_key

    flat = np.full((40, 48, 3), 180, np.uint8)
    ratios = []
    for seed in range(40):
        out = low_key(flat, np.random.default_rng(seed))
        assert out.shape == flat.shape and out.dtype == np.uint8 and np.ptp(out) == 0
        ratios.append(out[0, 0, 0] / 180.0)
    assert 0.03 ** (1 / 2.2) - 0.01 <= min(ratios) and max(ratios) <= 0.3 ** (1 / 2.2) + 0.01
    assert max(ratios) - min(ratios) > 0.2  # the exposure is drawn, not fixed


def test_low_key_references_are_dark_and_their_levels_are_made_from_them():
    from biqa.synth.ranking import low_key

    rng = np.random.default_rng(0)
    src = [("a", (rng.uniform(60, 255, (200, 220, 3))).astype(np.uint8))]
    for seed in range(6):  # a group's crop and implementation are drawn before its reference is made
        p, = ranking_groups(src, 1, seed=seed, crop=(96, 128))
        d, = ranking_groups(src, 1, seed=seed, crop=(96, 128), reference=low_key)
        assert d.impl == p.impl and d.images[0].mean() < 0.6 * p.images[0].mean()
        assert d.images[0].shape == p.images[0].shape
        assert d.images[1].mean() < p.images[1].mean()  # the levels degrade the dark reference, not the crop


def test_add_reference_groups_appends_dark_groups_to_both_sets(tmp_path):
    from biqa.recipe import add_reference_groups, build_ranking_set

    d = _photo_dir(tmp_path, ("a", "b", "c"))
    photos = sorted(d.glob("*.png"))
    fx = MeanStdExtractor()
    train = build_ranking_set(photos[:2], [], 8, seed=1, extractor=fx, progress=False)
    val = build_ranking_set(photos[2:], [], 4, seed=2, extractor=fx, progress=False)
    t2, v2 = add_reference_groups(train, val, (photos[:2], []), (photos[2:], []), 4, reference="low_key",
                                  extractor=fx, cache_dir=tmp_path / "c", progress=False)
    assert (t2.n_groups, v2.n_groups) == (12, 6)  # 4 more, and the same share (1/2) of the 4 validation groups
    assert sorted(p.name for p in (tmp_path / "c").glob("*.npz")) == ["rank_train_low_key_4.npz",
                                                                        "rank_val_low_key_2.npz"]
    np.testing.assert_array_equal(t2.X[:48], train.X)
    assert t2.X[48:, 0].mean() < 0.6 * train.X[:, 0].mean()  # the added groups are dark
    assert t2.pairs.max() == 71 and len(t2.pairs) == 12 * (2 * LEVELS - 1)
    with pytest.raises(ValueError, match="unknown kind"):
        build_ranking_set(photos[:1], [], 1, extractor=fx, reference="night", progress=False)
    with pytest.raises(ValueError, match="unknown kind"):
        add_reference_groups(train, val, (photos[:2], []), (photos[2:], []), 4, reference="night", extractor=fx,
                             cache_dir=tmp_path / "c", progress=False)


def test_plain_flattens_texture_and_keeps_edges():
    """A step edge between two textured halves: plain removes most of the fine texture (pixel-to-pixel
    differences inside each half) while the step between the halves' means stays."""
    from biqa.synth.ranking import plain

    rng = np.random.default_rng(0)
    img = np.zeros((128, 128, 3))
    img[:, :64], img[:, 64:] = 60, 200
    img = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    for seed in range(8):
        out = plain(img, np.random.default_rng(seed)).astype(float)
        assert out.shape == img.shape
        texture = [np.abs(np.diff(x[:, 8:56], axis=1)).mean() for x in (img.astype(float), out)]
        assert texture[1] < 0.3 * texture[0]
        left, right = out[:, :56].mean(), out[:, 72:].mean()
        gain = right / max(left, 1.0)  # darkening scales both halves alike: their ratio stays about 200 / 60
        assert right - left > 20 and 2.0 < gain < 5.0


def test_graphic_is_flat_and_blends_only_the_crops_colours():
    """Every layer of graphic is a convex blend of colours drawn from the crop, and darkening scales sRGB values
    alike (k ** (1 / 2.2) on every channel). On a crop of two colours A = (200, 40, 40) and B = (40, 40, 200)
    every output pixel is f * (t A + (1 - t) B): green is f * 40 and red + blue is f * 240, a ratio of 1/6."""
    from biqa.synth.ranking import graphic

    crop = np.zeros((90, 120, 3), np.uint8)
    crop[:, :60], crop[:, 60:] = (200, 40, 40), (40, 40, 200)
    for seed in range(12):
        out = graphic(crop, np.random.default_rng(seed)).astype(float)
        assert out.shape == crop.shape
        lit = out.sum(-1) > 60  # away from the deepest darkening, where rounding dominates
        ratio = out[..., 1][lit] / (out[..., 0] + out[..., 2])[lit]
        assert np.abs(ratio - 1 / 6).max() < 0.02, seed
        assert np.abs(np.diff(out, axis=1)).mean() < 3.0  # flat areas and ramps, no texture
    one = graphic(np.full((40, 50, 3), 120, np.uint8), np.random.default_rng(3))
    assert np.ptp(one) <= 1  # one colour in, one colour out


def test_ranking_sets_concatenate_with_pairs_reindexed():
    from biqa.recipe import RankingSet

    a = RankingSet(np.arange(12.0).reshape(12, 1), group_pairs(2), ["p", "q"], ["i", "j"], ["f", "g"])
    b = RankingSet(np.arange(12.0, 18.0).reshape(6, 1), group_pairs(1), ["r"], ["k"], ["h"])
    c = RankingSet.concat(a, b)
    assert c.n_groups == 3 and c.photo == ["p", "q", "r"] and c.family == ["f", "g", "h"]
    np.testing.assert_array_equal(c.X[:, 0], np.arange(18.0))
    assert (12, 13) in map(tuple, c.pairs) and (12, 17) in map(tuple, c.pairs) and c.pairs.max() == 17
    assert len(c.pairs) == 3 * (2 * LEVELS - 1)


def test_recipe_holds_out_the_level_ranking_photos():
    assert tuple(load_benchmark("heldout_levels").HELDOUT_PHOTOS) == HELDOUT_PHOTOS
    assert not set(RANK_VAL_PHOTOS) & set(HELDOUT_PHOTOS)


def _photo_dir(tmp_path, names=("a", "b")):
    from PIL import Image

    rng = np.random.default_rng(0)
    d = tmp_path / "photos"
    d.mkdir()
    for n in names:
        Image.fromarray(rng.uniform(0, 255, (80, 96, 3)).astype(np.uint8)).save(d / f"{n}.png")
    return d


def test_ranking_pool_excludes_the_heldout_photos_and_is_cached(tmp_path):
    from biqa.strategies.ranking import ranking_pool

    d = _photo_dir(tmp_path, ("a", HELDOUT_PHOTOS[0]))
    cache = tmp_path / "pool.npz"
    pool = ranking_pool(d, None, 3, 48, seed=1, cache=cache, progress=False)
    assert pool.shape == (3, 6, 48, 48, 3) and pool.dtype == np.uint8 and cache.is_file()
    again = ranking_pool(d, None, 3, 48, seed=1, cache=cache, progress=False)
    assert np.array_equal(pool, again)
    from biqa.recipe import source_files

    photos, _ = source_files(d, None)
    assert [p.stem for p in photos] == ["a"]


def test_ranking_strategy_loss_is_supervised_plus_squared_hinge_on_group_pairs(tmp_path):
    from biqa.losses import SCORE_LOSSES
    from biqa.models import create_model
    from biqa.strategies import build_strategy

    torch.manual_seed(0)
    model = create_model("lite0-ml-linear", pretrained=False).train()
    d = _photo_dir(tmp_path)
    strat = build_strategy("ranking", model, loss="mse", ranking={"weight": 2.0, "margin": 0.5, "groups": 2,
                                                                     "groups_per_step": 1, "photos": str(d),
                                                                     "originals": None},
                           context={"crop_size": 48, "seed": 0})
    extra = strat.ranking_batch()
    strat.ranking_batch = lambda: extra
    batch = {"image": torch.randn(4, 3, 48, 48), "z": torch.rand(4)}
    torch.manual_seed(1)
    total, terms = strat.loss(batch)
    torch.manual_seed(1)
    z = model(torch.cat([batch["image"], extra]))["z"]
    pairs = [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)]
    r = torch.stack([torch.relu(0.5 - (z[4 + i] - z[4 + j])) ** 2 for i, j in pairs]).mean()
    expected = SCORE_LOSSES["mse"](z[:4], batch["z"]) + 2.0 * r
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert terms["rank"] == pytest.approx(float(r), rel=1e-5)
    with pytest.raises(ValueError, match="unknown option"):
        build_strategy("ranking", model, ranking={"wieght": 1.0, "photos": str(d)}, context={"crop_size": 48})


def test_residual_head_in_the_network_matches_numpy():
    from scipy.special import erf

    rng = np.random.default_rng(3)
    f, h = 1024, 64
    res = {"W1": rng.normal(size=(h, f)) * 0.05, "b1": rng.normal(size=h) * 0.1, "W2": rng.normal(size=(1, h)) * 0.1,
           "b2": np.array([0.05])}
    head = LinearHead(rng.normal(size=f) * 0.01, 0.4, rng.normal(size=f), rng.uniform(0.5, 2, size=f), residual=res)
    model = linear_model(head, pretrained=False)
    assert model.preset.name == "lite0-ml-linres"
    x = torch.rand(2, 3, 64, 80)
    with torch.inference_mode():
        z = model(x)["z"].double().numpy()
        feats = model.backbone(x).double().numpy()
    s = (feats - head.mu) / np.sqrt(head.var + BN_EPS)
    hid = s @ res["W1"].T + res["b1"]
    expected = s @ head.w + head.b + (0.5 * hid * (1 + erf(hid / np.sqrt(2)))) @ res["W2"][0] + res["b2"][0]
    np.testing.assert_allclose(z, expected, atol=1e-4)


def test_fit_residual_orders_pairs_a_linear_head_cannot():
    from biqa.probe import fit_residual

    # scored photos: z depends linearly on x0; ranking pairs want |x1| small to be better (not linear)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)) * [1, 0.1, 1, 1]  # scored photos: x1 small (undistorted)
    y = 0.1 * X[:, 0] + 0.5
    head = fit_ridge(X, y, 1.0)
    base = rng.normal(size=(60, 4)) * [1, 0.1, 1, 1]
    worse = base.copy()
    worse[:, 1] += rng.choice([-2.0, 2.0], size=60)  # distortion pushes x1 either way
    RX = np.vstack([base, worse])
    pairs = np.stack([np.arange(60), np.arange(60, 120)], 1)
    lin_ok = np.mean(head.predict(base) - head.predict(worse) > 0.05)
    fitted = fit_residual(head, X, RX, pairs, weight=10.0, margin=0.05, lam=10.0, hidden=16, epochs=400)
    res_ok = np.mean(fitted.predict(base) - fitted.predict(worse) > 0.05)
    assert lin_ok < 0.6 and res_ok > 0.95
    # and it stays near the linear head on the scored photos
    assert np.abs(fitted.predict(X) - head.predict(X)).mean() < 0.02


def _kernel_objective(X, y, alpha, gamma, lam):
    """The primal objective of biqa.probe.fit_kernel, written out independently in (w, a, b)."""
    mu, var = X.mean(0), X.var(0)
    S = (X - mu) / np.sqrt(var + BN_EPS)
    n, f = S.shape
    K = np.exp(-gamma / f * ((S[:, None, :] - S[None, :, :]) ** 2).sum(-1))

    def obj(v):
        w, a, b = v[:f], v[f:f + n], v[-1]
        r = S @ w + K @ a + b - y
        return (r @ r) / n + alpha / n * (w @ w) + lam / n * (a @ K @ a)

    return obj, S, K


def test_fit_kernel_minimises_its_objective():
    from scipy.optimize import minimize

    from biqa.probe import fit_kernel

    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]
    y = np.sin(X[:, 0]) + 0.1 * X[:, 1] + 0.05 * rng.normal(size=40)
    alpha, gamma, lam = 3.0, 0.5, 0.3
    head = fit_kernel(X, y, alpha, gamma, lam)
    obj, S, K = _kernel_objective(X, y, alpha, gamma, lam)
    ref = minimize(obj, np.zeros(3 + 40 + 1), method="BFGS", options={"gtol": 1e-10, "maxiter": 10000})
    mine = np.concatenate([head.w, head.kernel["a"], [head.b]])
    assert obj(mine) <= ref.fun + 1e-9
    Xn = rng.normal(size=(7, 3))  # predictions agree on new points: the same function
    Sn = (Xn - X.mean(0)) / np.sqrt(X.var(0) + BN_EPS)
    Kn = np.exp(-gamma / 3 * ((Sn[:, None, :] - S[None, :, :]) ** 2).sum(-1))
    w, a, b = ref.x[:3], ref.x[3:43], ref.x[-1]
    np.testing.assert_allclose(head.predict(Xn), Sn @ w + Kn @ a + b, atol=1e-4)
    # an infinite kernel penalty leaves ridge regression
    np.testing.assert_allclose(fit_kernel(X, y, alpha, gamma, np.inf).predict(Xn), fit_ridge(X, y, alpha).predict(Xn),
                               atol=1e-10)


def test_fit_kernel_with_pairs_orders_what_a_linear_head_cannot():
    from biqa.probe import fit_kernel

    rng = np.random.default_rng(0)  # as the residual test: pairs want |x1| small, the scores are linear in x0
    X = rng.normal(size=(120, 4)) * [1, 0.3, 1, 1]
    y = 0.1 * X[:, 0] + 0.5
    base = rng.normal(size=(60, 4)) * [1, 0.3, 1, 1]
    worse = base.copy()
    worse[:, 1] += rng.choice([-1.5, 1.5], size=60)
    RX = np.vstack([base, worse])
    pairs = np.stack([np.arange(60), np.arange(60, 120)], 1)
    plain = fit_kernel(X, y, 10.0, 1.0, 1.0)
    ranked = fit_kernel(X, y, 10.0, 1.0, 1.0, ranking_X=RX, pairs=pairs, rank_weight=10.0, margin=0.05)
    ok = [np.mean(h.predict(base) - h.predict(worse) > 0.0) for h in (plain, ranked)]
    assert ok[0] < 0.7 and ok[1] > 0.95, ok  # 0.6 and 1.0 when written
    assert ranked.info["kind"] == "kernel-ranked"
    assert np.abs(ranked.predict(X) - y).mean() < 0.05  # and it still fits the scores


def test_kernel_head_in_the_network_matches_numpy_and_stays_float32_under_autocast():
    from biqa.precision import AutocastModel
    from biqa.probe import rbf_kernel

    rng = np.random.default_rng(4)
    f, n = 1024, 30
    kern = {"L": rng.normal(size=(n, f)), "a": rng.normal(size=n) * 0.1, "gamma": 1.0 / f}
    head = LinearHead(rng.normal(size=f) * 0.01, 0.4, rng.normal(size=f), rng.uniform(0.5, 2, size=f), kernel=kern)
    model = linear_model(head, pretrained=False)
    assert model.preset.name == "lite0-ml-kernel" and model.preset.head_kwargs["kernel"] == n
    assert model.head.residual is None
    x = torch.rand(2, 3, 64, 80)
    with torch.inference_mode():
        z = model(x)["z"].double().numpy()
        feats = model.backbone(x).double().numpy()
        kb = model.head.kernel_term(torch.from_numpy(feats).to(torch.bfloat16))
    s = (feats - head.mu) / np.sqrt(head.var + BN_EPS)
    np.testing.assert_allclose(z, s @ head.w + head.b + rbf_kernel(s, kern["L"], kern["gamma"]) @ kern["a"], atol=1e-4)
    np.testing.assert_allclose(head.predict(feats), z, atol=1e-4)
    assert kb.dtype == torch.float32
    with torch.inference_mode():  # under bf16 autocast the kernel term is computed in float32
        zb = AutocastModel(model)(x)["z"]
    assert zb.dtype == torch.float32 and np.all(np.isfinite(zb.numpy()))


def test_a_given_preset_takes_its_kernel_and_residual_sizes_from_the_head():
    """The default model's preset (statistics + noise floor, 1,056 features): a fitted kernel head without a
    residual MLP becomes that preset with the head's landmark count and no residual, and the network computes
    the head on its own features; a plain ridge head on the probe's preset keeps that preset's kwargs."""
    from biqa.probe import rbf_kernel

    rng = np.random.default_rng(5)
    f, n = 1056, 12
    kern = {"L": rng.normal(size=(n, f)), "a": rng.normal(size=n) * 0.1, "gamma": 1.0 / f}
    head = LinearHead(rng.normal(size=f) * 0.01, 0.4, rng.normal(size=f), rng.uniform(0.5, 2, size=f), kernel=kern)
    model = linear_model(head, preset="lite0-mln-kernel", pretrained=False)
    assert model.preset.name == "lite0-mln-kernel" and model.preset.pooling == "multilevel-noise"
    assert model.preset.head_kwargs["kernel"] == n and model.preset.head_kwargs["residual"] == 0
    assert model.head.residual is None
    x = torch.rand(2, 3, 48, 56)
    with torch.inference_mode():
        z = model(x)["z"].double().numpy()
        feats = model.backbone(x).double().numpy()
    assert feats.shape == (2, f)
    s = (feats - head.mu) / np.sqrt(head.var + BN_EPS)
    np.testing.assert_allclose(z, s @ head.w + head.b + rbf_kernel(s, kern["L"], kern["gamma"]) @ kern["a"], atol=1e-4)
    with pytest.raises(ValueError, match="BatchNorm1d"):  # features of the wrong width for the preset
        linear_model(LinearHead(np.zeros(1024), 0.0, np.zeros(1024), np.ones(1024)), preset="lite0-mln-kernel",
                     pretrained=False)
    plain = linear_model(LinearHead(np.zeros(1024), 0.0, np.zeros(1024), np.ones(1024)), preset="lite0-ml-linear",
                         pretrained=False)
    assert plain.preset.head_kwargs == {"norm": True}


def test_select_params_takes_the_kernel_term_when_cross_validation_says_so():
    from scipy.stats import spearmanr

    from biqa.recipe import select_params

    rng = np.random.default_rng(7)
    X = rng.normal(size=(150, 6))
    y = np.sin(2.0 * X[:, 0]) + 0.05 * rng.normal(size=150)  # not linear in the features
    p, rep = select_params(X, y, None, None, alphas=(1.0, 10.0), kernel=True, seed=0)
    assert p.kernel_gamma > 0 and p.rank_weight == 0
    assert rep["kernel_cv_srcc"] > rep["probe_cv_srcc"] + 0.1  # 0.76 against 0.58 when written
    assert rep["cv_srcc"] == rep["kernel_cv_srcc"]
    lin, rep_lin = select_params(X, y, None, None, alphas=(1.0, 10.0), seed=0)
    assert lin.kernel_gamma == 0 and rep_lin["cv_srcc"] == rep["probe_cv_srcc"]
    Xn = rng.normal(size=(100, 6))  # and the chosen head predicts new points better
    yn = np.sin(2.0 * Xn[:, 0])
    from biqa.recipe import fit_recipe

    assert spearmanr(fit_recipe(X, y, None, p).predict(Xn), yn)[0] > spearmanr(
        fit_recipe(X, y, None, lin).predict(Xn), yn)[0] + 0.1


def test_fit_probe_kernel_option_keeps_the_kernel_only_when_validation_says_so(tmp_path, monkeypatch):
    import pandas as pd

    import biqa.probe as P

    rng = np.random.default_rng(8)
    n = 240
    X = rng.normal(size=(n, 6))
    split = np.array(["train"] * 160 + ["val"] * 40 + ["test"] * 40)
    for i in range(n):  # the records must name existing files; the features are stand-ins
        (tmp_path / f"{i}.png").write_bytes(b"")
    saved = {}
    monkeypatch.setattr(P, "cached_path_features", lambda paths, *a, **k: X)
    monkeypatch.setattr(P, "save_linear_checkpoint",
                        lambda head, path, **k: saved.update(head=head, preset=k.get("preset")) or path)
    # a noisy sine of one feature (a kernel helps) and an exact linear map (ridge ranks the val rows perfectly:
    # a kernel cannot do better, so it is not kept)
    for name, mos, kept in [("sine", 3 + np.sin(2 * X[:, 0]) + 0.02 * rng.normal(size=n), True),
                            ("linear", 3 + 0.5 * X[:, 1], False)]:
        recs = tmp_path / f"{name}.csv"
        pd.DataFrame({"path": [f"{i}.png" for i in range(n)], "mos": mos, "split": split}).to_csv(recs, index=False)
        res = P.fit_probe(recs, tmp_path / name, progress=False, label_range=(1, 5), kernel=True)
        assert res["kernel"]["kept"] is kept, (name, res["kernel"], res["validation_srcc"][str(res["alpha"])])
        assert (saved["head"].kernel is not None) is kept
        assert saved["preset"] == ("lite0-ml-kernel" if kept else "lite0-ml-linear")
        if kept:  # the kernel head generalises to the test rows better than the ridge head
            from scipy.stats import spearmanr

            fit = split != "test"
            ridge = fit_ridge(X[fit], mos[fit], res["alpha"]).predict(X[~fit])
            assert res["test"]["srcc"] > spearmanr(ridge, mos[~fit])[0] + 0.1
    res = P.fit_probe(recs, tmp_path / "plain", progress=False, label_range=(1, 5))
    assert "kernel" not in res and saved["head"].kernel is None


def test_feature_cache_is_keyed_by_content_not_path_or_mtime(tmp_path):
    """A dataset copied elsewhere (or re-provisioned with new modification times) reuses the cache;
    a file whose bytes changed is recomputed; the preset is part of the key."""
    import os
    import shutil

    from biqa.probe import cached_path_features

    class Counting:  # an extractor that records what it was asked for; a feature = the file's byte count
        preset_name = "lite0-ml-linear"

        def __init__(self):
            self.calls = []

        def paths(self, paths, resolution="full", progress=True):
            self.calls.append([Path(p).name for p in paths])
            return np.array([[float(Path(p).stat().st_size), 1.0] for p in paths], np.float32)

    a = tmp_path / "a"
    a.mkdir()
    for i, n in enumerate((10, 20, 30)):
        (a / f"{i}.bin").write_bytes(bytes([i]) * n)
    cache = tmp_path / "cache.npz"
    fx = Counting()
    X = cached_path_features([str(a / f"{i}.bin") for i in range(3)], cache, fx)
    np.testing.assert_array_equal(X[:, 0], [10, 20, 30])
    assert fx.calls == [["0.bin", "1.bin", "2.bin"]]
    b = tmp_path / "b"
    shutil.copytree(a, b)  # a copy: other paths, other modification times
    for p in b.iterdir():
        os.utime(p, ns=(1, 1))
    (b / "1.bin").write_bytes(b"changed bytes, same name")
    X = cached_path_features([str(b / f"{i}.bin") for i in range(3)], cache, fx)
    assert fx.calls[1:] == [["1.bin"]]  # only the changed file
    np.testing.assert_array_equal(X[:, 0], [10, 24, 30])
    fx.preset_name = "lite0-mln-linear"  # another preset: nothing reused
    cached_path_features([str(a / "0.bin")], cache, fx)
    assert fx.calls[2:] == [["0.bin"]]
