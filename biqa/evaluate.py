"""Evaluate a trained model on labelled records (``biqa eval``)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd

from . import metrics as M
from .data import RecordsDataset
from .labels import LabelScale
from .records import load_records, select_split
from .prediction import predict_loader
from .scorer import load
from .trainer import make_eval_loader


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    records: str | os.PathLike,
    *,
    split: str | None = "test",
    split_column: str | None = None,
    out_dir: str | os.PathLike | None = None,
    resolution: str | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    higher_is_better: bool | None = None,
    device: str = "auto",
    peer: str | None = None,
    progress: bool = True,
    skip_bad_images: bool = False,
    tile: str | int | None = "auto",
    tile_overlap: int | None = None,
) -> dict:
    """SRCC / KRCC / PLCC / RMSE (raw and after the 4-parameter logistic fit), each with a
    bootstrap 95% CI and N, of a checkpoint's scores against the records' MOS; for
    distribution (NIMA) models also the mean EMD to the label distributions.

    ``higher_is_better`` describes the records' labels (default: their sidecar meta from
    ``biqa data import``, else the direction the checkpoint was trained with); correlations are reported so that a good model is
    positive. With ``out_dir``, writes ``metrics.json``,
    ``predictions.csv`` and ``scatter.png`` there.

    An image that does not decode stops the evaluation with a :class:`biqa.records.BadImageError`
    naming the file and its CSV line; ``skip_bad_images=True`` decodes every image first and
    leaves those out, listed (a warning, ``res["skipped_images"]`` and ``skipped_images.csv``).

    Images are scored exactly as ``biqa score`` scores them (one prediction core,
    :mod:`biqa.prediction`): ``tile`` / ``tile_overlap`` as for :func:`biqa.scorer.load` (default
    ``auto``: images above 2 Mi px in 768-pixel tiles at full resolution).
    """
    scorer = load(checkpoint, device=device, peer=peer, batch_size=batch_size, num_workers=num_workers,
                  resolution=resolution, tile=tile, tile_overlap=tile_overlap)
    df = select_split(load_records(records), split, split_column)
    skipped = []
    if skip_bad_images:
        from .records import drop_bad_images

        df, skipped = drop_bad_images(df, what="records", log=lambda m: print(f"warning: {m}", file=sys.stderr))
    if len(df) < 3:
        raise ValueError(f"{records}: split {split!r} has {len(df)} rows; need at least 3 to evaluate")
    scale = LabelScale.from_dict(scorer.meta["label_scale"])
    if higher_is_better is None:
        from .datasets import read_meta as read_dataset_meta

        higher_is_better = (read_dataset_meta(records) or {}).get("higher_is_better", scale.higher_is_better)
    n_bins = scorer.meta.get("preset", {}).get("head_kwargs", {}).get("n_bins") if scorer.has_std else None
    ds = RecordsDataset(df, scale, scorer.mean, scorer.std, resolution=scorer.resolution, n_bins=n_bins)
    loader = make_eval_loader(ds, batch_size, scorer.num_workers if num_workers is None else num_workers)
    pred, mos, probs, dist = predict_loader(scorer.predictor, loader, progress=progress, desc="eval",
                                            with_distributions=True)
    res = M.evaluate_predictions(pred, mos, n_boot=n_boot, seed=seed, higher_is_better=higher_is_better)
    if probs is not None:  # distribution models: EMD (r=2) against the records' label distributions
        from .losses import emd_loss

        res["emd"] = float(emd_loss(probs, dist))
    res["split"] = split or "all"
    res["checkpoint"] = str(scorer.meta.get("checkpoint", checkpoint))
    res["records"] = str(records)
    if skip_bad_images:
        res["skipped_images"] = [{"line": p.line, "path": p.path, "problem": p.problem} for p in skipped]
    if out_dir is not None:
        from .report import scatter_plot

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(res, indent=2, default=float))
        pd.DataFrame({"path": df["path"], "mos": mos, "pred": pred}).to_csv(out / "predictions.csv", index=False)
        if skipped:
            pd.DataFrame(res["skipped_images"]).to_csv(out / "skipped_images.csv", index=False)
        scatter_plot(pred, mos, out / "scatter.png", title=f"{Path(str(records)).name} [{res['split']}]", metrics=res)
    return res
