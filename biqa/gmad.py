"""gMAD: the group maximum differentiation competition between quality models.

After Ma et al., "Group MAD Competition" (CVPR 2016); this is a re-implementation from the paper's
description (METHODS.md section 5), not a port of anyone's code.

Given M models and a pool of (unlabelled) images, every ordered (defender, attacker) pair of models
plays a game. The defender's score range is split into ``levels`` levels; at each level the images
the defender scores inside a narrow band around the level centre are, for the defender, of equal
quality. Among them the attacker picks its highest- and lowest-scored image: that pair is the
attacker's strongest counter-example to the defender at that level. If people see no difference,
the defender wins; if people clearly prefer the attacker's higher-scored image, the attacker wins.

Models (:func:`parse_model_spec`), each written ``[NAME=]SOURCE``:

- ``biqa-default`` (a trained model name) or a checkpoint path: scored with :func:`biqa.load`;
- ``scores.csv``: precomputed scores (columns ``path, score``, e.g. from ``biqa score --out``);
- ``brisque`` / ``niqe`` / ``piqe``: the classical models of :mod:`biqa.classical`, scored with
  :func:`biqa.load` like a trained model (higher = better);
- ``classical:sharpness`` / ``classical:noise``: the built-in classical baselines
  (:data:`CLASSICAL_SCORERS`, from :mod:`biqa.classical.cues`: log variance of the Laplacian; minus
  Immerkaer's noise estimate);
- ``column:mos``: a column of the pool's records CSV (e.g. the synthetic benchmark's labels).

Human judgements (:func:`read_judgements`): a CSV with ``pair_id, preferred`` where ``preferred`` is
``left``, ``right`` or ``same`` (as the pair is laid out on the HTML page and in ``pairs.json``);
several rows per pair (several people) are averaged. :func:`competition_matrices` turns them into

- the aggressiveness matrix ``A[i, j]`` (model i attacking model j): the mean over i's judged pairs
  against j of ``m``, where per pair ``m`` = mean over judgements of +1 (the attacker's higher-scored
  image preferred), 0 (same) or -1 (the other one). In [-1, 1]: 1 = every attack succeeded,
  0 = nobody saw a difference, < 0 = the attacker's order is reversed;
- the resistance matrix ``R[i, j]`` (model i defending against model j): the mean over j's judged
  pairs against i of ``1 - |m|``, the share of "same" — the defender's claim that the two images are
  equally good held. In [0, 1];
- per-model scores: mean aggressiveness (row means of A, off-diagonal), mean resistance (row means
  of R), and ``overall`` = the mean of ``(aggressiveness + 1) / 2`` and ``resistance`` (both in
  [0, 1]); models are ranked by ``overall``.

The paper collects graded judgements; this toolkit takes three-way ones (left / right / same), and
its resistance counts only "same" as a successful defence: a pair whose images differ in *either*
direction falsifies the defender, who claimed they were equal.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .classical.cues import noise_score, sharpness_score

__all__ = [
    "CLASSICAL_SCORERS", "ModelSpec", "Selection", "JudgementsError", "parse_model_spec", "collect_pool",
    "load_score_csv", "score_models", "select_pairs", "simulate_judgements", "read_judgements",
    "competition_matrices", "write_pairs_json", "write_html", "write_contact_sheets", "plot_matrices",
    "run_gmad", "format_summary", "format_matrices",
]

PREFERRED = ("left", "right", "same")


#: Built-in classical no-reference scorers (``classical:NAME``, from :mod:`biqa.classical.cues`); each maps an
#: image path to a score, higher = better.
CLASSICAL_SCORERS: dict[str, Callable[[str], float]] = {"sharpness": sharpness_score, "noise": noise_score}


# ----------------------------------------------------------------------------------------------------
# models and pool
# ----------------------------------------------------------------------------------------------------
@dataclass
class ModelSpec:
    """One competitor. ``kind``: trained | checkpoint | classical-model | csv | classical | column."""

    name: str
    kind: str
    source: str
    higher_is_better: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "source": self.source,
                "higher_is_better": self.higher_is_better}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def parse_model_spec(spec: str) -> ModelSpec:
    """``[NAME=]SOURCE`` -> :class:`ModelSpec` (see the module docstring for the sources).

    Raises ``ValueError`` / ``FileNotFoundError`` with the accepted forms when SOURCE is none of them."""
    spec = str(spec).strip()
    name = None
    m = re.fullmatch(r"([A-Za-z0-9_.+-]+)=(.+)", spec)
    if m and not os.path.exists(spec):
        name, spec = m.group(1), m.group(2)
    from .classical import is_classical

    if spec.startswith("classical:") and is_classical(spec.split(":", 1)[1]):
        spec = spec.split(":", 1)[1]  # classical:brisque is the model brisque
    if is_classical(spec) and not os.path.exists(spec):  # BRISQUE / NIQE / PIQE: scored through biqa.load
        return ModelSpec(name or spec.lower(), "classical-model", spec.lower())
    if spec.startswith("classical:"):
        key = spec.split(":", 1)[1]
        if key not in CLASSICAL_SCORERS:
            raise ValueError(f"unknown classical scorer {key!r}; available: "
                             + ", ".join(f"classical:{k}" for k in CLASSICAL_SCORERS) + ", brisque, niqe, piqe")
        return ModelSpec(name or key, "classical", spec)
    if spec.startswith("column:"):
        col = spec.split(":", 1)[1]
        if not col:
            raise ValueError("column: needs a column name of the pool's records CSV, e.g. column:mos")
        return ModelSpec(name or col, "column", spec)
    if spec.lower().endswith(".csv"):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"scores CSV not found: {spec}")
        return ModelSpec(name or Path(spec).stem, "csv", spec)
    from .zoo import TRAINED_MODELS, resolve_checkpoint

    if spec in TRAINED_MODELS:
        return ModelSpec(name or spec, "trained", spec)
    try:
        path = resolve_checkpoint(spec)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"model {spec!r}: not a trained model name ({', '.join(sorted(TRAINED_MODELS))}), checkpoint, "
            f"scores CSV (path,score), brisque | niqe | piqe, classical:{{{','.join(CLASSICAL_SCORERS)}}} or "
            f"column:NAME ({e})") from None
    stem = path.parent.name if path.stem == "best" else path.stem
    return ModelSpec(name or stem, "checkpoint", spec)


def _norm(p: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(p))))


def collect_pool(specs: Sequence[str] | str) -> pd.DataFrame:
    """The image pool: folders (recursive), globs, image files and records CSVs (a ``path`` column,
    relative paths resolved against the CSV's folder), in order, duplicates dropped.

    Returns a DataFrame with ``path`` (absolute) and the records' other columns (NaN for images that
    came from folders), for ``column:NAME`` models and simulated judgements."""
    from .records import resolve_path
    from .scorer import collect_inputs

    if isinstance(specs, (str, os.PathLike)):
        specs = [str(specs)]
    frames = []
    for s in map(str, specs):
        if s.lower().endswith(".csv") and os.path.isfile(s):
            df = pd.read_csv(s, dtype={"path": str})
            if "path" not in df.columns:
                raise ValueError(f"pool records {s}: no 'path' column (found {list(df.columns)})")
            root = Path(s).resolve().parent
            df = df.dropna(subset=["path"]).copy()
            df["path"] = [resolve_path(p, root) for p in df["path"]]
            frames.append(df)
        else:
            found = collect_inputs([s])
            if not found or (len(found) == 1 and not os.path.exists(found[0])):
                raise FileNotFoundError(f"pool: no images found for {s!r} (give folders, globs, image files or "
                                        f"records CSVs with a 'path' column)")
            frames.append(pd.DataFrame({"path": found}))
    pool = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"path": []})
    pool["path"] = [_norm(p) for p in pool["path"]]
    pool = pool.drop_duplicates("path", keep="first").reset_index(drop=True)
    if pool.empty:
        raise ValueError("the pool is empty: give folders, globs or records CSVs with images")
    return pool


def load_score_csv(csv: str | os.PathLike, paths: Sequence[str]) -> np.ndarray:
    """Scores from a ``path, score`` CSV aligned to ``paths`` (absolute, unique); NaN where it has none.

    A CSV path is matched as written, then (relative ones) against the working directory, then
    against the CSV's folder; when a path occurs twice, its first row counts."""
    df = pd.read_csv(csv, dtype={"path": str})
    if "path" not in df.columns or "score" not in df.columns:
        raise ValueError(f"scores CSV {csv}: needs columns 'path' and 'score' (found {list(df.columns)})")
    pool = pd.Index(list(paths))
    if not pool.is_unique:
        raise ValueError("load_score_csv: the pool's paths must be unique")
    raw = df["path"].fillna("").astype(str).to_numpy(dtype=object)
    score = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=float)
    pos = pool.get_indexer(raw)  # exact matches first: the common case costs no path arithmetic
    root = Path(csv).resolve().parent
    for resolve in (_norm, lambda p: _norm(root / p)):
        miss = np.flatnonzero((pos < 0) & (raw != ""))
        if resolve is not _norm:
            miss = miss[[not os.path.isabs(raw[i]) for i in miss]]
        if not len(miss):
            break
        pos[miss] = pool.get_indexer([resolve(raw[i]) for i in miss])
    out = np.full(len(pool), np.nan)
    hit = np.flatnonzero(pos >= 0)
    _, first = np.unique(pos[hit], return_index=True)  # first row of each path
    out[pos[hit[first]]] = score[hit[first]]
    return out


def _score_one(spec: ModelSpec, pool: pd.DataFrame, *, device: str, batch_size: int, progress: bool) -> np.ndarray:
    paths = pool["path"].tolist()
    if spec.kind == "csv":
        return load_score_csv(spec.source, paths)
    if spec.kind == "column":
        col = spec.source.split(":", 1)[1]
        if col not in pool.columns:
            raise ValueError(f"model {spec.name}: the pool has no column {col!r} (a column: model needs the pool "
                             f"given as a records CSV; columns: {[c for c in pool.columns if c != 'path']})")
        return pd.to_numeric(pool[col], errors="coerce").to_numpy(dtype=float)
    if spec.kind == "classical":
        fn = CLASSICAL_SCORERS[spec.source.split(":", 1)[1]]
        out = np.full(len(paths), np.nan)
        it = paths
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(paths, desc=spec.name, unit="img", dynamic_ncols=True)
        for i, p in enumerate(it):
            try:
                out[i] = fn(p)
            except Exception:  # unreadable image: no score, dropped from the competition like a scorer error
                pass
        return out
    from .scorer import load

    df = load(spec.source, device=device, batch_size=batch_size).score_paths(paths, progress=progress)
    return df["score"].to_numpy(dtype=float)


def score_models(specs: Sequence[ModelSpec], pool: pd.DataFrame, *, scores: Mapping[str, str] | None = None,
                 cache_dir: str | os.PathLike | None = None, rescore: bool = False, device: str = "auto",
                 batch_size: int = 8, progress: bool = False, log: Callable[[str], None] = lambda s: None,
                 ) -> np.ndarray:
    """Score the pool once per model -> ``[N, M]`` raw scores (NaN = no score).

    ``scores``: ``{model name: CSV}`` precomputed scores used instead of scoring. With ``cache_dir``
    each model's scores are saved as ``cache_dir/NAME.csv`` (+ ``NAME.json``: its source) and reused on
    the next run when the source is the same and every pool image has a row (``rescore`` forces it)."""
    scores = dict(scores or {})
    unknown = set(scores) - {s.name for s in specs}
    if unknown:
        raise ValueError(f"--scores for unknown model(s) {sorted(unknown)}; models: {[s.name for s in specs]}")
    paths = pool["path"].tolist()
    table = np.full((len(paths), len(specs)), np.nan)
    for j, spec in enumerate(specs):
        t0 = time.perf_counter()
        if spec.name in scores:
            col = load_score_csv(scores[spec.name], paths)
            how = f"scores from {scores[spec.name]}"
        else:
            col, how = None, ""
            cache = Path(cache_dir) / f"{_safe(spec.name)}.csv" if cache_dir else None
            if cache is not None and cache.is_file() and not rescore and spec.kind not in ("csv", "column"):
                meta_p = cache.with_suffix(".json")
                meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}
                if meta.get("source") == spec.source:
                    cached = pd.read_csv(cache, dtype={"path": str})
                    if set(paths) <= set(cached["path"]):
                        col = load_score_csv(cache, paths)
                        how = f"reused {cache} (--rescore to score again)"
            if col is None:
                col = _score_one(spec, pool, device=device, batch_size=batch_size, progress=progress)
                how = f"{spec.kind} {spec.source}"
                if cache is not None and spec.kind not in ("csv", "column"):
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    pd.DataFrame({"path": paths, "score": col}).to_csv(cache, index=False, float_format="%.6g")
                    cache.with_suffix(".json").write_text(json.dumps(spec.to_dict(), indent=1))
        if spec.kind == "csv" and spec.name not in scores and not np.isfinite(col).any():
            raise ValueError(f"model {spec.name}: scores CSV {spec.source} has no score for any pool image "
                             f"(paths must match the pool's, absolute or relative to the working directory)")
        table[:, j] = col
        n_ok = int(np.isfinite(col).sum())
        log(f"  {spec.name:<16} {n_ok}/{len(paths)} scored  ({how}; {time.perf_counter() - t0:.1f} s)")
    return table


# ----------------------------------------------------------------------------------------------------
# pair selection
# ----------------------------------------------------------------------------------------------------
@dataclass
class Selection:
    """The result of :func:`select_pairs`.

    ``pairs``: one row per pair (columns documented in :func:`select_pairs`); ``skipped``: one row per
    (defender, attacker, level) without a pair, with the reason; ``bands``: one row per
    (defender, level): centre, band, candidates; ``params``: the selection parameters."""

    names: list[str]
    pairs: pd.DataFrame
    skipped: pd.DataFrame
    bands: pd.DataFrame
    params: dict = field(default_factory=dict)

    def sparse_levels(self) -> dict[str, list[int]]:
        """Defender -> levels with fewer than ``min_candidates`` images in the band."""
        b = self.bands[~self.bands["ok"]]
        return {d: sorted(b.loc[b["defender"] == d, "level"].astype(int).tolist()) for d in self.names}


def _raw_band(sign: float, center: float, half: float) -> tuple[float, float, float]:
    """A band in the internal higher-is-better units -> (centre, low, high) in the model's own units."""
    lo, hi = sorted((sign * (center - half), sign * (center + half)))
    return float(sign * center), float(lo), float(hi)


def select_pairs(scores: np.ndarray, names: Sequence[str], *, levels: int = 6, band_width: float = 0.05,
                 min_candidates: int = 5, range_quantile: float = 0.01, paths: Sequence[str] | None = None,
                 higher_is_better: Sequence[bool] | None = None, seed: int = 0) -> Selection:
    """For every ordered (defender, attacker) pair and level, the attacker's max / min image inside
    the defender's level band.

    Args:
        scores: ``[N, M]``; rows with a NaN anywhere are left out.
        names: the M model names.
        levels: L; the defender's range (its ``range_quantile`` .. ``1 - range_quantile`` quantiles, so
            that a few outliers do not stretch it) is cut into L equal parts, level k's centre being
            the middle of part k (level 1 = lowest scores).
        band_width: the band's width as a fraction of that range (centre +- band_width / 2 * range).
        min_candidates: a level whose band holds fewer images is too sparse: no pair, reported.
        paths: image paths (for the ``hi_path`` / ``lo_path`` columns).
        higher_is_better: per model (default: all True). Levels then run from worst to best quality
            and "hi" means the attacker's *better* image; reported scores stay in the model's units.
        seed: the left / right layout of each pair is random (so that a viewer cannot tell the
            attacker's favourite by its side) and reproducible from ``seed``.

    Pair columns: ``pair_id`` (``D<d>-A<a>-L<k>``, 1-based model indexes in ``names`` order),
    ``defender``, ``attacker``, ``level``, ``center``, ``band_lo``, ``band_hi``, ``n_candidates``,
    ``hi_index`` / ``lo_index`` (rows of ``scores``: the attacker's highest- / lowest-scored
    candidate), ``hi_path`` / ``lo_path``, ``attacker_hi`` / ``attacker_lo`` / ``defender_hi`` /
    ``defender_lo`` (scores), ``attacker_gap`` (attacker's hi - lo, in units of the attacker's range),
    ``left_is_hi`` (bool), ``left`` / ``right`` (paths as laid out).

    Vectorised: one sort per defender, then per level a slice of the sorted table and one
    argmax / argmin over all attackers at once.
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[1] != len(names):
        raise ValueError(f"scores must be [N, {len(names)}], got {s.shape}")
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique: {list(names)}")
    if len(names) < 2:
        raise ValueError("gMAD needs at least two models")
    if levels < 1:
        raise ValueError("levels must be >= 1")
    if not 0 < band_width <= 1:
        raise ValueError(f"band_width is a fraction of the defender's score range, in (0, 1]; got {band_width}")
    if min_candidates < 2:
        raise ValueError("min_candidates must be >= 2 (a pair needs two images)")
    sign = np.ones(len(names)) if higher_is_better is None else np.where(np.asarray(higher_is_better, bool), 1.0, -1.0)
    if sign.shape != (len(names),):
        raise ValueError("higher_is_better needs one flag per model")
    keep = np.flatnonzero(np.isfinite(s).all(axis=1))
    sv = s[keep] * sign  # internally higher = better everywhere
    n, m = sv.shape
    if n < 2:
        raise ValueError(f"only {n} of the {s.shape[0]} pool images have a score from every model; gMAD needs more "
                         "(check the scores CSVs' paths and the scoring errors)")
    paths_arr = np.asarray(paths, dtype=object) if paths is not None else None
    lo_q, hi_q = np.quantile(sv, [range_quantile, 1 - range_quantile], axis=0)
    a_lo, a_hi = sv.min(0), sv.max(0)
    a_range = np.where(a_hi > a_lo, a_hi - a_lo, 1.0)
    rng = np.random.default_rng(seed)
    pair_rows, skip_rows, band_rows = [], [], []
    for d in range(m):
        order = np.argsort(sv[:, d], kind="stable")
        sd = sv[order, d]
        sorted_all = sv[order]
        r = float(hi_q[d] - lo_q[d])
        centers = lo_q[d] + (np.arange(levels) + 0.5) * r / levels
        half = band_width * r / 2.0
        starts = np.searchsorted(sd, centers - half, side="left")
        ends = np.searchsorted(sd, centers + half, side="right")
        counts = ends - starts
        attackers = [a for a in range(m) if a != d]
        for k in range(levels):
            ok = bool(counts[k] >= min_candidates and r > 0)
            c_raw, b_lo, b_hi = _raw_band(sign[d], centers[k], half)
            band_rows.append({"defender": names[d], "level": k + 1, "center": c_raw, "band_lo": b_lo,
                              "band_hi": b_hi, "n_candidates": int(counts[k]), "ok": ok})
            if not ok:
                why = ("the defender gives every image the same score" if r <= 0 else
                       f"too sparse: {int(counts[k])} image(s) in the band < min_candidates {min_candidates}")
                for a in attackers:
                    skip_rows.append({"defender": names[d], "attacker": names[a], "level": k + 1,
                                      "n_candidates": int(counts[k]), "reason": why})
                continue
            block = sorted_all[starts[k]:ends[k]][:, attackers]
            i_hi, i_lo = block.argmax(0), block.argmin(0)
            for t, a in enumerate(attackers):
                gi, gl = order[starts[k] + i_hi[t]], order[starts[k] + i_lo[t]]
                ah, al = sv[gi, a], sv[gl, a]
                if not ah > al:
                    skip_rows.append({"defender": names[d], "attacker": names[a], "level": k + 1,
                                      "n_candidates": int(counts[k]),
                                      "reason": "the attacker scores every candidate alike"})
                    continue
                pair_rows.append({
                    "pair_id": f"D{d + 1}-A{a + 1}-L{k + 1}", "defender": names[d], "attacker": names[a],
                    "level": k + 1, "center": c_raw, "band_lo": b_lo, "band_hi": b_hi,
                    "n_candidates": int(counts[k]), "hi_index": int(keep[gi]), "lo_index": int(keep[gl]),
                    "attacker_hi": float(sign[a] * ah), "attacker_lo": float(sign[a] * al),
                    "defender_hi": float(sign[d] * sv[gi, d]), "defender_lo": float(sign[d] * sv[gl, d]),
                    "attacker_gap": float((ah - al) / a_range[a]),
                })
    pairs = pd.DataFrame(pair_rows, columns=[
        "pair_id", "defender", "attacker", "level", "center", "band_lo", "band_hi", "n_candidates", "hi_index",
        "lo_index", "attacker_hi", "attacker_lo", "defender_hi", "defender_lo", "attacker_gap"])
    pairs["left_is_hi"] = rng.random(len(pairs)) < 0.5
    if paths_arr is not None:
        pairs["hi_path"] = paths_arr[pairs["hi_index"].to_numpy(dtype=int)] if len(pairs) else []
        pairs["lo_path"] = paths_arr[pairs["lo_index"].to_numpy(dtype=int)] if len(pairs) else []
        pairs["left"] = np.where(pairs["left_is_hi"], pairs["hi_path"], pairs["lo_path"])
        pairs["right"] = np.where(pairs["left_is_hi"], pairs["lo_path"], pairs["hi_path"])
    skipped = pd.DataFrame(skip_rows, columns=["defender", "attacker", "level", "n_candidates", "reason"])
    bands = pd.DataFrame(band_rows, columns=["defender", "level", "center", "band_lo", "band_hi", "n_candidates",
                                             "ok"])
    params = {"levels": levels, "band_width": band_width, "higher_is_better": [bool(x > 0) for x in sign],
              "min_candidates": min_candidates,
              "range_quantile": range_quantile, "seed": seed, "n_pool": int(s.shape[0]), "n_used": int(n),
              "n_dropped_unscored": int(s.shape[0] - n)}
    return Selection(list(names), pairs, skipped, bands, params)


# ----------------------------------------------------------------------------------------------------
# judgements and matrices
# ----------------------------------------------------------------------------------------------------
class JudgementsError(ValueError):
    """A judgements CSV with bad rows; ``problems`` lists every one (1-based CSV line, header = 1)."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        shown = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
        super().__init__(f"{source}: {len(problems)} bad row(s):\n" + "\n".join(f"  {p}" for p in shown))


def read_judgements(source: str | os.PathLike | pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Read and check human pair judgements -> ``pair_id, preferred, s`` (one row per judgement).

    Columns: ``pair_id`` (from ``pairs.json`` / the HTML page) and ``preferred``: ``left``, ``right`` or
    ``same`` (case and surrounding spaces ignored); other columns (e.g. ``rater``) are kept. ``s`` is
    +1 when the preferred image is the attacker's higher-scored one, -1 when it is the other, 0 for
    same. Every bad row (unknown pair id, empty or other ``preferred``) is reported at once in a
    :class:`JudgementsError`."""
    name = "judgements" if isinstance(source, pd.DataFrame) else str(source)
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        if not os.path.isfile(source):
            raise FileNotFoundError(f"judgements file not found: {source}")
        df = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("pair_id", "preferred") if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; found {list(df.columns)}. A judgements CSV "
                         "needs 'pair_id' and 'preferred' (left | right | same)")
    left_is_hi = dict(zip(pairs["pair_id"], pairs["left_is_hi"].astype(bool)))
    problems, s = [], []
    ids = df["pair_id"].astype(str).str.strip()
    pref = df["preferred"].astype(str).str.strip().str.lower()
    for i, (pid, p) in enumerate(zip(ids, pref)):
        line = i + 2
        bad = []
        if not pid:
            bad.append("empty pair_id")
        elif pid not in left_is_hi:
            bad.append(f"unknown pair_id {pid!r} (not among this run's {len(left_is_hi)} pairs)")
        if p not in PREFERRED:
            bad.append(f"preferred is {df['preferred'].iloc[i]!r}; use left, right or same")
        if bad:
            problems.append(f"line {line}: " + "; ".join(bad))
            s.append(np.nan)
            continue
        if p == "same":
            s.append(0.0)
        else:
            s.append(1.0 if (p == "left") == left_is_hi[pid] else -1.0)
    if problems:
        raise JudgementsError(name, problems)
    out = df.copy()
    out["pair_id"], out["preferred"], out["s"] = ids, pref, s
    return out


def simulate_judgements(pairs: pd.DataFrame, truth: np.ndarray, *, tolerance: float,
                        n_raters: int = 1, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Judgements of simulated people who know ``truth`` (one value per pool row, NaN = unknown):
    the image with the higher truth is preferred, ``same`` when the two are within ``tolerance``.
    ``noise``: Gaussian noise (sd, truth units) added to each rater's view of the difference."""
    truth = np.asarray(truth, dtype=float)
    rng = np.random.default_rng(seed)
    rows = []
    for r in pairs.itertuples(index=False):
        th, tl = truth[r.hi_index], truth[r.lo_index]
        if not (np.isfinite(th) and np.isfinite(tl)):
            continue
        for k in range(n_raters):
            diff = th - tl + (rng.normal(0, noise) if noise else 0.0)
            if abs(diff) <= tolerance:
                p = "same"
            else:
                hi_better = diff > 0
                p = "left" if hi_better == bool(r.left_is_hi) else "right"
            rows.append({"pair_id": r.pair_id, "preferred": p, "rater": f"sim{k + 1}"})
    return pd.DataFrame(rows, columns=["pair_id", "preferred", "rater"])


def competition_matrices(pairs: pd.DataFrame, judgements: pd.DataFrame, names: Sequence[str]) -> dict:
    """Aggressiveness and resistance matrices and per-model scores from checked judgements
    (:func:`read_judgements`). See the module docstring for the definitions.

    Returns ``{"aggressiveness": DataFrame (rows: attacker, columns: defender), "resistance":
    DataFrame (rows: defender, columns: attacker), "counts": judged pairs per (attacker, defender),
    "models": DataFrame (model, aggressiveness, resistance, overall, rank), "per_pair": DataFrame}``;
    cells without judged pairs are NaN."""
    names = list(names)
    per_pair = (judgements.groupby("pair_id")["s"].agg(["mean", "count"]).rename(columns={"mean": "m", "count": "n"})
                .reset_index())
    pp = pairs[["pair_id", "defender", "attacker", "level"]].merge(per_pair, on="pair_id", how="inner")
    idx = {n: i for i, n in enumerate(names)}
    m = len(names)
    agg, res, cnt = np.full((m, m), np.nan), np.full((m, m), np.nan), np.zeros((m, m), dtype=int)
    for (a, d), g in pp.groupby(["attacker", "defender"]):
        i, j = idx[a], idx[d]
        agg[i, j] = g["m"].mean()
        res[j, i] = (1.0 - g["m"].abs()).mean()
        cnt[i, j] = len(g)
    with warnings.catch_warnings():  # a model without any judged pair gets NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        a_score = np.nanmean(agg, axis=1)
        r_score = np.nanmean(res, axis=1)
    overall = ((a_score + 1.0) / 2.0 + r_score) / 2.0
    models = pd.DataFrame({"model": names, "aggressiveness": a_score, "resistance": r_score, "overall": overall})
    models["rank"] = models["overall"].rank(ascending=False, method="min").astype("Int64")
    models = models.sort_values(["rank", "model"], na_position="last").reset_index(drop=True)
    return {"aggressiveness": pd.DataFrame(agg, index=names, columns=names),
            "resistance": pd.DataFrame(res, index=names, columns=names),
            "counts": pd.DataFrame(cnt, index=names, columns=names), "models": models, "per_pair": pp,
            "n_judgements": int(len(judgements)), "n_pairs_judged": int(len(pp))}


# ----------------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------------
def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_pairs_json(sel: Selection, specs: Sequence[ModelSpec], scores: np.ndarray, paths: Sequence[str],
                     out: str | os.PathLike) -> Path:
    """``pairs.json``: the models, parameters, bands (with sparse levels) and every pair, with all
    models' scores for its left and right image."""
    out = Path(out)
    names = sel.names
    pairs = []
    for r in sel.pairs.to_dict("records"):
        li, ri = (r["hi_index"], r["lo_index"]) if r["left_is_hi"] else (r["lo_index"], r["hi_index"])
        pairs.append({
            "pair_id": r["pair_id"], "defender": r["defender"], "attacker": r["attacker"], "level": int(r["level"]),
            "band": [r["band_lo"], r["band_hi"]], "center": r["center"], "n_candidates": int(r["n_candidates"]),
            "left": str(paths[li]), "right": str(paths[ri]),
            "attacker_prefers": "left" if r["left_is_hi"] else "right",
            "attacker_gap": r["attacker_gap"],
            "scores": {n: {"left": _jsonable(scores[li, j]), "right": _jsonable(scores[ri, j])}
                       for j, n in enumerate(names)},
        })
    doc = {
        "method": "gMAD (group maximum differentiation competition), Ma et al., CVPR 2016",
        "models": [s.to_dict() for s in specs], "params": sel.params,
        "bands": json.loads(sel.bands.to_json(orient="records")),
        "sparse_levels": sel.sparse_levels(),
        "skipped": json.loads(sel.skipped.to_json(orient="records")),
        "pairs": pairs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=_jsonable))
    return out


def _thumb_b64(path: str, size: int, cache: dict) -> str:
    key = (path, size)
    if key not in cache:
        from PIL import Image

        from .data import load_image, Resolution

        try:
            im = load_image(path, Resolution.parse(f"max:{size}"))
        except Exception:
            im = Image.new("RGB", (size, size * 3 // 4), (200, 200, 200))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        cache[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return cache[key]


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px;color:#222;
background:#fafafa;max-width:1400px}
h1{font-size:22px;margin:0 0 6px} h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ccc}
p.note,div.note{color:#555;font-size:13px;margin:4px 0}
table.meta{border-collapse:collapse;font-size:13px;margin:8px 0}
table.meta td,table.meta th{border:1px solid #ddd;padding:3px 8px;text-align:left}
table.meta td.num{text-align:right;font-variant-numeric:tabular-nums}
div.pair{display:flex;gap:14px;align-items:flex-start;margin:10px 0;padding:8px;background:#fff;
border:1px solid #e3e3e3;border-radius:6px}
div.lvl{width:150px;font-size:12px;color:#444;flex:none}
div.lvl b{font-size:15px;color:#111}
figure{margin:0;text-align:center;flex:none}
figure img{display:block;max-width:300px;max-height:300px;border:1px solid #bbb}
figcaption{font-size:12px;margin-top:4px;line-height:1.35;font-variant-numeric:tabular-nums}
.hi{color:#0a6e2a;font-weight:600} .lo{color:#a0301c;font-weight:600}
.sparse{color:#8a5a00;font-size:12px}
"""


def _short(path) -> str:
    """The file's folder and name (enough to tell pool images apart on the page)."""
    p = Path(str(path))
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _fmt(x, nd=3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def write_html(sel: Selection, specs: Sequence[ModelSpec], scores: np.ndarray, paths: Sequence[str],
               out: str | os.PathLike, *, thumb: int = 300, blind: bool = False, results: dict | None = None,
               matrices_png: str | os.PathLike | None = None, title: str = "gMAD competition") -> Path:
    """A single self-contained HTML page (images embedded as base64 JPEG thumbnails; no scripts, no
    external assets): per (defender, attacker), each level's pair side by side with both models'
    scores, the level and its band; sparse levels are listed. ``blind``: no scores, no model names
    (pair ids only), for collecting judgements. ``results``: :func:`competition_matrices` output."""
    out = Path(out)
    e = html.escape
    names = sel.names
    cache: dict = {}
    p = sel.params
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    parts.append(
        f"<p class='note'>Pool: {p['n_pool']} images ({p['n_used']} scored by every model). Levels: {p['levels']}, "
        f"band width {p['band_width']:g} of the defender's score range, at least {p['min_candidates']} candidates per "
        f"level. Pairs: {len(sel.pairs)}.</p>")
    if blind:
        parts.append("<p class='note'>For each pair, which image looks better: <b>left</b>, <b>right</b>, or "
                     "are they the <b>same</b>? Write one row per pair: <code>pair_id,preferred</code>.</p>")
    else:
        parts.append(
            "<p class='note'>In each row the defender scores both images (nearly) the same — they sit in one "
            "narrow band of its scores — while the attacker scores them as far apart as it can. If the two "
            "look equally good the defender was right; if the image the attacker <span class='hi'>rates better</span> "
            "looks clearly better, the attacker was right.</p>")
        rows = "".join(f"<tr><td>{i + 1}</td><td>{e(s.name)}</td><td>{e(s.kind)}</td><td>{e(s.source)}</td></tr>"
                       for i, s in enumerate(specs))
        parts.append("<table class='meta'><tr><th>#</th><th>model</th><th>kind</th><th>source</th></tr>"
                     f"{rows}</table>")
    if results is not None and not blind:
        parts.append("<h2>Results from judgements</h2>")
        parts.append(f"<p class='note'>{results['n_judgements']} judgements of {results['n_pairs_judged']} "
                     f"pairs.</p>")
        mt = results["models"]
        rows = "".join(
            f"<tr><td>{'' if pd.isna(r.rank) else int(r.rank)}</td><td>{e(r.model)}</td>"
            f"<td class='num'>{_fmt(r.aggressiveness)}</td><td class='num'>{_fmt(r.resistance)}</td>"
            f"<td class='num'>{_fmt(r.overall)}</td></tr>" for r in mt.itertuples())
        parts.append("<table class='meta'><tr><th>rank</th><th>model</th><th>aggressiveness</th><th>resistance</th>"
                     f"<th>overall</th></tr>{rows}</table>")
        if matrices_png and os.path.isfile(matrices_png):
            b64 = base64.b64encode(Path(matrices_png).read_bytes()).decode("ascii")
            parts.append(f"<img alt='matrices' style='max-width:100%' src='data:image/png;base64,{b64}'>")
    sparse = sel.sparse_levels()
    judged = ({} if results is None or blind else
              {r.pair_id: (r.m, int(r.n)) for r in results["per_pair"].itertuples(index=False)})
    for d in names:
        for a in names:
            if a == d:
                continue
            g = sel.pairs[(sel.pairs["defender"] == d) & (sel.pairs["attacker"] == a)].sort_values("level")
            sk = sel.skipped[(sel.skipped["defender"] == d) & (sel.skipped["attacker"] == a)]
            head = ("Pairs " + e(f"{names.index(d) + 1}→{names.index(a) + 1}") if blind else
                    f"Defender <b>{e(d)}</b> · attacker <b>{e(a)}</b>")
            parts.append(f"<h2 id='d{names.index(d) + 1}-a{names.index(a) + 1}'>{head}</h2>")
            if len(sk):
                parts.append("<div class='sparse'>No pair at level(s) " + ", ".join(
                    f"{int(r.level)} ({e(r.reason)})" for r in sk.itertuples()) + "</div>")
            for r in g.itertuples(index=False):
                cells = []
                for side in ("left", "right"):
                    is_hi = (side == "left") == bool(r.left_is_hi)
                    i = r.hi_index if is_hi else r.lo_index
                    src = _thumb_b64(str(paths[i]), thumb, cache)
                    if blind:
                        cap = f"{side}"
                    else:
                        cls, word = ("hi", "rated better") if is_hi else ("lo", "rated worse")
                        cap = (f"{side}: <span class='{cls}'>attacker {e(a)} {_fmt(scores[i, names.index(a)])} "
                               f"({word})</span><br>defender {e(d)} {_fmt(scores[i, names.index(d)])}"
                               f"<br><span title='{e(str(paths[i]))}'>{e(_short(paths[i]))}</span>")
                    cells.append(f"<figure><img alt='{side}' src='{src}'><figcaption>{cap}</figcaption></figure>")
                info = (f"<b>{e(r.pair_id)}</b><br>level {int(r.level)} of {p['levels']}" if blind else
                        f"<b>level {int(r.level)}</b> of {p['levels']}<br>pair {e(r.pair_id)}<br>"
                        f"defender band {_fmt(r.band_lo)} – {_fmt(r.band_hi)}<br>{int(r.n_candidates)} candidates")
                if r.pair_id in judged:
                    mj, nj = judged[r.pair_id]
                    verdict = ("the attacker's pick preferred" if mj > 0 else "reversed" if mj < 0 else "same")
                    info += f"<br><b>judged</b>: {verdict} (m = {mj:+.2f}, {nj} judgement{'s' * (nj != 1)})"
                parts.append(f"<div class='pair'><div class='lvl'>{info}</div>{''.join(cells)}</div>")
            if not len(g) and not len(sk):
                parts.append("<div class='sparse'>no pairs</div>")
    if not blind and any(sparse.values()):
        parts.append("<h2>Sparse levels</h2><p class='note'>"
                     + "; ".join(f"defender {e(d)}: level(s) {', '.join(map(str, ls))}"
                                 for d, ls in sparse.items() if ls)
                     + " — fewer than min_candidates images in the band (widen --band-width, lower "
                       "--min-candidates or grow the pool).</p>")
    parts.append("</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def write_contact_sheets(sel: Selection, scores: np.ndarray, paths: Sequence[str], out_dir: str | os.PathLike,
                         *, thumb: int = 200, dpi: int = 100) -> list[Path]:
    """One PNG per ordered (defender, attacker): a column per level, the attacker's higher-scored image
    on top, its lower-scored one below, with both models' scores. Returns the files written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .data import Resolution, load_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, L = sel.names, sel.params["levels"]
    written = []
    for d in names:
        for a in names:
            if a == d:
                continue
            g = sel.pairs[(sel.pairs["defender"] == d) & (sel.pairs["attacker"] == a)]
            by_level = {int(r.level): r for r in g.itertuples(index=False)}
            fig = Figure(figsize=(2.3 * L, 5.4), dpi=dpi)
            FigureCanvasAgg(fig)
            fig.suptitle(f"gMAD — defender {d}, attacker {a}: the attacker's better-rated image (top) vs its "
                         "worse-rated one (bottom)",
                         fontsize=10)
            ja, jd = names.index(a), names.index(d)
            for k in range(1, L + 1):
                for row in range(2):
                    ax = fig.add_subplot(2, L, row * L + k)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    r = by_level.get(k)
                    if r is None:
                        ax.axis("off")
                        ax.text(0.5, 0.5, "too sparse" if row == 0 else "", ha="center", va="center",
                                fontsize=9, color="#8a5a00", transform=ax.transAxes)
                        if row == 0:
                            ax.set_title(f"level {k}", fontsize=9)
                        continue
                    i = r.hi_index if row == 0 else r.lo_index
                    try:
                        ax.imshow(np.asarray(load_image(str(paths[i]), Resolution.parse(f"max:{thumb}"))))
                    except Exception:
                        ax.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=ax.transAxes)
                    if row == 0:
                        ax.set_title(f"level {k}", fontsize=9)
                    ax.set_xlabel(f"{a}: {scores[i, ja]:.3g}\n{d}: {scores[i, jd]:.3g}", fontsize=8)
            fig.tight_layout(rect=(0, 0, 1, 0.95))
            f = out_dir / f"{_safe(d)}__vs__{_safe(a)}.png"
            fig.savefig(f, format="png")
            written.append(f)
    return written


def plot_matrices(results: dict, out: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Heat maps of the aggressiveness and resistance matrices and a bar chart of per-model scores."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    A, R, mt = results["aggressiveness"], results["resistance"], results["models"]
    names = list(A.index)
    m = len(names)
    fig = Figure(figsize=(4.2 * 3 + 0.3 * m, 4.2 + 0.15 * m), dpi=dpi)
    FigureCanvasAgg(fig)
    for k, (mat, title, rl, cl, vmin) in enumerate([
            (A, "aggressiveness A[attacker, defender]", "attacker", "defender", -1.0),
            (R, "resistance R[defender, attacker]", "defender", "attacker", 0.0)]):
        ax = fig.add_subplot(1, 3, k + 1)
        im = ax.imshow(mat.to_numpy(dtype=float), cmap="RdYlGn", vmin=vmin, vmax=1.0)
        ax.set_xticks(range(m), names, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(m), names, fontsize=8)
        ax.set_xlabel(cl)
        ax.set_ylabel(rl)
        ax.set_title(title, fontsize=10)
        for i in range(m):
            for j in range(m):
                v = mat.iat[i, j]
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax = fig.add_subplot(1, 3, 3)
    x = np.arange(len(mt))
    ax.bar(x - 0.2, (mt["aggressiveness"].to_numpy(dtype=float) + 1) / 2, 0.4, label="(aggressiveness + 1) / 2")
    ax.bar(x + 0.2, mt["resistance"].to_numpy(dtype=float), 0.4, label="resistance")
    ax.plot(x, mt["overall"].to_numpy(dtype=float), "kD", label="overall")
    ax.set_xticks(x, [f"{int(r) if pd.notna(r) else '-'}. {n}" for r, n in zip(mt["rank"], mt["model"])],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("per-model scores (ranked)", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def format_summary(sel: Selection) -> str:
    """Plain-text table: pairs found per (defender, attacker) and the levels without a pair."""
    lines = [f"{'defender':<16} {'attacker':<16} {'pairs':>5}  attacker gap*  levels without a pair"]
    for d in sel.names:
        for a in sel.names:
            if a == d:
                continue
            g = sel.pairs[(sel.pairs["defender"] == d) & (sel.pairs["attacker"] == a)]
            sk = sel.skipped[(sel.skipped["defender"] == d) & (sel.skipped["attacker"] == a)]
            gap = f"{g['attacker_gap'].mean():.3f}" if len(g) else "-"
            miss = ", ".join(str(int(x)) for x in sk["level"]) or "-"
            lines.append(f"{d:<16} {a:<16} {len(g):>5}  {gap:>13}  {miss}")
    lines.append("* mean over levels of the attacker's score difference within the pair, as a fraction of its range")
    sp = {d: ls for d, ls in sel.sparse_levels().items() if ls}
    if sp:
        lines.append("too sparse (fewer than %d images in the band): " % sel.params["min_candidates"]
                     + "; ".join(f"defender {d}: level {', '.join(map(str, ls))}" for d, ls in sp.items()))
    return "\n".join(lines)


def format_matrices(results: dict) -> str:
    """Plain-text aggressiveness / resistance matrices and the ranking."""
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        return ("aggressiveness (rows: attacker, columns: defender)\n" + results["aggressiveness"].to_string()
                + "\n\nresistance (rows: defender, columns: attacker)\n" + results["resistance"].to_string()
                + "\n\n" + results["models"].to_string(index=False))


# ----------------------------------------------------------------------------------------------------
# the whole run
# ----------------------------------------------------------------------------------------------------
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
