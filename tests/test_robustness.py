"""Hostile inputs and faults (issue 21): any file name, files that change under us, a full disk,
two jobs on one output, broken records, code in a resume state (tests/test_trainer.py), fuzzed
images (tests/test_fuzz.py). docs/reliability.md lists each fault with the test that shows it."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biqa import files as F
from biqa import score_job as J
from biqa.cli import main
from biqa.paths import path_to_text, printable, text_to_path
from biqa.scorer import Scorer, collect_inputs, load, write_scores
from conftest import make_image

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ file names
def test_path_text_round_trips_any_bytes():
    """Independent reference: the bytes the OS sees (os.fsencode) come back unchanged, the text is valid
    UTF-8, and ordinary names are left exactly as they are."""
    rng = np.random.default_rng(0)
    names = [bytes(rng.integers(1, 256, int(rng.integers(1, 24))).astype(np.uint8)) for _ in range(3000)]
    names += [b'"', b'""', b'"a"', b"a\\xe9", b"\\", b"caf\xe9.jpg", b"x\n\t\r\x7f\x01", b"\xff\xfe\"\\"]
    for raw in names:
        p = os.fsdecode(raw)
        t = path_to_text(p)
        t.encode("utf-8")  # never raises
        assert os.fsencode(text_to_path(t)) == raw, raw
        assert t.isprintable() or not p.isprintable() or t == p
    for ordinary in ["a.jpg", "/x/y z,1.png", "é/ü.jpg", 'a "b".jpg', "a\\b.jpg", "line\nbreak.jpg"]:
        assert path_to_text(ordinary) == ordinary and text_to_path(ordinary) == ordinary
    assert path_to_text(os.fsdecode(b"caf\xe9.jpg")) == '"caf\\xe9.jpg"'
    assert printable("No such file: '\udcff'") == "No such file: '\\xff'"


@pytest.fixture()
def odd_names(tmp_path):
    """Images whose names are not valid UTF-8 (Latin-1 bytes, a stray 0xff), beside ordinary ones."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    raw = [b"caf\xe9.jpg", b"\xff\xfe.png", b"plain.png", b'"quoted".png', b"comma, and space.jpg"]
    for name in raw:
        make_image(rng, (40, 32)).save(os.path.join(os.fsencode(folder), name), format="PNG")
    return folder, raw


def test_non_utf8_names_scored_written_and_resumed(odd_names, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    folder, raw = odd_names
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    args = ["--model", tiny_checkpoint, "-b", "2", "--workers", "0"]
    assert main(["score", str(folder), "--out", str(out_csv), *args]) == 0
    printed = capsys.readouterr().out
    assert 'caf\\xe9.jpg"' in printed and '\\xff\\xfe.png"' in printed  # the table prints every name
    df = pd.read_csv(out_csv, keep_default_na=False)
    assert len(df) == len(raw) and (df["error"] == "").all()
    assert sorted(os.fsencode(os.path.basename(text_to_path(t))) for t in df["path"]) == sorted(raw)
    assert all(os.path.isfile(text_to_path(t)) for t in df["path"])  # the text leads back to the file
    assert main(["score", str(folder), "--out", str(out_json), "-q", *args]) == 0
    recs = json.loads(out_json.read_text(encoding="utf-8"))
    assert [r["path"] for r in recs] == list(df["path"])

    # a killed run: the partial file holds 3 rows; --resume scores the other 2 only, odd names included
    paths = collect_inputs([str(folder)])
    full = pd.read_csv(out_csv, keep_default_na=False)
    part = J.partial_dir(out_csv)
    part.mkdir()
    w = J._PartialWriter(part / "rank0.csv", ["path", "score", "error", "tiles"])
    w.add([0, 1, 2], [{"path": paths[i], "score": float(full["score"][i]), "error": "", "tiles": 1} for i in range(3)])
    w.close()
    scorer = load(tiny_checkpoint, device="cpu", num_workers=0)
    (part / "job.json").write_text(json.dumps(J._job_info(scorer, paths)))
    scored: list[str] = []
    orig = Scorer.score_paths
    monkeypatch.setattr(Scorer, "score_paths", lambda self, ps, **kw: (scored.extend(ps), orig(self, ps, **kw))[1])
    assert main(["score", str(folder), "--out", str(out_csv), "-q", "--resume", *args]) == 0
    assert scored == paths[3:]
    again = pd.read_csv(out_csv, keep_default_na=False)
    assert list(again["path"]) == list(full["path"])
    # resuming a finished job's partial rows again: nothing is scored
    part.mkdir()
    w = J._PartialWriter(part / "rank0.csv", ["path", "score", "error", "tiles"])
    w.add(list(range(len(paths))), [{"path": p, "score": 1.0, "error": "", "tiles": 1} for p in paths])
    w.close()
    scored.clear()
    assert main(["score", str(folder), "--out", str(out_csv), "-q", "--resume", *args]) == 0
    assert scored == []


# -------------------------------------------------------------------- inputs that change
def test_symlink_loop_walked_once(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ["a/x.png", "a/b/y.png"]:
        make_image(rng).save(tmp_path / p)
    os.symlink("..", tmp_path / "a" / "b" / "up")       # a loop: a/b/up -> a
    os.symlink(str(tmp_path / "a"), tmp_path / "again")  # the same folder twice
    found = collect_inputs([str(tmp_path)])
    assert sorted(os.path.realpath(p) for p in found) == sorted(str((tmp_path / p).resolve())
                                                               for p in ["a/x.png", "a/b/y.png"])


def test_files_deleted_or_truncated_after_listing(tmp_path, tiny_checkpoint, monkeypatch):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(4):
        p = tmp_path / f"im{i}.jpg"
        make_image(rng, (64, 48)).save(p, quality=90)
        paths.append(str(p))
    orig = Scorer._header_size

    def change_under_us(self, p):  # headers read; then one file goes, one is cut short
        size = orig(self, p)
        if p == paths[1]:
            os.remove(p)
        if p == paths[2]:
            data = Path(p).read_bytes()
            Path(p).write_bytes(data[: len(data) // 3])
        return size

    monkeypatch.setattr(Scorer, "_header_size", change_under_us)
    df = load(tiny_checkpoint, device="cpu", num_workers=0).score_paths(paths)
    assert list(df["path"]) == paths
    assert df["error"][1].startswith("FileNotFoundError") and np.isnan(df["score"][1])
    assert df["error"][2].startswith("OSError") and "truncated" in df["error"][2].lower()
    assert (df["error"][[0, 3]] == "").all() and df["score"][[0, 3]].notna().all()


def test_decode_time_limit_gives_an_error_row(tmp_path, tiny_checkpoint, monkeypatch):
    import time

    import biqa.scorer as S

    rng = np.random.default_rng(2)
    for name in ["a.png", "b_slow.png", "c.png"]:
        make_image(rng).save(tmp_path / name)
    orig = S.load_image

    def stalls(p, *a, **k):
        if p.endswith("b_slow.png"):
            for _ in range(6000):  # a decoder looping for 60 s (Python code is interrupted between steps)
                time.sleep(0.01)
        return orig(p, *a, **k)

    monkeypatch.setattr(S, "load_image", stalls)
    scorer = load(tiny_checkpoint, device="cpu", num_workers=0, decode_timeout=0.3)
    t0 = time.time()
    df = scorer.score([str(tmp_path)])
    assert time.time() - t0 < 30  # not the 60 s the stalled decode would take (wide margin: a loaded CI machine)
    assert df["error"][1].startswith("DecodeTimeout") and "0.3 s" in df["error"][1]
    assert (df["error"][[0, 2]] == "").all()


# ---------------------------------------------------------------------- faults while writing
def test_atomic_writer_keeps_the_old_file_on_failure(tmp_path):
    from biqa.checkpoint import _atomic_write_bytes

    out = tmp_path / "scores.csv"
    out.write_text("old\n")

    def dies_half_way(p):
        p.write_text("new, half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        _atomic_write_bytes(out, dies_half_way)
    assert out.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["scores.csv"]
    write_scores(pd.DataFrame({"path": [os.fsdecode(b"\xff.jpg")], "score": [1.0], "error": [""]}), out)
    assert pd.read_csv(out)["path"][0] == '"\\xff.jpg"'


def _score_cmd(folder, ckpt, out, *extra):
    return [sys.executable, "-m", "biqa", "score", str(folder), "--model", ckpt, "--out", str(out), "-q",
            "--workers", "0", "--threads", "1", *extra]


def _with_file_size_limit(nbytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def test_full_disk_keeps_previous_output_and_says_so(tmp_path, tiny_checkpoint, monkeypatch):
    """The disk fills up (RLIMIT_FSIZE: no file may grow beyond N bytes, writes fail with EFBIG): while
    the partial rows are saved, and again while the output is written. The previous output stays as it
    was, no temporary file is left, the message says what happened, and --resume finishes the job."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for i in range(6):
        make_image(rng, (40, 32)).save(folder / f"photo_with_a_long_name_{i:02d}.png")
    out = tmp_path / "scores.json"
    out.write_text('["previous output"]')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    # 1. full while saving the partial rows
    r = subprocess.run(_score_cmd(folder, tiny_checkpoint, out, "-b", "2"), env=env, capture_output=True,
                       text=True, preexec_fn=_with_file_size_limit(250), timeout=300)
    assert r.returncode == 2, r.stderr
    assert "could not save scores" in r.stderr and "File too large" in r.stderr and "Traceback" not in r.stderr
    assert out.read_text() == '["previous output"]'

    # 2. room for the partial rows, not for the (larger) JSON output: a partial line holds at most the path
    # and 27 more bytes, a JSON row at least the path and 63 more
    room = 38 + sum(len(p) + 27 for p in collect_inputs([str(folder)])) + 50
    r = subprocess.run(_score_cmd(folder, tiny_checkpoint, out), env=env, capture_output=True, text=True,
                       preexec_fn=_with_file_size_limit(room), timeout=300)
    assert r.returncode == 2, r.stderr
    assert f"could not write {out}" in r.stderr and "--resume" in r.stderr and "Traceback" not in r.stderr
    assert out.read_text() == '["previous output"]'
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    assert len(J.read_partial(J.partial_dir(out), collect_inputs([str(folder)]))) == 6  # every score kept

    # 3. space again: --resume writes the output without scoring anything
    monkeypatch.setattr(Scorer, "score_paths", lambda self, ps, **kw: pytest.fail(f"rescored {ps}"))
    assert main(_score_cmd(folder, tiny_checkpoint, out, "--resume")[3:]) == 0
    recs = json.loads(out.read_text())
    assert len(recs) == 6 and all(x["error"] == "" for x in recs)
    assert not J.partial_dir(out).exists()


def test_two_jobs_on_one_output_do_not_interleave(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    make_image(np.random.default_rng(5)).save(folder / "a.png")
    out = tmp_path / "s.csv"
    args = ["score", str(folder), "--model", tiny_checkpoint, "--out", str(out), "-q", "--workers", "0"]
    # another process holds the output's lock (a job running; the lock protocol of biqa.files.output_lock:
    # flock on .<out name>.lock holding the pid): refused, nothing touched
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "os.write(fd, b'%d\\n' % os.getpid()); print('locked', flush=True); time.sleep(60)",
                               str(tmp_path / ".s.csv.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "being written by another biqa scoring job" in err and f"pid {holder.pid}" in err
        assert not out.exists() and not J.partial_dir(out).exists()
        # and in one process: a second job while the first holds the lock
        holder.kill()
        holder.wait()
        with F.output_lock(out):
            with pytest.raises(F.OutputLocked):
                with F.output_lock(out):
                    pass
    finally:
        holder.kill()
        holder.wait()
    assert main(args) == 0  # the lock dies with its process
    assert len(pd.read_csv(out)) == 1 and not (tmp_path / ".s.csv.lock").exists()


# ---------------------------------------------------------------------------- broken records
@pytest.fixture()
def records_with_truncated_image(tmp_path):
    rng = np.random.default_rng(6)
    rows = []
    (tmp_path / "img").mkdir()
    for i in range(12):
        p = tmp_path / "img" / f"r{i}.jpg"
        make_image(rng, (48, 40), blur=0.3 * (i % 4)).save(p, quality=90)
        rows.append({"path": f"img/r{i}.jpg", "mos": 1 + (i % 5), "split": ["train", "val", "test"][i % 3]})
    bad = tmp_path / "img" / "r5.jpg"  # a test row (5 % 3 == 2): CSV line 7
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    csv = tmp_path / "records.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return str(csv)


def test_truncated_image_in_records_named_with_its_line(records_with_truncated_image, tiny_checkpoint, tmp_path,
                                                        capsys):
    csv = records_with_truncated_image
    # eval: the error names the file and its CSV line, no traceback
    assert main(["eval", tiny_checkpoint, "--data", csv, "--n-boot", "10", "-q", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "line 7: img/r5.jpg" in err and "truncated" in err and "--check-images" in err
    # inspect --check-images lists it up front (exit status 1)
    assert main(["data", "inspect", csv, "--check-images"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["images_checked"] == 12 and [(b["line"], b["path"]) for b in info["bad_images"]] == [(7, "img/r5.jpg")]
    # skipping is explicit and listed
    out = tmp_path / "ev"
    assert main(["eval", tiny_checkpoint, "--data", csv, "--n-boot", "10", "-q", "--workers", "0",
                 "--skip-bad-images", "--out", str(out)]) == 0
    assert "leaving out 1 of 4" in capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["skipped_images"][0]["line"] == 7 and len(pd.read_csv(out / "predictions.csv")) == 3
    assert pd.read_csv(out / "skipped_images.csv")["path"].tolist() == ["img/r5.jpg"]


def test_truncated_image_in_training_records(records_with_truncated_image, tmp_path, capsys):
    import yaml

    csv = records_with_truncated_image
    cfg = {"name": "t", "seed": 0, "progress": False, "out_dir": str(tmp_path / "run"),
           "data": {"records": csv, "crop_size": 32, "num_workers": 0},
           "model": {"preset": "lite0-mos", "pretrained": False},
           "train": {"epochs": 1, "batch_size": 4, "channels_last": False}, "test_at_end": True}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 7: img/r5.jpg" in err and "truncated" in err
    assert main(["train", str(path), "data.skip_bad_images=true"]) == 0
    assert "leaving out 1 of 4 test records" in capsys.readouterr().err
    skipped = pd.read_csv(tmp_path / "run" / "skipped_images.csv")
    assert skipped[["split", "line", "path"]].values.tolist() == [["test", 7, "img/r5.jpg"]]
