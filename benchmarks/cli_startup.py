"""Start-up time of the command line: `biqa --help` and argument errors should be instant, and so should
scoring with an exported ONNX model.

Each command runs as a fresh process (the interpreter start included), ``--repeats`` times; the
table gives the median and the fastest wall time. ``import biqa`` defers torch (PEP 562 lazy
attributes in biqa/__init__.py) and the CLI imports each command's modules only when it runs, so
help and argument errors never import torch; ``import torch`` alone is measured for comparison.

**Start-up to first score**: ``biqa score ONE.jpg`` (a 1024x768 JPEG) as a whole process, from the
interpreter's start to its exit after writing the score, with an ONNX file (``--model m.onnx``), with
the cached int8 export of biqa-default (``--precision int8``) and with the cached float32 one
(``--backend onnxruntime``): these take the torch-free path (biqa.ortscore: onnxruntime, NumPy,
Pillow); the torch path (``biqa score ONE.jpg``) is measured for comparison. The exports are made
once, before timing, into a temporary cache (``BIQA_CACHE_DIR``). Target: <= 1 s with the ONNX path.

Usage: python benchmarks/cli_startup.py [--repeats 7] [--quick] [--no-score]
Prints a table and writes benchmarks/results/cli_startup.csv. Targets: `biqa --help` < 0.5 s; start-up
to first score with an ONNX model <= 1 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

COMMANDS = [
    ("biqa --help", ["-m", "biqa", "--help"], 0),
    ("biqa score --help", ["-m", "biqa", "score", "--help"], 0),
    ("biqa score --resolution 0x0 (argument error)", ["-m", "biqa", "score", "--resolution", "0x0"], 2),
    ("biqa --version", ["-m", "biqa", "--version"], 0),
    ("python -c 'import biqa'", ["-c", "import biqa"], 0),
    ("python -c 'import torch' (for comparison)", ["-c", "import torch"], 0),
]
TARGET_S = 0.5
FIRST_SCORE_TARGET_S = 1.0


def score_commands(tmp: Path) -> list[tuple[str, list[str], int]]:
    """`biqa score` of one 1024x768 JPEG: the ONNX paths (exported here, once) and the torch path."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from throughput import make_jpegs

    from biqa.export import cached_onnx, export_onnx

    make_jpegs(tmp, 1, size=(1024, 768), photos=ROOT.parent / "shared" / "data" / "photos")
    img = str(next(tmp.glob("*.jpg")))
    onnx = export_onnx("biqa-default", tmp / "default.onnx")
    cached_onnx("biqa-default")
    cached_onnx("biqa-default", precision="int8")
    return [
        ("biqa score ONE.jpg --model default.onnx (fp32, torch-free)", ["-m", "biqa", "score", img, "--model", str(onnx),
                                                                       "-q", "--out", str(tmp / "a.csv")], 0),
        ("biqa score ONE.jpg --precision int8 (cached export, torch-free)",
         ["-m", "biqa", "score", img, "--precision", "int8", "--force", "-q", "--out", str(tmp / "b.csv")], 0),
        ("biqa score ONE.jpg --backend onnxruntime (cached export, torch-free)",
         ["-m", "biqa", "score", img, "--backend", "onnxruntime", "-q", "--out", str(tmp / "c.csv")], 0),
        ("biqa score ONE.jpg (torch, for comparison)", ["-m", "biqa", "score", img, "-q", "--out", str(tmp / "d.csv")], 0),
    ]


def time_command(args: list[str], expect_rc: int, repeats: int) -> tuple[list[float], bool]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times, imported_torch = [], False
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != expect_rc:
            raise SystemExit(f"{args}: exit status {r.returncode}, expected {expect_rc}\n{r.stderr[-2000:]}")
    if args[:2] == ["-m", "biqa"]:  # does the command import torch? (python -X importtime lists every module)
        r = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True)
        imported_torch = any(line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == "torch"
                             for line in r.stderr.splitlines())  # the name is indented by its nesting depth
    return times, imported_torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats, no torch comparisons")
    ap.add_argument("--no-score", action="store_true", help="only the instant commands (no export, no scoring)")
    ap.add_argument("--out", default=str(HERE / "results" / "cli_startup.csv"))
    a = ap.parse_args(argv)
    repeats = 3 if a.quick else a.repeats
    rows = []
    with tempfile.TemporaryDirectory(prefix="biqa-startup-") as tmp:
        os.environ["BIQA_CACHE_DIR"] = str(Path(tmp) / "cache")
        commands = list(COMMANDS)
        if not a.no_score:
            print("[cli_startup] exporting biqa-default (float32 and int8) once, before timing", file=sys.stderr)
            commands += score_commands(Path(tmp))
        for label, args, rc in commands:
            if a.quick and "comparison" in label:
                continue
            times, torch_in = time_command(args, rc, repeats)
            rows.append({"command": label, "median_s": statistics.median(times), "min_s": min(times), "runs": repeats,
                         "imports_torch": torch_in if args[:2] == ["-m", "biqa"] else ""})
    w = max(len(r["command"]) for r in rows)
    print(f"{'command':<{w}}  {'median s':>8}  {'min s':>6}  imports torch")
    for r in rows:
        print(f"{r['command']:<{w}}  {r['median_s']:8.3f}  {r['min_s']:6.3f}  {r['imports_torch']}")
    help_s = rows[0]["median_s"]
    print(f"\nbiqa --help: {help_s:.3f} s median of {repeats} (target < {TARGET_S} s: "
          f"{'met' if help_s < TARGET_S else 'NOT met'}); Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    first = [r for r in rows if "torch-free" in r["command"]]
    first_ok = all(r["median_s"] <= FIRST_SCORE_TARGET_S and r["imports_torch"] is False for r in first)
    for r in first:
        print(f"start-up to first score, {r['command']}: {r['median_s']:.3f} s median (target <= "
              f"{FIRST_SCORE_TARGET_S} s, no torch import: {'met' if r['median_s'] <= FIRST_SCORE_TARGET_S and r['imports_torch'] is False else 'NOT met'})")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        f.write("command,median_s,min_s,runs,imports_torch\n")
        for r in rows:
            f.write(f"\"{r['command']}\",{r['median_s']:.4f},{r['min_s']:.4f},{r['runs']},{r['imports_torch']}\n")
    print(f"wrote {out}")
    return 0 if help_s < TARGET_S and first_ok else 1


if __name__ == "__main__":
    sys.exit(main())
