"""Evaluation protocols: the cross-dataset grid and the n-split training protocol.

>>> from biqa.protocols import cross_dataset_grid, format_grid, n_split_protocol
>>> table = cross_dataset_grid(["runs/koniq/best.safetensors"], ["data/livec/livec.csv:all",
...                            "data/bid/bid.csv:all"], out_dir="runs/koniq/cross")
>>> print(format_grid(table))          # rows = models, columns = datasets, cells "SRCC/PLCC (N)"
>>> per_split = n_split_protocol("configs/kadid10k_by_ref.yaml", "1-10")
>>> per_split.attrs["summary"]         # mean and std over the splits' test metrics

Both are plain loops over :func:`biqa.evaluate.evaluate_checkpoint` and
:class:`biqa.trainer.Trainer`; the CLI (``biqa eval A B --data X Y``,
``biqa train CONFIG --splits 1-10``) is a thin layer over them.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import METRICS

__all__ = ["cross_dataset_grid", "format_grid", "grid_cells", "parse_dataset_spec", "n_split_protocol",
           "summarize_splits", "format_protocol", "infer_column_pattern"]

SPLIT_NAMES = ("train", "val", "test", "all")
#: numeric columns of a per-split table that are averaged (test-set metrics).
SPLIT_METRICS = tuple(METRICS) + ("emd",)


# ------------------------------------------------------------------ cross-dataset grid
def parse_dataset_spec(spec: str, default_split: str | None = "test",
                       default_column: str | None = None) -> tuple[str, str, str | None]:
    """``"data/x.csv"`` -> ``(path, default_split, default_column)``;
    ``"data/x.csv:all"`` -> ``(path, "all", default_column)``;
    ``"data/x.csv:split_seed3=test"`` -> ``(path, "test", "split_seed3")``.

    A suffix is only split off when the whole string is not an existing file and the
    suffix is a split name (train/val/test/all) or ``COLUMN=SPLIT``.
    """
    spec = str(spec)
    split = default_split or "all"
    if ":" in spec and not Path(spec).is_file():
        path, suffix = spec.rsplit(":", 1)
        m = re.fullmatch(r"(?:([A-Za-z_][\w]*)=)?(\w+)", suffix)
        if m and m.group(2) in SPLIT_NAMES and path:
            return path, m.group(2), m.group(1) or default_column
    return spec, split, default_column


def _model_label(ckpt: str) -> str:
    p = Path(str(ckpt))
    if p.is_dir() or not p.suffix:
        return p.name or str(ckpt)
    if p.stem == "best" and p.parent.name:
        return p.parent.name
    if p.stem in ("last",) and p.parent.name:
        return f"{p.parent.name}/{p.stem}"
    return p.stem


def _unique(labels: list[str], fallbacks: list[list[str]]) -> list[str]:
    """Make labels unique, trying each fallback list in turn, finally numbering."""
    out = list(labels)
    for alt in fallbacks:
        dup = {x for x in out if out.count(x) > 1}
        out = [alt[i] if out[i] in dup else out[i] for i in range(len(out))]
    seen: dict[str, int] = {}
    final = []
    for x in out:
        seen[x] = seen.get(x, 0) + 1
        final.append(x if out.count(x) == 1 else f"{x}#{seen[x]}")
    return final


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "x"


def cross_dataset_grid(
    models: list[str],
    datasets: list[str],
    *,
    split: str | None = "test",
    split_column: str | None = None,
    out_dir: str | os.PathLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    **eval_kwargs,
) -> pd.DataFrame:
    """Evaluate every model on every dataset; return the long table.

    Args:
        models: checkpoints (``.safetensors``), run folders or trained model names.
        datasets: records CSVs, each optionally suffixed ``:SPLIT`` (train/val/test/all)
            or ``:COLUMN=SPLIT`` to choose its own split (see :func:`parse_dataset_spec`).
        split: the split used where a dataset names none (``"all"``: every row, the usual
            choice for cross-dataset tests on a dataset the model never saw).
        split_column: the split column where a dataset names none (default: ``split``,
            else the first ``split_*`` column).
        out_dir: if given, writes ``grid_long.csv`` (this table), ``grid.csv`` (rows =
            models, columns = datasets, cells ``SRCC/PLCC (N)``), ``grid.md``, and each
            cell's ``metrics.json`` / ``predictions.csv`` / ``scatter.png`` under
            ``cells/<model>/<dataset>/``.
        n_boot, seed: bootstrap resamples and seed (as in ``evaluate_checkpoint``).
        **eval_kwargs: passed to :func:`biqa.evaluate.evaluate_checkpoint`
            (``resolution``, ``batch_size``, ``num_workers``, ``device``, ``peer``,
            ``progress`` (default False), ``higher_is_better``).

    Returns:
        One row per (model, dataset), in input order: ``model, dataset, split,
        split_column, n, srcc, srcc_ci_low, srcc_ci_high, krcc…, plcc…, rmse…,
        plcc_fitted…, rmse_fitted…, [emd], fit, checkpoint, records, error``.
        A cell that fails (e.g. a split with fewer than 3 rows) gets its message in
        ``error`` and NaN metrics; if every cell fails the first error is raised.
    """
    from .evaluate import evaluate_checkpoint
    from .report import metrics_to_row

    models, datasets = [str(m) for m in models], [str(d) for d in datasets]
    if not models or not datasets:
        raise ValueError("cross_dataset_grid needs at least one model and one dataset")
    specs = [parse_dataset_spec(d, split, split_column) for d in datasets]
    for path, _, _ in specs:
        if not Path(path).is_file():
            raise FileNotFoundError(f"records CSV not found: {path}")
    from .zoo import resolve_checkpoint

    for m in models:  # fail before the first evaluation, not halfway through the grid
        resolve_checkpoint(m)
    mlabels = _unique([_model_label(m) for m in models], [[str(m) for m in models]])
    stems = [Path(p).stem for p, _, _ in specs]
    dlabels = _unique(stems, [[f"{s}:{sp}" for s, (_, sp, _) in zip(stems, specs)],
                              [f"{Path(p).parent.name}/{s}" for s, (p, _, _) in zip(stems, specs)]])
    eval_kwargs.setdefault("progress", False)
    out = Path(out_dir) if out_dir is not None else None
    rows, first_error = [], None
    for model, mlabel in zip(models, mlabels):
        for (path, dsplit, dcol), dlabel in zip(specs, dlabels):
            row = {"model": mlabel, "dataset": dlabel, "split": dsplit, "split_column": dcol or ""}
            cell_dir = out / "cells" / _safe(mlabel) / _safe(dlabel) if out is not None else None
            try:
                res = evaluate_checkpoint(model, path, split=dsplit, split_column=dcol, out_dir=cell_dir,
                                          n_boot=n_boot, seed=seed, **eval_kwargs)
            except (ValueError, KeyError, RuntimeError, OSError) as e:
                first_error = first_error or e
                warnings.warn(f"grid cell {mlabel} x {dlabel}: {e}", stacklevel=2)
                row.update({"n": 0, "checkpoint": model, "records": path, "error": str(e)})
                rows.append(row)
                continue
            row.update(metrics_to_row(res))
            if "emd" in res:
                row["emd"] = float(res["emd"])
            row.update({"checkpoint": res.get("checkpoint", model), "records": path, "error": ""})
            rows.append(row)
    if first_error is not None and all(r["error"] for r in rows):
        raise first_error
    table = pd.DataFrame(rows)
    lead = ["model", "dataset", "split", "split_column", "n"]
    metric_cols = [c for m in METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high") if c in table.columns]
    tail = [c for c in ("emd", "fit", "checkpoint", "records", "error") if c in table.columns]
    rest = [c for c in table.columns if c not in lead + metric_cols + tail]
    table = table[lead + metric_cols + tail + rest]
    for c in metric_cols + (["emd"] if "emd" in table.columns else []):
        table[c] = pd.to_numeric(table[c], errors="coerce")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "grid_long.csv", index=False)
        grid_cells(table).to_csv(out / "grid.csv")
        (out / "grid.md").write_text(format_grid(table, markdown=True) + "\n")
    return table


def _column_label(table: pd.DataFrame, dataset: str) -> str:
    sp = table.loc[table["dataset"] == dataset, "split"]
    s = str(sp.iloc[0]) if len(sp) else ""
    return f"{dataset} [{s}]" if s and not dataset.endswith(f":{s}") else dataset


def grid_cells(table: pd.DataFrame, metric: str = "srcc", second: str | None = "plcc",
               digits: int = 3) -> pd.DataFrame:
    """The grid as a DataFrame of cell strings ``"0.912/0.925 (2015)"``: index = models,
    columns = ``dataset [split]``, both in first-appearance order of ``table``."""
    models = list(dict.fromkeys(table["model"]))
    datasets = list(dict.fromkeys(table["dataset"]))

    def fmt(v) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits}f}"

    grid = pd.DataFrame("", index=pd.Index(models, name="model"),
                        columns=[_column_label(table, d) for d in datasets])
    for r in table.to_dict("records"):
        col = _column_label(table, r["dataset"])
        if r.get("error"):
            grid.loc[r["model"], col] = "error"
            continue
        val = fmt(r.get(metric))
        if second:
            val += "/" + fmt(r.get(second))
        grid.loc[r["model"], col] = f"{val} ({int(r['n'])})"
    return grid


def format_grid(table: pd.DataFrame, metric: str = "srcc", second: str | None = "plcc", digits: int = 3,
                markdown: bool = False) -> str:
    """Text grid of a :func:`cross_dataset_grid` table: rows = models, columns =
    datasets (with their split), cells ``SRCC/PLCC (N)`` (``metric``/``second``).
    ``markdown=True`` gives a Markdown table."""
    grid = grid_cells(table, metric, second, digits)
    corner = metric.upper() + (f"/{second.upper()}" if second else "") + " (N)"
    header = [corner] + list(grid.columns)
    body = [[str(m)] + [str(v) for v in grid.loc[m]] for m in grid.index]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(grid.columns)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
    else:
        widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in [header] + body]
    errs = table[table["error"].astype(bool)] if "error" in table.columns else table.iloc[:0]
    for r in errs.itertuples(index=False):
        lines.append(f"error: {r.model} x {r.dataset}: {r.error}")
    return "\n".join(lines)


# ------------------------------------------------------------------ n-split protocol
def infer_column_pattern(split_column: str | None) -> str:
    """``"split_lt_seed1"`` -> ``"split_lt_seed{}"``; anything without a trailing
    number (or None) -> ``"split_seed{}"``."""
    m = re.fullmatch(r"(.*\D)\d+", str(split_column or ""))
    return f"{m.group(1)}{{}}" if m else "split_seed{}"


def _split_row(seed: int, column: str, summary: dict) -> dict:
    row: dict = {"split": int(seed), "split_column": column, "out_dir": summary.get("out_dir", ""),
                 "best_epoch": summary.get("best_epoch"), "epochs_run": summary.get("epochs_run")}
    for k, v in summary.items():
        if k.startswith("best_val_"):
            row[k] = v
    test = summary.get("test")
    if not isinstance(test, dict):
        warnings.warn(f"split {seed} ({column}): the run has no test metrics (test_at_end false or no test "
                      "rows); its row has NaN metrics", stacklevel=3)
        test = {}
    row["n"] = test.get("n", np.nan)
    for m in METRICS:
        v = test.get(m)
        row[m] = float(v["value"]) if isinstance(v, dict) else (float(v) if v is not None else np.nan)
    if "emd" in test:
        row["emd"] = float(test["emd"])
    return row


def summarize_splits(per_split: pd.DataFrame, ddof: int = 0) -> pd.DataFrame:
    """Rows ``mean`` and ``std`` (``numpy.std`` with ``ddof``, default 0) of the test
    metrics in ``per_split``, plus ``n_splits``."""
    cols = [c for c in SPLIT_METRICS if c in per_split.columns]
    vals = per_split[cols].to_numpy(dtype=float)
    out = pd.DataFrame([np.mean(vals, axis=0), np.std(vals, axis=0, ddof=ddof)], columns=cols,
                       index=pd.Index(["mean", "std"], name="stat"))
    out.insert(0, "n_splits", len(per_split))
    return out


def format_protocol(per_split: pd.DataFrame, summary: pd.DataFrame | None = None, digits: int = 4) -> str:
    """Per-split test metrics and a ``mean ± std`` line, as plain text."""
    summary = summarize_splits(per_split) if summary is None else summary
    cols = [c for c in ("srcc", "plcc", "krcc", "rmse", "plcc_fitted", "rmse_fitted", "emd") if c in summary.columns]
    show = per_split[["split", "n"] + cols].copy()
    with pd.option_context("display.width", 160, "display.float_format", f"{{:.{digits}f}}".format):
        text = show.to_string(index=False)
    pm = "  ".join(f"{c.upper()} {summary.loc['mean', c]:.{digits}f} ± {summary.loc['std', c]:.{digits}f}"
                   for c in cols)
    return f"{text}\nmean ± std over {len(per_split)} split(s): {pm}"


def n_split_protocol(
    config,
    splits,
    overrides: list[str] | None = None,
    *,
    column_pattern: str | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    ddof: int = 0,
) -> pd.DataFrame:
    """Train one config on each of several splits and summarise the test metrics.

    For each seed N in ``splits`` (ints or a spec like ``"1-10"``) a run trains with
    ``data.split_column = column_pattern.format(N)``, ``name = <name>_sN`` and
    ``out_dir = <base out_dir>/sN`` (model selection on that split's ``val`` part;
    the best checkpoint is tested once on its ``test`` part).

    Args:
        config: YAML path or dict (as :func:`biqa.config.load_config`).
        overrides: ``key=value`` overrides applied to every run.
        column_pattern: e.g. ``"split_seed{}"``; default: inferred from the config's
            ``data.split_column`` (``split_lt_seed1`` -> ``split_lt_seed{}``), else
            ``"split_seed{}"``. Every column is checked before the first run starts.
        out_dir: base folder (default: the config's ``out_dir``, i.e. ``runs/<name>``).
        resume: reuse splits whose ``summary.json`` exists; resume an interrupted one.
        ddof: for the std (0 = ``numpy.std``'s default).

    Writes ``per_split.csv`` (after every split), ``summary.csv`` (mean, std) and
    ``protocol.json`` in the base folder. Returns the per-split table (``split,
    split_column, out_dir, best_epoch, epochs_run, best_val_<metric>, n, srcc, krcc,
    plcc, rmse, plcc_fitted, rmse_fitted[, emd]``) with the summary in
    ``.attrs["summary"]``.
    """
    from .config import load_config
    from .datasets import parse_seeds
    from .trainer import Trainer

    base = load_config(config, overrides)
    seeds = parse_seeds(splits)
    pattern = column_pattern or infer_column_pattern(base["data"].get("split_column"))
    if "{}" not in pattern:
        raise ValueError(f"column_pattern {pattern!r} needs a '{{}}' for the split number, e.g. 'split_seed{{}}'")
    records = base["data"].get("records")
    if not records:
        raise ValueError("config needs data.records: a records CSV")
    if not Path(records).is_file():
        raise FileNotFoundError(f"records CSV not found: {records}")
    have = set(pd.read_csv(records, nrows=0).columns)
    columns = {s: pattern.format(s) for s in seeds}
    missing = [c for c in columns.values() if c not in have]
    if missing:
        raise ValueError(f"{records}: no split column(s) {missing}; add them with `biqa data split {records} "
                         f"--scheme by-reference --seeds {','.join(map(str, seeds))}` "
                         f"(have {sorted(c for c in have if c.startswith('split'))})")
    root = Path(out_dir or base["out_dir"])
    root.mkdir(parents=True, exist_ok=True)
    (root / "protocol.json").write_text(json.dumps({
        "config": config if isinstance(config, dict) else str(config), "overrides": list(overrides or []),
        "splits": seeds, "column_pattern": pattern, "records": str(records)}, indent=2, default=str))
    rows = []
    for s in seeds:
        cfg = copy.deepcopy(base)
        cfg["data"]["split_column"] = columns[s]
        cfg["name"] = f"{base['name']}_s{s}"
        cfg["out_dir"] = str(root / f"s{s}")
        done = Path(cfg["out_dir"]) / "summary.json"
        if resume and done.is_file():
            summary = json.loads(done.read_text())
        else:
            summary = Trainer(cfg, resume=resume).fit()
        rows.append(_split_row(s, columns[s], summary))
        per_split = pd.DataFrame(rows)
        per_split.to_csv(root / "per_split.csv", index=False)
    summary_df = summarize_splits(per_split, ddof=ddof)
    summary_df.to_csv(root / "summary.csv")
    per_split.attrs["summary"] = summary_df
    per_split.attrs["out_dir"] = str(root)
    return per_split
