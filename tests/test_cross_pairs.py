"""Cross-group ranking pairs (biqa.recipe.cross_pairs) and the clean-above-heavy check
(benchmarks/cross_content.py), against hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import load_benchmark

from biqa.recipe import CROSS_BETTER, CROSS_WORSE, RankingSet, cross_pairs, with_cross_pairs
from biqa.synth.ranking import LEVELS, group_pairs

SIZE = LEVELS + 1


def _set(kinds):
    g = len(kinds)
    return RankingSet(np.arange(g * SIZE, dtype=float).reshape(-1, 1), group_pairs(g), [f"p{i}" for i in range(g)],
                      ["impl"] * g, ["fam"] * g, list(kinds))


def test_cross_pairs_rank_clean_references_above_heavy_levels_of_other_groups():
    kinds = ["photo", "low_key", "graphic", "mild", "photo", "low_key", "graphic", "mild"]
    rs = _set(kinds)
    pairs = cross_pairs(rs, 2, seed=5)
    better_groups, better_levels = np.divmod(pairs[:, 0], SIZE)
    worse_groups, worse_levels = np.divmod(pairs[:, 1], SIZE)
    assert (better_levels == 0).all() and set(worse_levels) == {4, 5}
    assert all(kinds[g] in ("photo", "graphic", "mild") for g in better_groups)      # not the darkened references
    assert all(kinds[g] in ("photo", "graphic", "low_key") for g in worse_groups)    # not the mild groups' levels
    assert (better_groups != worse_groups).all()
    tops = [g for g, k in enumerate(kinds) if k != "low_key"]
    for g in tops:  # 2 partners x levels 4 and 5, each partner's two levels
        mine = pairs[better_groups == g]
        assert len(mine) == 4 and len(set(mine[:, 1] // SIZE)) == 2
        for h in set(mine[:, 1] // SIZE):
            assert sorted(mine[mine[:, 1] // SIZE == h, 1] % SIZE) == [4, 5]
    assert set(better_groups) == set(tops)
    np.testing.assert_array_equal(pairs, cross_pairs(rs, 2, seed=5))  # deterministic
    assert not np.array_equal(pairs, cross_pairs(rs, 2, seed=6))
    assert CROSS_BETTER == ("photo", "graphic", "mild") and CROSS_WORSE == ("photo", "graphic", "low_key")


def test_with_cross_pairs_appends_and_concat_keeps_kinds():
    a, b = _set(["photo", "photo"]), _set(["graphic"])
    c = RankingSet.concat(a, b)
    assert c.kinds == ["photo", "photo", "graphic"]
    assert _set(["photo"]).kinds == ["photo"] and RankingSet(a.X, a.pairs, a.photo, a.impl, a.family).kinds == ["photo"] * 2
    x = with_cross_pairs(c, 1, seed=0)
    np.testing.assert_array_equal(x.pairs[:len(c.pairs)], c.pairs)  # the within-group pairs first, unchanged
    assert len(x.pairs) == len(c.pairs) + 3 * 2  # 3 references, 1 partner, 2 levels
    assert with_cross_pairs(c, 0) is c
    assert len(cross_pairs(_set(["photo"]), 2)) == 0  # no other group: no pair
    assert len(cross_pairs(_set(["low_key", "low_key"]), 2)) == 0  # no reference on the better side
    assert len(cross_pairs(_set(["mild", "mild"]), 2)) == 0  # no levels on the worse side
    np.testing.assert_array_equal(cross_pairs(_set(["low_key", "mild"]), 2), [[SIZE, 4], [SIZE, 5]])
    one = cross_pairs(_set(["photo", "photo"]), 5)  # fewer partners than asked: each other group once
    assert len(one) == 4


def test_cross_pairs_teach_a_ranking_within_group_pairs_cannot():
    """One feature says 'texture'; within-group pairs are met by the other. Only the cross pairs say that a
    clean flat image beats a heavily degraded textured one."""
    from biqa.probe import fit_linear

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = X[:, 0] + 0.1 * rng.normal(size=80)  # people: texture (col 0) only
    g = 2  # a textured photo group, a flat graphic group: col 1 = damage (0 for references), col 0 = texture
    R = np.zeros((g * SIZE, 2))
    R[:SIZE, 0], R[SIZE:, 0] = 1.0, -1.0
    R[:, 1] = np.tile(np.arange(SIZE) / LEVELS, g)
    rs = RankingSet(R, group_pairs(g), ["tex", "flat"], ["i", "i"], ["f", "f"], ["photo", "graphic"])
    X2 = np.c_[X[:, 0], X[:, 0] * 0 + rng.normal(scale=0.01, size=80)]
    ref_flat, heavy_tex = SIZE, 5
    without = fit_linear(X2, y, 1.0, pairs=(R[rs.pairs[:, 0]], R[rs.pairs[:, 1]]), rank_weight=10, margin=0.1)
    xs = with_cross_pairs(rs, 1)
    with_ = fit_linear(X2, y, 1.0, pairs=(R[xs.pairs[:, 0]], R[xs.pairs[:, 1]]), rank_weight=10, margin=0.1)
    s0, s1 = without.predict(R), with_.predict(R)
    assert s0[ref_flat] < s0[heavy_tex] and s1[ref_flat] > s1[heavy_tex]


def test_clean_above_heavy_counts_pairs_of_other_photos():
    cc = load_benchmark("cross_content")
    share, n = cc.clean_above_heavy([3.0, 1.0], ["a", "b"], [2.0, 0.0, 5.0], ["a", "b", "c"])
    # pairs of different photos: a3>b0 yes, a3>c5 no, b1>a2 no, b1>c5 no
    assert (share, n) == (0.25, 4)
    assert cc.clean_above_heavy([1.0], ["a"], [1.0], ["b"]) == (0.0, 1)  # a tie is not above
    share, n = cc.clean_above_heavy([3.0, np.nan], ["a", "b"], [2.0, np.nan], ["b", "c"])
    assert (share, n) == (1.0, 1)
    assert np.isnan(cc.clean_above_heavy([1.0], ["a"], [0.0], ["a"])[0])
    assert cc.HEAVY == (4, 5) and cc.POOL == ("shared", "mvtb") and "plasma" in cc.SETS


@pytest.mark.parametrize("args", [["--sets", "shared,nope"]])
def test_cross_content_refuses_unknown_sets(args, capsys):
    cc = load_benchmark("cross_content")
    with pytest.raises(SystemExit):
        cc.main(["--model", "biqa-default", *args])
    assert "unknown set" in capsys.readouterr().err


@pytest.mark.skipif(not load_benchmark("heldout_levels").PHOTOS_DIR.is_dir(), reason="needs ../shared's photos")
def test_cross_content_quick_run(tmp_path, monkeypatch):
    """The smoke run end to end: 3 photos at short side 256, the bundled fast model."""
    import pandas as pd

    cc = load_benchmark("cross_content")
    monkeypatch.chdir(tmp_path)  # the quick set is built under ./data
    assert cc.main(["--quick", "--model", "biqa-fast", "--out", str(tmp_path / "cc.csv")]) == 0
    (row,) = pd.read_csv(tmp_path / "cc.csv").to_dict("records")
    # 3 references, each against the 2 other photos' 6 families x levels 4 and 5
    assert (row["set"], row["n_refs"], row["n_pairs"]) == ("shared", 3, 3 * 2 * 6 * 2)
    assert row["clean_above_heavy"] > 0.75 and row["ref_median"] > row["heavy_median"]
