"""The one prediction core: how a model scores a batch of images, whole or in tiles.

``biqa score`` (:class:`biqa.scorer.Scorer`), ``biqa eval`` (:func:`biqa.evaluate.evaluate_checkpoint`),
the trainer's validation and test (:func:`predict_loader`) and ``biqa bench`` all score through
:class:`Predictor`, so the metrics reported for a model are measured on the scores users get: an image
that ``biqa score`` tiles (:mod:`biqa.tiling`) is tiled by ``biqa eval`` and the trainer too, with the same
grid, the same tiles per forward pass and the same aggregation.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .tiling import DEFAULT_PASS_PIXELS, TilePolicy, aggregate, tile_batches


class Predictor:
    """Scores batches with ``model`` (a module, or a callable with its contract: a normalised
    ``[B, 3, H, W]`` float tensor -> dict of tensors with ``score`` and maybe ``std`` / ``probs``; a
    model that cannot score some images may add ``errors``, one message per image, empty where it could).

    ``tiling``: a :class:`~biqa.tiling.TilePolicy` (or its spec: ``"auto"``, ``"off"``, a tile side);
    ``batch_size``: at most this many tiles a forward pass, which on a CPU holds at most
    :data:`~biqa.tiling.DEFAULT_PASS_PIXELS` pixels of tiles (the policy's budget on a GPU).
    The caller sets the model's mode (eval) and device; ``channels_last`` passes inputs in that layout.
    """

    def __init__(self, model, *, device: str | torch.device = "cpu", tiling: "TilePolicy | str | int | None" = "auto",
                 batch_size: int = 8, channels_last: bool = False):
        self.model = model
        self.device = torch.device(device)
        self.tiling = TilePolicy.parse(tiling)
        self.batch_size = int(batch_size)
        self.channels_last = bool(channels_last)
        # pixels of tiles a forward pass: one tile on a CPU (bigger passes cost memory, not time), the budget on a GPU
        self.tile_pass_pixels = self.tiling.budget if self.device.type == "cuda" else DEFAULT_PASS_PIXELS

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model outputs for a normalised batch ``[B, 3, H, W]``."""
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def tiled(self, w: int, h: int) -> bool:
        """Whether an image of ``w`` x ``h`` (as the network would see it) is scored in tiles."""
        return self.tiling.applies(int(w), int(h))

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, normalise=None) -> dict[str, torch.Tensor]:
        """Scores of a batch ``[B, 3, H, W]`` of equal-sized images: ``score`` (float64, ``[B]``), ``tiles``
        (int, ``[B]``: 1 for an image scored whole), and ``std`` (float64) / ``probs`` / ``errors`` (a list
        of ``B`` messages, ``""`` where the image was scored) where the model gives them.

        ``normalise`` maps a batch (or a stack of tiles) of ``x``'s values to the network's input (e.g.
        uint8 as decoded -> normalised float); ``None``: ``x`` is normalised already. An image the policy
        tiles is cut into tiles (in ``x``'s dtype; only one forward pass of tiles is converted at a
        time): its score is the mean of its tile scores, its std the root mean square of theirs, its
        ``probs`` their mean, its error the first of theirs."""
        normalise = normalise or (lambda t: t)
        if not self.tiled(x.shape[-1], x.shape[-2]):
            out = self.forward(normalise(x))
            # straight to float64: exact for half / float32 outputs, and a float64 score (e.g. a classical method's) kept
            res = {"score": out["score"].detach().cpu().reshape(-1).double(),
                   "tiles": torch.ones(len(x), dtype=torch.long)}
            if "std" in out:
                res["std"] = out["std"].detach().cpu().reshape(-1).double()
            if "probs" in out:
                res["probs"] = out["probs"].detach().float().cpu()
            if "errors" in out:
                res["errors"] = list(out["errors"])
            return res
        rows = [self._predict_tiled(x[i], normalise) for i in range(len(x))]
        res = {k: torch.stack([r[k] for r in rows]) for k in rows[0] if k != "errors"}
        if "errors" in rows[0]:
            res["errors"] = [r["errors"] for r in rows]
        return res

    def _predict_tiled(self, image: torch.Tensor, normalise) -> dict[str, torch.Tensor]:
        grid = self.tiling.grid(int(image.shape[-1]), int(image.shape[-2]))
        per = self.tiling.tiles_per_forward(grid, self.batch_size, self.tile_pass_pixels)
        scores, stds, probs, errors = [], [], [], None
        for xb in tile_batches(image, grid, per):
            out = self.forward(normalise(xb))
            scores += out["score"].double().cpu().reshape(-1).tolist()
            if "std" in out:
                stds += out["std"].double().cpu().reshape(-1).tolist()
            if "probs" in out:
                probs.append(out["probs"].detach().float().cpu())
            if "errors" in out:
                errors = (errors or []) + list(out["errors"])
        score, std = aggregate(scores, stds if stds else None)
        res = {"score": torch.tensor(score, dtype=torch.float64), "tiles": torch.tensor(len(grid))}
        if std is not None:
            res["std"] = torch.tensor(std, dtype=torch.float64)
        if probs:
            res["probs"] = torch.cat(probs).mean(0)
        if errors is not None:
            res["errors"] = next((e for e in errors if e), "")
        return res


def predict_loader(predictor: Predictor, loader, progress: bool = False, desc: str = "eval",
                   with_distributions: bool = False):
    """Run ``predictor`` over a loader of :class:`biqa.data.RecordsDataset` batches (equal-sized images
    each, normalised); returns (scores, mos) ordered by dataset index.

    With ``with_distributions`` it also returns ``(probs, dist)`` (predicted and target
    opinion-score distributions, ``None`` where the model or the data has none).
    """
    idx, scores, mos, probs, dists = [], [], [], [], []
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        out = predictor.predict(batch["image"])
        scores.append(out["score"])
        mos.append(batch["mos"])
        idx.append(batch["index"])
        if with_distributions and "probs" in out and "dist" in batch:
            probs.append(out["probs"])
            dists.append(batch["dist"].float())
    order = torch.cat(idx).argsort()
    res = torch.cat(scores)[order].numpy().astype(float), torch.cat(mos)[order].numpy().astype(float)
    if not with_distributions:
        return res
    if probs:
        return res + (torch.cat(probs)[order], torch.cat(dists)[order])
    return res + (None, None)


__all__ = ["Predictor", "predict_loader"]
