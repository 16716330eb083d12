"""Reporting helpers: scatter plots, plain-text metric tables, flat metric rows.

Works on the dict returned by :func:`biqa.metrics.evaluate_predictions`.
Plots are drawn with matplotlib's Agg canvas directly (no pyplot, no display,
no change to the global matplotlib backend).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from biqa.metrics import METRICS, _check_pair, _fit_logistic4, _pearson, logistic4

__all__ = ["METRIC_LABELS", "scatter_figure", "scatter_plot", "curves_plot", "format_metrics_table", "metrics_to_row"]

#: Display names of the metrics in :data:`biqa.metrics.METRICS`.
METRIC_LABELS: dict[str, str] = {
    "srcc": "SRCC",
    "krcc": "KRCC",
    "plcc": "PLCC",
    "rmse": "RMSE",
    "plcc_fitted": "PLCC (logistic)",
    "rmse_fitted": "RMSE (logistic)",
}


def scatter_figure(
    pred: Any,
    target: Any,
    *,
    title: str = "",
    fitted: bool = True,
    higher_is_better: bool = True,
    metrics: dict[str, Any] | None = None,
    xlabel: str = "prediction",
    ylabel: str = "subjective score",
    dpi: int = 120,
):
    """The scatter plot of :func:`scatter_plot` as a matplotlib ``Figure`` (on an Agg canvas, no pyplot).

    ``metrics``: the :func:`biqa.metrics.evaluate_predictions` result for these pairs (what
    ``metrics.json`` holds); the title then shows its numbers (SRCC, PLCC, RMSE) and its label
    direction, so the plot and the JSON always agree. Without it they are computed here, with
    ``higher_is_better`` giving the direction.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p, t = _check_pair(pred, target)
    if metrics is not None and "higher_is_better" in metrics:
        higher_is_better = bool(metrics["higher_is_better"])
    sign = 1.0 if higher_is_better else -1.0
    s = _metric_value(metrics, "srcc", lambda: sign * _pearson(stats.rankdata(p), stats.rankdata(t)))
    n = p.size

    fig = Figure(figsize=(5.5, 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    size = 12.0 if n <= 500 else (5.0 if n <= 5000 else 2.0)
    alpha = 0.8 if n <= 500 else 0.4
    ax.scatter(p, t, s=size, alpha=alpha, linewidths=0, color="tab:blue",
               label=f"images (N={n})", rasterized=n > 2000)

    if fitted:
        params, mapped, method = _fit_logistic4(p, t)
        pl = _metric_value(metrics, "plcc_fitted", lambda: _pearson(mapped, t))
        r = _metric_value(metrics, "rmse_fitted", lambda: float(np.sqrt(np.mean((mapped - t) ** 2))))
        xs = np.linspace(p.min(), p.max(), 256)
        fit_label = "4-parameter logistic" if method == "logistic" else "linear fit (fallback)"
        ax.plot(xs, logistic4(xs, *params), color="tab:red", lw=2, label=fit_label)
        summary = (
            f"SRCC={s:.4f}  PLCC(fit)={0.0 if math.isnan(pl) else pl:.4f}  RMSE(fit)={r:.4g}"
        )
    else:
        pl = _metric_value(metrics, "plcc", lambda: sign * _pearson(p, t))
        summary = f"SRCC={s:.4f}  PLCC(raw)={pl:.4f}"
    if not higher_is_better:
        summary += "  (lower target = better)"

    ax.legend(loc="best", fontsize=8, frameon=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{title}\n{summary}" if title else summary, fontsize=9)
    fig.tight_layout()
    return fig


def _metric_value(metrics: dict[str, Any] | None, name: str, compute) -> float:
    """``metrics[name]["value"]`` when the result holds it, else ``compute()``."""
    m = (metrics or {}).get(name)
    if isinstance(m, dict) and m.get("value") is not None:
        return float(m["value"])
    return float(compute())


def scatter_plot(pred: Any, target: Any, path: str | Path, **options: Any) -> Path:
    """Save a PNG scatter plot of target (y) against prediction (x).

    With ``fitted=True`` the VQEG 4-parameter logistic fitted to the data is drawn
    and the title reports SRCC, PLCC after the fit and RMSE after the fit;
    otherwise SRCC and raw PLCC. Correlations follow the sign convention of
    :func:`biqa.metrics.evaluate_predictions` (flipped if ``higher_is_better`` is
    False, i.e. DMOS-style targets). The legend names N and the fitted curve.

    Args:
        pred, target: shape (n,), n >= 3, finite, non-constant.
        path: output file (parent folders are created); PNG.
        options: those of :func:`scatter_figure`: ``title`` (metrics are appended on a second
            line), ``fitted``, ``higher_is_better`` (taken from ``metrics`` when given), ``metrics``
            (the :func:`~biqa.metrics.evaluate_predictions` result of these pairs: the title shows
            its numbers, the ones ``metrics.json`` holds), ``xlabel``, ``ylabel``, ``dpi``.

    Returns:
        The path written, as :class:`pathlib.Path`.
    """
    fig = scatter_figure(pred, target, **options)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def curves_plot(history: Any, path: str | Path, *, dpi: int = 90) -> Path:
    """Save a PNG of a training run's curves: train loss per epoch (left), validation SRCC and PLCC
    per epoch (right). ``history``: a table (DataFrame or dict of columns) with ``epoch``,
    ``train_loss``, ``val_srcc`` and ``val_plcc``, as the trainer's ``metrics.csv``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots(1, 2)
    ep = np.asarray(history["epoch"])
    ax[0].plot(ep, np.asarray(history["train_loss"], float), "o-")
    ax[0].set(xlabel="epoch", ylabel="train loss", title="loss")
    ax[1].plot(ep, np.asarray(history["val_srcc"], float), "o-", label="val SRCC")
    ax[1].plot(ep, np.asarray(history["val_plcc"], float), "s-", label="val PLCC")
    ax[1].set(xlabel="epoch", title="validation")
    ax[1].legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{float(v):.{digits}f}"


def format_metrics_table(results: dict[str, Any], *, digits: int = 4) -> str:
    """Plain-text table of an :func:`~biqa.metrics.evaluate_predictions` result.

    One row per metric present in ``results`` (in :data:`~biqa.metrics.METRICS`
    order) with columns metric, value, CI (at ``results["level"]``, default 95 %)
    and N. Missing/NaN values are shown as ``n/a``. Returns the table without a
    trailing newline.
    """
    level = float(results.get("level", 0.95))
    n = results.get("n")
    n_str = "n/a" if n is None else str(int(n))
    ci_head = f"{100 * level:g}% CI"
    rows: list[tuple[str, str, str, str]] = []
    for name in METRICS:
        m = results.get(name)
        if not isinstance(m, dict):
            continue
        lo, hi = m.get("ci_low"), m.get("ci_high")
        ci = "n/a" if _fmt(lo) == "n/a" or _fmt(hi) == "n/a" else (
            f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}]"
        )
        rows.append((METRIC_LABELS.get(name, name), _fmt(m.get("value"), digits), ci, n_str))
    if isinstance(results.get("emd"), float):  # distribution models (NIMA)
        rows.append(("EMD (r=2)", _fmt(results["emd"], digits), "n/a", n_str))
    if not rows:
        raise ValueError("results contains none of the metrics " + ", ".join(METRICS))
    header = ("metric", "value", ci_head, "N")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(r: tuple[str, str, str, str]) -> str:
        return "  ".join(
            [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].ljust(widths[2]), r[3].rjust(widths[3])]
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    lines = [line(header), sep, *(line(r) for r in rows)]
    if results.get("higher_is_better") is False:
        lines.append("(target: lower is better; correlation signs flipped)")
    return "\n".join(lines)


def _scalar(v: Any) -> Any:
    """JSON/CSV friendly scalar: floats, ints, str, bool; NaN/inf -> None."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


def metrics_to_row(results: dict[str, Any]) -> dict[str, Any]:
    """Flatten an :func:`~biqa.metrics.evaluate_predictions` result for CSV/JSON.

    Returns ``{"n", "<metric>", "<metric>_ci_low", "<metric>_ci_high", ...,
    "level", "n_boot", "higher_is_better", "fit", "logistic_b1".."logistic_b4"}``
    (keys present only if in ``results``), with plain Python scalars; non-finite
    numbers become ``None`` (empty CSV cell / JSON null).
    """
    row: dict[str, Any] = {}
    if "n" in results:
        row["n"] = _scalar(results["n"])
    for name in METRICS:
        m = results.get(name)
        if not isinstance(m, dict):
            continue
        row[name] = _scalar(m.get("value"))
        row[f"{name}_ci_low"] = _scalar(m.get("ci_low"))
        row[f"{name}_ci_high"] = _scalar(m.get("ci_high"))
    for key in ("level", "n_boot", "seed", "higher_is_better", "fit"):
        if key in results:
            row[key] = _scalar(results[key])
    params = results.get("logistic_params")
    if params is not None:
        for i, v in enumerate(params, start=1):
            row[f"logistic_b{i}"] = _scalar(v)
    return row
