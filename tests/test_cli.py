"""The biqa command line, run in-process through biqa.cli.main."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_image
from PIL import Image

from biqa.cli import main


def test_models_lists_presets(capsys):
    assert main(["models", "*lite0*"]) == 0
    out = capsys.readouterr().out
    assert "lite0-mos" in out and "nima-lite0" in out and "resnet18-mos" not in out


def test_train_summary_lines():
    from biqa.cli import format_train_summary

    s = {"out_dir": "runs/x", "best_epoch": 3, "best_val_srcc": 0.81234, "epochs_run": 5, "stopped_early": True,
         "test": {"n": 176, "srcc": {"value": 0.8, "ci_low": 0.75, "ci_high": 0.85},
                  "plcc": {"value": 0.82, "ci_low": 0.78, "ci_high": 0.86}, "krcc": {"value": 0.6}}}
    assert format_train_summary(s).splitlines()[:2] == [
        "trained 5 epoch(s) (stopped early); best epoch 3, validation SRCC 0.8123",
        "test (N = 176): SRCC 0.8000 [0.750, 0.850]  PLCC 0.8200 [0.780, 0.860]"]


def test_models_ranges_alignment_and_no_match(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    default = next(x for x in lines if x.strip().startswith("biqa-default"))
    assert "1..5, higher is better" in default  # the shipped model's nominal range and direction
    # long names (mobileiqa-teacher-lite2) keep every section's second column aligned
    rows = [x for x in lines if x.startswith("  ")]
    starts = {len(x) - len(x[2:].split(maxsplit=1)[1]) for x in rows}
    assert len(starts) == 1, starts
    assert main(["models", "zz*"]) == 1
    assert "no model matches 'zz*'" in capsys.readouterr().err
    assert main(["models", "niqe"]) == 0
    out = capsys.readouterr().out
    assert "niqe" in out and "presets" not in out and "biqa-default" not in out


def test_score_clip_bounds_the_nominal_range(tmp_path, capsys):
    """A flat grey image scores below 1 with biqa-default (its head is linear: 1 + 4 * MOS / 100
    extrapolated); --clip clamps to the nominal 1..5."""
    Image.new("RGB", (64, 64), (128, 128, 128)).save(tmp_path / "grey.png")
    raw, clipped = tmp_path / "raw.csv", tmp_path / "clip.csv"
    assert main(["score", str(tmp_path / "grey.png"), "-q", "--out", str(raw)]) == 0
    assert main(["score", str(tmp_path / "grey.png"), "-q", "--clip", "--out", str(clipped)]) == 0
    r, c = pd.read_csv(raw)["score"].iloc[0], pd.read_csv(clipped)["score"].iloc[0]
    assert r < 1.0 and c == 1.0
    assert main(["score", str(tmp_path / "grey.png"), "-q", "--clip", "--model", "niqe"]) == 2
    assert "no nominal range to clip to" in capsys.readouterr().err


def test_score_folder_csv_and_json(tmp_path, tiny_records, tiny_checkpoint, capsys):
    img_dir = str(Path(tiny_records).parent / "img")
    out = tmp_path / "s.csv"
    assert main(["score", img_dir, "--model", tiny_checkpoint, "--out", str(out), "--workers", "0"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 36 and (df["error"] == "").all()
    printed = capsys.readouterr()
    assert "36 input(s), 36 scored, 0 error(s)" in printed.err
    assert printed.out.count(".png") == 36
    outj = tmp_path / "s.json"
    assert main(["score", img_dir + "/r0_*.png", "-m", tiny_checkpoint, "-o", str(outj), "-q"]) == 0
    assert len(json.loads(outj.read_text())) == 6


def test_score_strict_exit_code(tmp_path, tiny_checkpoint, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    assert main(["score", str(bad), "-m", tiny_checkpoint, "-q"]) == 1  # nothing could be scored
    assert main(["score", str(bad), "-m", tiny_checkpoint, "-q", "--strict"]) == 1


def test_clear_error_for_unknown_model(capsys):
    assert main(["score", "x.jpg", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "no trained model named 'no-such-model'" in err and "biqa-default" in err and "niqe" in err


def test_model_errors_say_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.yaml").write_text("name: x\n")
    (tmp_path / "notes.safetensors").write_text("not a checkpoint at all\n")
    cases = {
        # a path that does not exist: "file not found", not "no trained model named"
        "runs/typo/best.safetensors": "checkpoint file not found: runs/typo/best.safetensors",
        "exp.yaml": "exp.yaml is a YAML file, not a trained model: a training config? Train it with `biqa train",
        # any other file: safetensors' raw "header too large" becomes a sentence
        "notes.safetensors": "notes.safetensors is not a biqa checkpoint",
        "lite0-mos": "is a model preset (an untrained architecture)",
    }
    for model, message in cases.items():
        assert main(["score", "x.jpg", "--model", model, "-q"]) == 2, model
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "SafetensorError" not in err, (model, err)


@pytest.mark.parametrize("spec, message", [("max:0", "max:N needs N of at least 1 pixel"),
                                           ("short:0", "short:N needs N of at least 1 pixel"),
                                           ("0x0", "WxH needs a width and a height of at least 1 pixel"),
                                           ("640x0", "WxH needs a width and a height"),
                                           ("huge", "use full, max:N, short:N or WxH")])
def test_bad_resolution_is_an_argument_error(spec, message, capsys):
    for cmd in (["score", "x.jpg"], ["eval", "ck.safetensors", "--data", "r.csv"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--resolution", spec])
        assert e.value.code == 2
        assert f"argument --resolution: bad resolution '{spec}': {message}" in capsys.readouterr().err


def test_score_exits_1_when_nothing_could_be_scored(tmp_path, tiny_checkpoint, capsys):
    missing = str(tmp_path / "no_such_folder")
    assert main(["score", missing, "-m", tiny_checkpoint, "-q"]) == 1
    assert f"none of the 1 input(s) could be scored (e.g. {missing}: FileNotFoundError: file not found)" in \
        capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["score", str(tmp_path / "empty"), "-m", tiny_checkpoint, "-q"]) == 1
    assert "no images found in" in capsys.readouterr().err
    # one good input among bad ones: the run succeeded (exit 0) unless --strict
    good = tmp_path / "ok.png"
    make_image(np.random.default_rng(0), (32, 32)).save(good)
    assert main(["score", str(good), missing, "-m", tiny_checkpoint, "-q"]) == 0
    assert main(["score", str(good), missing, "-m", tiny_checkpoint, "-q", "--strict"]) == 1
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "1 when none could be" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")


def test_train_then_eval(tmp_path, tiny_records, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "name: cli\n"
        f"out_dir: {tmp_path / 'run'}\n"
        "progress: false\n"
        f"data: {{records: {tiny_records}, crop_size: 32, num_workers: 0}}\n"
        "model: {preset: lite0-mos, pretrained: false}\n"
        "train: {epochs: 1, batch_size: 8}\n"
    )
    assert main(["train", str(cfg), "train.max_steps_per_epoch=2", "test_at_end=false"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs_run"] == 1 and "test" not in summary
    copied = (tmp_path / "run" / "config.yaml").read_text()
    assert "max_steps_per_epoch: 2" in copied  # the override is recorded with the run
    printed = capsys.readouterr().out.strip().splitlines()
    # a short summary, not the JSON dump (that is in summary.json)
    printed = printed[printed.index(next(x for x in printed if x.startswith("trained"))):]  # after the epoch lines
    assert len(printed) <= 3 and printed[0].startswith("trained 1 epoch(s); best epoch 1, validation SRCC")
    assert "best.safetensors" in printed[-1] and "summary.json" in printed[-1] and "{" not in "".join(printed)
    assert main(["eval", str(tmp_path / "run"), "--data", tiny_records, "--split", "all",
                 "--out", str(tmp_path / "ev"), "--n-boot", "200", "-q", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    for name in ("SRCC", "KRCC", "PLCC", "RMSE"):
        assert name in out.upper()
    res = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert res["n"] == 36 and (tmp_path / "ev" / "scatter.png").stat().st_size > 1000


def test_eval_needs_three_rows(tmp_path, tiny_records, tiny_checkpoint, capsys):
    df = pd.read_csv(tiny_records)
    small = tmp_path / "r.csv"
    df.head(2).assign(path=lambda d: [str(Path(tiny_records).parent / p) for p in d.path]) \
      .to_csv(small, index=False)
    assert main(["eval", tiny_checkpoint, "--data", str(small), "--split", "all", "-q"]) == 2
    assert "at least 3" in capsys.readouterr().err


SHARED_LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "labels"


@pytest.mark.skipif(not (SHARED_LABELS / "KADID-10k.txt").is_file(), reason="needs ../shared/data/labels")
def test_data_import_split_inspect(tmp_path, capsys):
    out = tmp_path / "kadid.csv"
    assert main(["data", "import", "kadid10k", "--root", str(tmp_path), "--labels-only",
                 "--labels-file", str(SHARED_LABELS / "KADID-10k.txt"), "--out", str(out)]) == 0
    assert main(["data", "split", str(out), "--scheme", "by-reference", "--ratios", "70,20,10",
                 "--seeds", "1-2", "--long-tailed"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 10125 and {"split_seed1", "split_seed2"} <= set(df.columns)
    for col in ("split_seed1", "split_seed2"):
        parts = {s: set(df.loc[df[col] == s, "ref"]) for s in ("train", "val", "test")}
        assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["val"])
    capsys.readouterr()
    assert main(["data", "inspect", str(out), "--histogram", str(tmp_path / "h.png")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n"] == 10125 and info["n_refs"] == 81 and (tmp_path / "h.png").is_file()


def test_data_synth_without_piq_fails_before_writing(tmp_path, monkeypatch, capsys):
    import sys

    photos = tmp_path / "photos"
    photos.mkdir()
    make_image(np.random.default_rng(0), (64, 64)).save(photos / "p1.png")
    monkeypatch.setitem(sys.modules, "piq", None)  # as if the synth extra were not installed
    out = tmp_path / "synth"
    assert main(["data", "synth", "--photos", str(photos), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "piq, which is not installed: pip install 'biqa[synth]'" in err and "synth:" not in err  # no progress bar
    assert not out.exists()  # no partial folder


def test_help_and_argument_errors_do_not_import_torch():
    """What keeps `biqa --help` instant (benchmarks/cli_startup.py times it): no torch import."""
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=root)
    for args, rc in ((["--help"], 0), (["score", "--help"], 0), (["score", "--resolution", "max:0"], 2),
                     (["train", "--help"], 0)):
        code = ("import sys, runpy; sys.argv = ['biqa', *sys.argv[1:]]\n"
                "try:\n    runpy.run_module('biqa', run_name='__main__')\n"
                "except SystemExit as e:\n    print('torch' in sys.modules, file=sys.stderr); raise\n")
        r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=root)
        assert r.returncode == rc, (args, r.stderr)
        assert r.stderr.strip().splitlines()[-1] == "False", (args, r.stderr)
