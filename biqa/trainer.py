"""The one training loop.

It knows nothing about any particular strategy: it asks the strategy for a loss,
steps the optimiser, validates, checkpoints, stops early and resumes. Everything
it writes lands in ``cfg["out_dir"]``:

- ``config.yaml``: the resolved experiment config (copied next to its outputs);
- ``best.safetensors`` / ``last.safetensors`` (+ ``.json``): checkpoints; *best* is
  chosen on the validation split, never on test;
- ``state.pt``: weights, optimiser / scheduler / history, for ``resume``: tensors and plain values
  only, loaded with ``torch.load(weights_only=True)`` (a file holding anything else is refused:
  unpickling it could run code);
- ``metrics.csv`` and ``curves.png``: one row per epoch;
- ``test_metrics.json`` and ``test_scatter.png`` when the records have a test split.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import distributed as D
from . import metrics as M
from .checkpoint import _atomic_write_bytes, checkpoint_meta, save_checkpoint
from .config import load_config, save_config
from .data import RecordsDataset, SizeBucketBatchSampler, image_size
from .host import resolve_device
from .labels import LabelScale
from .losses import emd_loss, parse_loss_spec
from .models import create_model, get_preset
from .precision import float32_depthwise_
from .prediction import Predictor, predict_loader
from .records import default_split_column, load_records, select_split
from .strategies import build_strategy, strategy_names, supervised_terms


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def collate(items: list[dict]) -> dict:
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else torch.tensor(vals)
    return out


def make_eval_loader(ds: RecordsDataset, batch_size: int, num_workers: int) -> DataLoader:
    """Batches grouped by image size, so full-resolution images of any size can be evaluated."""
    sizes = [image_size(p, ds.resolution) for p in ds.paths]
    return DataLoader(ds, batch_sampler=SizeBucketBatchSampler(sizes, batch_size), num_workers=num_workers,
                      collate_fn=collate)


def quick_metrics(pred: np.ndarray, mos: np.ndarray, higher_is_better: bool = True) -> dict[str, float]:
    sign = 1.0 if higher_is_better else -1.0
    if len(pred) < 3 or np.ptp(pred) == 0:
        return {"srcc": float("nan"), "plcc": float("nan"), "rmse": float(np.sqrt(np.mean((pred - mos) ** 2)))}
    return {"srcc": sign * M.srcc(pred, mos), "plcc": sign * M.plcc(pred, mos), "rmse": M.rmse(pred, mos)}


# early_stop.metric: what selects the best epoch on the validation set (higher or lower is better)
VAL_METRICS_HIGHER = ("srcc", "plcc")
VAL_METRICS_LOWER = ("rmse", "loss", "emd")


def validation_losses(pred, mos, probs, dists, scale, loss_spec) -> dict[str, float]:
    """``loss``: the run's supervised loss over the whole validation set as one batch (scores mapped to
    the normalised ``z`` scale); ``emd``: EMD (r = 2) between predicted and target distributions, where
    the model predicts them. Entries that cannot be computed are left out."""
    out: dict[str, float] = {}
    if probs is not None and dists is not None:
        out["emd"] = float(emd_loss(probs, dists))
    try:
        weights = parse_loss_spec(loss_spec)
        o = {"z": torch.as_tensor(scale.normalise(np.asarray(pred, float)), dtype=torch.float32)}
        b = {"z": torch.as_tensor(scale.normalise(np.asarray(mos, float)), dtype=torch.float32)}
        if probs is not None:
            o["probs"], b["dist"] = probs, dists
        total, _ = supervised_terms(o, b, weights)
        out["loss"] = float(total)
    except (ValueError, KeyError, TypeError):
        pass
    return out


def plain_state(obj):
    """``obj`` with numpy scalars and arrays made Python numbers and tensors, so that ``torch.load``
    reads it back with ``weights_only=True``; anything that is not a tensor, number, string, bool,
    None, list, tuple or dict raises ``TypeError`` (it would need unpickling)."""
    if isinstance(obj, torch.Tensor) or obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {plain_state(k): plain_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_state(v) for v in obj)
    if isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        return obj
    raise TypeError(f"resume state holds a {type(obj).__name__} ({obj!r:.80}); only tensors and plain values "
                    f"can be saved")


def load_state_file(path: str | os.PathLike) -> dict:
    """A trainer's ``state.pt``, read with ``torch.load(weights_only=True)``: tensors and plain values
    only, never code. Anything else (a file from an older biqa that pickled numpy values, or one
    crafted to run code when unpickled) is refused with a ``ValueError``."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: refused to load this resume state: it holds objects other than tensors and "
                         f"plain values, and loading them could run code ({first}). Delete it to train from the "
                         f"start, or resume only from state written by this biqa") from None


class Trainer:
    """Train one experiment config. ``Trainer(cfg).fit()`` returns a summary dict."""

    def __init__(self, cfg: dict, resume: bool = False):
        self.cfg = cfg
        self.resume = resume
        self.out = Path(cfg["out_dir"])
        self.device = resolve_device(cfg.get("device", "auto"))
        self.dist = D.setup(self.device)  # under torchrun: join the process group (gloo on CPU, NCCL on GPU)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        seed_everything(int(cfg["seed"]))
        self._build()

    # ------------------------------------------------------------------ setup
    def _build(self) -> None:
        cfg, d = self.cfg, self.cfg["data"]
        preset = get_preset(cfg["model"]["preset"])
        if not d.get("records"):
            raise ValueError("config needs data.records: a records CSV (see `biqa data synth` or biqa.records)")
        from .datasets import read_meta as read_dataset_meta

        dmeta = read_dataset_meta(d["records"]) or {}  # sidecar written by `biqa data import`
        if d.get("label_range"):
            lo, hi = map(float, d["label_range"])
        elif dmeta.get("mos_range"):
            lo, hi = map(float, dmeta["mos_range"])
        else:
            lo, hi = preset.score_range
        hib = d.get("higher_is_better")
        self.scale = LabelScale(lo, hi, bool(dmeta.get("higher_is_better", True) if hib is None else hib))
        df = load_records(d["records"], mos_range=(lo, hi), check_files=bool(d.get("check_files", True)))
        col = d.get("split_column") or default_split_column(df)
        if col is None:
            raise ValueError(f"{d['records']}: no split column; add one with `biqa data split` or a 'split' column")
        self.split_column = col
        self.train_df = select_split(df, "train", col)
        self.val_df = select_split(df, "val", col)
        self.test_df = select_split(df, "test", col)
        self.skipped_images = []
        if d.get("skip_bad_images"):  # decode every image now; leave out and list those that fail
            from .records import drop_bad_images

            for part in ("train", "val", "test"):
                kept, bad = drop_bad_images(getattr(self, f"{part}_df"), what=f"{part} records",
                                            log=lambda m: print(f"warning: {m}", file=sys.stderr))
                setattr(self, f"{part}_df", kept)
                self.skipped_images += [{"split": part, "line": p.line, "path": p.path, "problem": p.problem}
                                        for p in bad]
        if len(self.train_df) == 0 or len(self.val_df) < 3:
            raise ValueError(f"{d['records']} column {col!r}: need train rows and >= 3 val rows "
                             f"(have {len(self.train_df)} train, {len(self.val_df)} val)")
        overrides = {"score_range": (lo, hi), "higher_is_better": self.scale.higher_is_better}
        if cfg["model"].get("head_kwargs"):
            overrides["head_kwargs"] = {**preset.head_kwargs, **cfg["model"]["head_kwargs"]}
        model = create_model(preset.name, pretrained=cfg["model"].get("pretrained", False),
                             label_scale=self.scale, **overrides)
        if cfg["model"].get("init_from"):  # fine-tune a trained biqa checkpoint (its main network)
            from .checkpoint import read_state_dicts

            model.load_state_dict(read_state_dicts(cfg["model"]["init_from"])["model"], strict=True)
        if cfg["model"].get("init_backbone_from"):  # e.g. a new head over a trained model's backbone
            from .checkpoint import load_backbone_weights

            load_backbone_weights(model, cfg["model"]["init_backbone_from"])
        self.preset = model.preset
        self.mean, self.std = self.preset.normalisation()
        self.crop = int(d.get("crop_size") or self.preset.input_size)
        n_bins = self.preset.head_kwargs.get("n_bins", 10) if self.preset.head == "distribution" else None
        seed = int(cfg["seed"])
        common = dict(label_scale=self.scale, mean=self.mean, std=self.std, n_bins=n_bins, seed=seed)
        self.train_ds = RecordsDataset(self.train_df, train=True, crop_size=self.crop, **common)
        self.val_ds = RecordsDataset(self.val_df, resolution=d.get("eval_resolution", "full"), **common)
        self.test_ds = (RecordsDataset(self.test_df, resolution=d.get("eval_resolution", "full"), **common)
                        if len(self.test_df) >= 3 else None)
        # validation and test score through biqa score's prediction core, tiling large images as it does
        from .tiling import TilePolicy

        self.eval_tiling = TilePolicy.parse(d.get("eval_tile", "auto"), d.get("eval_tile_overlap"))
        self.val_metric = str(cfg["early_stop"].get("metric", "srcc"))
        if self.val_metric not in VAL_METRICS_HIGHER + VAL_METRICS_LOWER:
            raise ValueError(f"early_stop.metric must be one of {VAL_METRICS_HIGHER + VAL_METRICS_LOWER} "
                             f"(loss: the run's supervised loss on the validation set), not {self.val_metric!r}")
        if self.val_metric == "emd" and (self.preset.head != "distribution"
                                         or "mutual" in strategy_names(cfg["strategy"].get("name"))):
            raise ValueError("early_stop.metric emd needs a model that predicts score distributions (a "
                             "distribution head such as nima-lite0, without mutual learning's peer average)")
        s = dict(cfg["strategy"])
        self.strategy = build_strategy(s.pop("name"), model, **s, context={
            "pretrained": cfg["model"].get("pretrained", False), "label_scale": self.scale,
            "crop_size": self.crop, "seed": seed, "init_from": cfg["model"].get("init_from"),
            "init_backbone_from": cfg["model"].get("init_backbone_from")})
        for net in list(self.strategy.nets.values()) + list(self.strategy.frozen.values()):
            net.to(self.device)
            if cfg["train"].get("channels_last"):
                net.to(memory_format=torch.channels_last)
        t = cfg["train"]
        W = self.dist.world_size
        if W > 1:
            if int(t["batch_size"]) % W:
                raise ValueError(f"train.batch_size {t['batch_size']} is the global batch: it must be divisible by "
                                 f"the {W} processes")
            sync_bn = t.get("sync_bn", "auto")
            if sync_bn is True and self.device.type != "cuda":
                raise ValueError("train.sync_bn: torch's SyncBatchNorm runs on GPUs only; use auto or false on the CPU")
            if sync_bn is True or (sync_bn == "auto" and self.device.type == "cuda"):
                # batch statistics over the global batch (torch's SyncBatchNorm runs on GPUs only)
                from timm.layers import convert_sync_batchnorm

                for net in self.strategy.nets.values():
                    convert_sync_batchnorm(net)
        self._ddp_state = None  # which backbone-frozen state the DDP wrappers were built for
        self._unwrapped_params: list[torch.nn.Parameter] = []  # trainable, outside any DDP wrapper
        self.optimizer = self._build_optimizer()
        per_epoch = math.ceil(len(self.train_ds) / int(t["batch_size"]))
        if t.get("max_steps_per_epoch"):
            per_epoch = min(per_epoch, int(t["max_steps_per_epoch"]))
        self.steps_per_epoch = per_epoch
        self.opt_steps_per_epoch = max(1, per_epoch // int(t.get("grad_accum", 1)))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        use_amp = bool(t.get("amp")) and self.device.type in ("cuda", "cpu")
        self.amp_dtype = (torch.float16 if self.device.type == "cuda" else torch.bfloat16) if use_amp else None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        fp32_dw = t.get("fp32_depthwise", "auto")
        if fp32_dw not in ("auto", True, False):
            raise ValueError(f"train.fp32_depthwise must be auto, true or false, got {fp32_dw!r}")
        if fp32_dw is True or (fp32_dw == "auto" and self.amp_dtype == torch.bfloat16 and self.device.type == "cpu"):
            # bf16 depthwise-conv backward is several times slower than float32 on CPUs (biqa.precision)
            for net in self.strategy.nets.values():
                float32_depthwise_(net)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg["optim"]
        groups = []
        for net in self.strategy.nets.values():
            pg = net.param_groups() if hasattr(net, "param_groups") else {"head": list(net.parameters())}
            for gname, params in pg.items():
                if params:
                    lr = float(o["lr_backbone"] if gname == "backbone" else o["lr_head"])
                    groups.append({"params": params, "lr": lr, "name": gname})
        wd = float(o.get("weight_decay", 0.0))
        name = o.get("name", "adamw").lower()
        if name == "adamw":
            return torch.optim.AdamW(groups, weight_decay=wd)
        if name == "adam":
            return torch.optim.Adam(groups, weight_decay=wd)
        if name == "sgd":
            return torch.optim.SGD(groups, momentum=float(o.get("momentum", 0.9)), weight_decay=wd)
        raise ValueError(f"unknown optimiser {name!r}: adamw, adam or sgd")

    def _lr_factor(self, step: int) -> float:
        s = self.cfg["sched"]
        warm = int(s.get("warmup_steps") or 0)
        if warm and step < warm:
            return (step + 1) / warm
        name = (s.get("name") or "none").lower()
        total = self.opt_steps_per_epoch * int(self.cfg["train"]["epochs"])
        if name == "cosine":
            prog = min(1.0, (step - warm) / max(1, total - warm))
            lo = float(s.get("min_lr_ratio", 0.0))
            return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * prog))
        if name == "step":
            epoch = step // self.opt_steps_per_epoch
            return float(s.get("gamma", 0.1)) ** (epoch // int(s.get("step_size", 1)))
        if name == "none":
            return 1.0
        raise ValueError(f"unknown schedule {name!r}: cosine, step or none")

    # --------------------------------------------------------------- training
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _set_backbone_frozen(self, frozen: bool) -> None:
        for net in self.strategy.nets.values():
            if hasattr(net, "backbone"):
                for p in net.backbone.parameters():
                    p.requires_grad_(not frozen)

    def _train_epoch(self, epoch: int, bar) -> dict[str, float]:
        t = self.cfg["train"]
        for net in self.strategy.nets.values():
            net.train()
        torch.manual_seed(int(self.cfg["seed"]) * 1000 + epoch)  # dropout etc.: reproducible per epoch
        self.train_ds.set_epoch(epoch)
        g = torch.Generator().manual_seed(int(self.cfg["seed"]) * 1000 + epoch)
        if self.dist.world_size > 1:  # the single-process run's global batches, each split over the ranks
            batches = D.epoch_batches(len(self.train_ds), int(t["batch_size"]), g,
                                      drop_last=len(self.train_ds) > int(t["batch_size"]))
            loader = DataLoader(self.train_ds, collate_fn=collate, num_workers=int(self.cfg["data"].get("num_workers", 0)),
                                batch_sampler=D.shard_batches(batches, self.dist.rank, self.dist.world_size))
        else:
            loader = DataLoader(self.train_ds, batch_size=int(t["batch_size"]), shuffle=True, generator=g,
                                drop_last=len(self.train_ds) > int(t["batch_size"]),
                                num_workers=int(self.cfg["data"].get("num_workers", 0)), collate_fn=collate)
        accum = int(t.get("grad_accum", 1))
        sums: dict[str, float] = {}
        n = 0
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(loader):
            if i >= self.steps_per_epoch:
                break
            batch = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            if t.get("channels_last"):
                batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            with self._autocast():
                loss, terms = self.strategy.loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch} step {i}; lower the lr")
            (self.scaler.scale(loss / accum) if self.scaler else loss / accum).backward()
            if (i + 1) % accum == 0 or i + 1 == self.steps_per_epoch:
                D.sync_grads_(self._unwrapped_params)  # DDP averaged the others' during backward
                if self.scaler:
                    self.scaler.unscale_(self.optimizer)
                if t.get("grad_clip"):
                    params = [p for gr in self.optimizer.param_groups for p in gr["params"]]
                    torch.nn.utils.clip_grad_norm_(params, float(t["grad_clip"]))
                if self.scaler:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                self.strategy.on_step_end(self.global_step)
                self.global_step += 1
            n += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{sums['loss'] / n:.4f}", val_srcc=self._last_val_str)
        if self.dist.world_size > 1:
            # running statistics (BatchNorm) as rank 0 has them, so every rank validates the checkpointed model
            D.broadcast_tensors_([b for net in self.strategy.nets.values() for b in net.buffers()
                                  if b.is_floating_point()])
        keys = sorted(sums)
        means = D.all_reduce_mean([sums[k] / max(n, 1) for k in keys])  # over ranks: the global batch's mean
        return {f"train_{k}": v for k, v in zip(keys, means)}

    def _wrap_ddp(self) -> None:
        """(Re)build the DDP wrappers of the strategy's forward nets for the current set of trainable
        parameters (DDP registers only those that require gradients when it is built)."""
        frozen = tuple(p.requires_grad for net in self.strategy.nets.values() for p in net.parameters())
        if self.dist.world_size <= 1 or frozen == self._ddp_state:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrappers, covered = {}, set()
        nets = self.strategy.nets
        for name in self.strategy.forward_nets():
            net = nets[name]
            if any(p.requires_grad for p in net.parameters()):
                wrappers[name] = DDP(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
                covered |= {id(p) for p in net.parameters()}
        self.strategy.set_train_forward(wrappers)
        self._unwrapped_params = [p for gr in self.optimizer.param_groups for p in gr["params"]
                                  if id(p) not in covered]
        D.broadcast_tensors_([p for p in self._unwrapped_params])
        self._ddp_state = frozen

    def evaluate(self, ds: RecordsDataset, desc: str = "eval", with_distributions: bool = False):
        for net in self.strategy.nets.values():
            net.eval()
        if self.dist.world_size > 1:
            return self._evaluate_sharded(ds, desc, with_distributions)
        loader = make_eval_loader(ds, int(self.cfg["train"]["eval_batch_size"]),
                                  int(self.cfg["data"].get("num_workers", 0)))
        with self._autocast():
            return predict_loader(self._predictor(), loader, desc=desc, with_distributions=with_distributions)

    def _predictor(self) -> Predictor:
        """How the trained system scores images: the strategy's prediction (e.g. the peers' mean) through
        the prediction core ``biqa score`` uses (:mod:`biqa.prediction`), with ``data.eval_tile``."""
        return Predictor(self.strategy.predict, device=self.device, tiling=self.eval_tiling,
                         batch_size=int(self.cfg["train"]["eval_batch_size"]),
                         channels_last=bool(self.cfg["train"].get("channels_last")))

    def _evaluate_sharded(self, ds: RecordsDataset, desc: str, with_distributions: bool):
        """Each rank predicts a strided shard (no padding, no duplicates); every rank gets all
        predictions back in dataset order, so metrics (SRCC needs them all) agree on every rank."""
        idx = D.shard_indices(len(ds), self.dist.rank, self.dist.world_size)
        res: tuple = (np.zeros(0), np.zeros(0)) + ((None, None) if with_distributions else ())
        if idx:
            sub = torch.utils.data.Subset(ds, idx)
            sizes = [image_size(ds.paths[i], ds.resolution) for i in idx]
            loader = DataLoader(sub, batch_sampler=SizeBucketBatchSampler(sizes, int(self.cfg["train"]["eval_batch_size"])),
                                num_workers=int(self.cfg["data"].get("num_workers", 0)), collate_fn=collate)
            with self._autocast():
                res = predict_loader(self._predictor(), loader, desc=desc, with_distributions=with_distributions)
        arrays = [None if a is None else (a.numpy() if isinstance(a, torch.Tensor) else a) for a in res]
        full = D.gather_predictions(idx, arrays, len(ds))
        out = [full[0].astype(float), full[1].astype(float)]
        if with_distributions:
            out += [None if a is None else torch.from_numpy(a) for a in full[2:]]
        return tuple(out)

    def _meta(self, metrics: dict) -> dict:
        return checkpoint_meta(self.preset, self.scale, crop_size=self.crop,
                               resolution=self.cfg["data"].get("eval_resolution", "full"), config=self.cfg,
                               metrics=metrics, strategy=self.cfg["strategy"].get("name"),
                               **self.strategy.checkpoint_meta())

    def _save_state(self, epoch: int) -> None:
        """Write ``state.pt`` atomically; tensors and plain Python values only (:func:`plain_state`)."""
        state = {
            "epoch": epoch, "global_step": self.global_step, "best": self.best, "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs, "history": self.history,
            # the weights too: state.pt alone is the resume point, so a kill between writing
            # last.safetensors and state.pt cannot pair one epoch's weights with another's optimiser
            "nets": {name: {k: v.detach().cpu() for k, v in net.state_dict().items()}
                     for name, net in self.strategy.nets.items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "strategy": self.strategy.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
        }
        state = plain_state(state)
        _atomic_write_bytes(self.out / "state.pt", lambda p: torch.save(state, p))

    def _load_state(self) -> int:
        from .checkpoint import read_state_dicts

        state = load_state_file(self.out / "state.pt")
        nets = state.get("nets") or read_state_dicts(self.out / "last.safetensors")  # older state.pt: no nets
        for name, net in self.strategy.nets.items():
            net.load_state_dict(nets[name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.strategy.load_state_dict(state.get("strategy") or {})
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.global_step = state["global_step"]
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
        self.history = state["history"]
        return int(state["epoch"]) + 1

    def fit(self) -> dict:
        cfg, t, es = self.cfg, self.cfg["train"], self.cfg["early_stop"]
        self.out.mkdir(parents=True, exist_ok=True)
        main = self.is_main  # only rank 0 writes files and shows progress
        if main:
            save_config(cfg, self.out / "config.yaml")
            if self.skipped_images:
                pd.DataFrame(self.skipped_images).to_csv(self.out / "skipped_images.csv", index=False)
        self.global_step, self.best, self.best_epoch, self.bad_epochs = 0, -math.inf, -1, 0
        self.history: list[dict] = []
        self._last_val_str = "-"
        start = 0
        has_state = self.resume and (self.out / "state.pt").is_file()
        if len(set(D.all_gather_object(has_state))) > 1:
            raise RuntimeError(f"{self.out / 'state.pt'} is not visible to every rank: out_dir must be on a "
                               f"filesystem all nodes share to resume")
        if has_state:
            start = self._load_state()
            if main and self.history:
                self._write_history()  # a kill after state.pt but before metrics.csv: bring it up to date
        metric = self.val_metric
        epochs = int(t["epochs"])
        bar = tqdm(total=(epochs - start) * self.steps_per_epoch, desc=f"train {cfg['name']}",
                   disable=not (cfg.get("progress", True) and main), dynamic_ncols=True)
        stopped_early = False
        for epoch in range(start, epochs):
            if self.bad_epochs >= int(es.get("patience", 10**9)):
                stopped_early = True
                break
            self._set_backbone_frozen(epoch < int(t.get("freeze_backbone_epochs") or 0))
            self._wrap_ddp()
            self.strategy.on_epoch_start(epoch)
            t0 = time.time()
            row = {"epoch": epoch + 1, **self._train_epoch(epoch, bar)}
            row["train_seconds"] = time.time() - t0
            pred, mos, probs, dists = self.evaluate(self.val_ds, "val", with_distributions=True)
            val = quick_metrics(pred, mos, self.scale.higher_is_better)
            val.update(validation_losses(pred, mos, probs, dists, self.scale, cfg["strategy"].get("loss", "mse")))
            row.update({f"val_{k}": v for k, v in val.items()})
            row["lr_head"] = self.optimizer.param_groups[-1]["lr"]
            self.history.append(row)
            self._last_val_str = f"{val['srcc']:.4f}"
            score = val.get(metric, float("nan")) * (-1.0 if metric in VAL_METRICS_LOWER else 1.0)
            nets = self.strategy.nets
            if np.isfinite(score) and score > self.best + float(es.get("min_delta", 0.0)):
                self.best, self.best_epoch, self.bad_epochs = float(score), epoch + 1, 0
                if main:
                    save_checkpoint(self.out / "best.safetensors", nets, self._meta({"epoch": epoch + 1, **val}))
            else:
                self.bad_epochs += 1
            reports = self.strategy.epoch_report(epoch)  # on every rank: it may gather over ranks
            if not main:
                continue
            save_checkpoint(self.out / "last.safetensors", nets, self._meta({"epoch": epoch + 1, **val}))
            self._save_state(epoch)
            self._write_history()
            for name, table in reports.items():
                if "index" in table.columns:
                    table.insert(1, "path", [self.train_df["path"].iloc[i] for i in table["index"]])
                table.to_csv(self.out / f"{name}_epoch{epoch + 1}.csv", index=False)
            bar.write(f"epoch {epoch + 1}/{epochs}: loss {row['train_loss']:.4f}  val SRCC {val['srcc']:.4f}  "
                      f"PLCC {val['plcc']:.4f}  ({row['train_seconds']:.0f}s)")
        bar.close()
        summary = {"out_dir": str(self.out), "best_epoch": self.best_epoch, f"best_val_{metric}": self.best,
                   "epochs_run": len(self.history), "stopped_early": stopped_early}
        D.barrier()  # rank 0 has written best.safetensors
        if cfg.get("test_at_end", True) and self.test_ds is not None and (self.out / "best.safetensors").is_file():
            test = self._test_best()
            if test is not None:
                summary["test"] = test
        if main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        D.barrier()  # ranks finish together (one leaving the process group early can abort another at exit)
        return summary

    def _test_best(self) -> dict:
        from .checkpoint import read_state_dicts
        from .report import scatter_plot

        states = read_state_dicts(self.out / "best.safetensors")
        for name, net in self.strategy.nets.items():
            net.load_state_dict(states[name])
        pred, mos, probs, dist = self.evaluate(self.test_ds, "test", with_distributions=True)
        if not self.is_main:
            return None
        res = M.evaluate_predictions(pred, mos, higher_is_better=self.scale.higher_is_better, n_boot=1000,
                                     seed=int(self.cfg["seed"]))
        if probs is not None:
            res["emd"] = float(emd_loss(probs, dist))
        (self.out / "test_metrics.json").write_text(json.dumps(res, indent=2, default=float))
        pd.DataFrame({"path": self.test_df["path"], "mos": mos, "pred": pred}).to_csv(
            self.out / "test_predictions.csv", index=False)
        scatter_plot(pred, mos, self.out / "test_scatter.png", title=f"{self.cfg['name']} (test)", metrics=res)
        return res

    def _write_history(self) -> None:
        df = pd.DataFrame(self.history)
        df.to_csv(self.out / "metrics.csv", index=False)
        try:
            from .report import curves_plot

            curves_plot(df, self.out / "curves.png")
        except Exception as e:  # plotting must never kill a run
            print(f"warning: could not draw curves.png: {e}")


def train(config: str | os.PathLike | dict, overrides: list[str] | None = None, resume: bool = False) -> dict:
    """Train from a YAML path or dict (+ ``key=value`` overrides). Returns the run summary."""
    cfg = load_config(config, overrides)
    return Trainer(cfg, resume=resume).fit()
