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


def test_scatter_title_shows_the_metrics_json_srcc_for_dmos_labels() -> None:
    """Lower-is-better labels (DMOS): the title's SRCC is the reported (sign-flipped, positive) one."""
    from scipy.stats import spearmanr

    from biqa.report import scatter_figure

    rng = np.random.default_rng(2)
    p = rng.normal(size=200)
    dmos = 50 - 10 * p + 5 * rng.normal(size=200)
    rho = spearmanr(p, dmos)[0]
    assert rho < -0.5
    res = evaluate_predictions(p, dmos, n_boot=20, seed=0, higher_is_better=False)
    for fig in (scatter_figure(p, dmos, metrics=res, title="dmos"),
                scatter_figure(p, dmos, higher_is_better=False, title="dmos")):
        title = fig.axes[0].get_title()
        assert f"SRCC={-rho:.4f}" in title and f"SRCC={res['srcc']['value']:.4f}" in title, title
        assert f"PLCC(fit)={res['plcc_fitted']['value']:.4f}" in title and "lower target = better" in title
    # the numbers come from the result when it is given
    fake = dict(res, srcc={"value": 0.1234}, plcc={"value": 0.5678})
    assert "SRCC=0.1234  PLCC(raw)=0.5678" in scatter_figure(p, dmos, metrics=fake, fitted=False).axes[0].get_title()


def test_eval_scatter_title_matches_metrics_json_on_a_dmos_dataset(tiny_records, tiny_checkpoint, tmp_path,
                                                                   monkeypatch) -> None:
    from pathlib import Path

    import pandas as pd
    from scipy.stats import spearmanr

    import biqa.report as R
    from biqa.evaluate import evaluate_checkpoint

    figs = []
    real = R.scatter_figure
    monkeypatch.setattr(R, "scatter_figure", lambda *a, **k: figs.append(real(*a, **k)) or figs[-1])
    df = pd.read_csv(tiny_records)
    root = Path(tiny_records).parent
    recs = tmp_path / "dmos.csv"  # DMOS: 1 best, 5 worst
    df.assign(mos=6.0 - df["mos"], path=[str(root / p) for p in df["path"]]).to_csv(recs, index=False)
    out = tmp_path / "eval"
    evaluate_checkpoint(tiny_checkpoint, recs, split="all", out_dir=out, n_boot=20, higher_is_better=False,
                        progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    srcc = -spearmanr(pred["pred"], pred["mos"])[0]  # the reported sign: flipped for DMOS
    assert saved["higher_is_better"] is False and saved["srcc"]["value"] == pytest.approx(srcc, abs=1e-9)
    assert len(figs) == 1 and (out / "scatter.png").is_file()
    assert f"SRCC={saved['srcc']['value']:.4f} " in figs[0].axes[0].get_title()


def test_no_pyplot_in_biqa_and_the_trainer_curves_use_the_agg_canvas(tmp_path) -> None:
    """The project draws with matplotlib's Agg canvas (biqa.report): no pyplot, no global backend change."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import biqa

    pkg = Path(biqa.__file__).parent
    pyplot = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
              if re.search(r"matplotlib\.pyplot|from matplotlib import .*pyplot|matplotlib\.use\(", p.read_text())]
    assert pyplot == []
    code = (
        "import sys, types, matplotlib\n"
        "from pathlib import Path\n"
        "from biqa.trainer import Trainer\n"
        "backend = dict.__getitem__(matplotlib.rcParams, 'backend')  # unresolved (get_backend may load pyplot)\n"
        "hist = [{'epoch': e, 'train_loss': 1.0 / e, 'val_srcc': 0.5 + e / 10, 'val_plcc': 0.4 + e / 10}"
        " for e in (1, 2, 3)]\n"
        f"Trainer._write_history(types.SimpleNamespace(history=hist, out=Path({str(tmp_path)!r})))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == backend\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(pkg.parent))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning" not in proc.stdout, proc.stdout
    blob = (tmp_path / "curves.png").read_bytes()
    assert blob.startswith(PNG_MAGIC)
    from PIL import Image

    assert Image.open(tmp_path / "curves.png").size == (810, 288)  # 9 x 3.2 inches at 90 dpi
    assert (tmp_path / "metrics.csv").is_file()
