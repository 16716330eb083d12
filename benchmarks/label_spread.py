"""How content-dependent are the synthetic benchmark's labels, next to KADID-10k's human ratings?

For both label sets: the mean within-(type, level) standard deviation on the 1-5 scale, and the SRCC
an *oracle* reaches that knows each held-out image's distortion type and level and predicts that
cell's mean label on the training part (synthetic: the benchmark's test photos against its train
photos; KADID-10k: 16 held-out references against the other 65, 20 random draws). Then the same
synthetic labels with each type's within-cell spread shrunk to KADID's (``label = cell mean +
s_t * (label - cell mean)``, ``s_t = min(1, sd_KADID(t) / sd_synth(t))``, which keeps every cell mean,
every within-cell order and every photo's order of levels), and the default model's SRCC against
both label versions on the test photos.

  python benchmarks/label_spread.py            # needs data/synth: biqa data synth --photos ../shared/data/photos
                                                  #   --out data/synth --kadid-labels ../shared/data/labels/KADID-10k.txt --crops 2 --seed 0
  python benchmarks/label_spread.py --quick    # no model scoring

Writes benchmarks/results/label_spread.csv.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from biqa.datasets.synthetic import parse_kadid10k_name

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def oracle_srcc(train: pd.DataFrame, test: pd.DataFrame, label: str, keys=("t", "l")) -> float:
    cell = train.groupby(list(keys))[label].mean()
    pred = test.set_index(list(keys)).index.map(cell)
    return float(spearmanr(pred, test[label]).statistic)


def within_cell_sd(df: pd.DataFrame, label: str) -> pd.Series:
    """Per type: the root mean within-(type, level) variance."""
    return df.groupby("t").apply(lambda g: float(np.sqrt(g.groupby("l")[label].var().mean())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default=str(ROOT / "data" / "synth" / "records.csv"))
    ap.add_argument("--kadid", default=str(ROOT.parent / "shared" / "data" / "labels" / "KADID-10k.txt"))
    ap.add_argument("--model", default="biqa-default")
    ap.add_argument("--quick", action="store_true", help="skip scoring with the model")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    if not Path(args.records).is_file():
        raise SystemExit(f"{args.records} not found: build it first "
                         "(biqa data synth --photos ../shared/data/photos --out data/synth "
                         "--kadid-labels ../shared/data/labels/KADID-10k.txt --crops 2 --seed 0)")

    k = pd.read_csv(args.kadid)
    k["ref"], k["t"], k["l"] = zip(*map(parse_kadid10k_name, k["dis_img_path"]))
    rng = np.random.default_rng(0)
    refs = k["ref"].unique()
    draws = [oracle_srcc(k[~k["ref"].isin(h)], k[k["ref"].isin(h)], "score")
             for h in (rng.choice(refs, 16, replace=False) for _ in range(20))]

    df = pd.read_csv(args.records)
    d = df[df["dist_id"] > 0].rename(columns={"dist_id": "t", "dist_level": "l"}).copy()
    sd_k, sd_s = within_cell_sd(k, "score"), within_cell_sd(d, "mos")
    shrink = np.minimum(1.0, sd_k.reindex(sd_s.index) / sd_s)
    cell_mean = d.groupby(["t", "l"])["mos"].transform("mean")
    d["mos_shrunk"] = cell_mean + d["t"].map(shrink) * (d["mos"] - cell_mean)
    train, test = d[d["split"] == "train"], d[d["split"] == "test"]

    rows = [
        {"labels": "KADID-10k human MOS", "within_cell_sd": float(k.groupby(["t", "l"])["score"].std().mean()),
         "oracle_srcc": float(np.mean(draws)), "n_test": "16 refs x 125, 20 draws", "model_srcc": np.nan},
    ]
    pred = None
    if not args.quick:
        import biqa

        scored = biqa.load(args.model).score([str(Path(args.records).parent / p) for p in test["path"]])
        pred = scored["score"].to_numpy()
    for label, name in (("mos", "synthetic (shipped)"), ("mos_shrunk", "synthetic, spread shrunk to KADID's")):
        rows.append({"labels": name, "within_cell_sd": float(d.groupby(["t", "l"])[label].std().mean()),
                     "oracle_srcc": oracle_srcc(train, test, label), "n_test": str(len(test)),
                     "model_srcc": float(spearmanr(pred, test[label]).statistic) if pred is not None else np.nan})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"model: {args.model}; per-type shrink factors: "
          + ", ".join(f"{t}:{v:.2f}" for t, v in shrink.items()))
    if not args.quick:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(args.out) / "label_spread.csv", index=False)
        print(f"-> {Path(args.out) / 'label_spread.csv'}")


if __name__ == "__main__":
    main()
