"""Splits: official / seeded random / by reference, and the long-tailed KADID variant.

Property tests run on the real TID2013 and KADID-10k labels (republished files) over seeds 1-10.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biqa.datasets import add_splits, import_dataset, long_tailed_kadid, parse_seeds, part_sizes
from biqa.records import validate_records

LABELS = Path("/work/shared/data/labels")
needs_labels = pytest.mark.skipif(not LABELS.is_dir(), reason="republished label files not available")
SEEDS = list(range(1, 11))


def labels(name: str) -> pd.DataFrame:
    df, _ = import_dataset(name, LABELS, labels_only=True, republished=True)
    return df


@pytest.fixture(scope="module")
def tid():
    return labels("tid2013")


@pytest.fixture(scope="module")
def kadid():
    return labels("kadid10k")


@pytest.fixture(scope="module")
def koniq():
    return labels("koniq10k")


def test_parse_seeds():
    assert parse_seeds("1-10") == list(range(1, 11))
    assert parse_seeds("1,3,5-7") == [1, 3, 5, 6, 7]
    assert parse_seeds("4") == [4] and parse_seeds(4) == [4] and parse_seeds([2, 1]) == [2, 1]
    assert parse_seeds(None) == SEEDS
    for bad in ("a", "5-3", "", "1-"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_part_sizes_largest_remainder():
    assert part_sizes(81, (70, 20, 10)) == [57, 16, 8]
    assert part_sizes(29, (70, 20, 10)) == [20, 6, 3]
    assert part_sizes(25, (80, 20)) == [20, 5]
    assert part_sizes(3, (0.7, 0.2, 0.1)) == [1, 1, 1]  # no empty part when avoidable
    for n in (1, 7, 100, 10073):
        assert sum(part_sizes(n, (70, 20, 10))) == n
    with pytest.raises(ValueError):
        part_sizes(10, (1,))


@needs_labels
@pytest.mark.parametrize("ratios", [(70, 20, 10), (80, 20)])
def test_by_reference_never_shares_a_reference(tid, kadid, ratios):
    for df in (tid, kadid):
        out = add_splits(df, "by-reference", ratios=ratios, seeds=SEEDS)
        n_refs = df["ref"].nunique()
        per_ref_images = len(df) / n_refs
        for s in SEEDS:
            col = out[f"split_seed{s}"]
            assert (out.groupby("ref")[f"split_seed{s}"].nunique() == 1).all()  # each ref in one part only
            parts = ("train", "val", "test")[: len(ratios)]
            refs_per_part = out.groupby(f"split_seed{s}")["ref"].nunique()
            assert [int(refs_per_part[p]) for p in parts] == part_sizes(n_refs, ratios)
            frac = np.array(ratios, float) / sum(ratios)
            for p, f in zip(parts, frac):  # image shares within one reference's worth of images
                assert abs((col == p).sum() - f * len(df)) <= per_ref_images
            assert set(col) == set(parts)


@needs_labels
def test_random_on_reference_data_switches_to_by_reference(tid):
    with pytest.warns(UserWarning, match="splitting by reference"):
        a = add_splits(tid, "random", seeds=[3])
    b = add_splits(tid, "by-reference", seeds=[3])
    assert (a["split_seed3"] == b["split_seed3"]).all()


@needs_labels
def test_random_split_ratios_reproducible_and_order_free(koniq):
    out = add_splits(koniq, "random", ratios=(70, 20, 10), seeds="1-3")
    n = len(koniq)
    for s in (1, 2, 3):
        expected = dict(zip(("train", "val", "test"), part_sizes(n, (70, 20, 10))))
        assert out[f"split_seed{s}"].value_counts().to_dict() == expected
    assert (out["split_seed1"] != out["split_seed2"]).any()
    again = add_splits(koniq, "random", ratios=(70, 20, 10), seeds=[1])
    assert (again["split_seed1"] == out["split_seed1"]).all()
    shuffled = koniq.sample(frac=1.0, random_state=0)
    s2 = add_splits(shuffled, "random", seeds=[1]).set_index("path")["split_seed1"]
    assert (s2.loc[out["path"]].to_numpy() == out["split_seed1"].to_numpy()).all()
    two = add_splits(koniq, "random", ratios=(80, 20), seeds=[1])
    assert set(two["split_seed1"]) == {"train", "val"}
    named = add_splits(koniq, "random", ratios=(80, 20), seeds=[1], names=("train", "test"))
    assert set(named["split_seed1"]) == {"train", "test"}
    assert validate_records(out.assign(abspath=out["path"]), check_files=False).ok


@needs_labels
def test_by_reference_reproducible(kadid):
    a = add_splits(kadid, "by-reference", seeds=[7])
    b = add_splits(kadid.iloc[::-1].reset_index(drop=True), "by-reference", seeds=[7])
    assert (a.set_index("path")["split_seed7"].loc[b["path"]].to_numpy() == b["split_seed7"].to_numpy()).all()


def test_official_split():
    df = pd.DataFrame({"path": ["a", "b", "c"], "mos": [1, 2, 3], "split_official": ["train", "val", "test"]})
    assert add_splits(df, "official").equals(df)
    with pytest.raises(ValueError, match="no official split"):
        add_splits(df.drop(columns="split_official"), "official")
    with pytest.raises(ValueError, match="expected train/val/test"):
        add_splits(df.assign(split_official=["training", "val", "test"]), "official")
    with pytest.raises(ValueError, match="scheme"):
        add_splits(df, "k-fold")


def test_by_reference_needs_every_ref():
    df = pd.DataFrame({"path": list("abcd"), "mos": [1, 2, 3, 4], "ref": ["r1", "r1", None, "r2"]})
    with pytest.raises(ValueError, match="no 'ref' value"):
        add_splits(df, "by-reference", seeds=[1])
    with pytest.raises(ValueError, match="needs a 'ref' column"):
        add_splits(df.drop(columns="ref"), "by-reference", seeds=[1])


def test_unique_refs_allow_random_without_warning():
    df = pd.DataFrame({"path": list("abcdefghij"), "mos": range(10), "ref": list("abcdefghij")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = add_splits(df, "random", seeds=[1])
    assert out["split_seed1"].value_counts().to_dict() == {"train": 7, "val": 2, "test": 1}


@needs_labels
def test_long_tailed_kadid_structure(kadid):
    base = add_splits(kadid, "by-reference", seeds=SEEDS)
    lt = long_tailed_kadid(base)
    groups = set()
    for s in SEEDS:
        col, ltc = f"split_seed{s}", f"split_lt_seed{s}"
        # val / test untouched; only train rows become unused
        changed = lt[col] != lt[ltc]
        assert (lt.loc[changed, col] == "train").all() and (lt.loc[changed, ltc] == "").all()
        assert ((lt[col] != "train") <= (lt[col] == lt[ltc])).all()
        train = lt[lt[ltc] == "train"]
        levels = train.groupby("dist_type")["dist_level"].apply(lambda x: tuple(sorted(set(x))))
        assert len(levels) == 25
        assert sorted(levels.map(len).value_counts().to_dict().items()) == [(1, 9), (3, 8), (5, 8)]
        assert set(levels) == {(1, 2, 3, 4, 5), (1, 3, 5), (3,)}
        # every kept (type, level) has all the train references of that seed
        n_train_refs = base.loc[base[col] == "train", "ref"].nunique()
        assert (train.groupby(["dist_type", "dist_level"])["ref"].nunique() == n_train_refs).all()
        info = lt.attrs["long_tailed"][ltc]
        assert [len(info[f"types_keeping_{k}_levels"]) for k in (5, 3, 1)] == [8, 8, 9]
        groups.add(tuple(info["types_keeping_1_levels"]))
    assert len(groups) > 1  # drawn per seed
    again = long_tailed_kadid(base, columns=["split_seed4"])
    assert (again["split_lt_seed4"] == lt["split_lt_seed4"]).all()
    fixed = long_tailed_kadid(base, seed=0, columns=["split_seed1", "split_seed2"]).attrs["long_tailed"]
    assert fixed["split_lt_seed1"] == fixed["split_lt_seed2"]


def test_long_tailed_needs_types_and_splits():
    df = pd.DataFrame({"path": ["a"], "mos": [1.0], "dist_type": [1], "dist_level": [1], "split_seed1": ["train"]})
    with pytest.raises(ValueError, match="distortion types"):
        long_tailed_kadid(df)
    with pytest.raises(ValueError, match="dist_level"):
        long_tailed_kadid(df.drop(columns="dist_level"))
