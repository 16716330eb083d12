"""The trainer: end to end on tiny data, outputs, early stopping, resume == uninterrupted."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import biqa
from biqa.checkpoint import read_meta, read_state_dicts
from biqa.config import load_config
from biqa.trainer import Trainer


def _cfg(records, out, **train):
    return load_config({
        "name": "t", "out_dir": str(out), "seed": 3, "progress": False,
        "data": {"records": records, "crop_size": 32, "num_workers": 0},
        "model": {"preset": "lite0-mos", "pretrained": False},
        "optim": {"lr_backbone": 1e-3, "lr_head": 1e-2},
        "train": {"epochs": 3, "batch_size": 8, **train},
    })


def test_fit_writes_all_outputs(tiny_records, tmp_path):
    summary = Trainer(_cfg(tiny_records, tmp_path)).fit()
    for f in ["config.yaml", "best.safetensors", "best.json", "last.safetensors", "state.pt",
              "metrics.csv", "curves.png", "test_metrics.json", "test_scatter.png", "summary.json"]:
        assert (tmp_path / f).is_file(), f
    hist = pd.read_csv(tmp_path / "metrics.csv")
    assert list(hist["epoch"]) == [1, 2, 3]
    assert {"train_loss", "train_mse", "val_srcc", "val_plcc"} <= set(hist.columns)
    # best is chosen on validation, never on test
    best_epoch = int(hist["val_srcc"].idxmax()) + 1
    assert summary["best_epoch"] == best_epoch
    meta = read_meta(tmp_path / "best.safetensors")
    assert meta["metrics"]["epoch"] == best_epoch
    assert meta["preprocessing"] == {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_size": 32,
                                     "resolution": "full"}
    assert meta["label_scale"] == {"lo": 1.0, "hi": 5.0, "higher_is_better": True}
    assert list(meta)[:8] == ["format", "nets", "preset", "label_scale", "preprocessing", "config", "metrics",
                              "strategy"]
    assert meta["preset"]["name"] == "lite0-mos" and meta["config"]["data"]["crop_size"] == 32
    assert meta["strategy"] == meta["config"]["strategy"]["name"]
    test = json.loads((tmp_path / "test_metrics.json").read_text())
    assert test["n"] == 6 and "ci_low" in test["srcc"]


def test_resume_matches_uninterrupted(tiny_records, tmp_path, monkeypatch):
    full = tmp_path / "full"
    Trainer(_cfg(tiny_records, full)).fit()

    part = tmp_path / "part"
    calls = {"n": 0}
    orig = Trainer._write_history

    def killed_after_two(self):
        orig(self)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill after epoch 2's checkpoint")

    monkeypatch.setattr(Trainer, "_write_history", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(tiny_records, part)).fit()
    monkeypatch.setattr(Trainer, "_write_history", orig)
    assert len(pd.read_csv(part / "metrics.csv")) == 2
    Trainer(_cfg(tiny_records, part), resume=True).fit()

    a = read_state_dicts(full / "last.safetensors")["model"]
    b = read_state_dicts(part / "last.safetensors")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha, hb = pd.read_csv(full / "metrics.csv"), pd.read_csv(part / "metrics.csv")
    pd.testing.assert_series_equal(ha["train_loss"], hb["train_loss"])


def test_early_stopping(tiny_records, tmp_path):
    cfg = _cfg(tiny_records, tmp_path, epochs=6)
    cfg["optim"].update(lr_backbone=0.0, lr_head=0.0)  # only BatchNorm statistics move
    cfg["early_stop"]["patience"] = 2
    s = Trainer(cfg).fit()
    hist = pd.read_csv(tmp_path / "metrics.csv")
    best = int(hist["val_srcc"].idxmax()) + 1
    assert s["best_epoch"] == best
    if best + 2 < 6:  # stopped exactly `patience` epochs after the best one
        assert s["stopped_early"] and s["epochs_run"] == best + 2
    else:
        assert not s["stopped_early"] and s["epochs_run"] == 6


def _hand_emd(p, q):
    """EMD with r = 2 written out: sqrt(mean_k (CDF_p(k) - CDF_q(k))^2), averaged over images."""
    import numpy as np

    d = np.cumsum(np.asarray(p, float), 1) - np.cumsum(np.asarray(q, float), 1)
    return float(np.sqrt((d ** 2).mean(1)).mean())


@pytest.mark.parametrize("metric", ["emd", "loss"])
def test_early_stopping_on_validation_emd_or_loss(tiny_records, tmp_path, metric):
    """Seed 004 stops on the validation loss: early_stop.metric emd / loss picks the epoch with the
    lowest one, and the recorded val_emd is the EMD of the model's val predictions, recomputed here."""
    from biqa.checkpoint import load_model
    from biqa.data import RecordsDataset
    from biqa.records import load_records, select_split

    cfg = _cfg(tiny_records, tmp_path, epochs=4)
    cfg["model"]["preset"] = "nima-lite0"
    cfg["strategy"]["loss"] = "emd"
    cfg["early_stop"].update(metric=metric, patience=100)
    s = Trainer(cfg).fit()
    hist = pd.read_csv(tmp_path / "metrics.csv")
    assert {"val_emd", "val_loss"} <= set(hist.columns)
    assert hist["val_emd"].to_numpy() == pytest.approx(hist["val_loss"].to_numpy(), rel=1e-5)  # the loss is EMD
    assert s["best_epoch"] == int(hist[f"val_{metric}"].idxmin()) + 1
    model, meta = load_model(tmp_path / "last.safetensors")
    df = select_split(load_records(tiny_records), "val", "split")
    from biqa.labels import LabelScale

    ds = RecordsDataset(df, resolution="full", label_scale=LabelScale.from_dict(meta["label_scale"]),
                        mean=model.preset.normalisation()[0], std=model.preset.normalisation()[1], n_bins=10)
    items = [ds[i] for i in range(len(ds))]
    with torch.no_grad():
        probs = torch.cat([model(it["image"][None])["probs"] for it in items])
    want = _hand_emd(probs.numpy(), torch.stack([it["dist"] for it in items]).numpy())
    assert hist["val_emd"].iloc[-1] == pytest.approx(want, rel=1e-3)


def test_early_stop_metric_is_checked(tiny_records, tmp_path):
    cfg = _cfg(tiny_records, tmp_path, epochs=1)
    cfg["early_stop"]["metric"] = "val_loss"
    with pytest.raises(ValueError, match="early_stop.metric"):
        Trainer(cfg)
    cfg["early_stop"]["metric"] = "emd"  # lite0-mos predicts no distribution
    with pytest.raises(ValueError, match="distribution"):
        Trainer(cfg)


def test_nima_tid2013_config_evaluates_at_the_training_scale():
    """Training crops are native-scale, so validation/test must not resize (it used short:256)."""
    cfg = load_config("nima_tid2013")  # the shipped config, found by name
    assert cfg["data"]["eval_resolution"] == "full"
    assert cfg["early_stop"]["metric"] in ("emd", "loss")


@pytest.mark.parametrize("loss", ["l1", "plcc", "fidelity", {"mse": 1.0, "plcc": 0.5}])
def test_each_score_loss_trains(tiny_records, tmp_path, loss):
    cfg = _cfg(tiny_records, tmp_path, epochs=1, max_steps_per_epoch=2)
    cfg["strategy"]["loss"] = loss
    cfg["test_at_end"] = False
    s = Trainer(cfg).fit()
    assert s["epochs_run"] == 1


def test_nima_emd_trains_and_freezes_backbone(tiny_records, tmp_path):
    cfg = _cfg(tiny_records, tmp_path, epochs=1, max_steps_per_epoch=2, freeze_backbone_epochs=1)
    cfg["model"]["preset"] = "nima-lite0"
    cfg["strategy"]["loss"] = "emd"
    cfg["sched"]["name"] = "step"
    cfg["test_at_end"] = False
    tr = Trainer(cfg)
    before = {k: v.clone() for k, v in tr.strategy.model.backbone.state_dict().items()}
    tr.fit()
    after = tr.strategy.model.backbone.state_dict()
    changed = [k for k in before if "running" not in k and "num_batches" not in k
               and not torch.equal(before[k], after[k])]
    assert changed == [], "backbone weights must not change while frozen"


def test_emd_on_score_head_is_a_clear_error(tiny_records, tmp_path):
    cfg = _cfg(tiny_records, tmp_path, epochs=1, max_steps_per_epoch=1)
    cfg["strategy"]["loss"] = "emd"
    with pytest.raises(ValueError, match="distribution head"):
        Trainer(cfg).fit()


class _RunsCode:
    """Unpickling this calls os.system: what a crafted state.pt could do."""

    def __reduce__(self):
        import os

        return (os.system, ("touch pwned_by_state_pt",))


def test_resume_state_is_plain_and_code_in_state_pt_is_refused(tiny_records, tmp_path, monkeypatch):
    from biqa.trainer import load_state_file

    out = tmp_path / "run"
    Trainer(_cfg(tiny_records, out, epochs=1)).fit()
    state = load_state_file(out / "state.pt")  # written so that weights_only=True reads it
    assert state["epoch"] == 0 and set(state["nets"]) == {"model"}
    # a run folder from someone else: state.pt replaced by a pickle whose loading runs a command
    monkeypatch.chdir(tmp_path)
    torch.save({"epoch": 0, "payload": _RunsCode()}, out / "state.pt")
    with pytest.raises(ValueError, match="refused to load"):
        Trainer(_cfg(tiny_records, out, epochs=2), resume=True).fit()
    assert not (tmp_path / "pwned_by_state_pt").exists()
    src = "".join(p.read_text() for p in (Path(biqa.__file__).parent).rglob("*.py"))
    assert "weights_only=False" not in src
