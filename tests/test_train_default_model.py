"""scripts/train_default_model.py's argument checks (the fit itself runs for minutes: docs/default_model.md)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_default_model.py"


@pytest.fixture(scope="module")
def tdm():
    spec = importlib.util.spec_from_file_location("train_default_model", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_feature_preset_it_offers_has_a_model_version(tdm):
    from biqa.recipe import FEATURE_PRESETS

    assert set(FEATURE_PRESETS) <= set(tdm.VERSIONS)
    # the bundled models' metadata (written when they were trained) agrees with the table
    for name in ("biqa-default", "biqa-fast"):
        meta = json.loads((Path(tdm.ROOT) / "biqa" / "weights" / f"{name}.json").read_text())
        assert tdm.VERSIONS[meta["recipe"]["features"]] == meta["version"], name
    assert json.loads((Path(tdm.ROOT) / "biqa" / "weights" / "biqa-default.json").read_text())["recipe"][
        "features"] == tdm.DEFAULT_FEATURES


def test_a_candidate_preset_is_not_shipped_over_the_bundled_model(tdm, capsys, tmp_path):
    weights = Path(tdm.ROOT) / "biqa" / "weights" / "biqa-default.safetensors"
    before = weights.stat().st_mtime_ns
    assert tdm.main(["--feature-preset", "lite02-mlbn-linear", "--records", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "not shipped" in err and "--no-ship" in err
    assert weights.stat().st_mtime_ns == before
