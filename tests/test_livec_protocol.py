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


def test_unknown_variant_is_a_usage_error(protocol, capsys):
    with pytest.raises(SystemExit) as e:
        protocol.main(["--variants", "recipe-bogus", "--records", str(ROOT / "nonexistent.csv")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown variant(s) recipe-bogus" in err and "recipe-more-photos" in err
