"""biqa.create_metric: a trained model as a torch.nn.Module, checked against `biqa score` on the same
images, gradients checked against finite differences; the untrained-model warnings."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import biqa
from biqa.cli import main
from biqa.models import UntrainedModelWarning


def _photo(rng, w, h):
    """A smooth random image with some texture (PNG: lossless, so the CLI reads exactly these pixels)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1)
    img = 127.5 + 80 * base + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _as_tensor(path) -> torch.Tensor:
    a = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255.0


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("metric_photos")
    rng = np.random.default_rng(0)
    for name, (w, h) in {"a.png": (96, 64), "b.png": (96, 64), "c.png": (80, 120)}.items():
        Image.fromarray(_photo(rng, w, h)).save(d / name)
    return d


@pytest.fixture(scope="module")
def metric():
    return biqa.create_metric("biqa-default", device="cpu")


def _cli_scores(folder, out, *extra) -> dict[str, float]:
    assert main(["score", str(folder), "--out", str(out), "-q", "--workers", "0", *extra]) == 0
    df = pd.read_csv(out)
    return dict(zip(df["path"].map(lambda p: p.rsplit("/", 1)[-1]), df["score"])), df


def test_metric_equals_biqa_score(photos, metric, tmp_path):
    cli, _ = _cli_scores(photos, tmp_path / "s.csv")  # the default model, as a newcomer runs it
    assert isinstance(metric, torch.nn.Module)
    assert metric.higher_is_better and not metric.lower_better and metric.score_range == (1.0, 5.0)
    assert metric.trained
    # a batch of two images of one size -> a [2] tensor
    x = torch.stack([_as_tensor(photos / "a.png"), _as_tensor(photos / "b.png")])
    s = metric(x)
    assert s.shape == (2,) and s.dtype == torch.float32 and not s.requires_grad
    np.testing.assert_allclose(s.numpy(), [cli["a.png"], cli["b.png"]], atol=2e-5)  # the CSV keeps 6 decimals
    # another size, one image ([3, H, W] is taken as a batch of one)
    np.testing.assert_allclose(metric(_as_tensor(photos / "c.png")).numpy(), [cli["c.png"]], atol=2e-5)


def test_metric_tiles_like_biqa_score(photos, tmp_path):
    cli, df = _cli_scores(photos / "c.png", tmp_path / "t.csv", "--tile", "64")
    assert int(df["tiles"].iloc[0]) > 1  # 80x120 in 64-pixel tiles
    tiled = biqa.create_metric("biqa-default", device="cpu", tile=64)
    got = float(tiled(_as_tensor(photos / "c.png"))[0])
    assert got == pytest.approx(cli["c.png"], abs=2e-5)
    whole = float(biqa.create_metric("biqa-default", device="cpu", tile="off")(_as_tensor(photos / "c.png"))[0])
    assert abs(whole - got) > 1e-4  # tiling did change the number: the test above is not vacuous


def test_as_loss_backpropagates_to_the_input(photos, metric):
    loss_metric = biqa.create_metric("biqa-default", device="cpu", as_loss=True)
    x0 = 0.2 + 0.6 * _as_tensor(photos / "a.png")[None]  # away from 0 and 1: room for finite differences
    x = x0.clone().requires_grad_(True)
    s = loss_metric(x)
    assert s.shape == (1,) and s.requires_grad
    (g,) = torch.autograd.grad(s.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert not any(p.requires_grad for p in loss_metric.parameters())  # the metric itself stays frozen
    # the gradient against a central finite difference of the no-grad metric along it
    d = g / g.norm()
    h = 1e-3
    fd = (metric(x0 + h * d) - metric(x0 - h * d)).item() / (2 * h)
    assert fd == pytest.approx(g.norm().item(), rel=0.1)
    # loss(): minimised when the score rises (higher is better), same gradient with the sign flipped
    x.grad = None
    loss_metric.loss(x).backward()
    torch.testing.assert_close(x.grad, -g)
    # without as_loss nothing is recorded
    assert not metric(x).requires_grad


def test_metric_refuses_what_it_cannot_score(metric):
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        metric(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="divide 0-255 images by 255"):
        metric(torch.rand(1, 3, 32, 32) * 255)
    with pytest.raises(ValueError, match="float tensor"):
        metric(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="already normalised"):  # the check biqa.load(...).score shares
        metric(torch.rand(1, 3, 32, 32) * 4 - 2)
    with pytest.raises(ValueError, match="model preset .*untrained"):
        biqa.create_metric("nima-lite0")
    with pytest.raises(ValueError, match="classical model"):
        biqa.create_metric("niqe")


def test_untrained_models_say_so(tmp_path):
    from biqa.checkpoint import save_untrained

    model = biqa.create_model("lite0-mos", pretrained=False).eval()
    assert model.trained is False
    x = torch.rand(1, 3, 32, 32)
    with pytest.warns(UntrainedModelWarning, match="UNTRAINED quality head.*biqa.create_metric"):
        model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x)  # once per model
        fresh = biqa.create_model("lite0-mos", pretrained=False)
        fresh.train()  # being trained: no warning
        fresh(torch.rand(2, 3, 64, 64))
        assert biqa.create_metric("biqa-default", device="cpu").trained  # a trained model: no warning
    ckpt = save_untrained(tmp_path / "u.safetensors", "lite0-mos")
    with pytest.warns(UntrainedModelWarning):
        scorer = biqa.load(ckpt, device="cpu")
    assert scorer.trained is False
    with pytest.warns(UntrainedModelWarning):
        assert biqa.create_metric(ckpt, device="cpu").trained is False
