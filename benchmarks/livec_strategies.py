"""The four methods' strategies on human opinions: LIVE Challenge, paired over the protocol's splits.

Every strategy is the baseline fine-tuning config (``biqa/configs/livec_finetune.yaml``: EfficientNet-
Lite0 ImageNet weights, multi-level pooling + MLP head, 384 px native-scale crops, MSE + 0.3 PLCC
loss, AdamW, 8 epochs, best epoch on the split's validation part) plus the overrides below, trained
on the same splits (``split_seedN``: 616 train / 88 val / 176 test photos), so each split gives a
paired difference to the baseline:

- ``baseline``: the config as it is (rows shared with ``livec_protocol.py --finetune
  livec_finetune --name finetune``, same code path, read from ``livec_finetune.csv`` when there);
- ``ohem``: OHEM with a pruned self-competitor (ratio 0.7, lambda 1, masks refreshed every epoch,
  the pruned branch sees the same crop); ``ohem-crop``: its branch sees a random half-side sub-crop;
- ``dml``: deep mutual learning, K = 2 peers (Kaiming / Xavier head init, the second peer sees the
  mirror image), lambda 1, predicting with the peers' mean;
- ``kd``: distillation of pooled features from a Lite2 teacher (``lite2-mos`` fine-tuned by the same
  config on the same split's training photos: ``teacher-lite2`` rows) with a learned projection;
- ``ohem+kd``: both;
- ``nima``: NIMA's objective, EMD (r = 2) on maximum-entropy distributions built from each photo's MOS
  and its std (LIVE Challenge ships the std of ~175 ratings per photo), on the same body with a
  10-bin head (preset ``nima-lite0-ml``).

The table gives per strategy: test SRCC / PLCC mean over splits, the paired difference to the
baseline (mean and 95 % t-interval over splits) and a verdict: "better" / "worse" when the interval
excludes 0, "tie" otherwise, "pending" below ``--min-splits`` (5) paired splits. Runs are resumable
(a split already in the CSV is skipped; a killed run resumes from its last epoch).

Usage::

    python benchmarks/livec_strategies.py --seeds 1-5                        # everything, split-major
    python benchmarks/livec_strategies.py --seeds 1-5 --strategies nima,dml   # a subset
    python benchmarks/livec_strategies.py --summary                          # the table from the CSV only
    python benchmarks/livec_strategies.py --quick                            # CI smoke run (tiny runs)

Writes ``livec_strategies.csv`` (one row per strategy and split) and ``livec_strategies_summary.csv``
under ``--out``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from strategies import t_interval  # noqa: E402  (the synthetic strategies benchmark's 95 % t-interval)

CONFIG = "livec_finetune"
TEACHER = "teacher-lite2"
TEACHER_CKPT = "{runs}/" + TEACHER + "/s{split}/best.safetensors"
OHEM = "strategy.ohem={ratio: 0.7, lam: 1.0, refresh: epoch}"
STRATEGIES: dict[str, list[str]] = {
    "baseline": [],
    "ohem": ["strategy.name=[ohem]", OHEM],
    "ohem-crop": ["strategy.name=[ohem]", "strategy.ohem={ratio: 0.7, lam: 1.0, refresh: epoch, view: crop, "
                  "crop_scale: 0.5}"],
    "dml": ["strategy.name=[mutual]", "strategy.mutual={peers: 2, lam: 1.0}"],
    "kd": ["strategy.name=[distill]", "strategy.distill={teacher: " + TEACHER_CKPT + "}"],
    "ohem+kd": ["strategy.name=[ohem, distill]", OHEM, "strategy.distill={teacher: " + TEACHER_CKPT + "}"],
    "nima": ["model.preset=nima-lite0-ml", "strategy.loss=emd"],
}
TEACHER_OVERRIDES = ["model.preset=lite2-mos", "name=livec-teacher-lite2"]
NEEDS_TEACHER = ("kd", "ohem+kd")


def summarise(rows: pd.DataFrame, min_splits: int = 5) -> pd.DataFrame:
    """Per strategy: splits, mean SRCC / PLCC, and the paired difference to the baseline on the splits
    both have (mean, 95 % t-interval, verdict)."""
    base = rows[rows["variant"] == "baseline"].set_index("split")
    out = []
    for name in [v for v in rows["variant"].unique()]:
        mine = rows[rows["variant"] == name].set_index("split")
        rec = {"strategy": name, "splits": len(mine), "srcc": mine["srcc"].mean(), "plcc": mine["plcc"].mean()}
        if name != "baseline":
            common = sorted(set(mine.index) & set(base.index))
            rec["paired_splits"] = len(common)
            for m in ("srcc", "plcc"):
                d = (mine.loc[common, m] - base.loc[common, m]).to_numpy(float)
                lo, hi = t_interval(d)
                rec[f"d_{m}"] = float(d.mean()) if len(d) else float("nan")
                rec[f"d_{m}_lo"], rec[f"d_{m}_hi"] = lo, hi
                if len(common) < min_splits:
                    rec[f"{m}_verdict"] = "pending"
                else:
                    rec[f"{m}_verdict"] = "better" if lo > 0 else "worse" if hi < 0 else "tie"
        out.append(rec)
    return pd.DataFrame(out)


def format_table(summary: pd.DataFrame) -> str:
    lines = [f"{'strategy':<14}{'splits':>7}{'SRCC':>8}{'PLCC':>8}  {'dSRCC vs baseline [95% CI]':<30}{'verdict':<9}"
             f"{'dPLCC [95% CI]':<28}verdict"]
    for r in summary.itertuples():
        if r.strategy == "baseline":
            lines.append(f"{r.strategy:<14}{r.splits:>7}{r.srcc:>8.4f}{r.plcc:>8.4f}")
            continue
        ds = f"{r.d_srcc:+.4f} [{r.d_srcc_lo:+.3f}, {r.d_srcc_hi:+.3f}] ({int(r.paired_splits)})"
        dp = f"{r.d_plcc:+.4f} [{r.d_plcc_lo:+.3f}, {r.d_plcc_hi:+.3f}]"
        lines.append(f"{r.strategy:<14}{r.splits:>7}{r.srcc:>8.4f}{r.plcc:>8.4f}  {ds:<30}{r.srcc_verdict:<9}"
                     f"{dp:<28}{r.plcc_verdict}")
    return "\n".join(lines)


def baseline_rows(finetune_csv: Path) -> pd.DataFrame:
    """The baseline's rows from ``livec_protocol.py --finetune livec_finetune --name finetune`` (same config)."""
    if not finetune_csv.is_file():
        return pd.DataFrame()
    df = pd.read_csv(finetune_csv)
    df = df[df["variant"] == "finetune"].copy()
    df["variant"] = "baseline"
    return df


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default=str(ROOT / "data" / "livec" / "livec.csv"))
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help=f"comma-separated, from {list(STRATEGIES)}")
    ap.add_argument("--min-splits", type=int, default=5, help="paired splits before a verdict (else 'pending')")
    ap.add_argument("--summary", action="store_true", help="only print and write the table from the CSV")
    ap.add_argument("--quick", action="store_true", help="2 splits, 1 epoch of 3 steps each (CI smoke run)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "livec_strategies"))
    a = ap.parse_args(argv)
    from biqa.datasets.splits import parse_seeds

    seeds = parse_seeds("1-2" if a.quick and a.seeds == "1-5" else a.seeds)
    names = [n.strip() for n in a.strategies.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        ap.error(f"unknown strategies {unknown}; choose from {list(STRATEGIES)}")
    out = Path(a.out)
    tag = "_quick" if a.quick else ""
    csv, summary_csv = out / f"livec_strategies{tag}.csv", out / f"livec_strategies{tag}_summary.csv"
    if not a.summary:
        import heldout_levels as hl
        from livec_protocol import SHARED, finetune_protocol, livec_records

        df = livec_records(Path(a.records), seeds)
        hdir = ROOT / "data" / ("heldout_levels_quick" if a.quick else "heldout_levels")
        hdf = hl.build(hdir, SHARED / "photos", photos=hl.HELDOUT_PHOTOS[:hl.QUICK_PHOTOS] if a.quick
                       else hl.HELDOUT_PHOTOS, short_side=hl.QUICK_SHORT_SIDE if a.quick else None)
        quick = ["train.epochs=1", "train.max_steps_per_epoch=3"] if a.quick else []
        common = quick  # finetune_protocol sets data.records, the split column and the run folder
        runs = Path(a.runs)
        if not a.quick and "baseline" in names and not csv.is_file():
            shared = baseline_rows(out / "livec_finetune.csv")  # the same runs, made by livec_protocol.py
            if len(shared):
                out.mkdir(parents=True, exist_ok=True)
                shared.to_csv(csv, index=False, float_format="%.4f")
        for s in seeds:  # split-major: paired splits accumulate evenly across strategies
            for name in names:
                if name in NEEDS_TEACHER:
                    finetune_protocol(CONFIG, TEACHER, df, Path(a.records), [s], None, csv, runs, hl, hdf, hdir,
                                      common + TEACHER_OVERRIDES)
                ov = [o.replace("{runs}", str(runs)) for o in STRATEGIES[name]]
                finetune_protocol(CONFIG, name, df, Path(a.records), [s], None, csv, runs, hl, hdf, hdir,
                                  common + ov)
    rows = pd.read_csv(csv)
    summary = summarise(rows[rows["variant"] != TEACHER], a.min_splits)
    summary.to_csv(summary_csv, index=False, float_format="%.4f")
    print(format_table(summary))
    teacher = rows[rows["variant"] == TEACHER]
    if len(teacher):
        print(f"\n{TEACHER} (the KD teacher): {len(teacher)} splits, SRCC {teacher['srcc'].mean():.4f}")
    print(f"\nwrote {csv} and {summary_csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
