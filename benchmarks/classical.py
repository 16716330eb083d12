"""Classical baselines (BRISQUE, NIQE, PIQE): time per 1024x768 image on one core, and optionally
SRCC / PLCC against MOS on a records CSV (e.g. LIVE Challenge).

Timing, per method, on JPEGs (quality 90) made from ../shared/data/photos (centre crops after a
resize to cover 1024x768; the lomiri-wallpapers photos are not used):

- ``method ms``: the method alone on decoded uint8 arrays (median over the images);
- ``Scorer ms/img``: ``biqa.load(NAME).score(paths)``: the whole pipeline from JPEG files (decode,
  batching, one row per file), wall time / images.

One core: OMP/MKL/OpenBLAS threads, torch threads and OpenCV threads are all set to 1.

Usage: python benchmarks/classical.py [--quick] [--n 12] [--records livec.csv]
Prints a table and writes benchmarks/results/classical.csv (and classical_records.csv with --records).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED_PHOTOS = HERE.parent.parent / "shared" / "data" / "photos"
METHODS = ("brisque", "niqe", "piqe")
sys.path.insert(0, str(HERE))
from throughput import make_jpegs  # noqa: E402  (the same 1024x768 JPEGs as the throughput benchmark)


def time_methods(paths: list[str], repeats: int) -> pd.DataFrame:
    import biqa
    from biqa.classical import get_method

    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    rows = []
    for name in METHODS:
        m = get_method(name)
        try:
            if m.check:
                m.check()
        except ImportError as e:
            rows.append({"method": name, "error": str(e)})
            continue
        m.compute(arrays[0])  # warm-up (model load)
        per = []
        for a in arrays:
            t = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                m.compute(a)
                t.append(time.perf_counter() - t0)
            per.append(min(t))
        scorer = biqa.load(name, num_workers=0)
        scorer.score(paths[:1])
        t0 = time.perf_counter()
        df = scorer.score(paths)
        wall = time.perf_counter() - t0
        assert (df["error"] == "").all(), df[df["error"] != ""]
        rows.append({"method": name, "images": len(paths), "size": "1024x768",
                     "method_ms_median": 1000 * float(np.median(per)), "method_ms_max": 1000 * float(np.max(per)),
                     "scorer_ms_per_img": 1000 * wall / len(paths), "images_per_s": len(paths) / wall,
                     "backend": m.backend})
    return pd.DataFrame(rows)


def eval_records(records: str, n_boot: int) -> pd.DataFrame:
    from biqa.evaluate import evaluate_checkpoint

    rows = []
    for name in METHODS:
        res = evaluate_checkpoint(name, records, split="all", n_boot=n_boot, progress=False, num_workers=0)
        rows.append({"method": name, "records": Path(records).name, "n": res["n"],
                     "srcc": res["srcc"]["value"], "srcc_lo": res["srcc"]["ci_low"], "srcc_hi": res["srcc"]["ci_high"],
                     "plcc": res["plcc"]["value"], "plcc_lo": res["plcc"]["ci_low"], "plcc_hi": res["plcc"]["ci_high"],
                     "plcc_logistic": res["plcc_fitted"]["value"]})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 images, 1 repeat")
    ap.add_argument("--n", type=int, default=12, help="images (default 12)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per image, best kept (default 3)")
    ap.add_argument("--photos", default=str(SHARED_PHOTOS))
    ap.add_argument("--records", default=None, help="records CSV with mos (e.g. LIVE Challenge): SRCC / PLCC")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default=str(HERE / "results" / "classical.csv"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    n, repeats = (3, 1) if a.quick else (a.n, a.repeats)
    with tempfile.TemporaryDirectory() as d:
        paths = make_jpegs(Path(d), n, photos=Path(a.photos))
        df = time_methods(paths, repeats)
    with pd.option_context("display.width", 160, "display.float_format", "{:.1f}".format):
        print(df.to_string(index=False))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.2f")
    print(f"wrote {out}")
    if a.records:
        ev = eval_records(a.records, a.n_boot)
        with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
            print(ev.to_string(index=False))
        rec_out = out.with_name(out.stem + "_records.csv")
        ev.to_csv(rec_out, index=False, float_format="%.4f")
        print(f"wrote {rec_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
