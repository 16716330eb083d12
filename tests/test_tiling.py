"""Tiled full-resolution scoring: the grid, the budget, batch/thread invariance, outputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from biqa.cli import main
from biqa.data import load_image, to_tensor
from biqa.scorer import load
from biqa.tiling import DEFAULT_BUDGET, DEFAULT_TILE, TilePolicy, aggregate, axis_positions, tile_batches, tile_grid
from conftest import make_image, save_untrained_checkpoint

TILE = 96


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory):
    """A 300x200 photo (tiled at tile 96), a small one (not tiled) and two unreadable inputs."""
    d = tmp_path_factory.mktemp("tiling")
    rng = np.random.default_rng(3)
    make_image(rng, (300, 200), noise=0.02).save(d / "a_big.png")
    make_image(rng, (64, 48), blur=0.5).save(d / "b_small.jpg")
    make_image(rng, (200, 300), noise=0.05).save(d / "c_tall.png")
    (d / "d_zero.jpg").write_bytes(b"")
    (d / "e_text.png").write_text("not an image")
    return d


def _coverage(w, h, grid):
    seen = np.zeros((h, w), dtype=np.int32)
    for left, top, right, bottom in grid.boxes():
        assert 0 <= left and right <= w and 0 <= top and bottom <= h
        seen[top:bottom, left:right] += 1
    return seen


@pytest.mark.parametrize("w,h,tile,overlap", [(300, 200, 96, 12), (96, 96, 96, 12), (192, 96, 96, 0), (180, 96, 96, 12),
                                              (97, 500, 96, 12), (5312, 2988, 768, 96), (4272, 2848, 768, 96),
                                              (1000, 1000, 64, 63)])
def test_grid_covers_every_pixel_with_equal_tiles(w, h, tile, overlap):
    grid = tile_grid(w, h, tile, overlap)
    assert (grid.width, grid.height) == (min(tile, w), min(tile, h))
    assert (_coverage(w, h, grid) >= 1).all()
    xs = sorted({x for x, _ in grid.positions})
    ys = sorted({y for _, y in grid.positions})
    assert len(grid) == len(xs) * len(ys)
    for pos, side, length in ((xs, grid.width, w), (ys, grid.height, h)):
        assert pos[0] == 0 and pos[-1] + side == length  # flush with both borders
        steps = np.diff(pos)
        assert (steps > 0).all() and (steps <= side - overlap).all()  # neighbours overlap by >= overlap
        assert len(steps) == 0 or steps.max() - steps.min() <= 1  # evenly spaced
    assert tile_grid(w, h, tile, overlap) == grid  # a function of the size only


def test_grid_edge_cases():
    # smaller than a tile: one tile, the image itself (never upscaled)
    g = tile_grid(80, 60, 96, 12)
    assert len(g) == 1 and (g.width, g.height) == (80, 60) and g.positions == ((0, 0),)
    # exact multiples without overlap: the plain partition
    assert tile_grid(288, 192, 96, 0).positions == tuple((x, y) for y in (0, 96) for x in (0, 96, 192))
    # one pixel more than a tile: two tiles, flush with each border
    assert axis_positions(97, 96, 12) == [0, 1]
    # one axis short: tiles take that side whole
    g = tile_grid(300, 50, 96, 12)
    assert (g.width, g.height) == (96, 50) and {y for _, y in g.positions} == {0}
    with pytest.raises(ValueError):
        TilePolicy.parse(96, overlap=96)
    with pytest.raises(ValueError, match="auto, off"):
        TilePolicy.parse("big")


def test_auto_budget_decision():
    auto = TilePolicy.parse("auto")
    assert (auto.tile, auto.overlap, auto.budget) == (DEFAULT_TILE, DEFAULT_TILE // 8, DEFAULT_BUDGET)
    assert not auto.applies(1024, 768) and not auto.applies(1920, 1080)
    assert auto.applies(3840, 2160) and auto.applies(5312, 2988) and auto.applies(2048, 1536)
    assert not TilePolicy.parse("off").applies(10000, 10000)
    fixed = TilePolicy.parse("96")
    assert fixed.applies(97, 10) and not fixed.applies(96, 96)
    small = TilePolicy.parse("auto", budget=300 * 200 - 1)
    assert small.applies(300, 200) and not small.applies(200, 299)
    # a forward pass holds at most the scorer's batch and the budget's pixels of tiles, at least one tile
    big = auto.grid(5312, 2988)
    assert auto.tiles_per_forward(big, 8) == 1  # CPU default: 1 Mi px of tiles a pass, one 768 tile
    assert auto.tiles_per_forward(big, 8, pass_pixels=DEFAULT_BUDGET) == DEFAULT_BUDGET // DEFAULT_TILE ** 2 == 3
    assert auto.tiles_per_forward(big, 2, pass_pixels=DEFAULT_BUDGET) == 2
    assert TilePolicy.parse(4096).tiles_per_forward(tile_grid(5000, 5000, 4096, 0), 4) == 1


def test_tile_batches_cut_from_uint8():
    img = torch.arange(3 * 20 * 30, dtype=torch.int32).reshape(3, 20, 30).to(torch.uint8)
    grid = tile_grid(30, 20, 16, 4)
    assert len(grid) == 6  # 3 across, 2 down
    stacks = list(tile_batches(img, grid, 4))
    assert [len(s) for s in stacks] == [4, 2] and all(s.dtype == torch.uint8 for s in stacks)
    tiles = torch.cat(stacks)
    for t, (x, y) in zip(tiles, grid.positions):
        assert torch.equal(t, img[:, y:y + 16, x:x + 16])


def test_aggregate():
    assert aggregate([1.0, 2.0, 3.0]) == (2.0, None)
    s, sd = aggregate([1.0, 3.0], [0.3, 0.4])
    assert s == 2.0 and sd == pytest.approx(np.sqrt((0.09 + 0.16) / 2))


def test_tiled_scores_do_not_depend_on_batch_or_threads(big_dir, tiny_checkpoint):
    paths = [str(big_dir / "a_big.png"), str(big_dir / "c_tall.png")]
    saved = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            for bs in (1, 2, 5):
                torch.set_num_threads(threads)
                s = load(tiny_checkpoint, device="cpu", num_workers=0, batch_size=bs, tile=TILE, threads=threads)
                results.append(s.score(paths))
    finally:
        torch.set_num_threads(saved)
    ref = results[0]
    assert list(ref["tiles"]) == [len(tile_grid(300, 200, TILE, TILE // 8)), len(tile_grid(200, 300, TILE, TILE // 8))]
    assert (ref["tiles"] > 1).all()
    for df in results[1:]:
        np.testing.assert_allclose(df["score"], ref["score"], atol=1e-5, rtol=0)
        assert list(df["tiles"]) == list(ref["tiles"])


def test_tiled_score_is_the_mean_of_tile_scores(big_dir, tiny_checkpoint):
    s = load(tiny_checkpoint, device="cpu", num_workers=0, batch_size=4, tile=TILE, tile_overlap=20)
    path = str(big_dir / "a_big.png")
    got = s.score([path])
    im = to_tensor(load_image(path), s.mean, s.std)
    grid = tile_grid(300, 200, TILE, 20)
    per_tile = [float(s.forward(im[None, :, y:y + grid.height, x:x + grid.width])["score"][0])
                for x, y in grid.positions]
    assert got["tiles"].iloc[0] == len(per_tile) == 12
    assert got["score"].iloc[0] == pytest.approx(np.mean(per_tile), abs=1e-5)
    # PIL images and tensors are tiled the same way
    from PIL import Image

    pil = Image.open(path).convert("RGB")
    x = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float() / 255
    assert s.score(pil)["score"].iloc[0] == pytest.approx(got["score"].iloc[0], abs=1e-5)
    t = s.score(x)
    assert t["score"].iloc[0] == pytest.approx(got["score"].iloc[0], abs=1e-5) and t["tiles"].iloc[0] == 12


def test_tile_off_is_the_whole_image(big_dir, tiny_checkpoint):
    path = str(big_dir / "a_big.png")
    off = load(tiny_checkpoint, device="cpu", num_workers=0, tile="off")
    df = off.score([path, str(big_dir / "b_small.jpg")])
    whole = float(off.forward(to_tensor(load_image(path), off.mean, off.std)[None])["score"][0])
    assert df["score"].iloc[0] == pytest.approx(whole, abs=1e-5) and list(df["tiles"]) == [1, 1]
    # auto with the default budget does not tile these small images: the same scores as off
    auto = load(tiny_checkpoint, device="cpu", num_workers=0).score([path, str(big_dir / "b_small.jpg")])
    np.testing.assert_allclose(auto["score"], df["score"], atol=1e-6, rtol=0)
    # a budget below the big image's pixels tiles it (in default 768 tiles: one tile, the image itself)
    low = load(tiny_checkpoint, device="cpu", num_workers=0, tile="auto", tile_budget=10000)
    d2 = low.score([path, str(big_dir / "b_small.jpg")])
    assert list(d2["tiles"]) == [1, 1]
    np.testing.assert_allclose(d2["score"], df["score"], atol=1e-5, rtol=0)


def test_distribution_model_std_is_pooled(big_dir, tmp_path):
    ckpt = save_untrained_checkpoint(tmp_path / "nima.safetensors", seed=1, preset="nima-lite0")
    s = load(ckpt, device="cpu", num_workers=0, batch_size=3, tile=TILE)
    df = s.score([str(big_dir / "a_big.png")])
    assert list(df.columns) == ["path", "score", "std", "error", "tiles"]
    im = to_tensor(load_image(str(big_dir / "a_big.png")), s.mean, s.std)
    grid = tile_grid(300, 200, TILE, TILE // 8)
    outs = [s.forward(im[None, :, y:y + grid.height, x:x + grid.width]) for x, y in grid.positions]
    stds = np.array([float(o["std"][0]) for o in outs])
    assert df["std"].iloc[0] == pytest.approx(np.sqrt(np.mean(stds ** 2)), abs=1e-5)
    assert df["score"].iloc[0] == pytest.approx(np.mean([float(o["score"][0]) for o in outs]), abs=1e-5)


def test_cli_tiles_column_and_error_rows(big_dir, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    rc = main(["score", str(big_dir), "--model", tiny_checkpoint, "--tile", str(TILE), "--batch-size", "2",
               "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == ["path", "score", "error", "tiles"]
    names = [p.split("/")[-1] for p in df["path"]]
    assert names == ["a_big.png", "b_small.jpg", "c_tall.png", "d_zero.jpg", "e_text.png"]  # input order kept
    tiles = dict(zip(names, df["tiles"]))
    assert tiles["a_big.png"] == str(len(tile_grid(300, 200, TILE, TILE // 8))) and tiles["b_small.jpg"] == "1"
    assert tiles["d_zero.jpg"] == "" and tiles["e_text.png"] == ""  # error rows: no score, no tiles
    bad = df[df["error"] != ""]
    assert sorted(p.split("/")[-1] for p in bad["path"]) == ["d_zero.jpg", "e_text.png"]
    assert "tiles" in capsys.readouterr().out  # the printed table shows the count when an image was tiled
    # the python API gives the same scores as the CLI
    api = load(tiny_checkpoint, device="cpu", num_workers=0, batch_size=2, tile=TILE).score([str(big_dir)])
    np.testing.assert_allclose(pd.to_numeric(df["score"].replace("", np.nan)), api["score"], atol=1e-5)


def test_onnxruntime_backend_and_ensembles_tile_alike(big_dir, tiny_checkpoint, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from biqa.checkpoint import load_model
    from biqa.models import Ensemble
    from biqa.scorer import Scorer

    monkeypatch.setenv("BIQA_CACHE_DIR", str(tmp_path / "cache"))
    paths = [str(big_dir / "a_big.png"), str(big_dir / "b_small.jpg")]
    ref = load(tiny_checkpoint, device="cpu", num_workers=0, batch_size=2, tile=TILE).score(paths)
    ort = load(tiny_checkpoint, backend="onnxruntime", num_workers=0, batch_size=5, tile=TILE).score(paths)
    assert list(ort["tiles"]) == list(ref["tiles"])
    np.testing.assert_allclose(ort["score"], ref["score"], atol=1e-4, rtol=0)
    # an ensemble of two copies of the model scores every tile as the model does
    (m1, meta), (m2, _) = load_model(tiny_checkpoint), load_model(tiny_checkpoint)
    ens = Scorer(Ensemble({"a": m1, "b": m2}), meta, num_workers=0, batch_size=3, tile=TILE).score(paths)
    assert list(ens["tiles"]) == list(ref["tiles"])
    np.testing.assert_allclose(ens["score"], ref["score"], atol=1e-5, rtol=0)
