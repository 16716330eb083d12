"""Summaries of a records CSV: counts per split, MOS statistics, direction, and a MOS histogram."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..records import read_records
from .importing import read_meta, split_counts


def inspect_records(csv, histogram=None, *, bins: int = 40, check_images: bool = False) -> dict:
    """Summarise the records CSV ``csv``.

    Returns a dict with ``records``, ``dataset`` (from the sidecar meta, or
    None), ``n``, ``mos`` (min/max/mean/std/median, NaN-free values only),
    ``n_missing_mos``, ``higher_is_better`` (None if unknown), ``direction``,
    ``mos_range`` (known valid range or None), ``n_refs`` (None without a
    ``ref`` column), ``n_dist_types``, ``splits`` (``{column: {value: n}}``,
    empty values counted as ``unused``), ``columns``.  If ``histogram`` is a
    path, a MOS histogram PNG is written there (overall and, with an official
    or first split column, per part) and its path is added as ``histogram``.
    With ``check_images``, every image is decoded in full: ``images_checked`` (how many) and
    ``bad_images`` (``[{line, path, problem}]``, those that do not decode) are added.
    """
    df = read_records(csv)
    meta = read_meta(csv) or {}
    mos = pd.to_numeric(df["mos"], errors="coerce").to_numpy(dtype=float)
    good = mos[np.isfinite(mos)]
    stats = ({"min": float(good.min()), "max": float(good.max()), "mean": float(good.mean()),
              "std": float(good.std(ddof=1)) if len(good) > 1 else 0.0, "median": float(np.median(good))}
             if len(good) else {"min": None, "max": None, "mean": None, "std": None, "median": None})
    hib = meta.get("higher_is_better")
    out = {
        "records": str(csv),
        "dataset": meta.get("dataset"),
        "n": int(len(df)),
        "mos": stats,
        "n_missing_mos": int(len(mos) - len(good)),
        "higher_is_better": hib,
        "direction": {True: "higher is better", False: "lower is better"}.get(hib, "unknown (no .meta.json)"),
        "mos_range": meta.get("mos_range"),
        "n_refs": int(df["ref"].nunique()) if "ref" in df.columns else None,
        "n_dist_types": int(df["dist_type"].nunique()) if "dist_type" in df.columns else None,
        "splits": split_counts(df),
        "columns": [c for c in df.columns if c != "abspath"],
    }
    if check_images:
        from ..records import check_images as _check

        bad = _check(df)
        out["images_checked"] = int(len(df))
        out["bad_images"] = [{"line": p.line, "path": p.path, "problem": p.problem} for p in bad]
    if histogram is not None:
        out["histogram"] = str(plot_mos_histogram(df, histogram, bins=bins, title=out["dataset"] or Path(csv).stem,
                                                  direction=out["direction"]))
    return out


def plot_mos_histogram(df: pd.DataFrame, path, *, bins: int = 40, title: str = "", direction: str = "") -> Path:
    """Write a MOS histogram PNG (Agg backend, no global pyplot state); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mos = pd.to_numeric(df["mos"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(mos)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    edges = np.histogram_bin_edges(mos[ok], bins=bins) if ok.any() else bins
    col = next((c for c in ("split_official", "split") if c in df.columns), None)
    if col is not None:
        parts = df[col].fillna("").astype(str).to_numpy()
        for part in ("train", "val", "test"):
            sel = ok & (parts == part)
            if sel.any():
                ax.hist(mos[sel], bins=edges, alpha=0.55, label=f"{part} ({int(sel.sum())})")
        ax.legend(title=col)
    else:
        ax.hist(mos[ok], bins=edges, color="tab:blue")
    ax.set_xlabel("MOS" + (f" ({direction})" if direction else ""))
    ax.set_ylabel("images")
    ax.set_title(f"{title}: {int(ok.sum())} images")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
