"""Full-resolution scoring of 4K/5K photos with bounded memory: tiled scoring measured.

Scores the photos in ../shared/data/uhd (three JPEGs, 4272 to 5312 pixels wide) at full resolution
(``--resolution full``) with ``--tile auto`` (:mod:`biqa.tiling`: 768x768 tiles, 96 pixels of
overlap; on a CPU one 768 tile a forward pass, at most 1 Mi px), in these configurations:

- batch 1, 2 and 4 at 2 threads, batch 2 at 1 thread (``--quick``: one photo; batch 1 and 2 at
  2 threads, batch 2 at 1 thread);
- with ``--untiled`` also ``--tile off`` (the whole photo in one forward pass) at batch 1, 2 threads:
  this needs several GB (about 6 GB for a 16 Mpx photo with biqa-default) and is off by default.

Each configuration runs in a fresh process of its own (``python benchmarks/uhd_fullres.py --child``),
started from a small launcher so that this script's memory is not counted; the child loads the
model, scores all photos with ``biqa.load(...).score(paths)`` (decode, tiling, forward passes,
aggregation) and reports the scoring wall time and its peak resident memory (``VmHWM``: the whole
process, interpreter, torch and model included). Reported per configuration: seconds per image,
images, tiles, peak RSS (MB = MiB), and the scores.

Checks (printed as PASS/FAIL): all tiled configurations give the same scores within 1e-5, and
every tiled configuration's peak RSS is at most 1.5 GB (1536 MiB).

``--model``: a trained model name, a checkpoint path, or a preset name (an untrained checkpoint
is saved into a temporary folder with :func:`biqa.checkpoint.save_untrained`: weights change
neither time nor memory). Default: the ``mobileiqa-student`` preset where it exists, else the
bundled ``biqa-default``.

``--precision int8`` scores the int8 export (onnxruntime), ``--precision bf16`` torch under bf16 autocast;
``--torch-free`` scores an ONNX export as the command line does without torch (:mod:`biqa.ortscore`).

Usage: python benchmarks/uhd_fullres.py [--quick] [--untiled] [--model M] [--backend torch|onnxruntime]
    [--precision fp32|bf16|int8] [--torch-free]
Prints a table and writes benchmarks/results/uhd_fullres.csv (not with --quick, unless --out is given).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UHD = ROOT.parent / "shared" / "data" / "uhd"
PREFERRED_MODEL = "mobileiqa-student"
RSS_LIMIT_MB = 1536.0  # 1.5 GB (GiB), per process
SCORE_ATOL = 1e-5


def default_model() -> str:
    from biqa.models import list_models

    return PREFERRED_MODEL if PREFERRED_MODEL in list_models() else "biqa-default"


def resolve_model(spec: str, tmp: Path) -> tuple[str, str]:
    """(checkpoint path, description) for a trained model name, a checkpoint, or a preset."""
    from biqa.models import list_models
    from biqa.zoo import TRAINED_MODELS, resolve_checkpoint

    if spec in TRAINED_MODELS or Path(spec).expanduser().exists():
        return str(resolve_checkpoint(spec)), spec
    if spec in list_models():
        from biqa.checkpoint import save_untrained

        return save_untrained(tmp / f"{spec}.safetensors", spec, seed=0), f"{spec} (untrained weights)"
    return str(resolve_checkpoint(spec)), spec  # raises with a helpful message


# ------------------------------------------------------------------ the measured child

def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(cfg: dict) -> dict:
    if cfg.get("torch_free"):  # the command line's path for an ONNX model: onnxruntime, NumPy, Pillow; no torch
        from biqa.ortscore import OrtScorer

        scorer = OrtScorer(cfg["onnx"], threads=cfg["threads"], batch_size=cfg["batch"], resolution="full",
                           tile=cfg["tile"])
        t0 = time.perf_counter()
        rows = scorer.score_paths(cfg["paths"])
        seconds = time.perf_counter() - t0
        if any(r["error"] for r in rows):
            raise RuntimeError(f"scoring errors: {[r['error'] for r in rows if r['error']]}")
        assert "torch" not in sys.modules
        return {"seconds": seconds, "scores": [r["score"] for r in rows], "tiles": [r["tiles"] for r in rows],
                "peak_rss_mb": _peak_rss_mb()}
    import warnings

    import torch

    import biqa

    torch.set_num_threads(cfg["threads"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # force=True: memory is measured whatever the accuracy guard says
        scorer = biqa.load(cfg["checkpoint"], device="cpu", backend=cfg["backend"], num_workers=0,
                           batch_size=cfg["batch"], threads=cfg["threads"], resolution="full", tile=cfg["tile"],
                           precision=cfg.get("precision"), force=True)
    t0 = time.perf_counter()
    df = scorer.score(cfg["paths"])
    seconds = time.perf_counter() - t0
    if (df["error"] != "").any():
        raise RuntimeError(f"scoring errors: {df.loc[df['error'] != '', 'error'].tolist()}")
    return {"seconds": seconds, "scores": df["score"].tolist(), "tiles": [int(t) for t in df["tiles"]],
            "peak_rss_mb": _peak_rss_mb()}


def measure(cfg: dict) -> dict:
    """One configuration in a fresh process, started from biqa.bench's small launcher so that
    nothing of this script's memory is in the measured process (it reads its own VmHWM as well)."""
    from biqa.bench import run_launched

    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]))
    p, st = run_launched([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(cfg)], env=env, cwd=ROOT)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit {p.returncode}"]}
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_s"] = st["wall"]
    return res


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None,
                    help=f"trained model name, checkpoint or preset (default: {PREFERRED_MODEL} if it exists, "
                         "else biqa-default)")
    ap.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16", "int8"],
                    help="as biqa score --precision (int8: onnxruntime; bf16: torch)")
    ap.add_argument("--torch-free", action="store_true",
                    help="onnxruntime: score as the command line does with an ONNX model, without importing torch")
    ap.add_argument("--photos", default=str(UHD))
    ap.add_argument("--quick", action="store_true", help="one photo, 3 configurations (about a minute)")
    ap.add_argument("--untiled", action="store_true",
                    help="also score untiled (--tile off) at full resolution: several GB of memory")
    ap.add_argument("--out", default=None, help="CSV (default: benchmarks/results/uhd_fullres.csv; none with --quick)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return 0

    import pandas as pd
    from PIL import Image

    from biqa.scorer import collect_inputs
    from biqa.tiling import TilePolicy

    paths = collect_inputs([a.photos])
    if not paths:
        raise SystemExit(f"no photos in {a.photos}")
    if a.quick:
        paths = sorted(paths, key=lambda p: Image.open(p).size[0] * Image.open(p).size[1])[:1]
    configs = [(1, 2), (2, 2), (2, 1)] if a.quick else [(1, 2), (2, 2), (4, 2), (2, 1)]
    runs = [("auto", b, t) for b, t in configs] + ([("off", 1, 2)] if a.untiled else [])
    model = a.model or default_model()
    mpx = sum(Image.open(p).size[0] * Image.open(p).size[1] for p in paths) / 1e6
    policy = TilePolicy.parse("auto")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, desc = resolve_model(model, Path(tmp))
        if a.precision == "int8" or a.torch_free:
            a.backend = "onnxruntime"
        onnx = None
        if a.backend == "onnxruntime":  # export once, before the measured processes
            from biqa.export import cached_onnx

            onnx = str(cached_onnx(ckpt, precision=a.precision or "fp32"))
        label = a.backend + (f" {a.precision}" if a.precision else "") + (" torch-free" if a.torch_free else "")
        print(f"model: {desc}; backend {label}; {len(paths)} photo(s), {mpx:.1f} Mpx; tile auto = {policy}; "
              f"{os.cpu_count()} CPU(s)", file=sys.stderr)
        for tile, batch, threads in runs:
            cfg = {"checkpoint": ckpt, "backend": a.backend, "paths": paths, "tile": tile, "batch": batch,
                   "threads": threads, "precision": a.precision, "torch_free": a.torch_free, "onnx": onnx}
            r = measure(cfg)
            row = {"model": desc, "backend": label, "tile": tile, "batch": batch, "threads": threads,
                   "images": len(paths), "megapixels": round(mpx, 2)}
            if "error" in r:
                row["error"] = " ".join(r["error"])
            else:
                row.update(tiles=sum(r["tiles"]), s_per_image=r["seconds"] / len(paths), seconds=r["seconds"],
                           process_s=r["process_s"], peak_rss_mb=r["peak_rss_mb"],
                           scores=";".join(f"{s:.6f}" for s in r["scores"]))
                row["_scores"] = r["scores"]
            rows.append(row)
            print(f"  tile {tile} batch {batch} threads {threads}: "
                  + (row.get("error") or f"{row['s_per_image']:.2f} s/image, {row['tiles']} tiles, "
                                         f"peak {row['peak_rss_mb']:.0f} MB"), file=sys.stderr, flush=True)
    tiled = [r for r in rows if r["tile"] != "off"]
    ok_runs = [r for r in tiled if "error" not in r]
    ref = ok_runs[0]["_scores"] if ok_runs else None
    for r in rows:
        if "_scores" in r and ref is not None:
            r["max_abs_diff"] = max(abs(x - y) for x, y in zip(r.pop("_scores"), ref))
    same = len(ok_runs) == len(tiled) and all(r["max_abs_diff"] <= SCORE_ATOL for r in ok_runs)
    worst = max((r["peak_rss_mb"] for r in ok_runs), default=float("nan"))
    rss_ok = len(ok_runs) == len(tiled) and worst <= RSS_LIMIT_MB
    df = pd.DataFrame(rows)
    df["cpus"] = os.cpu_count()
    df["machine"] = platform.machine()
    show = ["tile", "batch", "threads", "images", "tiles", "s_per_image", "peak_rss_mb", "max_abs_diff"]
    show = [c for c in show if c in df.columns] + (["error"] if "error" in df.columns else [])
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(df[show].to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    print(f"scores (tiled, per photo, batch 1 threads 2): {ok_runs[0]['scores'] if ok_runs else '-'}")
    print(f"{'PASS' if same else 'FAIL'}: tiled configurations give the same scores within {SCORE_ATOL:g} "
          f"(largest difference {max((r['max_abs_diff'] for r in ok_runs), default=float('nan')):.2g})")
    print(f"{'PASS' if rss_ok else 'FAIL'}: peak RSS of each tiled process <= {RSS_LIMIT_MB:.0f} MB "
          f"(largest {worst:.0f} MB)")
    out = a.out or (None if a.quick else str(HERE / "results" / "uhd_fullres.csv"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False, float_format="%.6g")
        print(f"wrote {out}", file=sys.stderr)
    return 0 if (same and rss_ok) else 1


if __name__ == "__main__":
    sys.exit(main())
