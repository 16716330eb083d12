"""Scoring throughput and memory: biqa (torch and onnxruntime backends) against pyiqa 0.1.16's paq2piq.

In one run, on the same 64 JPEGs at 1024x768 (made from the photos in ../shared/data/photos into a
temporary folder), each measured in a process of its own:

- ``biqa bare forward``: biqa's network alone on pre-decoded, pre-normalised tensors, in the
  batches biqa's scorer would form (torch: channels-last, inference mode; and onnxruntime);
- ``biqa pipeline``: ``biqa.load(...).score(paths)`` from JPEG files to rows, with its defaults
  (on 2 CPUs: decode inline, no worker process; size-bucketed batches), model already loaded;
- ``biqa score`` CLI (each backend): wall-clock of the command, interpreter start and model load
  included (the onnxruntime backend's one-off ONNX export is done before, into a temporary cache);
- ``pyiqa paq2piq in-process``: ``pyiqa.create_metric("paq2piq")`` called on each file path, model
  already loaded;
- ``pyiqa`` CLI: ``pyiqa paq2piq -t DIR``, wall-clock.

Reduced precision (docs/speed.md), the same three kinds of row: ``onnxruntime-int8`` (the int8 export,
``biqa score --precision int8``) and ``torch-bf16`` (torch under bf16 autocast, where the CPU computes
bf16 natively; ``--precision bf16``). The onnxruntime command lines (float32 and int8) run the
torch-free path (:mod:`biqa.ortscore`: the cached export, no torch import). The reduced-precision
models are loaded with ``force=True``: speed is measured whatever the accuracy guard says
(``benchmarks/precision.py`` says whether they are offered). ``onnxruntime-legacy`` (bare forward and
pipeline) is the float32 export as biqa made it before the same-padding rewrite, for comparison:
``vs_fp32_legacy`` is each onnxruntime row against it.

``paired`` rows (the precision target's ratio): float32 and the reduced precision of one backend loaded
in one process, scoring the same chunks of 16 JPEGs in turn for 8 rounds (order swapped every round);
``vs_fp32`` is the median of the 8 per-round ratios (its quartiles in ``note``). On a shared machine whose
speed drifts (this one ran at ~60% of its earlier speed in one session), the fastest-round ratio of the separate processes
can land anywhere in a ±15% band; the paired ratio moves much less.

In-process measurements get one warm-up image first. All contenders run once per round, in turn
(``--repeats`` rounds, default 2), and each one's fastest round is kept. Peak RSS: ``ru_maxrss`` of the
measured process (the largest of it and its children, e.g. decode workers; not their sum), started
from a small launcher process so that this script's own memory is not counted.

pyiqa is a benchmark peer only (its licence forbids reusing its code): it is installed into its own
virtual environment, ``.bench/pyiqa-venv`` (git-ignored), created by this script on first use with
this interpreter's base Python. That venv does not install torch again: a ``.pth`` file puts this
environment's site-packages (torch 2.14.1, torchvision 0.29.1) after its own on ``sys.path``, and
torch/torchvision are pinned to these versions as constraints, so pip sees them as installed and
downloads only pyiqa and its other dependencies (about 1 GB). pyiqa cannot fetch weights offline, so
random weights (which do not change its speed) are written where torchvision and pyiqa look for
their downloads, under ``.bench/torch-home`` (``TORCH_HOME``): pyiqa's code then runs unmodified.

Usage: python benchmarks/vs_pyiqa.py [--quick] [--n 64] [--repeats 2] [--skip-pyiqa] [--model biqa-default]
(``--model biqa-fast --out benchmarks/results/vs_pyiqa_fast.csv``: the Lite0-only bundled model.)
(``.bench/pyiqa-venv`` can be a symbolic link to another checkout's ``.bench/pyiqa-venv``.)
Prints a table and writes benchmarks/results/vs_pyiqa.csv (not with --quick).
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

HERE = Path(__file__).resolve().parent
MODEL_ENV = "BIQA_VS_PYIQA_MODEL"  # --model, for the measured processes
ROOT = HERE.parent
BENCH = ROOT / ".bench"
PYIQA_VENV = BENCH / "pyiqa-venv"
TORCH_HOME = BENCH / "torch-home"
PYIQA_VERSION = "0.1.16"
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "photos"
SIZE = (1024, 768)


# ------------------------------------------------------------------ the pyiqa environment

def _venv_python() -> Path:
    return PYIQA_VENV / "bin" / "python"


def _pyiqa_env() -> dict:
    return dict(os.environ, TORCH_HOME=str(TORCH_HOME), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                PYTHONWARNINGS="ignore")


def ensure_pyiqa_venv() -> None:
    """Create .bench/pyiqa-venv with pyiqa installed and torch/torchvision shared from this env."""
    import sysconfig

    import torch
    import torchvision

    py = _venv_python()
    check = f"import pyiqa, torch; assert pyiqa.__version__ == '{PYIQA_VERSION}', pyiqa.__version__"
    if py.exists() and subprocess.run([str(py), "-c", check], capture_output=True, env=_pyiqa_env()).returncode == 0:
        return
    print(f"[vs_pyiqa] creating {PYIQA_VENV} with pyiqa {PYIQA_VERSION} (first run only; ~1 GB)", file=sys.stderr)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(PYIQA_VENV)], check=True)
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(purelib) / "zz_biqa_shared_torch.pth").write_text("\n".join(ours) + "\n")
    cons = BENCH / "pyiqa-constraints.txt"
    cons.write_text(f"torch=={torch.__version__.split('+')[0]}\ntorchvision=={torchvision.__version__.split('+')[0]}\n")
    subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c", str(cons),
                    f"pyiqa=={PYIQA_VERSION}"], check=True)
    where = subprocess.run([str(py), "-c", "import torch; print(torch.__file__)"], check=True, capture_output=True,
                           text=True, env=_pyiqa_env()).stdout.strip()
    if Path(where).resolve().is_relative_to(PYIQA_VENV.resolve()):
        raise SystemExit(f"pip installed a second torch into {PYIQA_VENV}; remove it and check the constraints")


_SEED_WEIGHTS = r"""
import os, torch, torchvision
from urllib.parse import urlparse
torch.manual_seed(0)
url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
ck = os.path.join(torch.hub.get_dir(), "checkpoints")
os.makedirs(ck, exist_ok=True)
f = os.path.join(ck, os.path.basename(urlparse(url).path))
if not os.path.exists(f):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), f)
from pyiqa.archs import paq2piq_arch
from pyiqa.utils import download_util
net = paq2piq_arch.PAQ2PIQ(pretrained=False)
g = os.path.join(download_util.DEFAULT_CACHE_DIR, os.path.basename(urlparse(paq2piq_arch.default_model_urls["url"]).path))
os.makedirs(os.path.dirname(g), exist_ok=True)
if not os.path.exists(g):
    torch.save(net.state_dict(), g)
print(f, g)
"""


def seed_random_weights() -> None:
    """Random ResNet-18 / PaQ-2-PiQ weights where torchvision and pyiqa look for downloaded files."""
    subprocess.run([str(_venv_python()), "-c", _SEED_WEIGHTS], check=True, capture_output=True, env=_pyiqa_env())


# ------------------------------------------------------------------ measured processes

def _load_scorer(spec: str, folder: str):
    """The measured biqa model (``--model``, passed to the measured processes as ``BIQA_VS_PYIQA_MODEL``) as a
    contender ``spec`` (``backend[-precision]``, e.g. ``onnxruntime-int8``; ``-legacy``: the float32 graph
    exported before the same-padding rewrite, next to ``folder``)."""
    import warnings

    import biqa

    backend, _, precision = spec.partition("-")
    model = os.environ.get(MODEL_ENV, "biqa-default")
    if precision == "legacy":
        model, precision = str(Path(folder).parent / "legacy.onnx"), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # force=True: speed is measured whatever the accuracy guard says
        return biqa.load(model, device="cpu", backend=backend, precision=precision or None, force=True)


def _worker(kind: str, folder: str, backend: str) -> dict:
    """Runs inside a measured process; returns {"seconds", "images"}."""
    paths = sorted(str(p) for p in Path(folder).glob("*.jpg"))
    if kind == "pyiqa":
        import pyiqa
        import torch

        metric = pyiqa.create_metric("paq2piq", device=torch.device("cpu"))
        float(metric(paths[0]))  # warm-up
        t0 = time.perf_counter()
        scores = [float(metric(p)) for p in paths]
        dt = time.perf_counter() - t0
        assert len(scores) == len(paths)
        return {"seconds": dt, "images": len(paths)}
    scorer = _load_scorer(backend, folder)
    if kind == "biqa-pipeline":
        scorer.score(paths[:1])  # warm-up
        t0 = time.perf_counter()
        df = scorer.score(paths)
        dt = time.perf_counter() - t0
        assert len(df) == len(paths) and (df["error"] == "").all()
        return {"seconds": dt, "images": len(paths), "workers": scorer.num_workers}
    if kind == "biqa-bare":
        import torch

        from biqa.data import SizeBucketBatchSampler, image_size, load_image, to_tensor

        xs = [to_tensor(load_image(p, scorer.resolution), scorer.mean, scorer.std) for p in paths]
        sizes = [image_size(p, scorer.resolution) for p in paths]
        fmt = torch.channels_last if scorer.channels_last else torch.contiguous_format
        batches = [torch.stack([xs[i] for i in b]).contiguous(memory_format=fmt)  # the layout the model takes
                   for b in SizeBucketBatchSampler(sizes, scorer.batch_size, scorer.max_batch_pixels)]
        scorer.forward(batches[0][:1])  # warm-up
        t0 = time.perf_counter()
        for x in batches:
            scorer.forward(x)["score"].numpy()
        dt = time.perf_counter() - t0
        return {"seconds": dt, "images": len(paths), "batch": len(batches[0])}
    raise ValueError(kind)


PAIRS = (("onnxruntime", "onnxruntime-int8"), ("torch", "torch-bf16"))  # (float32, reduced precision)
PAIRED_ROUNDS, PAIRED_CHUNK = 8, 16


def _paired(folder: str, pair: str) -> dict:
    """Runs inside a measured process: float32 and a reduced precision of one backend, both loaded, scoring
    the same chunks of JPEGs in alternation (``PAIRED_ROUNDS`` rounds; in each, both score one chunk of
    ``PAIRED_CHUNK`` files, the order swapped every round). A slow phase of the machine then slows both
    sides of a round alike: the ratio is taken per round, and its median reported."""
    import numpy as np

    paths = sorted(str(p) for p in Path(folder).glob("*.jpg"))
    scorers = [_load_scorer(b, folder) for b in pair.split(",")]
    for s in scorers:
        s.score(paths[:1])  # warm-up
    secs = np.zeros((PAIRED_ROUNDS, 2))
    for r in range(PAIRED_ROUNDS):
        chunk = [paths[(r * PAIRED_CHUNK + i) % len(paths)] for i in range(PAIRED_CHUNK)]
        for k in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            df = scorers[k].score(chunk)
            secs[r, k] = time.perf_counter() - t0
            assert (df["error"] == "").all()
    ratio = secs[:, 0] / secs[:, 1]
    return {"images": PAIRED_ROUNDS * PAIRED_CHUNK, "seconds": secs.sum(0).tolist(), "ratio_median": float(np.median(ratio)),
            "ratio_q1": float(np.quantile(ratio, 0.25)), "ratio_q3": float(np.quantile(ratio, 0.75)),
            "ratios": ratio.round(3).tolist()}


def _measure(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of a command; RSS: wait4's ru_maxrss via the launcher."""
    from biqa.bench import run_launched

    p, st = run_launched(cmd, env=env, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return st["wall"], st["maxrss_kb"] / 1024, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 images, no CSV (smoke run)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="rounds; each contender's fastest is kept")
    ap.add_argument("--photos", default=str(SHARED_PHOTOS))
    ap.add_argument("--skip-pyiqa", action="store_true", help="biqa only (no pyiqa venv needed)")
    ap.add_argument("--model", default="biqa-default",
                    help="the biqa model measured: a bundled name (biqa-default, biqa-fast) or a checkpoint")
    ap.add_argument("--out", default=str(HERE / "results" / "vs_pyiqa.csv"))
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "DIR", "BACKEND"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(_paired(a.worker[1], a.worker[2]) if a.worker[0] == "paired" else _worker(*a.worker)))
        return
    if a.quick:
        a.n, a.repeats = 8, 1
    sys.path.insert(0, str(HERE))
    import pandas as pd
    from throughput import make_jpegs

    if not a.skip_pyiqa:
        ensure_pyiqa_venv()
        seed_random_weights()
    from biqa.precision import native_bf16

    backends = ["torch", "onnxruntime", "onnxruntime-int8"] + (["torch-bf16"] if native_bf16("cpu") else [])
    if "torch-bf16" not in backends:
        print("[vs_pyiqa] torch-bf16 not measured: this CPU does not compute bf16 natively", file=sys.stderr)
    me = [sys.executable, str(Path(__file__).resolve())]
    best: dict = {}

    def record(what, group, backend, images, seconds, rss, note=""):
        """Keep each contender's fastest round (and its largest peak RSS over the rounds)."""
        print(f"  {what:<58} {images / seconds:6.2f} img/s {seconds:7.2f} s  peak RSS {rss:6.0f} MB",
              file=sys.stderr)
        old = best.get(what)
        if old is None or seconds < old["seconds"]:
            best[what] = {"what": what, "group": group, "backend": backend, "images": images, "seconds": seconds,
                          "images_per_s": images / seconds, "peak_rss_mb": max(rss, old["peak_rss_mb"]) if old
                          else rss, "note": note}
        else:
            old["peak_rss_mb"] = max(old["peak_rss_mb"], rss)

    with tempfile.TemporaryDirectory(prefix="biqa-vs-pyiqa-") as tmp:
        imgs = Path(tmp) / "images"
        imgs.mkdir()
        make_jpegs(imgs, a.n, size=SIZE, photos=Path(a.photos))
        cache = Path(tmp) / "cache"
        env = dict(os.environ, BIQA_CACHE_DIR=str(cache), **{MODEL_ENV: a.model})
        t0 = time.perf_counter()
        subprocess.run(me[:1] + ["-c", f"from biqa.export import cached_onnx, export_onnx; cached_onnx({a.model!r}); "
                                 f"cached_onnx({a.model!r}, precision='int8'); export_onnx({a.model!r}, "
                                 f"{str(Path(tmp) / 'legacy.onnx')!r}, rewrite_same_padding=False)"], check=True, env=env)
        export_s = time.perf_counter() - t0
        print(f"[vs_pyiqa] {a.n} JPEGs at {SIZE[0]}x{SIZE[1]}; ONNX export (once, cached): {export_s:.1f} s "
              "including start-up", file=sys.stderr)
        for rnd in range(a.repeats):
            print(f"[vs_pyiqa] round {rnd + 1} of {a.repeats}", file=sys.stderr)
            for backend in backends + ["onnxruntime-legacy"]:
                for kind, what in (("biqa-bare", "biqa bare forward (pre-decoded tensors)"),
                                   ("biqa-pipeline", "biqa pipeline (Scorer.score on JPEG files)")):
                    _, rss, text = _measure(me + ["--worker", kind, str(imgs), backend], env)
                    r = json.loads(text.strip().splitlines()[-1])
                    note = f"batch {r['batch']}" if "batch" in r else f"{r.get('workers')} decode worker(s)"
                    record(f"{what} [{backend}]", kind, backend, r["images"], r["seconds"], rss, note)
                base, _, precision = backend.partition("-")
                if precision == "legacy":  # bare forward and pipeline only: the float32 baseline before the rewrite
                    continue
                cli = me[:1] + ["-m", "biqa", "score", str(imgs), "-q", "--model", a.model, "--backend", base,
                                "--out", str(Path(tmp) / f"s_{backend}.csv")]
                cli += ["--precision", precision, "--force"] if precision else []
                wall, rss, _ = _measure(cli, env)
                torch_free = base == "onnxruntime"  # the cached export: biqa.ortscore, no torch import
                record(f"biqa score CLI [{backend}{', torch-free' if torch_free else ''}]", "biqa-cli", backend, a.n,
                       wall, rss, "wall-clock incl. start-up and model load" + (" (no torch import)" if torch_free
                                                                               else ""))
            if not a.skip_pyiqa:
                _, rss, text = _measure([str(_venv_python()), str(Path(__file__).resolve()), "--worker", "pyiqa",
                                         str(imgs), "-"], _pyiqa_env())
                r = json.loads(text.strip().splitlines()[-1])
                record("pyiqa paq2piq in-process (random weights)", "pyiqa-inprocess", "torch", r["images"],
                       r["seconds"], rss, "metric(path) per image")
                pyiqa_cli = [str(PYIQA_VENV / "bin" / "pyiqa"), "paq2piq", "-t", str(imgs), "--device", "cpu"]
                wall, rss, _ = _measure(pyiqa_cli, _pyiqa_env())
                record("pyiqa CLI paq2piq (random weights)", "pyiqa-cli", "torch", a.n, wall, rss,
                       "wall-clock incl. start-up and model load")

        paired = []
        for f32, low in PAIRS:
            if low not in backends:
                continue
            _, rss, text = _measure(me + ["--worker", "paired", str(imgs), f"{f32},{low}"], env)
            r = json.loads(text.strip().splitlines()[-1])
            print(f"  paired pipeline {low} / {f32}: median {r['ratio_median']:.2f}x over {PAIRED_ROUNDS} alternating "
                  f"rounds of {PAIRED_CHUNK} images (quartiles {r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}; {r['ratios']})",
                  file=sys.stderr)
            note = (f"paired: both loaded in one process, {PAIRED_ROUNDS} rounds of {PAIRED_CHUNK} JPEGs scored by each in "
                    f"turn; vs_fp32 = median per-round ratio (quartiles {r['ratio_q1']:.2f}-{r['ratio_q3']:.2f})")
            for k, b in enumerate((f32, low)):
                paired.append({"what": f"biqa pipeline, paired with {low if k == 0 else f32} [{b}]",
                               "group": "biqa-pipeline-paired", "backend": b, "images": r["images"],
                               "seconds": r["seconds"][k], "images_per_s": r["images"] / r["seconds"][k],
                               "peak_rss_mb": rss, "note": note + " (peak RSS: both models)",
                               "paired_ratio": r["ratio_median"] if k else float("nan")})

    res = pd.DataFrame(list(best.values()) + paired)
    ips = dict(zip(zip(res["group"], res["backend"]), res["images_per_s"]))
    res["vs_bare"] = [v / ips[("biqa-bare", b)] if g in ("biqa-pipeline", "biqa-cli", "biqa-bare") else float("nan")
                      for g, b, v in zip(res["group"], res["backend"], res["images_per_s"])]
    peer = {"biqa-pipeline": "pyiqa-inprocess", "biqa-bare": "pyiqa-inprocess", "biqa-cli": "pyiqa-cli"}
    res["vs_pyiqa"] = [v / ips[(peer[g], "torch")] if g in peer and (peer[g], "torch") in ips else float("nan")
                       for g, v in zip(res["group"], res["images_per_s"])]
    pyiqa_in = ips.get(("pyiqa-inprocess", "torch"))
    res["vs_pyiqa_inprocess"] = [v / pyiqa_in if pyiqa_in and g.startswith("biqa") else float("nan")
                                 for g, v in zip(res["group"], res["images_per_s"])]
    # each reduced precision against float32 on the same kind of row: int8 vs onnxruntime, bf16 vs torch
    fp32_of = {"onnxruntime-int8": "onnxruntime", "torch-bf16": "torch"}
    res["vs_fp32_legacy"] = [v / ips[(g, "onnxruntime-legacy")] if b.startswith("onnxruntime") and
                             (g, "onnxruntime-legacy") in ips else float("nan")
                             for g, b, v in zip(res["group"], res["backend"], res["images_per_s"])]
    res["vs_fp32"] = [v / ips[(g, fp32_of[b])] if b in fp32_of and (g, fp32_of[b]) in ips else float("nan")
                      for g, b, v in zip(res["group"], res["backend"], res["images_per_s"])]
    if "paired_ratio" in res.columns:  # the paired rows: the median of the per-round ratios, not the ratio of totals
        res["vs_fp32"] = res["paired_ratio"].where(res["group"] == "biqa-pipeline-paired", res["vs_fp32"])
        res = res.drop(columns="paired_ratio")
    import torch

    res["resolution"] = f"{SIZE[0]}x{SIZE[1]}"
    res["cpus"] = os.cpu_count()
    res["torch"] = torch.__version__
    from biqa.checkpoint import read_meta
    from biqa.models import backbone_names
    from biqa.zoo import resolve_checkpoint

    backbones = " + ".join(backbone_names(read_meta(resolve_checkpoint(a.model))["preset"]["backbone"]))
    res["model"] = f"{a.model} ({backbones}) vs pyiqa paq2piq (ResNet-18)"
    with pd.option_context("display.width", 220, "display.max_colwidth", 60):
        print(res[["what", "images", "seconds", "images_per_s", "peak_rss_mb", "vs_bare", "vs_pyiqa",
                   "vs_pyiqa_inprocess", "vs_fp32", "vs_fp32_legacy"]].to_string(index=False,
                                                                                  float_format=lambda v: f"{v:.2f}"))
    for b in backends:
        pipe, bare = ips[("biqa-pipeline", b)], ips[("biqa-bare", b)]
        print(f"[{b}] pipeline / bare forward = {pipe / bare:.2f} (target >= 0.80)")
        if ("pyiqa-inprocess", "torch") in ips:
            print(f"[{b}] biqa pipeline / pyiqa in-process = {pipe / ips[('pyiqa-inprocess', 'torch')]:.2f}x, "
                  f"biqa CLI / pyiqa CLI = {ips[('biqa-cli', b)] / ips[('pyiqa-cli', 'torch')]:.2f}x (target >= 3), "
                  f"biqa CLI / pyiqa in-process = {ips[('biqa-cli', b)] / pyiqa_in:.2f}x (target >= 5)")
    for b, ref in fp32_of.items():
        if b in backends:
            print(f"[{b}] pipeline / {ref} pipeline = {ips[('biqa-pipeline', b)] / ips[('biqa-pipeline', ref)]:.2f}x, "
                  f"bare forward {ips[('biqa-bare', b)] / ips[('biqa-bare', ref)]:.2f}x"
                  + (" (target >= 1.8 with the accuracy guard met: benchmarks/precision.py)" if b.endswith("int8") else ""))
            row = res[(res["group"] == "biqa-pipeline-paired") & (res["backend"] == b)]
            if len(row):
                print(f"[{b}] paired in one process (median of per-round ratios): {row['vs_fp32'].iloc[0]:.2f}x")
    if ("biqa-pipeline", "onnxruntime-legacy") in ips:
        leg = ips[("biqa-pipeline", "onnxruntime-legacy")]
        print(f"[onnxruntime-legacy] the float32 graph before the same-padding rewrite: fp32 pipeline "
              f"{ips[('biqa-pipeline', 'onnxruntime')] / leg:.2f}x of it, int8 pipeline "
              f"{ips[('biqa-pipeline', 'onnxruntime-int8')] / leg:.2f}x of it")
    if not a.quick:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(a.out, index=False, float_format="%.4f")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
