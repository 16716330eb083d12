"""One prediction core: `biqa eval`, the trainer's validation / test and `biqa score` score a large
image the same way (tiled where the tile policy says so), so reported metrics are what users get."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_image

import biqa
from biqa.cli import main
from biqa.config import load_config
from biqa.evaluate import evaluate_checkpoint
from biqa.prediction import Predictor
from biqa.tiling import TilePolicy
from biqa.trainer import Trainer

SIZES = [(200, 150), (160, 120), (150, 100), (96, 72)]  # all larger than one 64 px tile


@pytest.fixture(scope="module")
def large_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(3)
    rows = []
    for k, size in enumerate(SIZES):
        make_image(rng, size=size, blur=0.5 * k, noise=0.02 * k).save(root / f"im{k}.png")
        rows.append({"path": f"im{k}.png", "mos": 4.0 - 0.7 * k})
    pd.DataFrame(rows).to_csv(root / "records.csv", index=False)
    return str(root / "records.csv")


def _paths(records):
    df = pd.read_csv(records)
    return [str(Path(records).parent / p) for p in df["path"]]


@pytest.mark.filterwarnings("ignore:bootstrap")  # 4 images: a few resamples are constant
def test_eval_scores_large_images_exactly_as_score(large_records, tiny_checkpoint, tmp_path):
    tile = {"tile": 64, "tile_overlap": 8}
    scored = biqa.load(tiny_checkpoint, num_workers=0, **tile).score(_paths(large_records))
    assert (scored["tiles"] > 1).all()  # every image is tiled: the case the two paths used to disagree on
    res = evaluate_checkpoint(tiny_checkpoint, large_records, split="all", out_dir=tmp_path / "api", n_boot=10,
                              num_workers=0, progress=False, **tile)
    pred = pd.read_csv(tmp_path / "api" / "predictions.csv")["pred"].to_numpy()
    np.testing.assert_array_equal(pred, scored["score"].to_numpy())  # the same arithmetic, bit for bit
    assert main(["eval", tiny_checkpoint, "--data", large_records, "--split", "all", "--n-boot", "10", "--quiet",
                 "--workers", "0", "--tile", "64", "--tile-overlap", "8", "--out", str(tmp_path / "cli")]) == 0
    cli = pd.read_csv(tmp_path / "cli" / "predictions.csv")["pred"].to_numpy()
    np.testing.assert_array_equal(cli, pred)
    # the check bites: scored whole, the images get other scores (and other metrics)
    whole = evaluate_checkpoint(tiny_checkpoint, large_records, split="all", out_dir=tmp_path / "off", n_boot=10,
                                num_workers=0, progress=False, tile="off")
    off = pd.read_csv(tmp_path / "off" / "predictions.csv")["pred"].to_numpy()
    assert np.abs(off - pred).max() > 1e-4
    assert whole["n"] == res["n"] == len(SIZES)


def test_trainer_test_metrics_score_as_score(tiny_records, tmp_path):
    """The trainer's test predictions (from best.safetensors) equal `biqa score` with the same tiles."""
    cfg = load_config({
        "name": "p", "out_dir": str(tmp_path), "seed": 0, "progress": False,
        "data": {"records": tiny_records, "crop_size": 32, "num_workers": 0, "eval_tile": 32, "eval_tile_overlap": 4},
        "model": {"preset": "lite0-mos", "pretrained": False},
        "train": {"epochs": 1, "batch_size": 8, "max_steps_per_epoch": 1, "eval_batch_size": 4},
    })
    Trainer(cfg).fit()
    test = pd.read_csv(tmp_path / "test_predictions.csv")
    paths = [str(Path(tiny_records).parent / p) for p in test["path"]]
    # the trainer never folds BatchNorms: neither does this scorer, so the two run the same arithmetic
    scorer = biqa.load(tmp_path / "best.safetensors", num_workers=0, fold_bn=False, batch_size=4, tile=32,
                       tile_overlap=4)
    scored = scorer.score(paths)
    assert (scored["tiles"] == 4).all()  # 48x40 images in 2x2 tiles of 32
    np.testing.assert_allclose(test["pred"].to_numpy(), scored["score"].to_numpy(), rtol=1e-6, atol=1e-7)
    whole = biqa.load(tmp_path / "best.safetensors", num_workers=0, fold_bn=False, tile="off").score(paths)
    assert np.abs(whole["score"].to_numpy() - test["pred"].to_numpy()).max() > 1e-4


def test_predictor_aggregates_tiles_like_the_tiling_module():
    """Score: mean of the tile scores; std: root mean square of the tile stds; probs: their mean."""
    def model(x):
        m = x.mean(dim=(1, 2, 3))
        return {"score": m, "std": m.abs() + 1, "probs": torch.stack([m, 1 - m], 1)}

    p = Predictor(model, tiling=32)
    x = torch.rand(2, 3, 40, 64)
    res = p.predict(x)
    grid = p.tiling.grid(64, 40)
    assert res["tiles"].tolist() == [len(grid)] * 2
    for i in range(2):
        tiles = torch.stack([x[i, :, y:y + grid.height, xx:xx + grid.width] for xx, y in grid.positions])
        m = tiles.mean(dim=(1, 2, 3)).double()
        assert float(res["score"][i]) == pytest.approx(float(m.mean()), rel=1e-6)
        assert float(res["std"][i]) == pytest.approx(float(((m.abs() + 1) ** 2).mean().sqrt()), rel=1e-6)
        assert float(res["probs"][i, 0]) == pytest.approx(float(m.mean()), rel=1e-5)
    small = Predictor(model, tiling=64).predict(x)
    assert small["tiles"].tolist() == [1, 1]
    torch.testing.assert_close(small["score"], x.mean(dim=(1, 2, 3)).double())


def test_bench_times_images_as_score_runs_them(tmp_path):
    """biqa bench's channels-last row goes through the prediction core (tiled like biqa score); eager
    stays the bare model on the whole image."""
    csv = tmp_path / "bench.csv"
    assert main(["bench", "lite0-mos", "--sizes", "96x64", "--batch", "1", "--repeats", "1", "--backends",
                 "eager,channels-last", "--threads", "1", "--tile", "64", "--out", str(csv)]) == 0
    df = pd.read_csv(csv).set_index("backend")
    grid = TilePolicy.parse(64).grid(96, 64)
    assert df.loc["channels-last", "tiles"] == len(grid) == 2
    assert df.loc["eager", "tiles"] == 1


def test_model_errors_become_error_rows_whole_or_tiled():
    """A model may report per-image errors (as the classical methods do for images they cannot score):
    the core passes them on (a tiled image: the first error of its tiles), the Scorer makes error rows;
    float64 scores stay float64 (no float32 round trip)."""
    from biqa.scorer import Scorer

    def model(x):  # "cannot score" a dark image (or tile)
        m = x.double().mean(dim=(1, 2, 3))
        return {"score": m + 1e-9, "errors": ["dark" if v < 0.2 else "" for v in m.tolist()]}

    x = torch.stack([torch.full((3, 40, 64), 0.1), torch.rand(3, 40, 64, generator=torch.Generator().manual_seed(0))])
    x[1, :, :, :32] = torch.rand(3, 40, 32, generator=torch.Generator().manual_seed(1)) * 0.2 + 0.5  # bright left
    whole = Predictor(model, tiling="off").predict(x)
    assert whole["errors"] == ["dark", ""]
    assert float(whole["score"][1]) == float(x[1].double().mean()) + 1e-9  # exact: no float32 rounding
    x[1, :, :, 32:] = 0.05  # the right half dark: one of the two 32x32-ish tiles reports an error
    tiled = Predictor(model, tiling=32).predict(x)
    assert tiled["tiles"].tolist() == [len(TilePolicy.parse(32).grid(64, 40))] * 2
    assert tiled["errors"] == ["dark", "dark"]
    meta = {"preprocessing": {"mean": [0, 0, 0], "std": [1, 1, 1]}}
    for tile in ("off", 32):
        df = Scorer(model, meta, channels_last=False, tile=tile, num_workers=0).score(x)
        assert df["error"].tolist() == ["dark", "dark" if tile == 32 else ""]
        assert df["score"].isna().tolist() == [True, tile == 32]
        assert df["tiles"].isna().tolist() == [True, tile == 32]
