"""The whole gMAD run (``biqa gmad``): score, select, write the pairs and the page, and with judgements
the matrices."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .judgements import competition_matrices, read_judgements, simulate_judgements
from .page import plot_matrices, write_contact_sheets, write_html, write_pairs_json
from .pool import ModelSpec, collect_pool, parse_model_spec, score_models
from .selection import select_pairs


def run_gmad(models: Sequence[str | ModelSpec], pool: Sequence[str] | str | pd.DataFrame, out: str | os.PathLike,
             *, levels: int = 6, band_width: float = 0.05, min_candidates: int = 5, range_quantile: float = 0.01,
             scores: Mapping[str, str] | None = None, judgements: str | os.PathLike | pd.DataFrame | None = None,
             simulate_from: str | None = None, simulate_tolerance: float = 0.25, lower_is_better: Sequence[str] = (),
             seed: int = 0, thumb: int = 300, blind: bool = False, sheets: bool = True, rescore: bool = False,
             device: str = "auto", batch_size: int = 8, progress: bool = False,
             log: Callable[[str], None] = lambda s: None) -> dict:
    """Score the pool with every model (or read saved scores), select the gMAD pairs and write to ``out``:

    ``pairs.json``, ``pairs.csv``, ``index.html`` (self-contained), ``judgements_template.csv``,
    ``sheets/DEFENDER__vs__ATTACKER.png``, ``scores/NAME.csv`` (reused next time); with judgements
    (a CSV, or simulated from a pool records column with ``simulate_from``): ``aggressiveness.csv``,
    ``resistance.csv``, ``model_scores.csv``, ``matrices.png``, ``results.json``.

    Returns ``{"selection", "specs", "scores", "pool", "results", "files", "timing"}``."""
    t0 = time.perf_counter()
    if judgements is not None and simulate_from:
        raise ValueError("give either judgements or simulate_from, not both")
    if judgements is not None and not isinstance(judgements, pd.DataFrame) and not os.path.isfile(judgements):
        raise FileNotFoundError(f"judgements file not found: {judgements}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = [m if isinstance(m, ModelSpec) else parse_model_spec(m) for m in models]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique (name them NAME=SOURCE): {names}")
    for n in lower_is_better:
        if n not in names:
            raise ValueError(f"--lower-is-better {n!r} is not a model; models: {names}")
    for s in specs:
        s.higher_is_better = s.name not in set(lower_is_better)
    pool_df = pool if isinstance(pool, pd.DataFrame) else collect_pool(pool)
    paths = pool_df["path"].tolist()
    log(f"pool: {len(paths)} images; scoring with {len(specs)} models")
    table = score_models(specs, pool_df, scores=scores, cache_dir=out / "scores", rescore=rescore, device=device,
                         batch_size=batch_size, progress=progress, log=log)
    t_score = time.perf_counter()
    sel = select_pairs(table, names, levels=levels, band_width=band_width, min_candidates=min_candidates,
                       range_quantile=range_quantile, paths=paths, seed=seed,
                       higher_is_better=[s.higher_is_better for s in specs])
    t_sel = time.perf_counter()
    files = {"pairs_json": write_pairs_json(sel, specs, table, paths, out / "pairs.json")}
    sel.pairs.to_csv(out / "pairs.csv", index=False, float_format="%.6g")
    files["pairs_csv"] = out / "pairs.csv"
    pd.DataFrame({"pair_id": sel.pairs["pair_id"], "preferred": ""}).to_csv(out / "judgements_template.csv",
                                                                          index=False)
    files["judgements_template"] = out / "judgements_template.csv"
    missing = ~np.isfinite(np.asarray(table, dtype=float))
    left = np.flatnonzero(missing.any(axis=1))
    left_out = pd.DataFrame({"path": [paths[i] for i in left],
                             "no_score_from": [" ".join(n for j, n in enumerate(names) if missing[i, j]) for i in left]})
    if len(left_out):  # pool images some model could not score: named, not just counted
        left_out.to_csv(out / "left_out.csv", index=False)
        files["left_out"] = out / "left_out.csv"
    results = None
    if simulate_from:
        if simulate_from not in pool_df.columns:
            raise ValueError(f"simulate_from: the pool has no column {simulate_from!r} (the pool must be a records "
                             f"CSV with it)")
        truth = pd.to_numeric(pool_df[simulate_from], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(truth).any():
            raise ValueError(f"simulate_from: column {simulate_from!r} has no numbers")
        judgements = simulate_judgements(sel.pairs, truth, tolerance=simulate_tolerance, seed=seed)
        judgements.to_csv(out / "judgements_simulated.csv", index=False)
        files["judgements_simulated"] = out / "judgements_simulated.csv"
    if judgements is not None:
        jd = read_judgements(judgements, sel.pairs)
        results = competition_matrices(sel.pairs, jd, names)
        results["aggressiveness"].to_csv(out / "aggressiveness.csv", float_format="%.4f")
        results["resistance"].to_csv(out / "resistance.csv", float_format="%.4f")
        results["models"].to_csv(out / "model_scores.csv", index=False, float_format="%.4f")
        files["matrices_png"] = plot_matrices(results, out / "matrices.png")
        (out / "results.json").write_text(json.dumps({
            "aggressiveness": json.loads(results["aggressiveness"].to_json(orient="index")),
            "resistance": json.loads(results["resistance"].to_json(orient="index")),
            "counts": json.loads(results["counts"].to_json(orient="index")),
            "models": json.loads(results["models"].to_json(orient="records")),
            "n_judgements": results["n_judgements"], "n_pairs_judged": results["n_pairs_judged"],
            "simulated_from": simulate_from}, indent=1))
        files.update(aggressiveness=out / "aggressiveness.csv", resistance=out / "resistance.csv",
                     model_scores=out / "model_scores.csv", results_json=out / "results.json")
    files["html"] = write_html(sel, specs, table, paths, out / "index.html", thumb=thumb, blind=blind,
                               results=results, matrices_png=files.get("matrices_png"))
    if sheets:
        files["sheets"] = write_contact_sheets(sel, table, paths, out / "sheets")
    t_end = time.perf_counter()
    timing = {"scoring_s": t_score - t0, "selection_s": t_sel - t_score, "outputs_s": t_end - t_sel,
              "total_s": t_end - t0}
    return {"selection": sel, "specs": specs, "scores": table, "pool": pool_df, "results": results,
            "files": files, "timing": timing, "left_out": left_out}
