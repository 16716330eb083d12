"""``biqa bench``: size, compute, latency, throughput and memory of a model, per backend.

For each image size and backend (``eager``: the torch model as loaded, NCHW, whole images, nothing
else; ``channels-last``: torch the way ``biqa score`` runs it on the CPU: channels-last, BatchNorms
folded into the convolutions, glibc allocator tuned (:func:`biqa.host.tune_allocator`), through
``biqa score``'s prediction core (:class:`biqa.prediction.Predictor`), so that images its tile policy
tiles (``tile``, default ``auto``: above 2 Mi px, e.g. 3840x2160) are timed in tiles as users get them;
``onnxruntime``: the model exported by :func:`biqa.export.export_onnx`, through the same core;
``torch-bf16``: ``channels-last`` under bf16 autocast (only where the CPU computes bf16 natively);
``onnxruntime-int8``: the int8 export (``export_onnx(..., quantize="int8")``: the shipped calibration
table of a bundled model, else calibrated on the bundled example photos); on request,
``onnxruntime-fp16``: the float32 export converted to float16, to show why it is not shipped, and
``onnxruntime-legacy``: the float32 export without the same-padding rewrite, as biqa made it before) and
for batch 1 and batch N, a fresh subprocess loads the model, runs one warm-up pass and
``repeats`` timed passes on a seeded random batch, and reports the median latency, images/s and
its peak resident memory (``VmHWM`` on Linux: the whole process, Python and libraries included) and
that peak's increase over the resident memory after loading the model (what the run itself
needed). One process per configuration, so that one configuration's peak does not hide
another's. Parameters and GMACs (multiply-accumulates per image, torch's FLOP counter / 2) come
from the torch model.

Batch N shrinks at large sizes so that a batch holds at most ``max_batch_pixels`` pixels
(default: two 3840x2160 images); when that leaves 1, only batch 1 is measured.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

BENCH_BACKENDS = ("eager", "channels-last", "torch-bf16", "onnxruntime", "onnxruntime-int8", "onnxruntime-fp16",
                  "onnxruntime-legacy")
DEFAULT_BACKENDS = "eager,channels-last,torch-bf16,onnxruntime,onnxruntime-int8"
# what each precision row is, and why the ones that are not shipped are not (printed under the table)
NOTES = {
    "torch-bf16": "torch channels-last under bf16 autocast (biqa score --backend torch --precision bf16)",
    "onnxruntime-int8": "the int8 export (biqa score --precision int8): static QDQ; the stem and the first block "
                        "float32",
    "onnxruntime-fp16": "NOT SHIPPED: the float32 export converted to float16 (inputs/outputs float32); onnxruntime's "
                        "x86 CPU kernels gain nothing from it",
    "onnxruntime-bf16": "NOT SHIPPED, not measurable: onnxruntime's CPU provider has no bfloat16 convolution",
    "onnxruntime-legacy": "for comparison: the float32 export as biqa made it before the same-padding rewrite "
                          "(timm's Pad + Conv)",
}
DEFAULT_SIZES = "224,1024x768,3840x2160"
QUICK_SIZES = "224,512x384"
DEFAULT_MAX_BATCH_PIXELS = 2 * 3840 * 2160


def parse_sizes(spec: str) -> list[tuple[int, int]]:
    """``"224,1024x768"`` -> ``[(224, 224), (1024, 768)]`` (width, height)."""
    out = []
    for part in str(spec).split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            w, h = (part.split("x") + [part])[:2] if "x" in part else (part, part)
            w, h = int(w), int(h)
        except ValueError:
            raise ValueError(f"bad size {part!r}: use N (square) or WxH, e.g. 224,1024x768") from None
        if w < 32 or h < 32:
            raise ValueError(f"size {part!r} is too small (at least 32 pixels a side)")
        out.append((w, h))
    if not out:
        raise ValueError("no sizes given")
    return out


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


# A small launcher between a benchmark and the process it measures: a forked child's ru_maxrss
# starts from its parent's RSS (copied at fork, kept across exec), so the parent must be small.
LAUNCHER = """import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    json.dump({"wall": wall, "maxrss_kb": usage.ru_maxrss}, f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_launched(cmd: list[str], *, env: dict | None = None, cwd=None) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``cmd`` (captured, text) from :data:`LAUNCHER`; returns the completed process and
    ``{"wall": seconds, "maxrss_kb": peak RSS of cmd's process tree's largest member}`` (empty if
    the command failed)."""
    with tempfile.TemporaryDirectory() as d:
        stat = os.path.join(d, "stat.json")
        p = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, stat, *cmd], capture_output=True, text=True,
                           env=env, cwd=cwd)
        st = {}
        if p.returncode == 0 and os.path.exists(stat):
            with open(stat) as f:
                st = json.load(f)
    return p, st


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: ``VmHWM`` (the peak of this program's own memory;
    ``ru_maxrss`` would also count the parent's memory, copied at fork and kept across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB on Linux


def _child(cfg: dict) -> dict:
    """One configuration, in this (fresh) process."""
    import torch

    from .host import tune_allocator

    from .prediction import Predictor

    torch.set_num_threads(cfg["threads"])
    backend, b, (w, h) = cfg["backend"], cfg["batch"], cfg["size"]
    tiles = 1
    if backend.startswith("onnxruntime"):
        from .export import OnnxRuntimeModel

        model = OnnxRuntimeModel(cfg["onnx"], threads=cfg["threads"])
        predictor = Predictor(model, tiling=cfg.get("tile", "auto"), batch_size=b)
        run = predictor.predict
    else:
        from .checkpoint import load_model

        model, _ = load_model(cfg["checkpoint"])
        model.eval()
        if backend in ("channels-last", "torch-bf16"):  # as biqa's torch scorer runs on the CPU
            from .inference import fold_batchnorm

            tune_allocator()
            fold_batchnorm(model)
            if backend == "torch-bf16":
                from .precision import AutocastModel

                model = AutocastModel(model)
            model = model.to(memory_format=torch.channels_last)
            predictor = Predictor(model, tiling=cfg.get("tile", "auto"), batch_size=b, channels_last=True)
            run = predictor.predict
        else:
            run = model
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, 3, h, w, generator=g)
    rss_loaded = _rss_mb()
    times = []
    with torch.inference_mode():
        out = run(x)  # warm-up: kernels chosen, memory planned
        if "tiles" in out:
            tiles = int(out["tiles"][0])
        for _ in range(cfg["repeats"]):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"tiles": tiles, "median_ms": 1000 * med, "min_ms": 1000 * min(times), "ms_per_image": 1000 * med / b,
            "images_per_s": b / med, "peak_rss_mb": _peak_rss_mb(), "rss_loaded_mb": rss_loaded,
            "peak_delta_mb": _peak_rss_mb() - rss_loaded}


def _run_child(cfg: dict, timeout: float | None = None) -> dict:
    cmd = [sys.executable, "-m", "biqa.bench", "--child", json.dumps(cfg)]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit status {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def model_stats(model, sizes) -> tuple[int, dict]:
    """(parameters, {(w, h): GMACs per image}) with torch's FLOP counter (FLOPs / 2 = MACs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    gmacs = {}
    with torch.inference_mode():
        for w, h in sizes:
            counter = FlopCounterMode(display=False)
            with counter:
                model(torch.zeros(1, 3, h, w))
            gmacs[(w, h)] = counter.get_total_flops() / 2e9
    return params, gmacs


def _resolve_model(spec: str, tmp: Path) -> tuple[Path, str]:
    """A checkpoint path for a trained model / checkpoint, or an untrained one for a preset name."""
    from .models import list_models
    from .zoo import TRAINED_MODELS, resolve_checkpoint

    if spec not in TRAINED_MODELS and spec in list_models() and not Path(spec).exists():
        import torch

        from .checkpoint import checkpoint_meta, save_checkpoint
        from .models import create_model

        torch.manual_seed(0)
        m = create_model(spec, pretrained=False).eval()
        meta = checkpoint_meta(m.preset, m.label_scale)
        return save_checkpoint(tmp / f"{spec}.safetensors", {"model": m}, meta), f"{spec} (preset, random weights)"
    path = resolve_checkpoint(spec)
    if path.suffix.lower() == ".onnx":
        raise ValueError("biqa bench needs the torch model (a trained model name, checkpoint or preset): "
                         "it exports the ONNX model itself")
    return path, spec


def bench(model: str = "biqa-default", sizes: str | list = DEFAULT_SIZES, *, batch: int = 8, repeats: int = 5,
          backends=DEFAULT_BACKENDS, threads: int | None = None, max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS,
          tile: str | int = "auto", log=print) -> pd.DataFrame:
    """Measure a model; one row per (size, backend, batch). See the module docstring (``tile``: the tile
    policy of the ``channels-last`` and ``onnxruntime`` rows, as ``biqa score --tile``)."""
    from .tiling import TilePolicy

    TilePolicy.parse(tile)  # a bad spec fails here, not in every child
    tile = str(tile)
    from .checkpoint import load_model
    from .host import default_threads

    sizes = parse_sizes(sizes) if isinstance(sizes, str) else list(sizes)
    backends = [b.strip() for b in (backends.split(",") if isinstance(backends, str) else backends)]
    for b in backends:
        if b not in BENCH_BACKENDS:
            raise ValueError(f"unknown backend {b!r}: choose from {', '.join(BENCH_BACKENDS)}")
    from .precision import native_bf16
    threads = int(threads or default_threads(0))
    rows = []
    with tempfile.TemporaryDirectory(prefix="biqa-bench-") as tmp:
        ckpt, label = _resolve_model(model, Path(tmp))
        net, meta = load_model(ckpt)
        params, gmacs = model_stats(net.eval(), sizes)
        preset = meta.get("preset", {}).get("name", "?")
        del net
        log(f"{label}: preset {preset}, {params / 1e6:.2f} M parameters, {threads} threads")
        onnx_paths = _onnx_exports(ckpt, Path(tmp), backends, log)
        skip = {}
        if "torch-bf16" in backends and not native_bf16("cpu"):
            skip["torch-bf16"] = "not offered: this CPU does not compute bf16 natively (AVX512-BF16 / AMX)"
            log(f"torch-bf16: {skip['torch-bf16']}")
        for w, h in sizes:
            n = max(1, min(batch, max_batch_pixels // (w * h)))
            for backend in backends:
                for b in sorted({1, n}):
                    cfg = {"checkpoint": str(ckpt), "onnx": str(onnx_paths.get(backend) or "") or None,
                           "backend": backend, "batch": b, "size": [w, h], "threads": threads,
                           "repeats": repeats, "tile": tile}
                    res = {"error": skip[backend]} if backend in skip else _run_child(cfg)
                    row = {"model": label, "preset": preset, "params_m": params / 1e6,
                           "gmacs_per_image": gmacs[(w, h)], "size": f"{w}x{h}", "backend": backend,
                           "batch": b, "threads": threads, "repeats": repeats, **res}
                    rows.append(row)
                    if "error" in res:
                        log(f"  {w}x{h} {backend:<13} batch {b}: failed: {res['error']}")
                    else:
                        log(f"  {w}x{h} {backend:<13} batch {b}: {res['median_ms']:9.1f} ms "
                            f"{res['images_per_s']:8.2f} img/s  peak RSS {res['peak_rss_mb']:7.0f} MB")
    df = pd.DataFrame(rows)
    df["cpus"] = os.cpu_count()
    df["machine"] = platform.machine()
    if "images_per_s" in df.columns:  # each row against the float32 onnxruntime row of its size and batch
        ref = df[df["backend"] == "onnxruntime"].set_index(["size", "batch"])["images_per_s"]
        df["vs_onnxruntime_fp32"] = [v / ref.get((s_, b_), float("nan")) for s_, b_, v in
                                     zip(df["size"], df["batch"], df["images_per_s"])]
    return df


def _onnx_exports(ckpt: Path, tmp: Path, backends, log) -> dict[str, Path]:
    """The ONNX files the onnxruntime rows run: float32, int8, float16 (as asked)."""
    from .export import export_onnx
    from .ortscore import default_calibration_table

    out: dict[str, Path] = {}
    if any(b.startswith("onnxruntime") for b in backends):
        t0 = time.perf_counter()
        out["onnxruntime"] = export_onnx(ckpt, tmp / "model.onnx")
        log(f"exported to ONNX in {time.perf_counter() - t0:.1f} s (checked against torch)")
    if "onnxruntime-int8" in backends:
        t0 = time.perf_counter()
        table = default_calibration_table(ckpt)
        cal = None if table else [str(Path(__file__).resolve().parent / "examples")]
        out["onnxruntime-int8"] = export_onnx(ckpt, tmp / "model-int8.onnx", quantize="int8", calibration=cal)
        log(f"int8 export in {time.perf_counter() - t0:.1f} s (calibration: "
            f"{'the shipped table ' + table.name if table else 'the bundled example photos'})")
    if "onnxruntime-legacy" in backends:
        out["onnxruntime-legacy"] = export_onnx(ckpt, tmp / "model-legacy.onnx", rewrite_same_padding=False)
    if "onnxruntime-fp16" in backends:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        m16 = convert_float_to_float16(onnx.load(str(out["onnxruntime"])), keep_io_types=True)
        onnx.save(m16, str(tmp / "model-fp16.onnx"))
        out["onnxruntime-fp16"] = tmp / "model-fp16.onnx"
    return out


def format_table(df: pd.DataFrame) -> str:
    cols = ["size", "gmacs_per_image", "backend", "batch", "tiles", "median_ms", "ms_per_image", "images_per_s",
            "vs_onnxruntime_fp32", "peak_rss_mb", "peak_delta_mb", "error"]
    cols = [c for c in cols if c in df.columns]
    t = df[cols].rename(columns={"gmacs_per_image": "GMACs/img", "median_ms": "latency_ms (median)",
                                 "vs_onnxruntime_fp32": "vs_ort_fp32", "peak_rss_mb": "peak_RSS_MB",
                                 "peak_delta_mb": "peak_over_loaded_MB"})
    if "error" in t.columns:
        t["error"] = t["error"].fillna("")
    with pd.option_context("display.width", 240, "display.max_columns", 20, "display.max_colwidth", 60):
        text = t.to_string(index=False, float_format=lambda v: f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}")
    notes = [f"  {b}: {NOTES[b]}" for b in [*dict.fromkeys(df["backend"]), "onnxruntime-bf16"] if b in NOTES]
    return text + ("\n" + "\n".join(notes) if notes else "")


if __name__ == "__main__":  # the per-configuration subprocess
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: biqa bench MODEL (this module's command line is internal)")
