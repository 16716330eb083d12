"""Scoring: input discovery, ordering, bad inputs as error rows, outputs, Python API."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import biqa
from biqa.scorer import collect_inputs, load, resolve_checkpoint, write_scores
from conftest import make_image


@pytest.fixture()
def photo_dir(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "sub").mkdir()
    for i, size in enumerate([(48, 40), (48, 40), (40, 56), (48, 40), (33, 33)]):
        folder = tmp_path / ("sub" if i == 3 else "")
        make_image(rng, size, blur=i * 0.3).save(folder / f"im{i}.{'jpg' if i % 2 else 'png'}")
    (tmp_path / "notes.txt").write_text("not an image, and not picked up from a folder")
    return tmp_path


def add_bad_files(folder):
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is a text file renamed .jpg")
    good = folder / "im1.jpg"
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])


def test_collect_inputs_order_and_recursion(photo_dir):
    paths = collect_inputs([str(photo_dir)])
    names = [p.split("/")[-1] for p in paths]
    assert names == ["im0.png", "im1.jpg", "im2.png", "im4.png", "im3.jpg"]  # top level sorted, then sub/
    explicit = collect_inputs([str(photo_dir / "im2.png"), str(photo_dir / "*.jpg"), "missing.png"])
    assert [p.split("/")[-1] for p in explicit] == ["im2.png", "im1.jpg", "missing.png"]


def test_bad_inputs_become_error_rows(photo_dir, tiny_checkpoint):
    add_bad_files(photo_dir)
    scorer = load(tiny_checkpoint, device="cpu", batch_size=2, num_workers=0)
    inputs = collect_inputs([str(photo_dir)]) + [str(photo_dir / "nope.png")]
    df = scorer.score(inputs)
    assert list(df["path"]) == inputs  # one row per input, in input order
    bad = df[df["error"] != ""]
    assert sorted(p.split("/")[-1] for p in bad["path"]) == ["nope.png", "text.jpg", "truncated.jpg", "zero.jpg"]
    assert bad["score"].isna().all()
    errs = dict(zip([p.split("/")[-1] for p in bad["path"]], bad["error"]))
    assert "empty file" in errs["zero.jpg"] and "not found" in errs["nope.png"]
    assert "not a readable image" in errs["text.jpg"]
    assert "truncated" in errs["truncated.jpg"].lower()
    good = df[df["error"] == ""]
    assert len(good) == 5 and np.isfinite(good["score"]).all()


def test_batching_and_workers_do_not_change_scores(photo_dir, tiny_checkpoint):
    ref = load(tiny_checkpoint, device="cpu", batch_size=1, num_workers=0).score([str(photo_dir)])
    for bs, nw in [(4, 0), (3, 2)]:
        df = load(tiny_checkpoint, device="cpu", batch_size=bs, num_workers=nw).score([str(photo_dir)])
        assert list(df["path"]) == list(ref["path"])
        np.testing.assert_allclose(df["score"], ref["score"], atol=1e-4)


def test_tensor_and_pil_inputs_match_files(photo_dir, tiny_checkpoint):
    scorer = load(tiny_checkpoint, device="cpu", num_workers=0)
    path = photo_dir / "im0.png"
    from_file = scorer.score([str(path)])["score"].iloc[0]
    im = Image.open(path).convert("RGB")
    x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
    assert scorer.score(x)["score"].iloc[0] == pytest.approx(from_file, abs=1e-5)
    assert scorer.score(im)["score"].iloc[0] == pytest.approx(from_file, abs=1e-5)


def test_write_csv_and_json(tmp_path):
    df = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "score": [3.5, np.nan], "error": ["", "OSError: bad"]})
    write_scores(df, tmp_path / "s.csv")
    back = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert list(back["path"]) == ["a.jpg", "b.jpg"] and back["error"].iloc[1] == "OSError: bad"
    write_scores(df, tmp_path / "s.json")
    rows = json.loads((tmp_path / "s.json").read_text())
    assert rows[0] == {"path": "a.jpg", "score": 3.5, "error": ""} and rows[1]["score"] is None
    with pytest.raises(ValueError, match="csv or .json"):
        write_scores(df, tmp_path / "s.xlsx")


def test_resolution_policy(photo_dir, tiny_checkpoint):
    full = load(tiny_checkpoint, device="cpu", num_workers=0)
    fixed = load(tiny_checkpoint, device="cpu", num_workers=0, resolution="32x32")
    a, b = full.score([str(photo_dir)]), fixed.score([str(photo_dir)])
    assert not np.allclose(a["score"], b["score"])  # the network saw different pixels
    from biqa.data import Resolution

    assert Resolution.parse("max:100").target_size(400, 200) == (100, 50)
    assert Resolution.parse("short:50").target_size(400, 200) == (100, 50)
    assert Resolution.parse("max:1000").target_size(400, 200) == (400, 200)
    with pytest.raises(ValueError, match="WxH"):
        Resolution.parse("big")


def test_model_name_errors(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        resolve_checkpoint("lite0-mos")
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*nothing.safetensors"):
        resolve_checkpoint(str(tmp_path / "nothing.safetensors"))
    with pytest.raises(FileNotFoundError, match="no trained model named 'nothing'.*biqa-default"):
        resolve_checkpoint("nothing")


def test_run_folder_resolves_to_best(tiny_checkpoint, tmp_path):
    shutil.copy(tiny_checkpoint, tmp_path / "best.safetensors")
    assert resolve_checkpoint(str(tmp_path)) == tmp_path / "best.safetensors"
    assert isinstance(biqa.load(str(tmp_path), device="cpu"), biqa.Scorer)


def test_tensors_that_are_not_images_in_0_1_are_refused(photo_dir, tiny_checkpoint):
    """uint8, 0-255 floats, an already normalised tensor, NaN or a wrong shape used to give silent
    garbage scores; each is refused with a message saying what to pass."""
    scorer = load(tiny_checkpoint, device="cpu", num_workers=0)
    im = Image.open(photo_dir / "im0.png").convert("RGB")
    u8 = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
    x = u8.float() / 255
    from_file = scorer.score([str(photo_dir / "im0.png")])["score"].iloc[0]
    with pytest.raises(ValueError, match=r"float tensor in \[0, 1\], got torch.uint8 .*x.float\(\) / 255"):
        scorer.score(u8)
    with pytest.raises(ValueError, match=r"got \[63, 191\]: this looks like 0-255 data; divide"):
        scorer.score(u8.float())
    mean, std = torch.tensor(scorer.mean).view(3, 1, 1), torch.tensor(scorer.std).view(3, 1, 1)
    with pytest.raises(ValueError, match="already normalised.*pass the image in \\[0, 1\\]"):
        scorer.score((x - mean) / std)
    with pytest.raises(ValueError, match="NaN"):
        scorer.score(torch.where(x > 0.5, x, torch.tensor(float("nan"))))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\].*got shape \(1, 40, 48\)"):
        scorer.score(x[:1])
    with pytest.raises(ValueError, match=r"clamp"):
        scorer.score((x * 1.5)[None])  # up to 1.12: an overshoot, e.g. after resizing
    # what the docstring asks for still scores as the file does, in float16 / float64 too
    for t in (x, x[None].double(), x.half()):
        assert scorer.score(t)["score"].iloc[0] == pytest.approx(from_file, abs=2e-3 if t.dtype == torch.half else 1e-5)


def test_device_auto_is_resolved_in_one_place(monkeypatch, tiny_checkpoint):
    """``auto`` is the GPU when torch sees one, else the CPU, wherever a device is taken."""
    import re
    from pathlib import Path

    import biqa.distributed as D
    from biqa.checkpoint import load_model
    from biqa.host import resolve_device
    from biqa.scorer import Scorer

    for has_gpu, want in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
        assert resolve_device("auto") == resolve_device(None) == torch.device(want)
        assert D.setup("auto").device == torch.device(want)  # one process: nothing is initialised
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device(torch.device("cpu")).type == "cpu"
    # the Scorer itself takes "auto" (torch.device("auto") used to raise there)
    model, meta = load_model(tiny_checkpoint)
    assert Scorer(model, meta, device="auto").device == torch.device("cpu")
    assert load(tiny_checkpoint, device="auto").device == torch.device("cpu")
    # no other module decides what "auto" means
    pkg = Path(biqa.__file__).parent
    others = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
              if p.name != "host.py" and re.search(r"cuda\.is_available\(\)", p.read_text())]
    assert others == []


def test_onnxruntime_runs_beside_inline_decoding(photo_dir, tiny_checkpoint, tmp_path, monkeypatch):
    """With onnxruntime and inline decoding the network runs in a worker thread while the next batch is
    decoded: rows, errors, order and the per-batch callback are as the torch model gives them (the
    reference: another backend, scores within 1e-4), and every forward ran outside the calling thread."""
    pytest.importorskip("onnxruntime")
    import threading

    monkeypatch.setenv("BIQA_CACHE_DIR", str(tmp_path / "cache"))
    add_bad_files(photo_dir)
    inputs = collect_inputs([str(photo_dir)]) + [str(photo_dir / "nope.png")]
    ref = load(tiny_checkpoint, device="cpu", backend="torch", batch_size=2, num_workers=0).score(inputs)
    ort = load(tiny_checkpoint, backend="onnxruntime", batch_size=2, num_workers=0)
    threads, seen = [], []
    forward = ort.model.__call__

    def spy(x):
        threads.append(threading.current_thread())
        return forward(x)

    monkeypatch.setattr(ort, "model", spy, raising=False)
    ort.predictor.model = spy
    df = ort.score_paths(inputs, on_batch=lambda idx, rows: seen.extend(idx))
    assert list(df["path"]) == inputs
    assert list(df["error"] != "") == list(ref["error"] != "")
    np.testing.assert_allclose(df["score"], ref["score"], atol=1e-4)  # NaN where both are errors
    assert sorted(seen) == list(range(len(inputs)))  # each input reported once, errors included
    assert threads and all(t is not threading.main_thread() for t in threads)
