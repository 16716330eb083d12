"""Experiment configs: defaults, YAML merge, key=value overrides, path resolution."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from biqa.config import DEFAULTS, apply_override, deep_update, load_config, save_config


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_only():
    before = copy.deepcopy(DEFAULTS)
    cfg = load_config()
    assert cfg["out_dir"] == str(Path("runs") / "experiment")
    assert {k: v for k, v in cfg.items() if k != "out_dir"} == {k: v for k, v in DEFAULTS.items() if k != "out_dir"}
    cfg["train"]["epochs"] = 999
    assert DEFAULTS == before  # a deep copy, not the defaults themselves


def test_yaml_merges_over_defaults(tmp_path):
    path = _write(tmp_path / "exp.yaml", {"name": "koniq", "train": {"epochs": 3}, "model": {"preset": "nima-lite0"}})
    cfg = load_config(path)
    assert cfg["name"] == "koniq"
    assert cfg["out_dir"] == str(Path("runs") / "koniq")
    assert cfg["train"]["epochs"] == 3
    # Siblings of overridden keys keep their defaults.
    assert cfg["train"]["batch_size"] == 16
    assert cfg["model"] == {"preset": "nima-lite0", "pretrained": True, "head_kwargs": None, "init_from": None,
                            "init_backbone_from": None}
    assert cfg["optim"] == DEFAULTS["optim"]


def test_dict_config_and_empty_yaml(tmp_path):
    cfg = load_config({"seed": 7, "out_dir": "somewhere"})
    assert cfg["seed"] == 7 and cfg["out_dir"] == "somewhere"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty)["seed"] == 0
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_overrides_parsed_as_yaml():
    cfg = load_config(None, [
        "train.epochs=5",
        "optim.lr_head=2.5e-3",
        "data.label_range=[0, 100]",
        "data.higher_is_better=false",
        "train.amp=true",
        "name=my run",
        "train.grad_clip=null",
        "model.head_kwargs.dropout=0.1",
        "strategy.loss={mse: 1, plcc: 0.5}",
        "data.split_column=",
    ])
    assert cfg["train"]["epochs"] == 5 and isinstance(cfg["train"]["epochs"], int)
    assert cfg["optim"]["lr_head"] == pytest.approx(2.5e-3) and isinstance(cfg["optim"]["lr_head"], float)
    assert cfg["data"]["label_range"] == [0, 100]
    assert cfg["data"]["higher_is_better"] is False
    assert cfg["train"]["amp"] is True
    assert cfg["name"] == "my run"
    assert cfg["out_dir"] == str(Path("runs") / "my run")
    assert cfg["train"]["grad_clip"] is None
    # head_kwargs was None: the override creates the nested dict.
    assert cfg["model"]["head_kwargs"] == {"dropout": 0.1}
    assert cfg["strategy"] == {"name": "supervised", "loss": {"mse": 1, "plcc": 0.5}}
    assert cfg["data"]["split_column"] is None
    # Untouched keys keep their defaults.
    assert cfg["train"]["batch_size"] == 16


def test_overrides_apply_after_yaml(tmp_path):
    path = _write(tmp_path / "exp.yaml", {"train": {"epochs": 3, "batch_size": 4}})
    cfg = load_config(path, ["train.epochs=8"])
    assert cfg["train"]["epochs"] == 8 and cfg["train"]["batch_size"] == 4


def test_apply_override_in_place_and_errors():
    cfg = {"a": {"b": 1}}
    apply_override(cfg, "a.c.d=[1, 2]")
    assert cfg == {"a": {"b": 1, "c": {"d": [1, 2]}}}
    apply_override(cfg, "a.b = 3")  # spaces around the key are tolerated
    assert cfg["a"]["b"] == 3
    with pytest.raises(ValueError, match="key.sub=value"):
        apply_override(cfg, "train.epochs")


def test_unknown_top_level_key(tmp_path):
    path = _write(tmp_path / "bad.yaml", {"trian": {"epochs": 3}, "seed": 1})
    with pytest.raises(ValueError, match=r"unknown config key trian \(did you mean 'train'\?\)") as exc:
        load_config(path)
    assert "train" in str(exc.value)
    with pytest.raises(ValueError, match="trian"):
        load_config({"trian": {}})
    # A typo in an override is caught too instead of being silently ignored.
    with pytest.raises(ValueError, match=r"override 'trian.epochs=3': unknown config key trian"):
        load_config(None, ["trian.epochs=3"])


def test_relative_records_resolve_against_yaml_folder(tmp_path, monkeypatch):
    exp = tmp_path / "exps"
    (exp / "data").mkdir(parents=True)
    (exp / "data" / "records.csv").write_text("path,mos\n")
    path = _write(exp / "exp.yaml", {"data": {"records": "data/records.csv"}})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cfg = load_config(path)
    assert Path(cfg["data"]["records"]) == (exp / "data" / "records.csv").resolve()
    # Even when the working directory has a file of the same relative name.
    (cwd / "data").mkdir()
    (cwd / "data" / "records.csv").write_text("path,mos\n")
    cfg = load_config(path)
    assert Path(cfg["data"]["records"]) == (exp / "data" / "records.csv").resolve()
    # Absolute paths are kept as they are.
    absolute = str(tmp_path / "x.csv")
    assert load_config(_write(exp / "abs.yaml", {"data": {"records": absolute}}))["data"]["records"] == absolute


def test_override_records_relative_to_cwd(tmp_path, monkeypatch):
    exp = tmp_path / "exps"
    path = _write(exp / "exp.yaml", {"data": {"records": "nothing_here.csv"}})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.csv").write_text("path,mos\n")
    cfg = load_config(path, ["data.records=mine.csv"])
    assert (Path.cwd() / cfg["data"]["records"]).resolve() == (tmp_path / "mine.csv").resolve()
    # A YAML path that exists nowhere is left as written.
    assert load_config(path)["data"]["records"] == "nothing_here.csv"


def test_deep_update_and_save_round_trip(tmp_path):
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    out = deep_update(base, {"a": {"b": 5}, "e": {"f": 1}})
    assert out == {"a": {"b": 5, "c": [1]}, "d": 2, "e": {"f": 1}}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 2}
    assert deep_update(base, None) == base
    cfg = load_config(None, ["train.epochs=2"])
    save_config(cfg, tmp_path / "sub" / "cfg.yaml")
    assert load_config(tmp_path / "sub" / "cfg.yaml") == cfg


# ------------------------------------------------------------------ shipped configs
def test_shipped_configs_found_by_name_and_listed(tmp_path, monkeypatch):
    from biqa.config import CONFIGS_DIR, find_config, list_configs

    monkeypatch.chdir(tmp_path)  # outside the repository: nothing named configs/ here
    names = list_configs()
    assert "livec_finetune" in names and "kadid10k_by_ref" in names
    assert all(d and "\n" not in d for d in names.values())  # a one-line description each
    want = CONFIGS_DIR / "livec_finetune.yaml"
    for spelling in ("livec_finetune", "livec_finetune.yaml", "configs/livec_finetune.yaml"):
        assert find_config(spelling) == want
    cfg = load_config("livec_finetune")
    assert cfg["name"] == "livec-finetune" and cfg["data"]["split_column"] == "split_seed1"
    # its records path is relative to the working directory, not to the package's folder
    assert cfg["data"]["records"] == "data/livec/livec.csv"
    # a real file of the same name wins over the shipped config
    (tmp_path / "configs").mkdir()
    mine = _write(tmp_path / "configs" / "livec_finetune.yaml", {"name": "mine"})
    assert find_config("configs/livec_finetune.yaml") == Path("configs/livec_finetune.yaml")
    assert load_config("configs/livec_finetune.yaml")["name"] == "mine" and mine.is_file()


def test_unknown_config_and_default_model_messages(tmp_path, monkeypatch, capsys):
    from biqa.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a YAML file nor a shipped config; shipped configs: .*"
                                                "livec_finetune"):
        load_config("no_such_config")
    with pytest.raises(FileNotFoundError, match="config not found: elsewhere/x.yaml"):
        load_config("elsewhere/x.yaml")
    # the default model is fitted by biqa.recipe: the CLI says which command reproduces it
    assert main(["train", "default_model"]) == 2
    err = capsys.readouterr().err
    assert "not a trainer config" in err and "python scripts/train_default_model.py --pristine data/pristine" in err
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert "livec_finetune" in out and "fine-tune EfficientNet-Lite0" in out and "train_default_model.py" in out
    assert main(["configs", "zz*"]) == 1
    assert "no shipped config matches 'zz*'" in capsys.readouterr().err


def test_package_data_covers_shipped_files():
    """pyproject's package-data globs match every shipped config, weight and example (what a wheel carries)."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["biqa"]
    pkg = root / "biqa"
    files = [p.relative_to(pkg).as_posix() for sub in ("configs", "weights", "examples") for p in (pkg / sub).iterdir()
             if p.is_file()]
    assert any(f.startswith("configs/") and f.endswith(".yaml") for f in files)
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not missing, f"not in the wheel: {missing}"
    # an editable install puts the project folder on sys.path (not an import hook that a folder named biqa/
    # in the working directory would shadow as an empty namespace package): see the comment in pyproject.toml
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "."}


@pytest.mark.parametrize("override, where, hint", [
    ("train.epoch=3", "train.epoch", "epochs"),
    ("train.bacth_size=4", "train.bacth_size", "batch_size"),
    ("early_stop.patinece=2", "early_stop.patinece", "patience"),
    ("data.crop=64", "data.crop", "crop_size"),
    ("strategy.los=mse", "strategy.los", "loss"),
    ("trian.epochs=1", "trian", "train"),
])
def test_nested_typos_are_refused_with_a_suggestion(override, where, hint):
    """A misspelt key used to be ignored silently (the default was used); now it is an error naming it
    and the closest known key."""
    with pytest.raises(ValueError, match=rf"unknown config key {re.escape(where)} \(did you mean '{hint}'\?\)"):
        load_config({"name": "x"}, [override])


def test_typos_in_a_yaml_file_and_in_strategy_blocks_are_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ntrain: {epoch: 3}\n")
    with pytest.raises(ValueError, match=r"train\.epoch \(did you mean 'epochs'\?\)"):
        load_config(p)
    p.write_text("name: x\ntrain: 3\n")
    with pytest.raises(ValueError, match="section 'train' must be a mapping"):
        load_config(p)
    from biqa.models import create_model
    from biqa.strategies import build_strategy

    for block, bad, hint in (("ohem", "ration", "ratio"), ("mutual", "peer", "peers"), ("distill", "techer", "teacher")):
        with pytest.raises(ValueError, match=rf"strategy\.{block}\.{bad} \(did you mean '{hint}'\?\)"):
            build_strategy(block, create_model("lite0-mos"), **{block: {bad: 1}})
