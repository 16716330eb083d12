"""NIMA end to end on a miniature synthetic-distortion benchmark: EMD training and held-out EMD."""
from __future__ import annotations

import json

import numpy as np

from biqa.config import load_config
from biqa.synth import build_synthetic_dataset
from biqa.trainer import Trainer
from conftest import make_image


def test_nima_trains_on_the_synthetic_benchmark(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        make_image(rng, (72, 72)).save(photos / f"p{i}.png")
    records = build_synthetic_dataset(photos, tmp_path / "synth", crops_per_photo=1, crop_size=64,
                                      types=["gaussian_blur", "jpeg", "white_noise"], levels=(1, 3, 5),
                                      val_fraction=0.25, test_fraction=0.25, seed=0, progress=False)
    cfg = load_config({
        "name": "nima", "out_dir": str(tmp_path / "run"), "progress": False,
        "data": {"records": str(records), "label_range": [1, 5], "crop_size": 48, "num_workers": 0},
        "model": {"preset": "nima-lite0", "pretrained": False},
        "strategy": {"name": "supervised", "loss": "emd"},
        "train": {"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 2},
    })
    summary = Trainer(cfg).fit()
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert summary["test"]["n"] == test["n"] == 10  # one held-out photo: reference + 3 types x 3 levels
    assert 0.0 < test["emd"] < 1.0 and np.isfinite(test["srcc"]["value"])
