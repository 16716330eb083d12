"""Distributed scaling: training and scoring on 1 process vs N processes (torchrun, gloo on the CPU).

Same work in every configuration: training steps of the global batch (``--batch`` images, split over
the processes) on generated images, and scoring a folder of generated images. On the CPU each
configuration gets the same cores: 1 process x 2 threads, 1 process x 1 thread, 2 processes x 1
thread (torchrun sets ``OMP_NUM_THREADS=1``). Timed inside the workers, after start-up and model
load: training from the per-epoch ``train_seconds`` of the last epoch (the first one warms up),
scoring from the first to the last batch over all processes.

  python benchmarks/distributed.py            # lite0-mos, 128 px crops, 8 steps of 16; 192 images at 512x384
  python benchmarks/distributed.py --quick    # smoke run (seconds)
  python benchmarks/distributed.py --device cuda --procs 1    # one GPU (NCCL for several)

Prints a table and writes benchmarks/results/distributed.csv (or --out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_data(root: Path, n_train: int, n_score: int, train_size: tuple[int, int], score_size: tuple[int, int]):
    from PIL import Image

    rng = np.random.default_rng(0)

    def image(size):
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w]
        base = 0.5 + 0.25 * np.sin(xx / rng.uniform(2, 9)) * np.cos(yy / rng.uniform(2, 9))
        a = np.stack([base, np.roll(base, 7, 1), 1 - base], -1) + rng.normal(0, rng.uniform(0, 0.1), (h, w, 3))
        return Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))

    (root / "train").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_train):
        rel = f"train/{i:04d}.png"
        image(train_size).save(root / rel)
        rows.append({"path": rel, "mos": float(rng.uniform(1, 5)),
                     "split": "val" if i < max(8, n_train // 16) else "train"})
    pd.DataFrame(rows).to_csv(root / "records.csv", index=False)
    (root / "score").mkdir(exist_ok=True)
    for i in range(n_score):
        image(score_size).save(root / "score" / f"{i:04d}.jpg", quality=90)
    return root / "records.csv", root / "score"


# ------------------------------------------------------------------------------- workers
def worker_train(a) -> None:
    from biqa.config import load_config
    from biqa.trainer import Trainer

    cfg = load_config({
        "name": "bench", "out_dir": a.run_dir, "seed": 0, "progress": False, "device": a.device,
        "data": {"records": a.records, "crop_size": a.crop, "num_workers": 0, "eval_resolution": "64x64"},
        "model": {"preset": a.preset, "pretrained": False},
        "train": {"epochs": 2, "batch_size": a.batch, "max_steps_per_epoch": a.steps, "channels_last": False},
        "test_at_end": False,
    })
    tr = Trainer(cfg)
    tr.fit()
    if tr.is_main:
        last = tr.history[-1]
        Path(a.result).write_text(json.dumps({"seconds": last["train_seconds"], "images": a.steps * a.batch}))


def worker_score(a) -> None:
    import torch

    from biqa import distributed as D
    from biqa.score_job import score_job
    from biqa.scorer import load

    ctx = D.setup(a.device)
    scorer = load(a.model, device=str(ctx.device), batch_size=8, num_workers=0,
                  threads=int(os.environ.get("OMP_NUM_THREADS", "0")) or None)
    scorer.forward(torch.zeros(1, 3, 64, 64))  # warm-up
    D.barrier()
    t0 = time.perf_counter()
    df = score_job(scorer, [a.folder], out=Path(a.run_dir) / "scores.csv")
    D.barrier()
    dt = time.perf_counter() - t0
    if ctx.is_main:
        Path(a.result).write_text(json.dumps({"seconds": dt, "images": len(df)}))


# -------------------------------------------------------------------------------- driver
def launch(task: str, procs: int, threads: int, args: list[str], tmp: Path) -> dict:
    result = tmp / f"{task}_{procs}x{threads}.json"
    run_dir = tmp / f"run_{task}_{procs}x{threads}"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("PYTHONPATH", str(ROOT))
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
                              if procs > 1 else [])
    cmd += [str(Path(__file__).resolve()), "--worker", task, "--result", str(result), "--run-dir", str(run_dir)] + args
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return json.loads(result.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--procs", default="1,2", help="process counts, e.g. 1,2")
    ap.add_argument("--preset", default="lite0-mos")
    ap.add_argument("--out", default=str(HERE / "results" / "distributed.csv"))
    # worker-only arguments
    ap.add_argument("--worker", choices=["train", "score"], help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    ap.add_argument("--records", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    if a.worker == "train":
        return worker_train(a)
    if a.worker == "score":
        return worker_score(a)

    if a.quick:
        a.crop, a.batch, a.steps = 64, 8, 3
    n_train = a.batch * a.steps + max(8, a.batch * a.steps // 16) + 8
    n_score = 16 if a.quick else 192
    score_size = (256, 192) if a.quick else (512, 384)
    procs = [int(p) for p in a.procs.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        records, folder = make_data(tmp / "data", n_train, n_score, (a.crop + 32, a.crop + 16), score_size)
        import torch

        from biqa.checkpoint import save_checkpoint
        from biqa.models import create_model

        torch.manual_seed(0)
        m = create_model(a.preset, pretrained=False)
        mean, std = m.preset.normalisation()
        ckpt = tmp / "model.safetensors"
        save_checkpoint(ckpt, {"model": m.eval()}, {
            "preset": m.preset.to_dict(), "label_scale": m.label_scale.to_dict(), "config": {}, "metrics": {},
            "preprocessing": {"mean": list(mean), "std": list(std), "crop_size": a.crop, "resolution": "full"}})
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if a.device == "cpu":
            configs = sorted({(1, cores)} | {(p, max(1, cores // p)) for p in procs} | {(1, 1)}, key=lambda c: (c[0], -c[1]))
        else:
            configs = [(p, 1) for p in procs]
        common = ["--device", a.device, "--preset", a.preset]
        for task, extra in (("train", ["--records", str(records), "--crop", str(a.crop), "--batch", str(a.batch),
                                       "--steps", str(a.steps)]),
                            ("score", ["--folder", str(folder), "--model", str(ckpt)])):
            for p, t in configs:
                r = launch(task, p, t, common + extra, tmp)
                rows.append({"task": task, "device": a.device, "processes": p, "threads_per_process": t,
                             "images": r["images"], "seconds": round(r["seconds"], 3),
                             "images_per_s": round(r["images"] / r["seconds"], 2)})
                print(f"{task:5s} {p} proc x {t} thread(s): {rows[-1]['images_per_s']:8.2f} img/s", flush=True)
    df = pd.DataFrame(rows)
    for task in df["task"].unique():
        sel = df["task"] == task
        base = df.loc[sel & (df["processes"] == 1), "images_per_s"].max()
        df.loc[sel, "speedup_vs_best_1proc"] = (df.loc[sel, "images_per_s"] / base).round(2)
    detail = (f"{a.preset}, train: {a.batch} global batch x {a.steps} steps at {a.crop} px (fp32); "
              f"score: {n_score} JPEGs at {score_size[0]}x{score_size[1]}, batch 8")
    df["setup"] = detail
    print()
    print(df.drop(columns=["setup"]).to_string(index=False))
    print(detail)
    if not a.quick or a.out != str(HERE / "results" / "distributed.csv"):
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out, index=False)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
