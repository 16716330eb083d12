"""Held-out accuracy of a model on the synthetic-distortion benchmark (default: biqa-default).

The benchmark's test split holds whole photos that the default model never saw in training or
validation (split by photo, seed 0, as in configs/default_model.yaml). Prints SRCC / KRCC / PLCC /
RMSE with bootstrap 95% CIs and N, per-distortion-type SRCC, and the mean within-(photo, type)
SRCC between prediction and distortion level; writes benchmarks/results/default_model.csv.

  python benchmarks/default_model.py                 # full test split (builds data/synth if missing)
  python benchmarks/default_model.py --quick         # held-out photos only, 1 crop, levels 1/3/5 (CI)
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"


def build(out: Path, photos: Path, kadid: Path, *, quick: bool, seed: int = 0) -> Path:
    from biqa.synth import build_synthetic_dataset, list_photos, split_by_reference

    if not quick:
        return build_synthetic_dataset(photos, out, crops_per_photo=2, crop_size=384, seed=seed,
                                       kadid_labels=kadid, workers=2)
    # only the held-out photos (same split rule and seed as the full build), 1 crop, 3 levels
    stems = {p.stem: p for p in list_photos(photos)}
    split = split_by_reference(list(stems), 0.15, 0.15, seed)
    sub = out / "photos"
    sub.mkdir(parents=True, exist_ok=True)
    for s, where in split.items():
        if where == "test":
            (sub / stems[s].name).symlink_to(stems[s].resolve())
    csv = build_synthetic_dataset(sub, out, crops_per_photo=1, crop_size=384, seed=seed, kadid_labels=kadid,
                                  levels=(1, 3, 5), val_fraction=0.0, test_fraction=0.0, workers=2)
    df = pd.read_csv(csv)
    df["split"] = "test"  # every photo here is one of the benchmark's held-out photos
    df.to_csv(csv, index=False)
    return csv


def within_group_level_srcc(df: pd.DataFrame) -> float:
    """Mean SRCC between prediction and (negated) distortion level within each (photo, crop, type)."""
    from scipy.stats import spearmanr

    vals = []
    for _, g in df[df["dist_level"] > 0].groupby(["ref", "crop", "dist_type"]):
        if g["dist_level"].nunique() >= 3 and g["pred"].nunique() > 1:
            vals.append(spearmanr(g["pred"], -g["dist_level"]).statistic)
    return float(np.mean(vals)) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="biqa-default")
    ap.add_argument("--records", default=str(ROOT / "data" / "synth" / "records.csv"))
    ap.add_argument("--photos", default=str(SHARED / "photos"))
    ap.add_argument("--kadid-labels", default=str(SHARED / "labels" / "KADID-10k.txt"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "default_model.csv"))
    a = ap.parse_args()

    from biqa.evaluate import evaluate_checkpoint
    from biqa.report import format_metrics_table

    tmp = tempfile.TemporaryDirectory() if a.quick else None
    records = Path(a.records)
    if a.quick:
        records = build(Path(tmp.name), Path(a.photos), Path(a.kadid_labels), quick=True)
    elif not records.is_file():
        print(f"{records} missing: building the synthetic benchmark (about 12 min on 2 cores)")
        records = build(records.parent, Path(a.photos), Path(a.kadid_labels), quick=False)
    with tempfile.TemporaryDirectory() as ev:
        res = evaluate_checkpoint(a.model, records, split="test", out_dir=ev, n_boot=1000, progress=False)
        pred = pd.read_csv(Path(ev) / "predictions.csv")
    rec = pd.read_csv(records)
    rec = rec[rec["split"] == "test"].reset_index(drop=True)
    rec["pred"] = pred["pred"].to_numpy()
    from biqa.metrics import srcc

    per_type = {t: srcc(g["pred"], g["mos"]) for t, g in rec[rec["dist_level"] > 0].groupby("dist_type")}
    within = within_group_level_srcc(rec)
    print(f"{a.model} on {records} [test: {rec['ref'].nunique()} held-out photos, {len(rec)} images]")
    print(format_metrics_table(res))
    print(f"mean within-(photo, crop, type) SRCC of prediction vs level: {within:.4f}")
    print("per-type SRCC against labels: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_type.items())))
    row = {"model": a.model, "mode": "quick" if a.quick else "full", "n": res["n"],
           "n_photos": int(rec["ref"].nunique()), "within_level_srcc": within}
    for m in ("srcc", "krcc", "plcc", "rmse", "plcc_fitted", "rmse_fitted"):
        row.update({m: res[m]["value"], f"{m}_ci_low": res[m]["ci_low"], f"{m}_ci_high": res[m]["ci_high"]})
    if not a.quick:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([row]).to_csv(a.out, index=False)
        Path(a.out).with_name("default_model_per_type.json").write_text(json.dumps(per_type, indent=1))
        print(f"-> {a.out}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
