"""Multi-process training and scoring (torchrun, gloo on the CPU), resumable scoring, and training
that survives SIGKILL.

The multi-process tests launch ``python -m torch.distributed.run --nproc_per_node 2`` on
``tests/ddp_worker.py`` (the biqa CLI plus ``ddp-gn``, a tiny GroupNorm preset: see its
docstring for why not BatchNorm). Tolerances: per-epoch losses within rtol 1e-5, final weights
within atol 1e-4 (measured: ~1e-6 for the networks, ~2e-5 for a distillation projection; the
processes average gradients in another order than one process sums them).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from biqa import distributed as D
from biqa import score_job as J
from biqa.checkpoint import read_state_dicts
from biqa.scorer import collect_inputs, load
from conftest import make_image, save_untrained_checkpoint

import ddp_worker

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(Path(__file__).resolve().parent / "ddp_worker.py")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread here, as in the subprocesses (OMP_NUM_THREADS=1): comparable numbers, and
    no spinning thread pools fighting the worker processes for 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    ddp_worker.register()
    yield
    torch.set_num_threads(n)


def _train_here(cfg_path: str, out: Path, overrides: list[str] = (), resume: bool = False) -> None:
    from biqa.config import load_config
    from biqa.trainer import Trainer

    Trainer(load_config(cfg_path, [f"out_dir={out}", *overrides]), resume=resume).fit()


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                           "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", BIQA_TUNE_MALLOC="0", PYTHONPATH=str(ROOT), **extra)
    return env


def _run(args: list[str], nproc: int = 1, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    else:
        cmd = [sys.executable]
    p = subprocess.run(cmd + [WORKER] + args, env=_env(**env), capture_output=True, text=True, timeout=timeout,
                       cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _config(tmp_path, records, **over) -> str:
    cfg = {"name": "ddp", "seed": 3, "progress": False,
           "data": {"records": records, "crop_size": 32, "num_workers": 0},
           "model": {"preset": "ddp-gn", "pretrained": False},
           "optim": {"lr_backbone": 1e-3, "lr_head": 1e-2},
           "train": {"epochs": 2, "batch_size": 8}}
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _assert_close_runs(one: Path, two: Path) -> None:
    h1, h2 = pd.read_csv(one / "metrics.csv"), pd.read_csv(two / "metrics.csv")
    losses = [c for c in h1.columns if c.startswith("train_") and c != "train_seconds"]
    np.testing.assert_allclose(h2[losses].to_numpy(), h1[losses].to_numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(h2["val_srcc"], h1["val_srcc"], atol=1e-6)
    a, b = read_state_dicts(one / "last.safetensors"), read_state_dicts(two / "last.safetensors")
    assert a.keys() == b.keys()
    for net in a:
        for k in a[net]:
            torch.testing.assert_close(b[net][k], a[net][k], rtol=0, atol=1e-4, msg=f"{net}.{k}")


@pytest.mark.parametrize("strategy", ["supervised", "ohem+mutual+distill"])
def test_two_processes_match_one(tiny_records, tmp_path, strategy):
    """2 processes x 4 images == 1 process x 8 images: same global batches, losses and weights."""
    over = []
    if strategy != "supervised":
        teacher = save_untrained_checkpoint(tmp_path / "teacher.safetensors")
        over = ["strategy.name=[ohem,mutual,distill]", f"strategy.distill.teacher={teacher}",
                "strategy.ohem.refresh=2"]  # masks recomputed every 2 steps, from the synchronised weights
    cfg = _config(tmp_path, tiny_records)
    dump = tmp_path / "dump"
    dump.mkdir()
    _train_here(cfg, tmp_path / "one", over)
    _run(["train", cfg, f"out_dir={tmp_path / 'two'}"] + over, nproc=2, BIQA_TEST_DUMP=str(dump))
    _assert_close_runs(tmp_path / "one", tmp_path / "two")
    # every rank ends with the same weights (and OHEM masks) as rank 0, which wrote the checkpoint
    r0, r1 = torch.load(dump / "rank0.pt"), torch.load(dump / "rank1.pt")
    for net in r0["nets"]:
        for k in r0["nets"][net]:
            assert torch.equal(r0["nets"][net][k], r1["nets"][net][k]), (net, k)
    for net in r0["masks"]:
        for k in r0["masks"][net]:
            assert torch.equal(r0["masks"][net][k], r1["masks"][net][k]), (net, k)
    assert r0["masks"] if strategy != "supervised" else not r0["masks"]
    two = tmp_path / "two"
    for f in ["best.safetensors", "state.pt", "metrics.csv", "test_metrics.json", "summary.json"]:
        assert (two / f).is_file(), f
    if strategy != "supervised":  # the hardest-samples table covers both ranks' images
        assert len(pd.read_csv(two / "hard_samples_epoch1.csv")) == 24
    # the test predictions gathered from both ranks: every test image once, in records order
    preds = pd.read_csv(two / "test_predictions.csv")
    ref = pd.read_csv(tmp_path / "one" / "test_predictions.csv")
    assert list(preds["path"]) == list(ref["path"])
    np.testing.assert_allclose(preds["pred"], ref["pred"], atol=1e-4)


def test_epoch_batches_are_the_single_process_loader_order():
    from torch.utils.data import DataLoader

    for n, bs, drop in [(24, 8, True), (25, 8, True), (5, 8, False)]:
        g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        ref = [b.tolist() for b in DataLoader(list(range(n)), batch_size=bs, shuffle=True, generator=g1,
                                              drop_last=drop)]
        assert D.epoch_batches(n, bs, g2, drop) == ref
    batches = [[5, 1, 4, 0], [2, 3]]
    assert D.shard_batches(batches, 0, 2) == [[5, 4], [2]]
    assert D.shard_batches(batches, 1, 2) == [[1, 0], [3]]
    with pytest.raises(ValueError, match="cannot be split"):
        D.shard_batches([[1]], 1, 2)
    assert sorted(D.shard_indices(7, 0, 3) + D.shard_indices(7, 1, 3) + D.shard_indices(7, 2, 3)) == list(range(7))


# ------------------------------------------------------------------------------- scoring
@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """30 images in two folders (two sizes) and one unreadable file."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(5)
    for i in range(30):
        folder = root / ("b" if i % 3 == 0 else "a")
        folder.mkdir(exist_ok=True)
        make_image(rng, (48, 40) if i % 2 else (40, 48), blur=(i % 5) * 0.4).save(folder / f"p{i:02d}.png")
    (root / "a" / "broken.png").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    ddp_worker.register()  # the checkpoint carries its preset: loading it needs no registration
    return save_untrained_checkpoint(tmp_path_factory.mktemp("ck") / "m.safetensors", preset="ddp-gn")


def _reference(folder, checkpoint) -> pd.DataFrame:
    return load(checkpoint, device="cpu", batch_size=1, num_workers=0).score([str(folder)])


def test_distributed_scoring_resumes_one_output_in_input_order(photo_folder, checkpoint, tmp_path):
    """2 processes resume a partial job left by another run: rows already there are kept (not
    rescored), the rest is split over the processes, one output in input order."""
    out = tmp_path / "scores.csv"
    paths = collect_inputs([str(photo_folder)])
    scorer = load(checkpoint, device="cpu", batch_size=1, num_workers=0)
    folder = J.partial_dir(out)
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps(J._job_info(scorer, paths)))
    w = J._PartialWriter(folder / "rank0.csv", ["path", "score", "error"])
    w.add([2, 5, 17], [{"path": paths[i], "score": 42.0, "error": ""} for i in (2, 5, 17)])  # a killed run's rows
    w.close()
    _run(["score", str(photo_folder), "--model", checkpoint, "--out", str(out), "-b", "1", "--workers", "0", "-q",
          "--resume"], nproc=2)
    df = pd.read_csv(out, keep_default_na=False)
    ref = scorer.score(paths)
    assert list(df["path"]) == list(ref["path"]) == paths
    score = pd.to_numeric(df["score"]).to_numpy()
    assert (score[[2, 5, 17]] == 42.0).all()
    rest = [i for i in range(len(paths)) if i not in (2, 5, 17)]
    np.testing.assert_allclose(score[rest], ref["score"].to_numpy()[rest], atol=1e-5)
    assert (df["error"] != "").sum() == 1 and df.loc[df["error"] != "", "path"].str.endswith("broken.png").all()
    assert not folder.exists()


def test_scoring_resumes_after_sigkill(photo_folder, checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    part = J.partial_dir(out)
    cmd = [sys.executable, WORKER, "score", str(photo_folder), "--model", checkpoint, "--out", str(out),
           "-b", "1", "--workers", "0", "--threads", "1", "-q"]
    proc = subprocess.Popen(cmd, env=_env(BIQA_TEST_BATCH_DELAY="0.1"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 90
    paths = collect_inputs([str(photo_folder)])
    while time.time() < deadline and proc.poll() is None:
        if len(J.read_partial(part, paths)) >= 5:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "scoring finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = J.read_partial(part, paths)
    assert 5 <= len(done) < len(paths) and not out.exists()

    # resume in this process, recording what gets scored: only the inputs not done before
    from biqa.scorer import Scorer

    scored: list[str] = []
    orig = Scorer.score_paths

    def recording(self, ps, **kw):
        scored.extend(ps)
        return orig(self, ps, **kw)

    monkeypatch.setattr(Scorer, "score_paths", recording)
    from biqa.cli import main

    assert main(["score", str(photo_folder), "--model", checkpoint, "--out", str(out), "-b", "1", "--workers", "0",
                 "-q", "--resume"]) == 0
    assert sorted(scored) == sorted(p for i, p in enumerate(paths) if i not in done)
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df["path"]) == paths  # every input exactly once, in input order
    ref = _reference(photo_folder, checkpoint)
    np.testing.assert_allclose(pd.to_numeric(df["score"]).to_numpy(), ref["score"].to_numpy(), atol=1e-5)
    assert not part.exists()


def test_partial_file_skips_cut_lines_and_stale_rows(tmp_path):
    paths = ["a.png", "b.png", "c.png"]
    folder = tmp_path / ".s.csv.partial"
    folder.mkdir()
    (folder / "rank0.csv").write_text("index,path,score,error,complete\n0,a.png,3.5,,1\n2,WRONG.png,1.0,,1\n"
                                      "1,b.png,2.2")  # the last line was cut by a kill
    rows = J.read_partial(folder, paths)
    assert list(rows) == [0] and rows[0]["score"] == 3.5
    w = J._PartialWriter(folder / "rank0.csv", ["path", "score", "error"])
    w.add([1], [{"path": "b.png", "score": 2.25, "error": ""}])
    w.close()
    rows = J.read_partial(folder, paths)
    assert sorted(rows) == [0, 1] and rows[1]["score"] == 2.25


def test_resume_needs_out_and_same_model(photo_folder, checkpoint, tmp_path):
    scorer = load(checkpoint, device="cpu", batch_size=4, num_workers=0)
    with pytest.raises(ValueError, match="--out"):
        J.score_job(scorer, [str(photo_folder)], resume=True)
    out = tmp_path / "s.csv"
    folder = J.partial_dir(out)
    folder.mkdir()
    (folder / "job.json").write_text('{"model": "other.safetensors", "backend": "torch", "resolution": "full"}')
    with pytest.raises(ValueError, match="other settings"):
        J.score_job(scorer, [str(photo_folder)], out=out, resume=True)


# ------------------------------------------------------------------------------ training
def test_training_resumes_after_sigkill_to_identical_weights(tiny_records, tmp_path):
    """Kill a training process at some point after its first checkpoint, resume: the same weights
    (bit for bit) as a run that was never interrupted."""
    cfg = _config(tmp_path, tiny_records, train={"epochs": 6, "batch_size": 8}, test_at_end=False)
    _train_here(cfg, tmp_path / "full")
    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, WORKER, "train", cfg, f"out_dir={part}"], env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and not (part / "state.pt").is_file():
        time.sleep(0.005)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "summary.json").exists()
    _run(["train", cfg, f"out_dir={part}", "--resume"])
    a, b = read_state_dicts(tmp_path / "full" / "last.safetensors"), read_state_dicts(part / "last.safetensors")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / "metrics.csv").drop(columns="train_seconds"),
                                  pd.read_csv(part / "metrics.csv").drop(columns="train_seconds"))


def test_kill_between_last_checkpoint_and_state_resumes_identically(tiny_records, tmp_path, monkeypatch):
    """The worst moment: last.safetensors already holds epoch 2, state.pt still epoch 1."""
    from biqa.config import load_config
    from biqa.trainer import Trainer

    cfg = load_config(_config(tmp_path, tiny_records, train={"epochs": 3, "batch_size": 8}, test_at_end=False))
    Trainer({**cfg, "out_dir": str(tmp_path / "full")}).fit()
    orig = Trainer._save_state

    def killed(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt("killed after last.safetensors, before state.pt")
        orig(self, epoch)

    monkeypatch.setattr(Trainer, "_save_state", killed)
    with pytest.raises(KeyboardInterrupt):
        Trainer({**cfg, "out_dir": str(tmp_path / "part")}).fit()
    monkeypatch.setattr(Trainer, "_save_state", orig)
    Trainer({**cfg, "out_dir": str(tmp_path / "part")}, resume=True).fit()
    a = read_state_dicts(tmp_path / "full" / "last.safetensors")["model"]
    b = read_state_dicts(tmp_path / "part" / "last.safetensors")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
