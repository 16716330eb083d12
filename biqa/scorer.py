"""Scoring files, folders, globs, tensors and PIL images with a trained model.

``biqa.load(name_or_checkpoint).score(inputs)`` returns one row per input, in input
order: ``path``, ``score`` (and ``std`` for distribution models), ``error``
(empty unless the input could not be read; such rows have no score, and scoring
goes on) and ``tiles``: how many tiles the image was scored in (1: whole; empty for an
error row). Images above a pixel budget are scored in tiles at full resolution, see
:mod:`biqa.tiling`.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import load_model
from .data import (DEFAULT_DECODE_TIMEOUT, Resolution, SizeBucketBatchSampler, check_image_batch, load_image, time_limit,
                   to_tensor)
from .host import available_cpus, default_threads, default_workers, pipelined, resolve_device, tune_allocator
from .imageio import collect_inputs  # noqa: F401  (re-exported: biqa.scorer.collect_inputs)
from .imageio import check_scorable_file, error_text, header_size
from .ortscore import normalise as _normalise_np
from .paths import path_to_text, printable
from .prediction import Predictor
from .tiling import TilePolicy
from .zoo import DEFAULT_MODEL, TRAINED_MODELS, WEIGHTS_DIR, list_trained_models, resolve_checkpoint

# the trained-model registry lives in biqa.zoo and host tuning in biqa.host; their names stay importable here
__all__ = ["Scorer", "load", "collect_inputs", "scores_for_writing", "write_scores", "EXAMPLES_DIR", "BACKENDS",
           "MAX_BATCH_PIXELS", "DEFAULT_MODEL", "TRAINED_MODELS", "WEIGHTS_DIR", "list_trained_models",
           "resolve_checkpoint", "available_cpus", "default_threads", "default_workers", "tune_allocator"]

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


class _ScoreDataset(Dataset):
    def __init__(self, paths, resolution, decode_timeout: float | None = DEFAULT_DECODE_TIMEOUT):
        self.paths, self.resolution, self.decode_timeout = paths, resolution, decode_timeout

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        p = self.paths[i]
        try:
            # the file may have gone or changed since it was listed: that is this row's error
            check_scorable_file(p)  # a folder, pipe or device: opening a pipe would wait forever
            with time_limit(self.decode_timeout):
                im = load_image(p, self.resolution)
            # uint8 HWC: a quarter of the bytes of float to pass between processes; normalised
            # in the scoring process (see Scorer._normalise), arriving channels-last
            return {"index": i, "image": torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())}
        except Exception as e:  # reported as this input's row, never a crash
            return {"index": i, "error": error_text(e)}


def _collate(items):
    ok = [it for it in items if "error" not in it]
    groups: dict = {}
    for it in ok:  # a header can lie about the decoded size: stack equal shapes only
        groups.setdefault(tuple(it["image"].shape), []).append(it)
    # [B, H, W, 3] uint8, handed over as the [B, 3, H, W] view (channels-last strides); one image
    # (e.g. a large one to be tiled) is passed on without a copy
    return {
        "groups": [(torch.tensor([g["index"] for g in gs]),
                    (gs[0]["image"][None] if len(gs) == 1 else torch.stack([g["image"] for g in gs])).permute(0, 3, 1, 2))
                   for gs in groups.values()],
        "errors": [(it["index"], it["error"]) for it in items if "error" in it],
    }


# Batches of large images hold at most this many pixels: on the CPU a batch of several 1024x768
# images runs slower per image than one at a time (activations outgrow the caches), while small
# images gain from batching (224x224: up to 8 a batch).
MAX_BATCH_PIXELS = 1 << 19


class Scorer:
    """Score images with one model. Build it with :func:`load`."""

    def __init__(self, model, meta: dict, *, device: str | torch.device = "cpu",
                 batch_size: int = 8, num_workers: int | None = None, resolution: str | None = None,
                 channels_last: bool = True, threads: int | None = None,
                 max_batch_pixels: int | None = MAX_BATCH_PIXELS, tile: "str | int | TilePolicy | None" = "auto",
                 tile_overlap: int | None = None, tile_budget: int | None = None,
                 decode_timeout: float | None = DEFAULT_DECODE_TIMEOUT, clip: bool = False):
        # model: a torch module (IQAModel / Ensemble), or a callable with the same contract
        # (normalised [B, 3, H, W] tensor -> dict of tensors), e.g. an OnnxRuntimeModel
        self.backend = getattr(model, "backend", "torch")
        is_module = isinstance(model, torch.nn.Module)
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device) if is_module else model
        self.meta = meta
        self.batch_size = batch_size
        # seconds one image may take to decode (its row then gets an error); 0 / None: no limit
        self.decode_timeout = decode_timeout
        self.max_batch_pixels = max_batch_pixels
        # images above the budget are scored in full-resolution tiles (biqa.tiling)
        self.tiling = TilePolicy.parse(tile, tile_overlap, tile_budget)
        self.num_workers = default_workers() if num_workers is None else num_workers
        if threads or torch.get_num_threads() > available_cpus():  # never more threads than CPUs
            torch.set_num_threads(int(threads or default_threads(self.num_workers)))
        channels_last = channels_last and is_module
        if is_module and self.device.type == "cpu":
            tune_allocator()
        pre = meta.get("preprocessing", {})
        self.mean, self.std = tuple(pre["mean"]), tuple(pre["std"])
        self._mean_t = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std_t = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.resolution = Resolution.parse(resolution or pre.get("resolution", "full"))
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # the one prediction core, shared with biqa eval, the trainer's validation / test and biqa bench
        self.predictor = Predictor(self.model, device=self.device, tiling=self.tiling, batch_size=batch_size,
                                   channels_last=channels_last)
        self.has_std = meta.get("preset", {}).get("head") == "distribution"
        scale = meta.get("label_scale", {})
        # the nominal range of the labels the model was fitted on; a regression head is not bounded by it
        self.score_range = (float(scale.get("lo", float("-inf"))), float(scale.get("hi", float("inf"))))
        self.higher_is_better = bool(scale.get("higher_is_better", True))
        self.clip = bool(clip)  # clamp scores into score_range (off by default: the model's own numbers)
        from .models import warn_if_untrained

        self.trained = bool(meta.get("trained", getattr(model, "trained", True)))
        warn_if_untrained(model, self.trained, meta.get("checkpoint", "this model"))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model outputs for a normalised batch ``[B, 3, H, W]`` (whole, never tiled)."""
        return self.predictor.forward(x)

    def predict(self, x: torch.Tensor, normalise=None) -> dict[str, torch.Tensor]:
        """Scores of a batch of equal-sized images, tiled where the policy says so
        (:meth:`biqa.prediction.Predictor.predict`)."""
        return self.predictor.predict(x, normalise)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` (any strides) -> normalised float32, as :func:`biqa.data.to_tensor` does.

        For onnxruntime the result is contiguous ``[B, 3, H, W]``, the layout its session takes, made by
        :func:`biqa.ortscore.normalise` (same values bit for bit; ~2.4 ms a 1024x768 photo against ~11 ms
        for these torch steps followed by the copy out of channels-last)."""
        if self.backend == "onnxruntime" and x.device.type == "cpu" and x.dtype == torch.uint8:
            return torch.from_numpy(_normalise_np(x.permute(0, 2, 3, 1).numpy(), self.mean, self.std))
        return x.to(torch.float32).div_(255.0).sub_(self._mean_t).div_(self._std_t)

    def _rows_from(self, res, idx, rows):
        """Fill ``rows[i]`` for ``i`` in ``idx`` from :meth:`predict`'s result; an image the model reports
        an error for (``res["errors"]``, e.g. too small for a classical method) becomes an error row."""
        score, tiles = res["score"].tolist(), res["tiles"].tolist()
        std = res["std"].tolist() if "std" in res else None
        errors = res.get("errors")
        for j, i in enumerate(idx.tolist()):
            if errors is not None and errors[j]:
                rows[i]["error"] = errors[j]
                rows[i]["score"] = float("nan")
                continue
            rows[i]["score"] = float(score[j])
            rows[i]["tiles"] = int(tiles[j])
            if std is not None:
                rows[i]["std"] = float(std[j])

    def score(self, inputs, *, progress: bool = False) -> pd.DataFrame:
        """Score paths (files / folders / globs), PIL images, or image tensors in [0, 1].

        Tensors: ``[3, H, W]`` or ``[B, 3, H, W]``, float, RGB values in [0, 1], not normalised (the
        scorer applies the checkpoint's mean and std). An 8-bit (integer) tensor, 0-255 values,
        negative values (an already normalised tensor) or NaN raise a ``ValueError`` saying what to
        pass (:func:`biqa.data.check_image_batch`).
        Returns a DataFrame with one row per input, in input order.
        """
        if isinstance(inputs, torch.Tensor):
            return self._score_tensors(check_image_batch(inputs, who="Scorer.score"))
        if isinstance(inputs, Image.Image):
            inputs = [inputs]
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, Image.Image) for i in inputs):
            return self._score_pil(list(inputs))
        return self.score_paths(collect_inputs(inputs), progress=progress)

    def _score_tensors(self, x: torch.Tensor) -> pd.DataFrame:
        rows = [{"path": f"<tensor {i}>", "score": np.nan, "error": ""} for i in range(len(x))]
        step = 1 if self.tiling.applies(int(x.shape[-1]), int(x.shape[-2])) else self.batch_size
        for k in range(0, len(x), step):
            res = self.predict(x[k:k + step], lambda t: (t.float() - self._mean_t) / self._std_t)
            self._rows_from(res, torch.arange(k, k + min(step, len(x) - k)), rows)
        return self.frame(rows)

    def _score_pil(self, ims: list[Image.Image]) -> pd.DataFrame:
        rows = [{"path": f"<image {i}>", "score": np.nan, "error": ""} for i in range(len(ims))]
        for i, im in enumerate(ims):
            im = im.convert("RGB")
            tw, th = self.resolution.target_size(*im.size)
            if (tw, th) != im.size:
                im = im.resize((tw, th), Image.BICUBIC)
            if self.tiling.applies(tw, th):
                x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)[None]
                self._rows_from(self.predict(x, self._normalise), torch.tensor([i]), rows)
                continue
            self._rows_from(self.predict(to_tensor(im, self.mean, self.std)[None]), torch.tensor([i]), rows)
        return self.frame(rows)

    def score_paths(self, paths: list[str], *, progress: bool = False, on_batch=None) -> pd.DataFrame:
        """Score image paths. ``on_batch(indices, rows)``, if given, is called after each batch with
        the indices (into ``paths``) it finished and the list of all rows (see :mod:`biqa.score_job`)."""
        rows = [{"path": p, "score": np.nan, "error": ""} for p in paths]
        if not paths:
            return self.frame(rows)
        sizes = [self._header_size(p) for p in paths]
        ds = _ScoreDataset(paths, self.resolution, self.decode_timeout)
        workers = min(self.num_workers, len(paths) // 2)
        batches = []  # images to be tiled (by their header size) come one per batch
        for b in SizeBucketBatchSampler(sizes, self.batch_size, self.max_batch_pixels).batches:
            tiled = sizes[b[0]] is not None and self.tiling.applies(*sizes[b[0]])
            batches += [[i] for i in b] if tiled else [b]
        loader = DataLoader(ds, batch_sampler=batches, num_workers=workers, collate_fn=_collate)

        # onnxruntime with inline decoding (no worker process): the network runs in one worker thread
        # while this thread decodes the next batch (biqa.host.pipelined). onnxruntime releases the GIL,
        # and its threads leave part of the CPUs idle (on 2 cores, 2 threads run a 1024x768 forward only
        # ~1.7x faster than 1), which decoding then uses: +11% images/s measured (float32 and int8,
        # 64 JPEGs at 1024x768). Not for torch: its OpenMP pool, driven from a second thread, ran at half speed.
        with tqdm(total=len(paths), desc="scoring", unit="img", disable=not progress, dynamic_ncols=True) as bar:

            def finish(batch, results) -> None:
                for i, err in batch["errors"]:
                    rows[i]["error"] = err
                for idx, res in results:
                    self._rows_from(res, idx, rows)
                if on_batch is not None:
                    on_batch([i for i, _ in batch["errors"]] + [i for idx, _ in results for i in idx.tolist()], rows)
                bar.update(len(batch["errors"]) + sum(len(i) for i, _ in results))

            # tiled or not: decided on the decoded size
            pipelined(loader, lambda batch: batch["groups"], lambda x: self.predict(x, self._normalise), finish,
                      threaded=workers == 0 and self.backend == "onnxruntime")
        return self.frame(rows)

    def _header_size(self, path: str):
        """The size the network will see, from the file's header; ``None`` when unknown (the
        image is then decoded alone and its error, if any, reported on its row)."""
        return header_size(path, self.resolution, self.decode_timeout)

    @property
    def columns(self) -> list[str]:
        """The columns of this scorer's rows, in order: ``path``, ``score``, ``std`` (distribution
        models only), ``error``, ``tiles``."""
        return ["path", "score"] + (["std"] if self.has_std else []) + ["error", "tiles"]

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        """The DataFrame of row dicts (as :meth:`score_paths` fills them or :func:`biqa.score_job.read_partial`
        reads them back): :attr:`columns` in order (a missing one empty), ``tiles`` as nullable
        integers, scores clipped when the scorer clips."""
        cols = self.columns
        df = pd.DataFrame(rows)
        for c in cols:
            if c not in df.columns:
                df[c] = np.nan
        df["tiles"] = pd.to_numeric(df["tiles"], errors="coerce").astype("Int64")  # empty for error rows
        if self.clip:
            df["score"] = pd.to_numeric(df["score"]).clip(*self.score_range)
        return df[cols]


BACKENDS = ("torch", "onnxruntime")


def load(name_or_checkpoint: str | os.PathLike | None = None, *, device: str = "auto", peer: str | None = None,
         backend: str = "auto", threads: int | None = None, fold_bn: bool = True, precision: str | None = None,
         force: bool = False, **kwargs) -> Scorer:
    """A :class:`Scorer` for a trained model name (default ``biqa-default``), a checkpoint path, or
    an ONNX file from ``biqa export``.

    ``peer``: score with one network of a multi-network checkpoint (e.g. ``peer1`` of a DML
    run) instead of what the run predicts with (the mean of its peers).
    ``backend``: ``torch``, ``onnxruntime`` (CPU; a checkpoint is exported to ONNX once and cached,
    see :func:`biqa.export.cached_onnx`), or ``auto`` (onnxruntime for ``.onnx`` files, else torch).
    ``threads``: intra-op threads (default: :func:`default_threads`).
    ``fold_bn``: fold BatchNorms into the convolutions before them (torch backend; same scores
    within float rounding, faster: :func:`biqa.inference.fold_batchnorm`).
    ``tile``: ``"auto"`` (default: images above ``tile_budget`` pixels, default 2 Mi px, are scored
    in 768-pixel tiles at full resolution, the score being the mean of the tile scores), ``"off"``
    (every image whole, however large), or a tile side ``N`` (every image larger than N x N is
    tiled); ``tile_overlap``: pixels shared by neighbouring tiles (default a 1/8 of the side). See
    :mod:`biqa.tiling`.
    ``clip``: clamp scores into the model's nominal range (``Scorer.score_range``, e.g. 1-5 for
    ``biqa-default``). Off by default: a regression head is not bounded by its training labels' range,
    and images unlike photographs (flat colour, pure noise, tiny inputs) can score outside it.

    ``precision``: ``fp32``, ``bf16`` (torch: autocast, where the device computes bf16 natively) or
    ``int8`` (onnxruntime: the int8 export, :func:`biqa.export.export_onnx` with ``quantize="int8"``;
    ``auto`` picks onnxruntime for it); ``None``: fp32, or an ONNX file's own precision. A reduced
    precision is offered only where the accuracy guard passed for this model
    (:mod:`biqa.precision_guard`); ``force=True`` scores anyway, with a warning. See docs/speed.md.

    ``brisque``, ``niqe`` and ``piqe`` load the classical baselines of :mod:`biqa.classical` (scores
    higher-is-better, ``-raw``; CPU, whole images: ``device``, ``tile`` and the like are ignored)."""
    from .classical import classical_model, is_classical
    from .precision_guard import calibration_variant, check_precision, check_supported, require_offered

    precision = check_precision(precision)
    if is_classical(name_or_checkpoint) and not Path(str(name_or_checkpoint)).exists():
        if kwargs.pop("clip", False):
            raise ValueError(f"{name_or_checkpoint} is a classical model: its scores have no nominal range to clip to")
        if precision not in (None, "fp32"):
            raise ValueError(f"{name_or_checkpoint} is a classical model: it computes in float64, --precision does not apply")
        model, meta = classical_model(str(name_or_checkpoint), resolution=kwargs.get("resolution"), backend=backend,
                                      threads=threads, peer=peer)
        return Scorer(model, meta, device="cpu", batch_size=kwargs.get("batch_size", 8),
                      num_workers=kwargs.get("num_workers"), channels_last=False, tile="off")
    label = str(name_or_checkpoint or DEFAULT_MODEL)
    path = resolve_checkpoint(name_or_checkpoint)
    is_onnx = path.suffix.lower() == ".onnx"
    backend = {"auto": "onnxruntime" if is_onnx or precision == "int8" else "torch", "ort": "onnxruntime",
               "onnx": "onnxruntime"}.get(backend, backend)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if precision is not None:
        check_supported(backend, precision)
    if backend == "onnxruntime":
        from .export import OnnxRuntimeModel, cached_onnx

        if is_onnx and peer:
            raise ValueError("--peer selects a network of a checkpoint; an ONNX file holds one model already")
        onnx_path = path if is_onnx else cached_onnx(path, peer=peer, precision=precision or "fp32")
        workers = kwargs.get("num_workers")
        model = OnnxRuntimeModel(onnx_path, threads=threads or default_threads(workers))
        if precision is not None and model.precision != precision:
            raise ValueError(f"{path} is a {model.precision} model, not {precision}"
                             + (": export an int8 one with `biqa export CHECKPOINT --quantize int8`"
                                if precision == "int8" else ""))
        precision = model.precision
        meta = dict(model.meta, checkpoint=str(path), onnx=str(onnx_path), precision=precision)
        warn = require_offered(meta.get("checkpoint_sha256"), precision, "onnxruntime", calibration_variant(meta),
                               force=force, model=label)
        if warn:
            warnings.warn(warn, stacklevel=2)
        kwargs.pop("channels_last", None)
        return Scorer(model, meta, device="cpu", channels_last=False, **kwargs)
    if is_onnx:
        raise ValueError(f"{path} is an ONNX model: score it with the onnxruntime backend")
    device = resolve_device(device)
    precision = precision or "fp32"
    if precision == "bf16":
        from .precision import native_bf16

        if not native_bf16(device):
            raise ValueError(f"--precision bf16 is not offered on this {torch.device(device).type.upper()}: it does not "
                             "compute bfloat16 natively (AVX512-BF16 or AMX on a CPU), so bf16 would be emulated and "
                             "slower than fp32")
        from .ortscore import file_digest

        warn = require_offered(file_digest(path), "bf16", "torch", force=force, model=label)
        if warn:
            warnings.warn(warn, stacklevel=2)
    model, meta = load_model(path, net=peer)
    meta["checkpoint"] = str(path)
    meta["precision"] = precision
    if fold_bn:
        from .inference import fold_batchnorm

        meta["folded_batchnorms"] = fold_batchnorm(model.eval())
    if precision == "bf16":
        from .precision import AutocastModel

        model = AutocastModel(model.eval())
    return Scorer(model, meta, device=device, threads=threads, **kwargs)


def scores_for_writing(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its ``path`` column as text any UTF-8 file can hold (:func:`biqa.paths.path_to_text`:
    ordinary names unchanged, names that are not valid UTF-8 quoted with ``\\xHH`` escapes) and
    printable error messages."""
    df = df.copy()
    if "path" in df.columns:
        df["path"] = [path_to_text(p) if isinstance(p, str) else p for p in df["path"]]
    if "error" in df.columns:
        df["error"] = [printable(e) if isinstance(e, str) else e for e in df["error"]]
    return df


def write_scores(df: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Write scores as CSV (``.csv``) or JSON (``.json``: a list of row objects), atomically: a
    failed write (full disk, kill) leaves any previous ``out`` as it was. Paths are written as
    :func:`biqa.paths.path_to_text` gives them (read them back with :func:`biqa.paths.text_to_path`)."""
    from .checkpoint import _atomic_write_bytes

    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".json", ".csv", ""):
        raise ValueError(f"unsupported output {out.suffix!r}: use .csv or .json")
    df = scores_for_writing(df)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".json":
        recs = json.loads(df.to_json(orient="records"))
        text = json.dumps(recs, indent=1)
        _atomic_write_bytes(out, lambda p: p.write_text(text, encoding="utf-8"))
    else:
        _atomic_write_bytes(out, lambda p: df.to_csv(p, index=False, float_format="%.6f", encoding="utf-8"))
    return out
