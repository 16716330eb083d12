"""Protocol runners (cross-dataset grid, n-split protocol) and the ready experiment configs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biqa.cli import main
from biqa.config import load_config
from biqa.datasets import add_splits
from conftest import save_untrained_checkpoint
from biqa.evaluate import evaluate_checkpoint
from biqa.protocols import (cross_dataset_grid, format_grid, infer_column_pattern, n_split_protocol,
                            parse_dataset_spec, summarize_splits)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "biqa" / "configs"
SHARED_LABELS = ROOT.parent / "shared" / "data" / "labels"
METRIC_KEYS = ("srcc", "krcc", "plcc", "rmse", "plcc_fitted", "rmse_fitted")


def _absolute(records: str) -> pd.DataFrame:
    df = pd.read_csv(records)
    df["path"] = [str(Path(records).parent / p) for p in df["path"]]
    return df


@pytest.fixture(scope="module")
def second_checkpoint(tmp_path_factory) -> str:
    """Another untrained lite0 checkpoint (different head init) with a different name."""
    return save_untrained_checkpoint(tmp_path_factory.mktemp("ckpt2") / "other.safetensors", seed=1)


@pytest.fixture(scope="module")
def second_records(tiny_records, tmp_path_factory) -> str:
    """tiny_records without reference r0 and without split column, absolute paths, MOS squashed."""
    df = _absolute(tiny_records)
    df = df[df["ref"] != "r0"].assign(mos=lambda d: 1.0 + 0.5 * d["mos"]).drop(columns=["split"])
    out = tmp_path_factory.mktemp("second") / "other_set.csv"
    df.to_csv(out, index=False)
    return str(out)


# ------------------------------------------------------------------ grid
def test_parse_dataset_spec(tmp_path):
    assert parse_dataset_spec("a/b.csv") == ("a/b.csv", "test", None)
    assert parse_dataset_spec("a/b.csv:all") == ("a/b.csv", "all", None)
    assert parse_dataset_spec("a/b.csv:split_seed3=val", "test", "x") == ("a/b.csv", "val", "split_seed3")
    assert parse_dataset_spec("a/b.csv:nonsense") == ("a/b.csv:nonsense", "test", None)
    odd = tmp_path / "odd:all"  # an existing file is never split
    odd.write_text("x")
    assert parse_dataset_spec(str(odd)) == (str(odd), "test", None)


def test_grid_matches_single_evaluations(tmp_path, tiny_records, tiny_checkpoint, second_checkpoint,
                                         second_records):
    models = [tiny_checkpoint, second_checkpoint]
    datasets = [tiny_records, second_records + ":all"]
    table = cross_dataset_grid(models, datasets, out_dir=tmp_path / "grid", n_boot=100, num_workers=0)
    assert table.shape[0] == 4
    assert list(table["model"]) == ["tiny", "tiny", "other", "other"]
    assert list(table["dataset"]) == ["records", "other_set"] * 2
    assert list(table["split"]) == ["test", "all"] * 2 and list(table["n"]) == [6, 30, 6, 30]
    for col in ("srcc", "srcc_ci_low", "srcc_ci_high", "plcc", "krcc", "rmse", "plcc_fitted"):
        assert col in table.columns
    assert (table["error"] == "").all()
    for r in table.itertuples(index=False):
        ckpt = tiny_checkpoint if r.model == "tiny" else second_checkpoint
        rec, split = (tiny_records, "test") if r.dataset == "records" else (second_records, "all")
        single = evaluate_checkpoint(ckpt, rec, split=split, n_boot=100, num_workers=0, progress=False)
        assert r.n == single["n"]
        for m in ("srcc", "plcc", "krcc", "rmse"):
            assert getattr(r, m) == pytest.approx(single[m]["value"], abs=1e-12)
        assert r.srcc_ci_low == pytest.approx(single["srcc"]["ci_low"], abs=1e-12)
        assert r.srcc_ci_high == pytest.approx(single["srcc"]["ci_high"], abs=1e-12)
    # the two untrained checkpoints really differ
    assert table["srcc"].iloc[0] != table["srcc"].iloc[2] or table["plcc"].iloc[0] != table["plcc"].iloc[2]

    text = format_grid(table)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("SRCC/PLCC (N)")
    for name in ("tiny", "other", "records [test]", "other_set [all]", "(6)", "(30)"):
        assert name in text
    first = table.iloc[0]
    assert f"{first.srcc:.3f}/{first.plcc:.3f} (6)" in lines[1]
    out = tmp_path / "grid"
    long = pd.read_csv(out / "grid_long.csv", keep_default_na=False)
    assert len(long) == 4 and np.allclose(long["srcc"].astype(float), table["srcc"])
    wide = pd.read_csv(out / "grid.csv", index_col=0)
    assert wide.shape == (2, 2) and list(wide.index) == ["tiny", "other"]
    assert "| SRCC/PLCC (N) |" in (out / "grid.md").read_text()
    assert json.loads((out / "cells" / "other" / "other_set" / "metrics.json").read_text())["n"] == 30


def test_grid_records_failed_cell_and_checks_inputs(tmp_path, tiny_records, tiny_checkpoint, second_records):
    # second_records has no split column: the 'test' cell fails, the ':all' cell works
    table = cross_dataset_grid([tiny_checkpoint], [second_records, second_records + ":all"], n_boot=0,
                               num_workers=0)
    assert table["error"].iloc[0] and not table["error"].iloc[1] and table["n"].iloc[1] == 30
    assert "error" in format_grid(table).splitlines()[1]
    assert table["dataset"].tolist() == ["other_set:test", "other_set:all"]  # made unique by split
    with pytest.raises(FileNotFoundError):
        cross_dataset_grid([tiny_checkpoint], [str(tmp_path / "missing.csv")])
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        cross_dataset_grid([str(tmp_path / "nope.safetensors")], [tiny_records])


def test_cli_eval_grid_and_single(tmp_path, tiny_records, tiny_checkpoint, second_checkpoint, second_records,
                                  capsys):
    out = tmp_path / "g"
    assert main(["eval", tiny_checkpoint, second_checkpoint, "--data", tiny_records, f"{second_records}:all",
                 "--out", str(out), "--n-boot", "50", "-q", "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "SRCC/PLCC (N)" in printed and "other_set [all]" in printed and "(30)" in printed
    assert (out / "grid.csv").is_file() and (out / "grid.md").is_file()
    assert len(pd.read_csv(out / "grid_long.csv")) == 4
    # one checkpoint, one dataset: the single-evaluation table as before
    assert main(["eval", tiny_checkpoint, "--data", f"{second_records}:all", "--n-boot", "50", "-q",
                 "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "[split: all]" in printed and "SRCC/PLCC (N)" not in printed


# ------------------------------------------------------------------ n-split protocol
@pytest.fixture(scope="module")
def split_records(tiny_records, tmp_path_factory) -> str:
    df = add_splits(_absolute(tiny_records).drop(columns=["split"]), "by-reference", ratios=(4, 1, 1),
                    seeds=[1, 2, 3])
    out = tmp_path_factory.mktemp("splits") / "split_records.csv"
    df.to_csv(out, index=False)
    return str(out)


def _tiny_config(records: str, out_dir: Path) -> dict:
    return {"name": "tiny", "out_dir": str(out_dir), "progress": False,
            "data": {"records": records, "crop_size": 32, "num_workers": 0},
            "model": {"preset": "lite0-mos", "pretrained": False},
            "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "max_steps_per_epoch": 1}}


@pytest.fixture(scope="module")
def protocol_run(split_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("proto") / "runs"
    per_split = n_split_protocol(_tiny_config(split_records, out / "unused"), [1, 2], out_dir=out)
    return out, per_split


def test_n_split_protocol(protocol_run):
    out, per_split = protocol_run
    assert list(per_split["split"]) == [1, 2]
    assert list(per_split["split_column"]) == ["split_seed1", "split_seed2"]
    for s in (1, 2):
        run = out / f"s{s}"
        assert (run / "best.safetensors").is_file() and (run / "test_metrics.json").is_file()
        cfg = load_config(run / "config.yaml")
        assert cfg["name"] == f"tiny_s{s}" and cfg["data"]["split_column"] == f"split_seed{s}"
        test = json.loads((run / "test_metrics.json").read_text())
        assert per_split.loc[per_split["split"] == s, "srcc"].item() == pytest.approx(test["srcc"]["value"])
    csv = pd.read_csv(out / "per_split.csv")
    assert len(csv) == 2 and (csv["n"] == 6).all()  # 1 test reference x 6 levels
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert list(summary.index) == ["mean", "std"] and (summary["n_splits"] == 2).all()
    for m in METRIC_KEYS:
        vals = csv[m].to_numpy(dtype=float)
        assert summary.loc["mean", m] == pytest.approx(np.mean(vals))
        assert summary.loc["std", m] == pytest.approx(np.std(vals))
    assert per_split.attrs["summary"].loc["mean", "srcc"] == pytest.approx(summary.loc["mean", "srcc"])
    assert json.loads((out / "protocol.json").read_text())["splits"] == [1, 2]


def test_summarize_splits_ddof():
    per = pd.DataFrame({"split": [1, 2, 3], "srcc": [0.8, 0.9, 0.7], "plcc": [0.5, 0.6, 0.7]})
    s = summarize_splits(per, ddof=1)
    assert s.loc["mean", "srcc"] == pytest.approx(0.8) and s.loc["std", "plcc"] == pytest.approx(0.1)


def test_infer_column_pattern():
    assert infer_column_pattern("split_lt_seed1") == "split_lt_seed{}"
    assert infer_column_pattern("split_seed10") == "split_seed{}"
    assert infer_column_pattern("split_official") == "split_seed{}"
    assert infer_column_pattern(None) == "split_seed{}"


def test_cli_train_splits(protocol_run, split_records, tmp_path, capsys):
    out, per_split = protocol_run
    cfg = tmp_path / "exp.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(_tiny_config(split_records, out)))
    # finished splits are reused with --resume: nothing is retrained, the summary is printed
    stamp = (out / "s1" / "best.safetensors").stat().st_mtime_ns
    assert main(["train", str(cfg), "--splits", "1-2", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "mean ± std over 2 split(s)" in printed and "SRCC" in printed
    assert (out / "s1" / "best.safetensors").stat().st_mtime_ns == stamp
    assert f"{per_split.attrs['summary'].loc['mean', 'srcc']:.4f}" in printed
    # a fresh split through the CLI, with overrides applied to every run
    assert main(["train", str(cfg), f"out_dir={tmp_path / 'cli'}", "train.batch_size=4", "--splits", "3"]) == 0
    run_cfg = load_config(tmp_path / "cli" / "s3" / "config.yaml")
    assert run_cfg["train"]["batch_size"] == 4 and run_cfg["data"]["split_column"] == "split_seed3"
    assert len(pd.read_csv(tmp_path / "cli" / "per_split.csv")) == 1
    capsys.readouterr()
    # missing columns are reported before any training starts
    assert main(["train", str(cfg), f"out_dir={tmp_path / 'bad'}", "--splits", "3-5"]) == 2
    err = capsys.readouterr().err
    assert "split_seed4" in err and "split_seed5" in err and not (tmp_path / "bad" / "s3").exists()


# ------------------------------------------------------------------ configs
CONFIG_FILES = ["koniq10k_official.yaml", "kadid10k_by_ref.yaml", "kadid10k_longtailed.yaml",
                "uhdiqa_official.yaml"]


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_loads_and_builds(name):
    from biqa.models import create_model
    from biqa.strategies import build_strategy

    path = CONFIGS / name
    cfg = load_config(path)
    assert cfg["name"] and cfg["out_dir"] == f"runs/{cfg['name']}"
    assert cfg["data"]["records"] and cfg["data"]["split_column"]
    text = path.read_text()
    assert "biqa data import" in text and "biqa data split" in text and "biqa train " + name[:-len(".yaml")] in text
    model = create_model(cfg["model"]["preset"], pretrained=False)
    s = dict(cfg["strategy"])
    strategy = build_strategy(s.pop("name"), model, **s, context={"pretrained": False,
                                                                  "label_scale": model.label_scale})
    assert strategy.nets


needs_labels = pytest.mark.skipif(not (SHARED_LABELS / "KADID-10k.txt").is_file(), reason="needs shared labels")


@needs_labels
def test_kadid_split_columns_named_by_configs(tmp_path, capsys):
    out = tmp_path / "kadid10k.csv"
    assert main(["data", "import", "kadid10k", "--root", str(tmp_path), "--labels-only",
                 "--labels-file", str(SHARED_LABELS / "KADID-10k.txt"), "--out", str(out)]) == 0
    assert main(["data", "split", str(out), "--scheme", "by-reference", "--ratios", "57,8,16",
                 "--seeds", "1-2", "--long-tailed"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    for name in ("kadid10k_by_ref.yaml", "kadid10k_longtailed.yaml"):
        col = load_config(CONFIGS / name)["data"]["split_column"]
        assert col in df.columns
        assert infer_column_pattern(col).format(2) in df.columns  # what --splits 1-2 would use
    refs = {s: df.loc[df["split_seed1"] == s, "ref"].nunique() for s in ("train", "val", "test")}
    assert refs == {"train": 57, "val": 8, "test": 16}
    lt = df["split_lt_seed1"]
    assert (lt == "train").sum() == 57 * (8 * 5 + 8 * 3 + 9 * 1)
    for part in ("val", "test"):  # only the train part is thinned
        assert ((lt == part) == (df["split_seed1"] == part)).all()


@needs_labels
def test_official_split_columns_named_by_configs(tmp_path, capsys):
    out = tmp_path / "uhdiqa.csv"
    assert main(["data", "import", "uhdiqa", "--root", str(tmp_path), "--labels-only",
                 "--labels-file", str(SHARED_LABELS / "UHD-IQA.txt"), "--out", str(out)]) == 0
    assert main(["data", "split", str(out), "--scheme", "official"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    col = load_config(CONFIGS / "uhdiqa_official.yaml")["data"]["split_column"]
    assert df[col].value_counts().to_dict() == {"train": 4269, "val": 904, "test": 900}
    # KonIQ-10k: the original label CSV's 'set' column becomes split_official (the republished file has none)
    root = tmp_path / "koniq"
    root.mkdir()
    sets = ["training"] * 4 + ["validation", "test"]
    pd.DataFrame({"image_name": [f"{i}.jpg" for i in range(6)], "MOS": np.linspace(1.5, 4.5, 6),
                  "SD": 0.5, "set": sets}).to_csv(root / "koniq10k_distributions_sets.csv", index=False)
    kout = tmp_path / "koniq10k.csv"
    # 6 of KonIQ's 10,073 rows: the report is NOT OK (exit status 1), the records are still written
    assert main(["data", "import", "koniq10k", "--root", str(root), "--labels-only", "--out", str(kout)]) == 1
    assert main(["data", "split", str(kout), "--scheme", "official"]) == 0
    col = load_config(CONFIGS / "koniq10k_official.yaml")["data"]["split_column"]
    assert pd.read_csv(kout, keep_default_na=False)[col].tolist() == ["train"] * 4 + ["val", "test"]
