"""gMAD's competitors and their scores: model specs (``[NAME=]SOURCE``), the image pool, scoring every
model on the pool once (score CSVs cached under the run folder) and reading score CSVs."""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..classical.cues import noise_score, sharpness_score

#: Built-in classical no-reference scorers (``classical:NAME``, from :mod:`biqa.classical.cues`); each maps an
#: image path to a score, higher = better.
CLASSICAL_SCORERS: dict[str, Callable[[str], float]] = {"sharpness": sharpness_score, "noise": noise_score}


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


def safe_name(name: str) -> str:
    """A model name as a file name (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def parse_model_spec(spec: str) -> ModelSpec:
    """``[NAME=]SOURCE`` -> :class:`ModelSpec` (see :mod:`biqa.gmad` for the sources).

    Raises ``ValueError`` / ``FileNotFoundError`` with the accepted forms when SOURCE is none of them."""
    spec = str(spec).strip()
    name = None
    m = re.fullmatch(r"([A-Za-z0-9_.+-]+)=(.+)", spec)
    if m and not os.path.exists(spec):
        name, spec = m.group(1), m.group(2)
    from ..classical import is_classical

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
    from ..zoo import TRAINED_MODELS, resolve_checkpoint

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
    from ..records import resolve_path
    from ..scorer import collect_inputs

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
    from ..scorer import load

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
            cache = Path(cache_dir) / f"{safe_name(spec.name)}.csv" if cache_dir else None
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
