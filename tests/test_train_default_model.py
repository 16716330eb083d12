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
    assert meta[DEFAULT_MODEL]["recipe"]["features"] == tdm.DEFAULT_FEATURES


@pytest.mark.parametrize("preset, name", [("lite02-mlbn-linear", DEFAULT_MODEL), ("lite0-mlbn-linear", FAST_MODEL)])
def test_a_candidate_preset_is_not_shipped_over_the_bundled_model(tdm, capsys, tmp_path, preset, name):
    assert preset in tdm.CANDIDATES
    weights = TRAINED_MODELS[name]
    before = weights.stat().st_mtime_ns
    assert tdm.main(["--feature-preset", preset, "--name", name, "--records", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "not shipped" in err and "--no-ship" in err
    assert weights.stat().st_mtime_ns == before


def test_low_key_groups_are_a_candidate_too(tdm, capsys, tmp_path):
    weights = TRAINED_MODELS[DEFAULT_MODEL]
    before = weights.stat().st_mtime_ns
    assert tdm.main(["--low-key-groups", "100", "--records", str(tmp_path / "none.csv")]) == 2
    assert "--no-ship" in capsys.readouterr().err
    assert weights.stat().st_mtime_ns == before
