"""Start-up time of the command line: `biqa --help` and argument errors should be instant.

Each command runs as a fresh process (the interpreter start included), ``--repeats`` times; the
table gives the median and the fastest wall time. ``import biqa`` defers torch (PEP 562 lazy
attributes in biqa/__init__.py) and the CLI imports each command's modules only when it runs, so
help and argument errors never import torch; ``import torch`` alone is measured for comparison.

Usage: python benchmarks/cli_startup.py [--repeats 7] [--quick]
Prints a table and writes benchmarks/results/cli_startup.csv. Target: `biqa --help` < 0.5 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
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
        imported_torch = any(line.rstrip().endswith("| torch") for line in r.stderr.splitlines())
    return times, imported_torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats, no torch comparison")
    ap.add_argument("--out", default=str(HERE / "results" / "cli_startup.csv"))
    a = ap.parse_args(argv)
    repeats = 3 if a.quick else a.repeats
    rows = []
    for label, args, rc in COMMANDS:
        if a.quick and "import torch" in label:
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
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        f.write("command,median_s,min_s,runs,imports_torch\n")
        for r in rows:
            f.write(f"\"{r['command']}\",{r['median_s']:.4f},{r['min_s']:.4f},{r['runs']},{r['imports_torch']}\n")
    print(f"wrote {out}")
    return 0 if help_s < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
