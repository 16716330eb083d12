"""Learning strategies against the supervised baseline on the synthetic-distortion benchmark.

Small training set (the seeds claim their largest gains there): ``--train-images`` (1,000) images
drawn at random per seed from the benchmark's whole train split (39 photos x 2 crops x 126); model
selection on ``--val-photos`` of its val photos (drawn per seed); held-out SRCC/PLCC on
``--test-photos`` of its test photos (by default all 9, the same for every seed and strategy, so runs
are paired). Each strategy is trained with ``--seeds`` seeds. OHEM (both views) and the baseline are
also trained on the long-tailed variant of the same training set (8 types keep 5 levels, 8 keep 3,
9 keep 1, drawn per seed). The teacher for ``distill`` is a larger Lite variant (Lite2) trained once,
on seed 1's training set (it never sees a val or test photo).

The table gives, per strategy: held-out SRCC / PLCC, mean and 95% t-interval over seeds; the paired
difference to the baseline of the same seed (same training photos, same test images), mean and 95%
t-interval over seeds, and a verdict: "better" / "worse" when that interval excludes 0, else "tie";
and the step time relative to the baseline, measured in the same run (one trainer in memory at a time,
each strategy's block of steps between two baseline blocks, two passes in opposite orders, median).

  python benchmarks/strategies.py            # full: needs data/synth (README: "The synthetic-distortion benchmark")
  python benchmarks/strategies.py --quick    # CI smoke run on a few images
  python benchmarks/strategies.py --step-time-only
  python benchmarks/strategies.py --resume --teacher T  # finish a stopped run: only the runs missing
                                                        # from strategies.csv, reusing its teacher T

Writes benchmarks/results/strategies.csv (per run), strategies_summary.csv and step_time.csv.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

STRATEGIES = {
    "baseline": "supervised",
    "ohem": ["ohem"],            # the pruned branch sees the same crop (x' = x)
    "ohem-crop": ["ohem"],       # ... an independent random sub-crop of it (side: OHEM_CROP_SCALE)
    "mutual": ["mutual"],        # Kaiming / Xavier head init, output layer rescaled (mutual.init: scaled)
    "mutual-full-init": ["mutual"],  # ... raw Kaiming / Xavier draws (mutual.init: full; the old default)
    "distill": ["distill"],
    "ohem+distill": ["ohem", "distill"],
}
LONG_TAILED = ("baseline", "ohem", "ohem-crop")
OHEM_CROP_SCALE = 0.5  # biqa's default for ohem.view: crop


def small_records(records: Path, out: Path, train_images: int, val_photos: int, test_photos: int, seed: int,
                  crops: int = 1) -> Path:
    """A small-training-set version of the benchmark, plus a long-tailed train column.

    Train: ``train_images`` images drawn at random (per seed) from the whole train split (every photo
    and crop), so a small set still spans its content, as a random subset of an authentic dataset
    does. Val / test: every image of ``crops`` crop(s) of ``val_photos`` / ``test_photos`` photos of
    their splits (drawn per seed when fewer than the split has)."""
    from biqa.datasets import long_tailed_kadid

    df = pd.read_csv(records)
    rng = np.random.default_rng(seed)
    train = df[df["split"] == "train"]
    keep = [train.iloc[np.sort(rng.choice(len(train), size=min(train_images, len(train)), replace=False))]]
    for part, n in (("val", val_photos), ("test", test_photos)):
        refs = sorted(df.loc[df["split"] == part, "ref"].unique())
        if n < len(refs):
            refs = list(rng.choice(refs, size=n, replace=False))
        keep.append(df[(df["split"] == part) & df["ref"].isin(refs) & (df["crop"] < crops)])
    small = pd.concat(keep, ignore_index=True)
    root = records.resolve().parent
    small["path"] = [str(root / p) for p in small["path"]]
    dist = small[small["dist_id"] > 0].copy()
    dist["split_seed1"] = dist["split"]
    lt = long_tailed_kadid(dist.rename(columns={"dist_type": "kind"}).rename(columns={"dist_id": "dist_type"}),
                           seed=seed, columns=["split_seed1"])
    small["split_lt"] = small["split"]
    small.loc[small["dist_id"] > 0, "split_lt"] = lt["split_lt_seed1"].to_numpy()
    out.mkdir(parents=True, exist_ok=True)
    small.to_csv(out / "records.csv", index=False)
    return out / "records.csv"


def base_config(records: Path, out: Path, args, **extra) -> dict:
    from biqa.config import load_config

    cfg = {
        "name": "bench", "out_dir": str(out), "seed": 0, "progress": False,
        "data": {"records": str(records), "label_range": [1, 5], "crop_size": args.crop, "num_workers": 1,
                 "eval_resolution": args.eval_resolution},
        "model": {"preset": "lite0-mos", "pretrained": not args.quick},
        "strategy": {"name": "supervised", "loss": "mse"},
        "optim": {"name": "adamw", "lr_backbone": 3e-4, "lr_head": 3e-3, "weight_decay": 1e-4},
        "sched": {"name": "cosine", "warmup_steps": 10},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": 16,
                  "channels_last": True, "amp": not args.quick,
                  "max_steps_per_epoch": 2 if args.quick else None},
        "early_stop": {"metric": "srcc", "patience": 100},
    }
    for k, v in extra.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(cfg)


def strategy_section(name: str, teacher: str | None) -> dict:
    spec = STRATEGIES[name]
    s = {"name": spec, "loss": "mse"}
    if "ohem" in spec:
        s["ohem"] = {"ratio": 0.7, "lam": 1.0, "refresh": "epoch"}
        if name == "ohem-crop":
            s["ohem"].update(view="crop", crop_scale=OHEM_CROP_SCALE)
    if "mutual" in spec:
        s["mutual"] = {"peers": 2, "lam": 1.0, "init": "full" if name == "mutual-full-init" else "scaled"}
    if "distill" in spec:
        s["distill"] = {"teacher": teacher, "w_output": 1.0, "w_feature": 1.0}
    return s


def missing_runs(done: pd.DataFrame, names: list[str], seeds: int, variants: list[str]) -> list[tuple[str, str, int]]:
    """The (variant, strategy, seed) runs of the plan that ``done`` (rows of strategies.csv) lacks, in
    training order; the long-tailed variant trains only the ``LONG_TAILED`` strategies."""
    have = set(zip(done["variant"], done["strategy"], done["seed"].astype(int))) if len(done) else set()
    return [(v, n, seed) for seed in range(1, seeds + 1) for v in variants for n in names
            if (v == "balanced" or n in LONG_TAILED) and (v, n, seed) not in have]


def t_interval(x: np.ndarray) -> tuple[float, float]:
    from scipy.stats import t

    x = np.asarray(x, float)
    if len(x) < 2:
        return float("nan"), float("nan")
    h = t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - h), float(x.mean() + h)


def step_times(records: Path, teacher: str | None, args, reps: int, names: list[str]) -> pd.DataFrame:
    """Seconds per training step (forward, loss, backward, update) on one fixed batch, and the ratio to
    the baseline.

    One strategy in memory at a time (interleaving several trainers step by step inflated the
    multi-network strategies here). Every strategy's block of steps sits between two baseline blocks
    (B S1 B S2 B ...), and its ratio is to the mean of those two neighbours, so the machine's drift
    (a shared host: the same strategy measured 1.1x-1.8x in different minutes) cancels; two passes in
    opposite orders, the median of the two ratios (seconds: median over both passes' steps)."""
    from biqa.trainer import Trainer, collate

    def block(name: str) -> list[float]:
        cfg = base_config(records, Path(tmp) / name, args, strategy=strategy_section(name, teacher))
        tr = Trainer(cfg)
        b = collate([tr.train_ds[i] for i in range(args.batch_size)])
        b["image"] = b["image"].contiguous(memory_format=torch.channels_last)
        for net in tr.strategy.nets.values():
            net.train()
        tr.strategy.on_epoch_start(0)
        out = []
        for r in range(reps + 1):
            t0 = time.perf_counter()
            with tr._autocast():
                loss, _ = tr.strategy.loss(b)
            loss.backward()
            tr.optimizer.step()
            tr.optimizer.zero_grad(set_to_none=True)
            if r > 0:  # first step = warm-up
                out.append(time.perf_counter() - t0)
        del tr
        return out

    others = [n for n in names if n != "baseline"]
    times: dict[str, list[float]] = {n: [] for n in ["baseline", *others]}
    ratios: dict[str, list[float]] = {n: [] for n in others}
    with tempfile.TemporaryDirectory() as tmp:
        if teacher is None and any("distill" in STRATEGIES[n] for n in names):
            from biqa.checkpoint import save_untrained

            # untrained lite2-mos: enough to time distillation
            teacher = save_untrained(Path(tmp) / "teacher.safetensors", "lite2-mos")
        for order in (others, others[::-1]):
            before = block("baseline")
            times["baseline"] += before
            for name in order:
                t = block(name)
                after = block("baseline")
                times[name] += t
                times["baseline"] += after
                ratios[name].append(float(np.median(t)) / ((float(np.median(before)) + float(np.median(after))) / 2))
                before = after
    rows = [{"strategy": n, "step_seconds": float(np.median(v)),
             "vs_baseline": 1.0 if n == "baseline" else float(np.median(ratios[n]))} for n, v in times.items()]
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, strategy): mean and t-interval over seeds, and the paired difference to the
    baseline of the same seed and variant with its t-interval and verdict."""
    summary = []
    for (variant, name), g in runs.groupby(["variant", "strategy"], sort=False):
        row = {"variant": variant, "strategy": name, "seeds": len(g), "n_train": int(g["n_train"].iloc[0]),
               "n_test": int(g["n_test"].iloc[0])}
        for m in ("srcc", "plcc"):
            lo, hi = t_interval(g[m])
            row.update({f"{m}_mean": g[m].mean(), f"{m}_ci_low": lo, f"{m}_ci_high": hi})
        base = runs[(runs["variant"] == variant) & (runs["strategy"] == "baseline")]
        if name != "baseline" and len(base):
            paired = g.merge(base[["seed", "srcc", "plcc"]], on="seed", suffixes=("", "_base"))
            for m in ("srcc", "plcc"):
                d = (paired[m] - paired[f"{m}_base"]).to_numpy()
                lo, hi = t_interval(d)
                verdict = "better" if lo > 0 else "worse" if hi < 0 else "tie"
                row.update({f"d_{m}_mean": float(d.mean()), f"d_{m}_ci_low": lo, f"d_{m}_ci_high": hi,
                            f"{m}_vs_baseline": verdict if np.isfinite(lo) else "n/a"})
        summary.append(row)
    return pd.DataFrame(summary)


def format_table(summary: pd.DataFrame) -> str:
    """The summary as a plain-text table: mean [CI] per metric, paired difference and verdict."""
    def ci(r, m):
        return f"{r[f'{m}_mean']:.3f} [{r[f'{m}_ci_low']:.3f}, {r[f'{m}_ci_high']:.3f}]"

    def delta(r):
        if not isinstance(r.get("srcc_vs_baseline"), str):
            return "-"
        return (f"{r['d_srcc_mean']:+.3f} [{r['d_srcc_ci_low']:+.3f}, {r['d_srcc_ci_high']:+.3f}] "
                f"{r['srcc_vs_baseline']}")

    rows = [(r["variant"], r["strategy"], str(r["seeds"]), str(r["n_train"]), ci(r, "srcc"), ci(r, "plcc"),
             delta(r), f"{r['vs_baseline']:.2f}x" if np.isfinite(r.get("vs_baseline", np.nan)) else "-")
            for _, r in summary.iterrows()]
    head = ("variant", "strategy", "seeds", "n_train", "SRCC mean [95% CI]", "PLCC mean [95% CI]",
            "dSRCC vs baseline [95% CI]", "step")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def report(runs: pd.DataFrame, steps: pd.DataFrame | None, out: Path | None) -> None:
    """Summarise runs (with step times where given), print the table, write it under ``out``."""
    summary = summarise(runs)
    if steps is not None:
        summary = summary.merge(steps, on="strategy", how="left")
    print(format_table(summary))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary.to_csv(out / "strategies_summary.csv", index=False)
        print(f"-> {out / 'strategies_summary.csv'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default=str(ROOT / "data" / "synth" / "records.csv"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=1000, help="the small training set, drawn per seed")
    ap.add_argument("--val-photos", type=int, default=3, help="validation photos (model selection), per seed")
    ap.add_argument("--test-photos", type=int, default=9, help="held-out test photos (9 = all of the split)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--eval-resolution", default="full")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--no-long-tailed", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--step-time-only", action="store_true",
                    help="only the step-time table (on --records), written to step_time.csv")
    ap.add_argument("--summarise", metavar="RUNS_CSV",
                    help="only the summary table, from a (possibly partial) strategies.csv and the step_time.csv "
                         "beside it")
    ap.add_argument("--step-reps", type=int, default=6, help="timed steps per block in the step-time table")
    ap.add_argument("--resume", action="store_true",
                    help="keep the runs already in OUT/strategies.csv and train only the missing (variant, strategy, "
                         "seed) runs (a stopped run can be finished later; every run is seeded)")
    ap.add_argument("--teacher", metavar="CKPT",
                    help="distillation teacher checkpoint to reuse instead of training one (for comparable numbers: "
                         "the Lite2 this script trained on seed 1's set, TMP/biqa_strat_*/teacher/best.safetensors)")
    args = ap.parse_args()
    if args.summarise:
        steps_csv = Path(args.summarise).with_name("step_time.csv")
        report(pd.read_csv(args.summarise), pd.read_csv(steps_csv) if steps_csv.is_file() else None, Path(args.out))
        return
    names = args.strategies.split(",")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; choose from {list(STRATEGIES)}")
    if "baseline" not in names:
        names.insert(0, "baseline")  # every comparison is paired with the baseline
    if args.step_time_only:
        steps = step_times(Path(args.records), None, args, reps=2 if args.quick else args.step_reps, names=names)
        print(steps.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if not args.quick:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            steps.to_csv(Path(args.out) / "step_time.csv", index=False)
        return
    from biqa.trainer import Trainer

    work = Path(tempfile.mkdtemp(prefix="biqa_strat_"))
    records = Path(args.records)
    if args.quick:
        from biqa.synth import build_synthetic_dataset

        photos = ROOT.parent / "shared" / "data" / "photos"
        records = build_synthetic_dataset(photos, work / "synth", crops_per_photo=1, crop_size=96, levels=(1, 3, 5),
                                          max_photos=6, val_fraction=0.34, test_fraction=0.34, progress=False,
                                          kadid_labels=ROOT.parent / "shared" / "data" / "labels" / "KADID-10k.txt")
        args.seeds, args.train_images, args.val_photos, args.test_photos = 2, 150, 2, 2
        args.epochs, args.crop = 1, 64
    elif not records.is_file():
        raise SystemExit(f"{records} not found: build it first "
                         "(biqa data synth --photos ../shared/data/photos --out data/synth "
                         "--kadid-labels ../shared/data/labels/KADID-10k.txt --crops 2 --seed 0)")
    runs_csv = Path(args.out) / "strategies.csv"
    done = pd.read_csv(runs_csv) if args.resume and not args.quick and runs_csv.is_file() else pd.DataFrame()
    if len(done):
        print(f"resuming: {len(done)} runs already in {runs_csv}", flush=True)
    variants = [("balanced", "split")] + ([] if args.no_long_tailed else [("long-tailed", "split_lt")])
    todo = missing_runs(done, names, args.seeds, [v for v, _ in variants])
    pending = set(todo)
    rows = []
    t_start = time.time()
    teacher = args.teacher
    if teacher is not None and not Path(teacher).is_file():
        raise SystemExit(f"--teacher {teacher}: no such checkpoint")
    for seed in range(1, args.seeds + 1):
        rec = small_records(records, work / f"data_s{seed}", args.train_images, args.val_photos, args.test_photos,
                            seed)
        if teacher is None and any("distill" in STRATEGIES[n] for _, n, _ in todo):
            cfg = base_config(rec, work / "teacher", args, model={"preset": "lite2-mos"}, seed=seed)
            t = Trainer(cfg).fit()
            teacher = str(work / "teacher" / "best.safetensors")
            print(f"[{(time.time() - t_start) / 60:5.1f} min] teacher lite2-mos: test SRCC "
                  f"{t['test']['srcc']['value']:.4f}", flush=True)
        splits = pd.read_csv(rec)
        for variant, column in variants:
            n_train = int((splits[column] == "train").sum())
            for name in names:
                if (variant, name, seed) not in pending:
                    continue
                out = work / f"{variant}_{name}_s{seed}"
                cfg = base_config(rec, out, args, seed=seed, strategy=strategy_section(name, teacher),
                                  data={"split_column": column})
                t0 = time.time()
                s = Trainer(cfg).fit()
                test = s["test"]
                rows.append({"variant": variant, "strategy": name, "seed": seed, "n_train": n_train,
                             "n_test": test["n"], "srcc": test["srcc"]["value"], "plcc": test["plcc"]["value"],
                             "srcc_boot_low": test["srcc"]["ci_low"], "srcc_boot_high": test["srcc"]["ci_high"],
                             "best_epoch": s["best_epoch"], "train_minutes": (time.time() - t0) / 60})
                print(f"[{(time.time() - t_start) / 60:5.1f} min] {variant:11s} {name:13s} seed {seed}: "
                      f"SRCC {rows[-1]['srcc']:.4f} PLCC {rows[-1]['plcc']:.4f}", flush=True)
                if not args.quick:  # partial results survive an interrupted run (finish it with --resume)
                    Path(args.out).mkdir(parents=True, exist_ok=True)
                    pd.concat([done, pd.DataFrame(rows)], ignore_index=True).to_csv(runs_csv, index=False)
    runs = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)
    steps = step_times(rec, teacher, args, reps=2 if args.quick else args.step_reps, names=names)
    out = None if args.quick else Path(args.out)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        runs.to_csv(out / "strategies.csv", index=False)
        steps.to_csv(out / "step_time.csv", index=False)
    report(runs, steps, out)
    print(f"total {(time.time() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
