"""benchmarks/livec_protocol.py: recomputing some variants keeps the other rows of the committed table."""
from pathlib import Path

import pandas as pd
import pytest
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def protocol():
    return load_benchmark("livec_protocol")


def test_merge_rows_replaces_only_recomputed_variants(protocol):
    old = pd.DataFrame({"variant": ["probe", "probe", "recipe", "recipe", "niqe", "niqe"],
                        "split": [1, 2, 1, 2, 1, 2], "srcc": [0.80, 0.81, 0.79, 0.78, 0.40, 0.41]})
    new = pd.DataFrame({"variant": ["probe", "recipe-more-photos", "probe", "recipe-more-photos"],
                        "split": [2, 2, 1, 1], "srcc": [0.81, 0.70, 0.80, 0.71]})
    got = protocol.merge_rows(old, new)
    assert got["variant"].tolist() == ["probe", "probe", "recipe", "recipe", "niqe", "niqe",
                                       "recipe-more-photos", "recipe-more-photos"]
    assert got["split"].tolist() == [1, 2, 1, 2, 1, 2, 1, 2]
    assert got["srcc"].tolist() == [0.80, 0.81, 0.79, 0.78, 0.40, 0.41, 0.71, 0.70]


def test_merge_rows_replaces_by_variant_and_split(protocol):
    # re-running one split of a variant keeps its other splits
    old = pd.DataFrame({"variant": ["recipe"] * 3, "split": [1, 2, 3], "srcc": [0.1, 0.2, 0.3]})
    new = pd.DataFrame({"variant": ["recipe"], "split": [2], "srcc": [0.9]})
    got = protocol.merge_rows(old, new)
    assert got.to_dict("list") == {"variant": ["recipe"] * 3, "split": [1, 2, 3], "srcc": [0.1, 0.9, 0.3]}


def test_summarise_is_per_variant_mean_std_and_paired_gain_over_the_probe(protocol):
    per = pd.DataFrame({"variant": ["probe", "probe", "recipe", "recipe"], "split": [1, 2, 2, 1],
                        "srcc": [0.80, 0.70, 0.78, 0.84], "plcc": [0.5, 0.7, 0.6, 0.6],
                        "level_srcc": [0.6, None, None, 0.9], "ref_highest": [0.8, None, None, 0.95]})
    got = protocol.summarise(per).set_index("variant")
    assert got.loc["recipe", "splits"] == 2
    assert got.loc["recipe", "srcc_mean"] == pytest.approx(0.81)
    assert got.loc["recipe", "srcc_std"] == pytest.approx(0.03)  # population std of 0.78, 0.84
    assert got.loc["probe", "plcc_std"] == pytest.approx(0.1)
    # paired by split, not by row order: (0.84 - 0.80 + 0.78 - 0.70) / 2
    assert got.loc["recipe", "d_srcc_vs_probe"] == pytest.approx(0.06)
    assert got.loc["probe", "d_srcc_vs_probe"] == 0
    assert got.loc["recipe", "level_srcc"] == 0.9  # the first row's level ranking (its first split's model)


def test_unknown_variant_is_a_usage_error(protocol, capsys):
    with pytest.raises(SystemExit) as e:
        protocol.main(["--variants", "recipe-bogus", "--records", str(ROOT / "nonexistent.csv")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown variant(s) recipe-bogus" in err and "recipe-more-photos" in err


def test_resumed_rows_are_a_killed_runs_finished_splits(protocol, tmp_path):
    partial = tmp_path / "livec_protocol.partial.csv"
    assert protocol.resumed_rows(partial) == ([], set())  # nothing to resume
    # as the run writes it after split 1: the first split's rows carry the level ranking, later ones do not
    pd.DataFrame([{"variant": "probe", "split": 1, "srcc": 0.8, "level_srcc": 0.7, "ref_highest": 0.8},
                  {"variant": "recipe-lite02-blocks-noise-kernel", "split": 1, "srcc": 0.83, "level_srcc": 0.97,
                   "ref_highest": 0.95},
                  {"variant": "probe", "split": 2, "srcc": 0.78}]).to_csv(partial, index=False)
    rows, done = protocol.resumed_rows(partial)
    assert done == {("probe", 1), ("recipe-lite02-blocks-noise-kernel", 1), ("probe", 2)}
    assert [r["srcc"] for r in rows] == [0.8, 0.83, 0.78]
    # resumed rows and new ones summarise together, the level ranking from the first split's row
    rows.append({"variant": "recipe-lite02-blocks-noise-kernel", "split": 2, "srcc": 0.81})
    got = protocol.summarise(pd.DataFrame(rows).assign(plcc=0.8)).set_index("variant")
    assert got.loc["recipe-lite02-blocks-noise-kernel", "splits"] == 2
    assert got.loc["recipe-lite02-blocks-noise-kernel", "srcc_mean"] == pytest.approx(0.82)
    assert got.loc["recipe-lite02-blocks-noise-kernel", "level_srcc"] == 0.97


def test_feature_variants_are_known_presets(protocol):
    """Every variant on other features names a preset the recipe can fit and save (the candidates included)."""
    from biqa.models import get_preset
    from biqa.recipe import FEATURE_PRESETS

    assert set(protocol.ON_REQUEST) <= set(protocol.FEATURE_VARIANTS) <= set(protocol.VARIANTS)
    for variant, preset in protocol.FEATURE_VARIANTS.items():
        assert preset in FEATURE_PRESETS, variant
        assert get_preset(FEATURE_PRESETS[preset]).pooling == "multilevel-noise", variant
    assert protocol.FEATURE_VARIANTS["recipe-blocks-noise-kernel"] == "lite0-mlbn-linear"
    # the extra-group candidates are v4's recipe on v4's features, or biqa-fast's candidates on Lite0's (5 stages or
    # 7 block groups), with more groups; only on request
    assert set(protocol.EXTRA_GROUPS) <= set(protocol.ON_REQUEST)
    assert {protocol.FEATURE_VARIANTS[v] for v in protocol.EXTRA_GROUPS} == {"lite02-mln-linear", "lite0-mln-linear",
                                                                             "lite0-mlbn-linear"}
    from biqa.recipe import REFERENCE_SEEDS
    from biqa.synth.ranking import GROUP_KINDS

    added = {r for groups in protocol.EXTRA_GROUPS.values() for r, _ in groups}
    assert added == set(REFERENCE_SEEDS) == set(GROUP_KINDS)
    # several kinds are added in the training script's order (REFERENCE_SEEDS': low-key, plain, graphic, mild)
    order = list(REFERENCE_SEEDS)
    for groups in protocol.EXTRA_GROUPS.values():
        assert [r for r, _ in groups] == sorted((r for r, _ in groups), key=order.index)


def test_kernel_variants_fit_the_kernel_term(protocol):
    """The variants built on a kernel recipe fit the kernel term, the extra-group candidates too (their names
    go on after ``-kernel``); the plain probe and the linear recipes do not."""
    with_kernel = {v for v in protocol.VARIANTS if protocol.uses_kernel(v)}
    assert with_kernel == {"probe-kernel", "recipe-kernel", "recipe-noise-kernel", "recipe-lite02-noise-kernel",
                           "recipe-lite02-blocks-noise-kernel", "recipe-blocks-noise-kernel",
                           "recipe-lite02-noise-kernel-lowkey", "recipe-lite02-noise-kernel-plain",
                           "recipe-lite02-noise-kernel-graphic", "recipe-lite02-noise-kernel-graphic50",
                           "recipe-lite02-noise-kernel-graphic-lowkey", "recipe-blocks-noise-kernel-graphic-lowkey",
                           "recipe-noise-kernel-graphic-lowkey", "recipe-lite02-noise-kernel-graphic-lowkey-mild",
                           "recipe-blocks-noise-kernel-graphic-lowkey-mild",
                           "recipe-lite02-noise-kernel-graphic-lowkey-mild-cross"}
    assert set(protocol.EXTRA_GROUPS) <= with_kernel
    # the cross-pair candidate: v6's groups and features, on request only
    assert set(protocol.CROSS_PAIRS) == {"recipe-lite02-noise-kernel-graphic-lowkey-mild-cross"}
    assert all(protocol.EXTRA_GROUPS[v] == protocol.V6 and v in protocol.ON_REQUEST for v in protocol.CROSS_PAIRS)
