"""Scoring throughput at 1024x768: `biqa score`'s pipeline against the bare backbone forward.

Both are measured in one run on the same images (JPEGs made from ../shared/data/photos):

- ``bare forward``: the network alone on pre-decoded, pre-normalised tensors (upper bound);
- ``Scorer.score``: biqa's whole pipeline from JPEG files (decode inline or in DataLoader workers,
  size-bucketed batches of at most 0.5 megapixels, channels-last, inference mode) -> one row per file;
- ``biqa score`` CLI: the same, as a subprocess, including interpreter start and model load.

Usage: python benchmarks/throughput.py [--quick] [--n 32] [--batch-size 8] [--model biqa-default]
Prints a table and writes benchmarks/results/throughput.csv.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
SHARED_PHOTOS = HERE.parent.parent / "shared" / "data" / "photos"


def make_jpegs(out: Path, n: int, size=(1024, 768), photos: Path = SHARED_PHOTOS) -> list[str]:
    srcs = sorted(p for p in photos.glob("*.png"))
    if not srcs:
        raise SystemExit(f"no photos in {photos}: pass --photos DIR")
    paths = []
    for i in range(n):
        im = Image.open(srcs[i % len(srcs)]).convert("RGB")
        w, h = size
        s = max(w / im.width, h / im.height)
        im = im.resize((max(w, round(im.width * s)), max(h, round(im.height * s))), Image.LANCZOS)
        x, y = (im.width - w) // 2, (im.height - h) // 2
        p = out / f"img{i:03d}.jpg"
        im.crop((x, y, x + w, y + h)).save(p, quality=90)
        paths.append(str(p))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 images, 1 repeat (CI smoke run)")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default="biqa-default")
    ap.add_argument("--photos", default=str(SHARED_PHOTOS))
    ap.add_argument("--out", default=str(HERE / "results" / "throughput.csv"))
    a = ap.parse_args()
    if a.quick:
        a.n, a.repeats = 8, 1
    import biqa
    from biqa.data import load_image, to_tensor

    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), a.n, photos=Path(a.photos))
        scorer = biqa.load(a.model, device="cpu", batch_size=a.batch_size)
        # bare forward on pre-decoded tensors, in the batches the scorer forms (at most
        # max_batch_pixels per batch: one 1024x768 image), channels-last, inference mode
        x_all = torch.stack([to_tensor(load_image(p), scorer.mean, scorer.std) for p in paths])
        model = scorer.model
        h, w = x_all.shape[-2:]
        bs = max(1, min(a.batch_size, (scorer.max_batch_pixels or h * w * a.batch_size) // (h * w)))
        with torch.inference_mode():
            model(x_all[:bs].contiguous(memory_format=torch.channels_last))  # warm-up
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                for k in range(0, len(x_all), bs):
                    model(x_all[k:k + bs].contiguous(memory_format=torch.channels_last))
                best = min(best, time.perf_counter() - t0)
        rows.append({"what": f"bare backbone+head forward (pre-decoded tensors, batch {bs})", "images": a.n,
                     "seconds": best})
        best = float("inf")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            df = scorer.score(paths)
            best = min(best, time.perf_counter() - t0)
        assert (df["error"] == "").all() and len(df) == a.n
        rows.append({"what": f"Scorer.score from JPEG files ({scorer.num_workers} workers)", "images": a.n,
                     "seconds": best})
        cli = [sys.executable, "-m", "biqa", "score", tmp, "--model", a.model, "-q", "-b", str(a.batch_size),
               "--out", os.path.join(tmp, "s.csv")]
        t0 = time.perf_counter()
        subprocess.run(cli, check=True)
        rows.append({"what": "biqa score CLI (incl. start-up and model load)", "images": a.n,
                     "seconds": time.perf_counter() - t0})
    res = pd.DataFrame(rows)
    res["images_per_s"] = res["images"] / res["seconds"]
    res["vs_bare"] = res["images_per_s"] / res["images_per_s"].iloc[0]
    res["resolution"] = "1024x768"
    res["batch_size"] = a.batch_size  # the scorer's cap; 1024x768 batches hold one image
    res["torch_threads"] = threads
    res["cpus"] = os.cpu_count()
    res["model"] = a.model
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    if not a.quick:
        res.to_csv(a.out, index=False)
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(res[["what", "images", "seconds", "images_per_s", "vs_bare"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"(1024x768, batch {a.batch_size}, {threads} torch threads, {os.cpu_count()} CPUs)"
          + ("" if a.quick else f" -> {a.out}"))


if __name__ == "__main__":
    main()
