"""gMAD pair selection: for every (defender, attacker) pair of models and every level of the
defender's score range, the attacker's best and worst image inside the defender's narrow band."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd


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
