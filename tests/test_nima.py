"""NIMA end to end on a miniature synthetic-distortion benchmark: EMD training and held-out EMD."""
from __future__ import annotations

import json

import numpy as np
import pytest

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
    # the reported held-out EMD and SRCC, recomputed here from the best checkpoint's distributions with
    # the EMD (r = 2) and Spearman's rho written out / taken from SciPy
    import torch
    from scipy.stats import spearmanr

    from biqa.checkpoint import load_model
    from biqa.data import RecordsDataset
    from biqa.labels import LabelScale
    from biqa.records import load_records, select_split

    model, meta = load_model(tmp_path / "run" / "best.safetensors")
    df = select_split(load_records(str(records)), "test", "split")
    mean, std = model.preset.normalisation()
    ds = RecordsDataset(df, LabelScale.from_dict(meta["label_scale"]), mean, std, resolution="full", n_bins=10)
    items = [ds[i] for i in range(len(ds))]
    with torch.no_grad():
        outs = [model(it["image"][None]) for it in items]
    p = torch.cat([o["probs"] for o in outs]).double().numpy()
    q = torch.stack([it["dist"] for it in items]).double().numpy()
    d = np.cumsum(p, 1) - np.cumsum(q, 1)
    assert test["emd"] == pytest.approx(float(np.sqrt((d ** 2).mean(1)).mean()), rel=1e-3)
    pred = torch.cat([o["score"] for o in outs]).numpy()
    mos = np.array([float(it["mos"]) for it in items])
    assert test["srcc"]["value"] == pytest.approx(spearmanr(pred, mos)[0], abs=1e-6)
