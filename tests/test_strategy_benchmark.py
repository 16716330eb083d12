"""The strategies benchmark's statistics: paired differences to the baseline and their verdicts."""
from __future__ import annotations

from conftest import load_benchmark
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("strategies")


def _runs(rows):
    return pd.DataFrame([{"variant": v, "strategy": s, "seed": k, "n_train": 100, "n_test": 50, "srcc": r,
                          "plcc": r} for v, s, k, r in rows])


def test_t_interval_matches_scipy(bench):
    x = np.array([0.51, 0.55, 0.60, 0.48])
    lo, hi = bench.t_interval(x)
    ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert lo == pytest.approx(ref[0]) and hi == pytest.approx(ref[1])
    assert all(math.isnan(v) for v in bench.t_interval(np.array([0.5])))


def test_paired_difference_and_verdicts(bench):
    runs = _runs([
        ("balanced", "baseline", 1, 0.50), ("balanced", "baseline", 2, 0.60), ("balanced", "baseline", 3, 0.40),
        # +0.10 on every seed: the seed-to-seed spread cancels in the paired difference
        ("balanced", "ohem", 1, 0.60), ("balanced", "ohem", 2, 0.71), ("balanced", "ohem", 3, 0.49),
        # mixed signs: a tie
        ("balanced", "mutual", 1, 0.55), ("balanced", "mutual", 2, 0.55), ("balanced", "mutual", 3, 0.42),
        # paired with the long-tailed baseline, not the balanced one
        ("long-tailed", "baseline", 1, 0.30), ("long-tailed", "baseline", 2, 0.35), ("long-tailed", "baseline", 3, 0.32),
        ("long-tailed", "ohem", 1, 0.20), ("long-tailed", "ohem", 2, 0.26), ("long-tailed", "ohem", 3, 0.21),
    ])
    s = bench.summarise(runs).set_index(["variant", "strategy"])
    d = np.array([0.10, 0.11, 0.09])
    ref = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    row = s.loc[("balanced", "ohem")]
    assert row["d_srcc_mean"] == pytest.approx(0.10)
    assert (row["d_srcc_ci_low"], row["d_srcc_ci_high"]) == pytest.approx(ref)
    assert row["srcc_vs_baseline"] == "better"
    # unpaired, the same runs' intervals overlap: pairing is what resolves the gain
    assert row["srcc_ci_low"] < s.loc[("balanced", "baseline"), "srcc_ci_high"]
    assert s.loc[("balanced", "mutual"), "srcc_vs_baseline"] == "tie"
    assert s.loc[("long-tailed", "ohem"), "d_srcc_mean"] == pytest.approx(-0.1, abs=1e-9)
    assert s.loc[("long-tailed", "ohem"), "srcc_vs_baseline"] == "worse"
    assert pd.isna(s.loc[("balanced", "baseline"), "d_srcc_mean"])
    table = bench.format_table(bench.summarise(runs).assign(vs_baseline=1.0))
    assert "better" in table and "worse" in table and "tie" in table


def test_resume_trains_only_the_missing_runs(bench):
    names = ["baseline", "ohem", "mutual"]
    plan = bench.missing_runs(pd.DataFrame(), names, seeds=2, variants=["balanced", "long-tailed"])
    # the long-tailed variant trains only LONG_TAILED strategies (mutual is not one)
    assert plan == [("balanced", "baseline", 1), ("balanced", "ohem", 1), ("balanced", "mutual", 1),
                    ("long-tailed", "baseline", 1), ("long-tailed", "ohem", 1),
                    ("balanced", "baseline", 2), ("balanced", "ohem", 2), ("balanced", "mutual", 2),
                    ("long-tailed", "baseline", 2), ("long-tailed", "ohem", 2)]
    done = _runs([("balanced", "baseline", 1, 0.5), ("balanced", "ohem", 1, 0.5), ("long-tailed", "ohem", 2, 0.3)])
    left = bench.missing_runs(done, names, seeds=2, variants=["balanced", "long-tailed"])
    assert left == [p for p in plan if p not in {("balanced", "baseline", 1), ("balanced", "ohem", 1),
                                                  ("long-tailed", "ohem", 2)}]
    assert bench.missing_runs(_runs([(v, n, k, 0.5) for v, n, k in plan]), names, 2,
                              ["balanced", "long-tailed"]) == []
