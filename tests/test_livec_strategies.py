"""benchmarks/livec_strategies.py: paired differences, intervals and verdicts against SciPy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import load_benchmark


def _rows(rng, n_base, strategies):
    rows = [{"variant": "baseline", "split": s, "srcc": 0.8 + 0.01 * s, "plcc": 0.82 + 0.01 * s}
            for s in range(1, n_base + 1)]
    for name, (splits, shift) in strategies.items():
        rows += [{"variant": name, "split": s, "srcc": 0.8 + 0.01 * s + shift + rng.normal(0, 0.004),
                  "plcc": 0.82 + 0.01 * s + rng.normal(0, 0.004)} for s in splits]
    return pd.DataFrame(rows)


def test_paired_differences_intervals_and_verdicts():
    ls = load_benchmark("livec_strategies")
    rng = np.random.default_rng(0)
    rows = _rows(rng, 6, {"up": (range(1, 7), 0.03), "down": (range(1, 6), -0.03), "few": ([2, 4, 9], 0.05)})
    summ = ls.summarise(rows, min_splits=5).set_index("strategy")
    base = rows[rows["variant"] == "baseline"].set_index("split")
    for name in ("up", "down", "few"):
        mine = rows[rows["variant"] == name].set_index("split")
        common = sorted(set(mine.index) & set(base.index))  # split 9 has no baseline: not paired
        d = (mine.loc[common, "srcc"] - base.loc[common, "srcc"]).to_numpy()
        lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        assert summ.loc[name, "paired_splits"] == len(common)
        assert summ.loc[name, "d_srcc"] == pytest.approx(d.mean())
        assert (summ.loc[name, "d_srcc_lo"], summ.loc[name, "d_srcc_hi"]) == pytest.approx((lo, hi))
    assert summ.loc["up", "srcc_verdict"] == "better" and summ.loc["down", "srcc_verdict"] == "worse"
    assert summ.loc["up", "plcc_verdict"] == "tie"  # PLCC only carries noise
    assert summ.loc["few", "srcc_verdict"] == "pending"  # 2 paired splits < 5
    assert summ.loc["baseline", "splits"] == 6
    table = ls.format_table(summ.reset_index())
    assert "better" in table and "pending" in table


def test_every_strategy_is_the_baseline_config_plus_overrides():
    """The strategies parse as config overrides of livec_finetune, and only change what they name."""
    from biqa.config import load_config

    ls = load_benchmark("livec_strategies")
    base = load_config(ls.CONFIG)
    for name, ov in ls.STRATEGIES.items():
        ov = [o.replace("{runs}", "/tmp/runs").replace("{split}", "1") for o in ov]
        cfg = load_config(ls.CONFIG, ov)
        changed = {k for k in cfg if cfg[k] != base[k]}
        assert changed <= {"strategy", "model"}, (name, changed)
        assert cfg["train"] == base["train"] and cfg["optim"] == base["optim"]
    assert load_config(ls.CONFIG, ls.STRATEGIES["dml"])["strategy"]["name"] == ["mutual"]
    assert load_config(ls.CONFIG, ls.STRATEGIES["nima"])["model"]["preset"] == "nima-lite0-ml"
    kd = load_config(ls.CONFIG, [o.replace("{runs}", "/r").replace("{split}", "3") for o in ls.STRATEGIES["kd"]])
    assert kd["strategy"]["distill"]["teacher"] == "/r/teacher-lite2/s3/best.safetensors"
