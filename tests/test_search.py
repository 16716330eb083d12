"""Random search: space parsing and sampling, and an end-to-end --quick run."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from biqa.cli import main
from biqa.search import parse_space, sample


def test_parse_and_sample_log_uniform():
    space = parse_space(["optim.lr_head=log:1e-6,1e-3", "train.batch_size=choice:8,16", "seed=int:1,3",
                         "optim.weight_decay=lin:0,0.1"])
    assert space["optim.lr_head"] == ("log", [1e-6, 1e-3])
    rng = np.random.default_rng(0)
    draws = [sample(space, rng) for _ in range(2000)]
    lr = np.array([d["optim.lr_head"] for d in draws])
    assert lr.min() >= 1e-6 and lr.max() <= 1e-3
    # log-uniform: each decade gets about a third of the draws
    decades = np.histogram(np.log10(lr), bins=[-6, -5, -4, -3])[0] / len(lr)
    np.testing.assert_allclose(decades, 1 / 3, atol=0.04)
    assert {d["train.batch_size"] for d in draws} == {8, 16}
    assert {d["seed"] for d in draws} == {1, 2, 3}


@pytest.mark.parametrize("bad", ["x=log:0,1", "x=log:1e-3", "x=foo:1,2", "x", "x=lin:3,1"])
def test_bad_space_items(bad):
    with pytest.raises(ValueError):
        parse_space([bad])


def test_search_quick_end_to_end(tiny_records, tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "srch", "progress": False,
        "data": {"records": tiny_records, "crop_size": 32, "num_workers": 0},
        "model": {"preset": "nima-lite0", "pretrained": False},
        "strategy": {"name": "supervised", "loss": "emd"},
    }))
    out = tmp_path / "search"
    assert main(["search", str(cfg), "--space", "optim.lr_head=log:1e-4,1e-2", "optim.lr_backbone=log:1e-5,1e-3",
                 "--trials", "2", "--quick", "--out", str(out), "--patience", "10"]) == 0
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 2 and table["best_val_srcc"].is_monotonic_decreasing
    assert (out / "search.png").stat().st_size > 1000
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert math.isclose(best["optim"]["lr_head"], table["optim.lr_head"].iloc[0], rel_tol=1e-9)
    assert best["early_stop"]["patience"] == 10
