"""The torch-free scoring path (biqa.ortscore) against the torch path it replaces on the command line.

The reference is the torch scorer (biqa.scorer.Scorer: DataLoader, torch normalisation, torch tiling,
the prediction core), fed the same network: the arrays the network receives must be equal, so must the
rows; `biqa score x.onnx` in a subprocess must not import torch, timm or torchvision at all.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from biqa.ortscore import OrtScorer, format_rows, normalise, tile_stacks, write_rows
from biqa.scorer import Scorer, write_scores
from biqa.tiling import TilePolicy, tile_batches
from conftest import make_image

ROOT = Path(__file__).resolve().parents[1]
META = {"preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resolution": "full"},
        "label_scale": {"lo": 1.0, "hi": 5.0, "higher_is_better": True}, "preset": {"name": "fake", "head": "score"}}


def fake_net(x: np.ndarray) -> dict[str, np.ndarray]:
    """A deterministic 'network' that depends on every pixel and on where it is (NumPy, float32 in)."""
    x = np.asarray(x, np.float32)
    w = np.linspace(0.5, 1.5, x.shape[3], dtype=np.float32)
    h = np.linspace(1.0, 2.0, x.shape[2], dtype=np.float32)[:, None]
    s = (x[:, 0] * w * h).mean(axis=(1, 2)) + (x[:, 1] * x[:, 2]).mean(axis=(1, 2)) + np.abs(np.diff(x, axis=3)).mean(
        axis=(1, 2, 3))
    return {"score": s.astype(np.float32), "z": s.astype(np.float32)}


class NumpyRecorder:
    meta = META

    def __init__(self):
        self.inputs = []

    def __call__(self, x):
        self.inputs.append(np.array(x))
        return fake_net(x)


class TorchRecorder:
    backend = "onnxruntime"  # a callable with the OnnxRuntimeModel contract: torch tensors in and out

    def __init__(self):
        self.inputs = []

    def __call__(self, x: torch.Tensor):
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        self.inputs.append(a.copy())
        return {k: torch.from_numpy(v) for k, v in fake_net(a).items()}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("ortimgs")
    rng = np.random.default_rng(7)
    make_image(rng, (97, 61), noise=0.05).save(root / "a.jpg", quality=85)
    make_image(rng, (160, 120), blur=1.0).save(root / "b.png")
    rot = make_image(rng, (120, 80), noise=0.02)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the network sees 80 x 120
    rot.save(root / "c_rotated.jpg", quality=90, exif=exif)  # stored 120 x 80
    make_image(rng, (64, 48)).convert("L").save(root / "d_grey.png")
    make_image(rng, (64, 48)).convert("RGBA").save(root / "e_rgba.png")
    make_image(rng, (1800, 1300), noise=0.03).save(root / "f_big.png")  # 2.34 Mpx: tiled by the auto policy
    (root / "g_broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "h_empty.jpg").write_bytes(b"")
    make_image(rng, (97, 61), noise=0.05).save(root / "i_same_size.jpg", quality=70)
    return root


def _paths(root):
    return sorted(str(p) for p in root.iterdir())


def test_normalise_equals_the_torch_path_bit_for_bit():
    """ortscore.normalise (NumPy, channels moved in the cast) against torch's own steps on the decoded
    channels-last view, and the Scorer's normalisation for both of its backends against the same."""
    rng = np.random.default_rng(0)
    mean, std = META["preprocessing"]["mean"], META["preprocessing"]["std"]
    m_t, s_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    class TorchBackend(TorchRecorder):
        backend = "torch"

    ort_scorer = Scorer(TorchRecorder(), META, device="cpu", channels_last=False, num_workers=0)
    torch_scorer = Scorer(TorchBackend(), META, device="cpu", channels_last=False, num_workers=0)
    assert (ort_scorer.backend, torch_scorer.backend) == ("onnxruntime", "torch")
    for shape in [(1, 7, 5, 3), (3, 61, 97, 3), (2, 128, 96, 3)]:
        u8 = rng.integers(0, 256, shape, dtype=np.uint8)
        view = torch.from_numpy(u8).permute(0, 3, 1, 2)  # the channels-last view, as decoded
        ref = ((view.to(torch.float32) / 255.0 - m_t) / s_t).contiguous().numpy()
        got = normalise(u8, mean, std)
        assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"] and got.shape == ref.shape
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
        for s in (ort_scorer, torch_scorer):
            x = s._normalise(view)
            assert x.dtype == torch.float32 and np.array_equal(x.contiguous().numpy().view(np.uint32), ref.view(np.uint32))
        assert ort_scorer._normalise(view).is_contiguous()  # what an onnxruntime session takes, no copy
    one = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)  # one image [H, W, 3] -> a batch of one
    assert np.array_equal(normalise(one, mean, std), normalise(one[None], mean, std))
    with pytest.raises(ValueError, match="expected uint8 images"):
        normalise(np.zeros((2, 3, 8, 8), np.uint8), mean, std)


def test_tiles_equal_the_torch_tiles():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (1300, 1800, 3), dtype=np.uint8)
    grid = TilePolicy.parse("auto").grid(1800, 1300)
    ref = [t.permute(0, 2, 3, 1).numpy() for t in tile_batches(torch.from_numpy(img).permute(2, 0, 1), grid, 2)]
    got = list(tile_stacks(img, grid, 2))
    assert len(got) == len(ref) == -(-len(grid) // 2)
    assert all(np.array_equal(g, r) for g, r in zip(got, ref))


@pytest.mark.parametrize("resolution", [None, "max:100"])
def test_rows_and_network_inputs_match_the_torch_scorer(images, resolution):
    """Decode (JPEG, PNG, grey, RGBA, EXIF-rotated), resize, normalise, batch and tile: the network
    gets the same arrays in the same order, the rows are the same (errors included)."""
    paths = _paths(images)
    t_net, n_net = TorchRecorder(), NumpyRecorder()
    ref = Scorer(t_net, META, device="cpu", channels_last=False, num_workers=0, batch_size=4,
                 resolution=resolution).score_paths(paths)
    got = OrtScorer(n_net, batch_size=4, resolution=resolution).score_paths(paths)
    assert len(n_net.inputs) == len(t_net.inputs) > 0
    for a, b in zip(n_net.inputs, t_net.inputs):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert [r["path"] for r in got] == list(ref["path"])
    assert [r["error"] for r in got] == list(ref["error"])
    np.testing.assert_array_equal(np.array([r["score"] for r in got], float), ref["score"].to_numpy(float))
    assert [r["tiles"] for r in got] == [None if pd.isna(t) else int(t) for t in ref["tiles"]]
    by = {Path(r["path"]).name: r for r in got}
    assert by["g_broken.jpg"]["error"].startswith("UnidentifiedImageError") or "not a readable image" in by[
        "g_broken.jpg"]["error"]
    assert "empty file" in by["h_empty.jpg"]["error"]
    if resolution is None:
        assert by["f_big.png"]["tiles"] > 1 and by["a.jpg"]["tiles"] == 1  # the large one was tiled
        assert any(a.shape[2:] == (120, 80) for a in n_net.inputs)  # the EXIF rotation was applied (80 x 120)


def test_written_files_equal_write_scores(images, tmp_path):
    """CSV and JSON from the rows are what biqa.scorer.write_scores writes for the same DataFrame."""
    s = OrtScorer(NumpyRecorder(), batch_size=4)
    rows = s.score_paths(_paths(images) + [str(images / "missing.png")])
    df = pd.DataFrame(rows)
    df["tiles"] = pd.to_numeric(df["tiles"], errors="coerce").astype("Int64")
    for ext in ("csv", "json"):
        write_scores(df[s.columns], tmp_path / f"ref.{ext}")
        write_rows(rows, tmp_path / f"got.{ext}", s.columns)
        assert (tmp_path / f"got.{ext}").read_bytes() == (tmp_path / f"ref.{ext}").read_bytes(), ext
    assert "f_big.png" in format_rows(rows, False) and "tiles" in format_rows(rows, False).splitlines()[0]


# ------------------------------------------------------------------------- a real ONNX model, end to end

@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_checkpoint):
    from biqa.export import export_onnx

    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def _imported(stderr: str) -> set[str]:
    """Top-level packages in a `python -X importtime` log."""
    out = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            out.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return out


def _run(args, env=None, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "biqa", *args], capture_output=True, text=True,
                          env=env, cwd=kw.get("cwd"), timeout=300)


def test_cli_scores_an_onnx_file_without_torch(tiny_onnx, images, tmp_path):
    out = tmp_path / "s.csv"
    r = _run(["score", str(images), "--model", str(tiny_onnx), "-q", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    mods = _imported(r.stderr)
    assert "onnxruntime" in mods and "PIL" in mods
    assert not mods & {"torch", "timm", "torchvision", "pandas"}, mods & {"torch", "timm", "torchvision", "pandas"}
    got = pd.read_csv(out, keep_default_na=False)
    import biqa

    ref = biqa.load(str(tiny_onnx), num_workers=0).score([str(images)])  # the torch path with the same file
    assert list(got["path"]) == list(ref["path"])
    ok = ref["error"] == ""
    np.testing.assert_allclose(pd.to_numeric(got["score"][ok]).to_numpy(), ref["score"][ok].to_numpy(), atol=2e-6)
    assert (got["error"][~ok] != "").all()


def test_cli_uses_a_cached_export_without_torch(tiny_checkpoint, images, tmp_path):
    """--backend onnxruntime with a checkpoint: the first run exports (torch), later runs do not import it."""
    env = {"BIQA_CACHE_DIR": str(tmp_path / "cache")}
    one = images / "b.png"
    first = _run(["score", str(one), "--model", tiny_checkpoint, "--backend", "onnxruntime", "-q"], env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "torch" in _imported(first.stderr)  # exported now
    second = _run(["score", str(one), "--model", tiny_checkpoint, "--backend", "onnxruntime"], env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "torch" not in _imported(second.stderr)
    assert "b.png" in second.stdout
    off = _run(["score", str(one), "--model", tiny_checkpoint, "--backend", "onnxruntime", "-q"],
               dict(env, BIQA_TORCH_FREE="0"))
    assert off.returncode == 0 and "torch" in _imported(off.stderr)  # the switch back to the torch path


def test_cli_onnx_path_reports_like_the_torch_path(tiny_onnx, tmp_path):
    """Exit statuses and messages of the torch-free path: nothing found, everything broken, a precision that is
    not shipped."""
    (tmp_path / "bad.jpg").write_bytes(b"xx")
    r = _run(["score", str(tmp_path / "nothing*.png"), "--model", str(tiny_onnx)])
    assert r.returncode == 1 and "no images found" in r.stderr
    r = _run(["score", str(tmp_path / "missing.png"), "--model", str(tiny_onnx)])
    assert r.returncode == 1 and "none of the 1 input(s) could be scored" in r.stderr and "file not found" in r.stderr
    r = _run(["score", str(tmp_path / "bad.jpg"), "--model", str(tiny_onnx), "-q"])
    assert r.returncode == 1 and "none of the 1 input(s)" in r.stderr
    r = _run(["score", str(tmp_path), "--model", str(tiny_onnx), "--out", str(tmp_path / "o.json"), "-q"])
    assert r.returncode == 1  # the only image is broken
    rows = json.loads((tmp_path / "o.json").read_text())
    assert rows[0]["score"] is None and rows[0]["tiles"] is None and rows[0]["error"]
    r = _run(["score", str(tmp_path), "--model", str(tiny_onnx), "--precision", "bf16"])
    assert r.returncode == 2 and "not offered on onnxruntime" in r.stderr
