"""Train/val/test splits: official, seeded random, and grouped by reference image.

Split columns follow :mod:`biqa.records`: ``split_official`` and
``split_seed<N>`` with values ``train`` / ``val`` / ``test`` (``""`` = unused).

Reproducibility: a split depends only on the seed, the ratios and the *set*
of rows (rows are ordered by ``path`` before shuffling; references are
ordered by name), not on the row order of the file.  NumPy's
``default_rng(seed)`` (PCG64) gives the same stream on every platform.

Datasets with a ``ref`` column whose values repeat (synthetic distortions:
TID2013, KADID-10k, CSIQ, LIVE, the synthetic benchmark) are always split by
reference, so that no content appears on both sides; ``scheme="random"`` on
such data warns and switches to ``"by-reference"``.  By-reference ratios are
applied to the number of references (largest-remainder rounding).
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..records import SPLIT_VALUES

SCHEMES = ("official", "random", "by-reference")
DEFAULT_SEEDS = tuple(range(1, 11))


def parse_seeds(spec) -> list[int]:
    """``"1-10"`` -> ``[1..10]``; also ``"1,3,5-7"``, ``"4"``, an int or a list of ints."""
    if spec is None:
        return list(DEFAULT_SEEDS)
    if isinstance(spec, (int, np.integer)):
        return [int(spec)]
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    out: list[int] = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad seed spec {spec!r}: use e.g. '1-10' or '1,3,5-7'")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ValueError(f"bad seed range {part!r} in {spec!r}")
        out.extend(range(a, b + 1))
    if not out:
        raise ValueError(f"no seeds in {spec!r}")
    return sorted(set(out), key=out.index)


def part_sizes(n: int, ratios) -> list[int]:
    """Split ``n`` items by ``ratios`` (any positive scale) with largest-remainder
    rounding; each part with a positive ratio gets at least one item when ``n`` allows."""
    r = np.asarray(ratios, dtype=float)
    if r.ndim != 1 or len(r) not in (2, 3) or (r < 0).any() or r.sum() <= 0:
        raise ValueError(f"ratios must be 2 or 3 non-negative numbers, e.g. (70, 20, 10) or (80, 20); got {ratios!r}")
    exact = r / r.sum() * n
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    for i in np.flatnonzero((sizes == 0) & (r > 0)):  # no empty part if avoidable
        j = int(np.argmax(sizes))
        if sizes[j] > 1:
            sizes[j] -= 1
            sizes[i] += 1
    return sizes.tolist()


def has_reference_groups(df: pd.DataFrame, column: str = "ref") -> bool:
    """True if ``df[column]`` exists and several rows share a reference."""
    if column not in df.columns:
        return False
    ref = df[column].dropna()
    return len(ref) > 0 and ref.nunique() < len(ref)


def _assign(keys: np.ndarray, ratios, seed: int, names) -> dict:
    order = np.sort(keys)
    perm = np.random.default_rng(seed).permutation(len(order))
    sizes = part_sizes(len(order), ratios)
    labels = np.repeat(np.array(names, dtype=object), sizes)
    return dict(zip(order[perm].tolist(), labels.tolist()))


def add_splits(
    df: pd.DataFrame,
    scheme: str = "official",
    ratios=(70, 20, 10),
    seeds=DEFAULT_SEEDS,
    *,
    group_column: str = "ref",
    names=None,
) -> pd.DataFrame:
    """Return a copy of ``df`` with split columns added.

    Args:
        scheme: ``"official"`` (check and keep ``split_official``; error if the
            dataset has none), ``"random"`` (rows) or ``"by-reference"`` (groups
            of ``group_column``).
        ratios: 3 numbers -> train/val/test, 2 -> train/val (any scale).
        seeds: ints or a spec like ``"1-10"``; one column ``split_seed<N>`` each.
        names: part names overriding train/val[/test], e.g. ``("train", "test")``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, not {scheme!r}")
    out = df.copy()
    if scheme == "official":
        if "split_official" not in out.columns:
            raise ValueError("these records have no official split (column split_official); only KonIQ-10k and "
                             "UHD-IQA ship one. Use scheme='random' or 'by-reference'.")
        vals = out["split_official"].fillna("").astype(str)
        bad = sorted(set(vals) - set(SPLIT_VALUES) - {""})
        if bad:
            raise ValueError(f"split_official has values {bad}; expected train/val/test")
        return out
    r = list(ratios)
    names = tuple(names) if names is not None else SPLIT_VALUES[: len(r)]
    if len(names) != len(r):
        raise ValueError(f"{len(r)} ratios but {len(names)} part names {names}")
    if scheme == "random" and has_reference_groups(out, group_column):
        warnings.warn(f"these records have a '{group_column}' column shared by several rows (synthetic "
                      "distortions): splitting by reference instead of by row", stacklevel=2)
        scheme = "by-reference"
    seeds = parse_seeds(seeds)
    if scheme == "by-reference":
        if group_column not in out.columns:
            raise ValueError(f"by-reference split needs a '{group_column}' column")
        ref = out[group_column]
        if ref.isna().any() or (ref.astype(str).str.strip() == "").any():
            n = int((ref.isna() | (ref.astype(str).str.strip() == "")).sum())
            raise ValueError(f"{n} row(s) have no '{group_column}' value; every row needs one to split by reference")
        keys = ref.astype(str).to_numpy()
        groups = np.unique(keys)
        for s in seeds:
            m = _assign(groups, r, s, names)
            out[f"split_seed{s}"] = [m[k] for k in keys]
    else:
        key = out["path"].astype(str).to_numpy() if "path" in out.columns else np.arange(len(out)).astype(str)
        if len(set(key)) != len(key):  # duplicate paths: fall back to the row position
            key = np.array([f"{k}\0{i}" for i, k in enumerate(key)])
        for s in seeds:
            m = _assign(key, r, s, names)
            out[f"split_seed{s}"] = [m[k] for k in key]
    return out


#: levels kept in the TRAIN part of the long-tailed KADID variant, by group size.
LONG_TAIL_KEEP = {5: (1, 2, 3, 4, 5), 3: (1, 3, 5), 1: (3,)}
LONG_TAIL_GROUPS = ((8, 5), (8, 3), (9, 1))


def long_tailed_kadid(
    df: pd.DataFrame,
    seed: int | None = None,
    *,
    columns: Iterable[str] | None = None,
    groups=LONG_TAIL_GROUPS,
    keep=None,
) -> pd.DataFrame:
    """Long-tailed variant of KADID-10k splits (train part only).

    For each split column ``split_seed<N>`` a new column ``split_lt_seed<N>``
    equals it except that TRAIN rows are thinned by distortion type: the 25
    types are shuffled (``default_rng(seed)``, or ``default_rng(N)`` when
    ``seed`` is None) and 8 keep all 5 levels, 8 keep 3 levels and 9 keep 1
    level; the other train rows become ``""`` (unused).  Val and test rows are
    untouched, so a model trained on the long tail is tested on the balanced set.

    Levels kept (KADID level 1 = mildest, 5 = strongest): 3 -> levels 1, 3, 5
    (the full severity range, sparser); 1 -> level 3 (the middle).  This thins
    the *number* of samples per type while keeping each type's quality range
    represented as far as possible.  ``keep`` overrides ``{n_levels: levels}``.

    The type groups are in ``out.attrs["long_tailed"][column]``.
    """
    keep = dict(LONG_TAIL_KEEP if keep is None else keep)
    for c in ("dist_type", "dist_level"):
        if c not in df.columns:
            raise ValueError(f"long_tailed_kadid needs a '{c}' column (import KADID-10k with biqa.datasets)")
    types = np.sort(df["dist_type"].dropna().unique())
    need = sum(n for n, _ in groups)
    if len(types) != need:
        raise ValueError(f"long_tailed_kadid: {len(types)} distortion types, the groups {groups} need {need}")
    cols = list(columns) if columns is not None else [c for c in df.columns if re.fullmatch(r"split_seed\d+", c)]
    if not cols:
        raise ValueError("no split_seed<N> columns: run add_splits(df, 'by-reference', ...) first")
    out = df.copy()
    out.attrs["long_tailed"] = {}
    level = pd.to_numeric(out["dist_level"], errors="coerce").to_numpy()
    for c in cols:
        m = re.search(r"(\d+)$", c)
        s = seed if seed is not None else (int(m.group(1)) if m else 0)
        perm = types[np.random.default_rng(s).permutation(len(types))]
        kept_levels, start, assignment = {}, 0, {}
        for n_types, n_levels in groups:
            if n_levels not in keep:
                raise ValueError(f"no levels defined for groups keeping {n_levels} level(s); keep={keep}")
            chunk = perm[start:start + n_types]
            start += n_types
            assignment[n_levels] = sorted(chunk.tolist())
            for t in chunk:
                kept_levels[t] = set(keep[n_levels])
        allowed = np.array([lv in kept_levels[t] for t, lv in zip(out["dist_type"], level)])
        new = out[c].fillna("").astype(str).to_numpy(dtype=object).copy()
        new[(new == "train") & ~allowed] = ""
        name = "split_lt_" + c[len("split_"):] if c.startswith("split_") else f"{c}_lt"
        out[name] = new
        out.attrs["long_tailed"][name] = {f"types_keeping_{k}_levels": v for k, v in assignment.items()}
    return out
