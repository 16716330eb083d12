"""ONNX / TorchScript export, the onnxruntime scoring backend, and `biqa bench`."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from biqa.checkpoint import load_model, read_meta  # noqa: E402
from biqa.cli import main  # noqa: E402
from biqa.export import (OnnxRuntimeModel, cached_onnx, export_onnx, export_torchscript,  # noqa: E402
                         read_onnx_meta)
from biqa.scorer import TRAINED_MODELS, load  # noqa: E402
from conftest import make_image, save_untrained_checkpoint  # noqa: E402

# several sizes, odd ones included (EfficientNet-Lite's "same" padding depends on the input size)
SIZES = [(48, 40), (97, 61), (160, 120), (33, 57), (257, 190)]


@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory):
    """The bundled (trained) default model, exported once."""
    return export_onnx("biqa-default", tmp_path_factory.mktemp("onnx") / "default.onnx")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for i, size in enumerate(SIZES):
        im = make_image(rng, size, blur=0.5 * i, noise=0.02 * i)
        im.save(root / f"p{i}.{'jpg' if i % 2 else 'png'}", quality=90)
    return root


def test_onnx_matches_torch_dynamic_batch_and_size(default_onnx):
    model, _ = load_model(TRAINED_MODELS["biqa-default"])
    ort_model = OnnxRuntimeModel(default_onnx, threads=1)
    g = torch.Generator().manual_seed(0)
    for b, h, w in [(1, 224, 224), (3, 61, 97), (2, 190, 257), (1, 33, 47)]:
        x = torch.randn(b, 3, h, w, generator=g)
        with torch.inference_mode():
            ref = model(x)
        got = ort_model(x)
        assert got["score"].shape == (b,)
        for k in ("score", "z"):
            np.testing.assert_allclose(got[k].numpy(), ref[k].numpy(), atol=1e-4, rtol=0)


def test_onnx_metadata_records_preprocessing(default_onnx):
    d = read_onnx_meta(default_onnx)
    ck = read_meta(TRAINED_MODELS["biqa-default"])
    assert d["format"] == "biqa-onnx-1"
    assert d["preprocessing"]["mean"] == ck["preprocessing"]["mean"]
    assert d["preprocessing"]["std"] == ck["preprocessing"]["std"]
    assert d["preprocessing"]["resolution"] == ck["preprocessing"]["resolution"]
    assert d["label_scale"] == ck["label_scale"] and d["preset"]["name"] == ck["preset"]["name"]
    assert d["outputs"] == ["score", "z"] and d["input"] == "image"
    import onnx

    props = {p.key: p.value for p in onnx.load(str(default_onnx)).metadata_props}
    assert json.loads(props["biqa.mean"]) == ck["preprocessing"]["mean"]
    assert json.loads(props["biqa.score_range"]) == [1.0, 5.0] and props["biqa.higher_is_better"] == "true"
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(default_onnx)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_onnx_file_alone_scores_like_torch(default_onnx, photos):
    """`biqa.load(model.onnx)` needs nothing but the file; same scores as torch on photos of several sizes."""
    ref = load("biqa-default", device="cpu", num_workers=0, batch_size=4).score([str(photos)])
    onnx_scorer = load(str(default_onnx), num_workers=0, batch_size=4)
    assert onnx_scorer.backend == "onnxruntime"
    df = onnx_scorer.score([str(photos)])
    assert list(df["path"]) == list(ref["path"]) and len(df) == len(SIZES)
    assert (df["error"] == "").all()
    np.testing.assert_allclose(df["score"], ref["score"], atol=1e-4, rtol=0)
    # PIL images and tensors go through the same backend
    im = Image.open(photos / "p0.png").convert("RGB")
    assert onnx_scorer.score(im)["score"].iloc[0] == pytest.approx(ref["score"].iloc[0], abs=1e-4)


def test_distribution_model_exports_std(tmp_path, photos):
    ckpt = save_untrained_checkpoint(tmp_path / "nima.safetensors", seed=1, preset="nima-lite0")
    out = export_onnx(ckpt, tmp_path / "nima.onnx")
    assert read_onnx_meta(out)["outputs"] == ["score", "z", "std", "probs"]
    ref = load(ckpt, device="cpu", num_workers=0).score([str(photos)])
    df = load(str(out), num_workers=0).score([str(photos)])
    assert list(df.columns) == ["path", "score", "std", "error", "tiles"]
    np.testing.assert_allclose(df["score"], ref["score"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(df["std"], ref["std"], atol=1e-4, rtol=0)


def test_backend_onnxruntime_with_checkpoint_uses_cache(tmp_path, monkeypatch, tiny_checkpoint, photos):
    monkeypatch.setenv("BIQA_CACHE_DIR", str(tmp_path / "cache"))
    first = cached_onnx(tiny_checkpoint)
    assert first.is_file() and first.parent == tmp_path / "cache" / "onnx"
    calls = []
    monkeypatch.setattr("biqa.export.export_onnx", lambda *a, **k: calls.append(a))
    assert cached_onnx(tiny_checkpoint) == first and not calls  # reused, not exported again
    scorer = load(tiny_checkpoint, backend="onnxruntime", num_workers=0)
    assert scorer.backend == "onnxruntime" and scorer.meta["onnx"] == str(first)
    ref = load(tiny_checkpoint, backend="torch", device="cpu", num_workers=0).score([str(photos)])
    np.testing.assert_allclose(scorer.score([str(photos)])["score"], ref["score"], atol=1e-4, rtol=0)


def test_cli_export_and_score_onnx(tmp_path, photos, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "biqa-default", "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file()
    csv = tmp_path / "s.csv"
    assert main(["score", str(photos), "--model", str(out), "-q", "--workers", "0", "--out", str(csv)]) == 0
    got = pd.read_csv(csv, keep_default_na=False)
    ref = load("biqa-default", device="cpu", num_workers=0).score([str(photos)])
    np.testing.assert_allclose(got["score"], ref["score"], atol=1e-4)
    # a peer of an ONNX file, a non-biqa ONNX file: clear errors
    assert main(["score", str(photos), "--model", str(out), "--peer", "peer1", "-q"]) == 2
    assert "ONNX" in capsys.readouterr().err
    import onnx

    plain = onnx.load(str(out))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not one exported by biqa"):
        load(str(tmp_path / "plain.onnx"))


def test_torchscript_export(tmp_path):
    out = export_torchscript("biqa-default", tmp_path / "m.pt")
    files = {"biqa.json": ""}
    ts = torch.jit.load(str(out), _extra_files=files)
    meta = json.loads(files["biqa.json"])
    ck = read_meta(TRAINED_MODELS["biqa-default"])
    assert meta["outputs"] == ["score", "z"] and meta["preprocessing"] == ck["preprocessing"]
    model, _ = load_model(TRAINED_MODELS["biqa-default"])
    x = torch.randn(2, 3, 75, 101, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x)["score"]
    np.testing.assert_allclose(ts(x)[0].numpy(), ref.numpy(), atol=1e-4)


def test_size_bucket_sampler_pixel_budget():
    from biqa.data import SizeBucketBatchSampler

    sizes = [(1024, 768)] * 3 + [(224, 224)] * 5 + [None]
    batches = SizeBucketBatchSampler(sizes, 4, max_pixels=224 * 224 * 2).batches
    assert [len(b) for b in batches if sizes[b[0]] == (1024, 768)] == [1, 1, 1]  # over budget: one at a time
    assert [len(b) for b in batches if sizes[b[0]] == (224, 224)] == [2, 2, 1]
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    assert [len(b) for b in SizeBucketBatchSampler(sizes, 4).batches] == [4, 1, 3, 1]  # no budget: as before


def test_rotated_jpeg_draft_decode(tmp_path):
    """A JPEG with EXIF orientation 6 (stored landscape, shown portrait): decoded at reduced size,
    rotated, and sized by the policy in the displayed orientation."""
    from biqa.data import Resolution, image_size, load_image

    rng = np.random.default_rng(0)
    im = make_image(rng, (400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    im.save(p, quality=95, exif=exif)
    out = load_image(str(p), Resolution.parse("max:100"))
    assert out.size == (75, 100) == image_size(str(p), Resolution.parse("max:100"))
    full = load_image(str(p)).resize((75, 100), Image.BICUBIC)
    assert np.abs(np.asarray(out, float) - np.asarray(full, float)).mean() < 6  # same picture


def test_bench_quick(tmp_path, capsys):
    csv = tmp_path / "bench.csv"
    assert main(["bench", "biqa-fast", "--sizes", "64", "--batch", "2", "--repeats", "1",
                 "--backends", "channels-last,onnxruntime", "--threads", "1", "--out", str(csv)]) == 0
    df = pd.read_csv(csv)
    assert len(df) == 4 and set(df["backend"]) == {"channels-last", "onnxruntime"}
    assert set(df["batch"]) == {1, 2} and (df["images_per_s"] > 0).all()
    # EfficientNet-Lite0 has 4.65 M parameters; its features (no 320->1280 conv head, 0.41 M, and no
    # 1280->1000 classifier, 1.28 M) are 2.96 M, plus biqa-fast's head (biqa-default v3): BatchNorm + Linear on 1,056
    # features (1,024 statistics + 4 noise estimates x 8: 3 k) and 880 kernel coefficients (its landmarks are
    # buffers, not parameters); the selection took no residual MLP (1,056 -> 64 -> 1 would add 68 k)
    assert (df["peak_rss_mb"] > 50).all() and df["params_m"].iloc[0] == pytest.approx(2.96 + 0.004, abs=0.02)
    assert df["gmacs_per_image"].iloc[0] == pytest.approx(0.39 * 64 * 64 / 224 ** 2, rel=0.3)
    assert "images_per_s" in capsys.readouterr().out


def test_bench_sizes_parse():
    from biqa.bench import parse_sizes

    assert parse_sizes("224,1024x768, 3840x2160") == [(224, 224), (1024, 768), (3840, 2160)]
    with pytest.raises(ValueError):
        parse_sizes("big")


def test_fold_batchnorm_keeps_outputs(tiny_checkpoint, tmp_path):
    import copy

    from biqa.inference import fold_batchnorm

    for ckpt in (TRAINED_MODELS["biqa-default"],
                 save_untrained_checkpoint(tmp_path / "nima.safetensors", seed=2, preset="nima-lite0")):
        model, _ = load_model(ckpt)
        folded = copy.deepcopy(model)
        n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        n = fold_batchnorm(folded)
        assert n == n_bn > 40 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        x = torch.randn(2, 3, 90, 70, generator=torch.Generator().manual_seed(4))
        with torch.inference_mode():
            a, b = model(x), folded(x)
        for k in a:
            np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        fold_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3)).train())


@pytest.mark.parametrize("preset,f", [("lite0-ml-kernel", 1024), ("lite0-mln-kernel", 1056),
                                      ("lite0-mlbn-linear", 1600)])  # every block group pooled
def test_kernel_head_exports_to_onnx(tmp_path, preset, f):
    """A head with a Gaussian-kernel term (biqa.probe.fit_kernel) exports and scores like torch; on the
    noise-floor features (lite0-mln-kernel) too, whose fixed noise module is part of the graph, and with all 7
    block groups pooled (lite0-mlbn-linear)."""
    from biqa.labels import LabelScale
    from biqa.probe import LinearHead, save_linear_checkpoint

    from biqa.probe import linear_model

    rng = np.random.default_rng(6)
    n = 40
    x = torch.randn(6, 3, 61, 97, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():  # landmarks near these images' features, so that the kernel term is not ~0
        feats = linear_model(LinearHead(np.zeros(f), 0.0, np.zeros(f), np.ones(f)),
                             preset=preset).backbone(x)  # ImageNet weights, as saved
    feats = feats.double().numpy()
    mu, var = feats.mean(0), feats.var(0) + 0.1
    L = (feats[rng.integers(0, 6, n)] - mu) / np.sqrt(var) + 0.3 * rng.normal(size=(n, f))
    head = LinearHead(rng.normal(size=f) * 0.01, 0.5, mu, var,
                      kernel={"L": L, "a": rng.normal(size=n) * 0.2, "gamma": 1.0 / f})
    ckpt = save_linear_checkpoint(head, tmp_path / "k.safetensors", label_scale=LabelScale(1.0, 5.0, True),
                                  preset=preset)
    onnx_path = export_onnx(ckpt, tmp_path / "k.onnx")  # checks parity with torch before writing
    model, _ = load_model(ckpt)
    with torch.inference_mode():
        ref = model(x)
        kt = model.head.kernel_term(model.head.mlp[0](model.backbone(x)))
    got = OnnxRuntimeModel(onnx_path, threads=1)(x)
    np.testing.assert_allclose(got["score"].numpy(), ref["score"].numpy(), atol=1e-4, rtol=0)
    assert float(kt.abs().min()) > 0.01  # the kernel term is part of the score, not a no-op
