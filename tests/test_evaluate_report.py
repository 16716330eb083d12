"""Tests for biqa.report (scatter plot, metric table, flat rows)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from biqa.metrics import METRICS, evaluate_predictions
from biqa.report import METRIC_LABELS, format_metrics_table, metrics_to_row, scatter_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=300)
    t = 1 + 4 / (1 + np.exp(-(p - 0.5) / 0.1)) + 0.3 * rng.normal(size=300)
    return p, t


@pytest.fixture(scope="module")
def results(data) -> dict:
    return evaluate_predictions(*data, n_boot=200, seed=0)


@pytest.mark.parametrize("fitted", [True, False])
def test_scatter_plot_writes_png(tmp_path, data, fitted: bool) -> None:
    out = scatter_plot(*data, tmp_path / "sub" / "scatter.png", title="KonIQ test", fitted=fitted)
    assert out == tmp_path / "sub" / "scatter.png"
    blob = out.read_bytes()
    assert blob.startswith(PNG_MAGIC) and len(blob) > 5000


def test_scatter_plot_dmos_and_large_n(tmp_path) -> None:
    rng = np.random.default_rng(1)
    p = rng.normal(size=6000)
    dmos = -p + rng.normal(size=6000)
    out = scatter_plot(p, dmos, str(tmp_path / "d.png"), title="dmos", higher_is_better=False)
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_scatter_plot_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="same length"):
        scatter_plot([1, 2, 3], [1, 2], tmp_path / "x.png", title="x")
    assert not (tmp_path / "x.png").exists()


def test_format_metrics_table(results) -> None:
    table = format_metrics_table(results)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["metric", "value"] and "95% CI" in lines[0] and "N" in lines[0]
    assert len(lines) == 2 + len(METRICS)
    for name in METRICS:
        row = next(line for line in lines if line.startswith(METRIC_LABELS[name] + " "))
        assert f"{results[name]['value']:.4f}" in row
        assert f"[{results[name]['ci_low']:.4f}, {results[name]['ci_high']:.4f}]" in row
        assert row.rstrip().endswith(str(results["n"]))
    assert not table.endswith("\n")


def test_format_metrics_table_without_ci_and_dmos(data) -> None:
    p, t = data
    r = evaluate_predictions(p, -t, n_boot=0, higher_is_better=False)
    table = format_metrics_table(r)
    assert "n/a" in table and "300" in table and "flipped" in table
    assert "nan" not in table.lower()
    with pytest.raises(ValueError, match="none of the metrics"):
        format_metrics_table({"n": 3})


def test_metrics_to_row(results) -> None:
    row = metrics_to_row(results)
    assert row["n"] == 300
    for name in METRICS:
        assert row[name] == results[name]["value"]
        assert row[f"{name}_ci_low"] == results[name]["ci_low"]
        assert row[f"{name}_ci_high"] == results[name]["ci_high"]
    assert [row[f"logistic_b{i}"] for i in range(1, 5)] == results["logistic_params"]
    assert all(not isinstance(v, (dict, list)) for v in row.values())
    json.dumps(row, allow_nan=False)  # strict JSON


def test_metrics_to_row_nan_becomes_none(data) -> None:
    row = metrics_to_row(evaluate_predictions(*data, n_boot=0))
    assert row["srcc_ci_low"] is None and row["srcc_ci_high"] is None
    assert math.isfinite(row["srcc"])
    json.dumps(row, allow_nan=False)
