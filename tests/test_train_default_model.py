"""scripts/train_default_model.py's argument checks (the fit itself runs for minutes: docs/default_model.md)."""
from __future__ import annotations

import json

import pytest
from conftest import load_script

from biqa.zoo import DEFAULT_MODEL, FAST_MODEL, TRAINED_MODELS


@pytest.fixture(scope="module")
def tdm():
    return load_script("scripts", "train_default_model")


def test_every_feature_preset_it_offers_has_a_model_version(tdm):
    from biqa.recipe import FEATURE_PRESETS

    assert set(FEATURE_PRESETS) <= set(tdm.VERSIONS)
    # the bundled models' metadata (written when they were trained) agrees with the table
    meta = {name: json.loads(path.with_suffix(".json").read_text()) for name, path in TRAINED_MODELS.items()}
    for name, m in meta.items():
        assert tdm.VERSIONS[m["recipe"]["features"]] == m["version"], name
        assert m["recipe"]["features"] == tdm.SHIPPED_PRESETS[name], name
    assert set(tdm.SHIPPED_PRESETS) == set(TRAINED_MODELS)


@pytest.mark.parametrize("preset, name", [("lite02-mlbn-linear", DEFAULT_MODEL), ("lite0-mlbn-linear", DEFAULT_MODEL),
                                          ("lite0-mln-linear", FAST_MODEL), ("lite02-mln-linear", FAST_MODEL)])
def test_another_preset_than_the_names_is_not_shipped_over_the_bundled_model(tdm, capsys, tmp_path, preset, name):
    """A candidate (lite02-mlbn-linear), an earlier version (lite0-mln-linear: biqa-fast v3) or the other bundled
    model's preset is refused without --no-ship, before anything is read or written."""
    assert preset != tdm.SHIPPED_PRESETS[name]
    weights = TRAINED_MODELS[name]
    before = weights.stat().st_mtime_ns
    assert tdm.main(["--feature-preset", preset, "--name", name, "--records", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "not shipped" in err and "--no-ship" in err
    assert weights.stat().st_mtime_ns == before


@pytest.mark.parametrize("args", [["--low-key-groups", "50"], ["--graphic-groups", "0"], ["--plain-groups", "100"],
                                  ["--mild-groups", "50"], ["--mild-groups", "0"],
                                  ["--name", FAST_MODEL, "--graphic-groups", "50"],
                                  ["--name", FAST_MODEL, "--mild-groups", "0"], ["--cross-pairs", "2"]])
def test_other_reference_groups_than_the_shipped_recipes_are_a_candidate(tdm, capsys, tmp_path, args):
    weights = TRAINED_MODELS[FAST_MODEL if FAST_MODEL in args else DEFAULT_MODEL]
    before = weights.stat().st_mtime_ns
    assert tdm.main([*args, "--records", str(tmp_path / "none.csv")]) == 2
    assert "--no-ship" in capsys.readouterr().err
    assert weights.stat().st_mtime_ns == before


def test_the_bundled_models_were_trained_with_their_presets_shipped_groups(tdm):
    """biqa-default v6 and biqa-fast v5 add 100 low-key, 100 rendered-graphic and 100 mild-distortion ranking groups
    each; the bundled files' metadata says so, and their reproduce commands need no group or preset flags."""
    assert tdm.SHIPPED_GROUPS == {"lite02-mln-linear": {"low_key": 100, "graphic": 100, "mild": 100},
                                  "lite0-mlbn-linear": {"low_key": 100, "graphic": 100, "mild": 100}}
    for name, path in TRAINED_MODELS.items():
        meta = json.loads(path.with_suffix(".json").read_text())
        shipped = tdm.SHIPPED_GROUPS.get(meta["recipe"]["features"], {})
        assert {r: n for r, n in meta["recipe"].get("extra_groups", {}).items() if n} == shipped, name
        assert "-groups" not in meta["reproduce"] and "--feature-preset" not in meta["reproduce"], name
