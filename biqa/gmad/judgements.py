"""gMAD judgements: reading (and checking) people's left / right / same answers, simulating them from a
known truth, and the aggressiveness and resistance matrices they give."""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

PREFERRED = ("left", "right", "same")


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
    (:func:`read_judgements`). See :mod:`biqa.gmad` for the definitions.

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
