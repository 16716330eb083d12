"""Scoring with onnxruntime, NumPy and Pillow only: the command line's torch-free path.

``biqa score`` with an exported ONNX model (a ``.onnx`` file, or the cached export of a checkpoint or
of ``biqa-default`` made by an earlier ``--backend onnxruntime`` / ``--precision int8`` run) never
imports torch, timm or torchvision: it starts in a fraction of a second instead of the ~5 s those
imports take. Everything between the file and the network is here, in NumPy and Pillow, and
matches the torch scorer (:class:`biqa.scorer.Scorer` with :class:`biqa.export.OnnxRuntimeModel`):

- finding, decoding (EXIF orientation), sizing (``--resolution``) and reading the header size:
  :mod:`biqa.imageio`, shared with the torch path;
- batching: images of one size together, at most ``batch_size`` and
  :data:`MAX_BATCH_PIXELS` pixels a batch (:func:`biqa.imageio.size_batches`, shared);
- normalisation: :func:`normalise`, ``(pixel / 255 - mean) / std`` in float32, in the torch path's
  order of operations (the arrays are equal bit for bit: ``tests/test_ortscore.py``);
- tiling of large images: the grid, the tiles per forward pass and the aggregation of
  :mod:`biqa.tiling` (pure Python), the tiles cut here with NumPy (:func:`tile_stacks`);
- the rows: ``path``, ``score`` (``std``), ``error``, ``tiles``, written as :func:`biqa.scorer.write_scores`
  writes them.

The command line takes this path by itself when it can (one process, no ``--resume``, CPU);
``BIQA_TORCH_FREE=0`` turns it off. The ONNX export cache (:func:`cache_dir`, :func:`cache_key`)
lives here too, so that finding a cached export needs no torch either.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .host import default_threads, pipelined
from .imageio import check_scorable_file, error_text, header_size, load_image, size_batches
from .paths import path_to_text, printable
from .resolution import Resolution
from .tiling import DEFAULT_PASS_PIXELS, TileGrid, TilePolicy, aggregate
from .timelimit import DEFAULT_DECODE_TIMEOUT, time_limit

ONNX_FORMAT = "biqa-onnx-1"
DEFAULT_OPSET = 17
# Bumped when the exported graph changes for the same checkpoint (2: timm's dynamic "same" padding
# became the convolution's own auto_pad), so that cached exports of older graphs are not reused.
GRAPH_REVISION = 2
INT8_REVISION = 4  # bumped when the int8 recipe (which layers stay float32, ...) changes (4: stem + block 0 only)
MAX_BATCH_PIXELS = 1 << 19  # as biqa.scorer.MAX_BATCH_PIXELS
PRECISIONS = ("fp32", "bf16", "int8")


def _need_ort():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("onnxruntime is not installed: pip install 'biqa[onnx]' (onnx and onnxruntime)") from None
    return onnxruntime


# ---------------------------------------------------------------- the export cache (no torch needed to find it)

def cache_dir() -> Path:
    """Where checkpoints exported for ``--backend onnxruntime`` are kept: ``$BIQA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/biqa``, else ``~/.cache/biqa`` (an ``onnx/`` folder inside it)."""
    root = os.environ.get("BIQA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "biqa")
    return Path(root) / "onnx"


def cache_folders() -> list[Path]:
    """The cache folder, then the temporary folder used when it cannot be written."""
    return [cache_dir(), Path(tempfile.gettempdir()) / "biqa-onnx-cache"]


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_calibration_table(checkpoint: str | os.PathLike) -> Path | None:
    """The int8 calibration table shipped for a bundled model (``weights/<name>.int8-calibration.json``
    beside its checkpoint), or ``None``."""
    p = Path(checkpoint)
    table = p.with_name(f"{p.stem}.int8-calibration.json")
    return table if table.is_file() else None


def cache_key(checkpoint: str | os.PathLike, *, peer: str | None = None, opset: int = DEFAULT_OPSET,
              precision: str = "fp32", calibration_table: str | os.PathLike | None = None) -> str:
    """The cache file name (without ``.onnx``) of a checkpoint's export: its SHA-256, the peer, the
    opset, the export format and graph revision, biqa's version; for int8 also the calibration
    table's SHA-256, so that a retrained checkpoint or a new calibration never reuses an old export."""
    from . import __version__

    key = f"{file_digest(checkpoint)[:24]}-{peer or 'default'}-op{opset}-{ONNX_FORMAT}r{GRAPH_REVISION}-{__version__}"
    if precision != "fp32":
        key += f"-{precision}" + (f"r{INT8_REVISION}" if precision == "int8" else "")
        if calibration_table is not None:
            key += f"-cal{file_digest(calibration_table)[:12]}"
    return key


def find_cached_export(checkpoint: str | os.PathLike, *, peer: str | None = None, opset: int = DEFAULT_OPSET,
                       precision: str = "fp32") -> Path | None:
    """The cached export of ``checkpoint`` if one was made already, else ``None`` (nothing is
    exported here: that needs torch, see :func:`biqa.export.cached_onnx`)."""
    table = default_calibration_table(checkpoint) if precision == "int8" else None
    if precision == "int8" and table is None:
        return None
    key = cache_key(checkpoint, peer=peer, opset=opset, precision=precision, calibration_table=table)
    for folder in cache_folders():
        target = folder / f"{key}.onnx"
        if target.is_file():
            return target
    return None


# ---------------------------------------------------------------- the model

def session_options(threads: int | None):
    """onnxruntime session options as biqa runs its models (threads, no spinning, all graph optimisations)."""
    ort = _need_ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or default_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Threads that spin between runs take the CPU that decoding needs when the two share cores:
    # measured on 2 cores, spinning cost 7% of the pipeline's throughput with inline decoding and
    # 15% with a decode worker, and gained ~3% on the bare forward. BIQA_ORT_SPIN=1 turns it on.
    if os.environ.get("BIQA_ORT_SPIN", "0") != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def model_precision(meta: dict) -> str:
    """The arithmetic an exported model runs in: ``int8`` for a quantised export, else ``fp32``."""
    return str(meta.get("precision", "fp32"))


class OrtModel:
    """An exported model in an onnxruntime session, NumPy in and out: ``model(x)`` with ``x`` a
    normalised float32 ``[B, 3, H, W]`` array returns ``{"score": ..., "z": ..., ["std", "probs"]}``.
    ``meta``: the ``biqa`` record of the file's metadata (read through onnxruntime, no ``onnx`` import)."""

    backend = "onnxruntime"

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None,
                 providers: list[str] | None = None):
        ort = _need_ort()
        src = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
        self.session = ort.InferenceSession(src, session_options(threads),
                                            providers=providers or ["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if "biqa" not in props:
            where = "the model" if isinstance(model, (bytes, bytearray)) else str(model)
            raise ValueError(f"{where} is an ONNX model but not one exported by biqa (no 'biqa' metadata): "
                             "use `biqa export`")
        self.meta = json.loads(props["biqa"])
        self.precision = model_precision(self.meta)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(self.output_names, outs))


# ---------------------------------------------------------------- preprocessing

def normalise(u8: np.ndarray, mean, std) -> np.ndarray:
    """uint8 ``[B, H, W, 3]`` (or one ``[H, W, 3]`` image) -> the network's input, float32
    ``[B, 3, H, W]`` (contiguous): ``(x / 255 - mean) / std``, each step in float32 as the torch path
    does it (:meth:`biqa.scorer.Scorer._normalise`), so the values are bit-identical.

    The channels move first, in the cast (one pass that writes ``[B, 3, H, W]``); the three steps then
    run in place over whole planes. Broadcasting ``mean`` over a trailing axis of 3 instead ran ~7x
    slower (a 1024x768 photo: ~16 ms against ~2.4 ms on this project's 2-core machine), time the
    scoring pipeline spends beside every forward."""
    a = np.asarray(u8)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [B, H, W, 3], got shape {a.shape}")
    x = np.empty((a.shape[0], 3, a.shape[1], a.shape[2]), dtype=np.float32)
    x[...] = a.transpose(0, 3, 1, 2)
    x /= np.float32(255.0)
    x -= np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    x /= np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return x


def tile_stacks(image: np.ndarray, grid: TileGrid, per_batch: int) -> Iterator[np.ndarray]:
    """Stacks ``[b, th, tw, 3]`` of the tiles of ``grid`` cut from ``image`` ``[H, W, 3]`` (uint8 as
    decoded), in grid order, ``per_batch`` at a time: only one stack is ever converted to float."""
    pos = grid.positions
    tw, th = grid.width, grid.height
    for k in range(0, len(pos), per_batch):
        yield np.stack([image[y:y + th, x:x + tw] for x, y in pos[k:k + per_batch]])


def decode(path: str, resolution: Resolution, timeout: float | None = DEFAULT_DECODE_TIMEOUT) -> np.ndarray:
    """The image at ``path`` as the network will see it: uint8 ``[H, W, 3]`` (RGB, EXIF orientation
    applied, sized by ``resolution``); raises what the row's error will say."""
    check_scorable_file(path)
    with time_limit(timeout):
        im = load_image(path, resolution)
    return np.asarray(im, dtype=np.uint8)


# ---------------------------------------------------------------- the scorer

class OrtScorer:
    """Scores image files with an exported ONNX model, without torch (see the module docstring).

    ``OrtScorer("model.onnx").score_paths(paths)`` returns one row (a dict) per path, in order:
    ``path``, ``score``, [``std``,] ``error`` and ``tiles``, as :meth:`biqa.scorer.Scorer.score_paths`
    does (``float("nan")`` for a missing score, ``None`` for a missing tile count).
    """

    backend = "onnxruntime"

    def __init__(self, model: str | os.PathLike | OrtModel, *, threads: int | None = None, batch_size: int = 8,
                 resolution: str | None = None, tile: "str | int | TilePolicy | None" = "auto",
                 tile_overlap: int | None = None, tile_budget: int | None = None,
                 max_batch_pixels: int | None = MAX_BATCH_PIXELS,
                 decode_timeout: float | None = DEFAULT_DECODE_TIMEOUT, clip: bool = False):
        # an OrtModel, or anything with its contract (a ``meta`` record; float32 [B, 3, H, W] -> dict of arrays)
        self.model = OrtModel(model, threads=threads or default_threads(0)) if isinstance(
            model, (str, bytes, os.PathLike)) else model
        self.meta = self.model.meta
        self.precision = model_precision(self.meta)
        pre = self.meta.get("preprocessing", {})
        self.mean, self.std = tuple(pre["mean"]), tuple(pre["std"])
        self.resolution = Resolution.parse(resolution or pre.get("resolution", "full"))
        self.tiling = TilePolicy.parse(tile, tile_overlap, tile_budget)
        self.batch_size = int(batch_size)
        self.max_batch_pixels = max_batch_pixels
        self.decode_timeout = decode_timeout
        self.has_std = self.meta.get("preset", {}).get("head") == "distribution"
        scale = self.meta.get("label_scale", {})
        self.score_range = (float(scale.get("lo", float("-inf"))), float(scale.get("hi", float("inf"))))
        self.clip = bool(clip)

    @property
    def columns(self) -> list[str]:
        return ["path", "score"] + (["std"] if self.has_std else []) + ["error", "tiles"]

    def predict(self, u8: np.ndarray) -> dict[str, np.ndarray]:
        """Scores of equal-sized images, uint8 ``[B, H, W, 3]``: ``score`` (float64 ``[B]``), ``tiles``
        (int ``[B]``) and ``std`` where the model gives one; images the tile policy tiles are scored in
        tiles, as :meth:`biqa.prediction.Predictor.predict` does."""
        h, w = int(u8.shape[1]), int(u8.shape[2])
        if not self.tiling.applies(w, h):
            out = self.model(normalise(u8, self.mean, self.std))
            res = {"score": np.asarray(out["score"], np.float32).reshape(-1).astype(np.float64),
                   "tiles": np.ones(len(u8), dtype=np.int64)}
            if "std" in out:
                res["std"] = np.asarray(out["std"], np.float32).reshape(-1).astype(np.float64)
            return res
        grid = self.tiling.grid(w, h)
        per = self.tiling.tiles_per_forward(grid, self.batch_size, DEFAULT_PASS_PIXELS)
        scores, stds, tiles = [], [], []
        for img in u8:
            s, sd = [], []
            for stack in tile_stacks(img, grid, per):
                out = self.model(normalise(stack, self.mean, self.std))
                s += np.asarray(out["score"], np.float64).reshape(-1).tolist()
                if "std" in out:
                    sd += np.asarray(out["std"], np.float64).reshape(-1).tolist()
            score, std = aggregate(s, sd if sd else None)
            scores.append(score)
            stds.append(std)
            tiles.append(len(grid))
        res = {"score": np.asarray(scores, np.float64), "tiles": np.asarray(tiles, np.int64)}
        if stds and stds[0] is not None:
            res["std"] = np.asarray(stds, np.float64)
        return res

    def _header_size(self, path: str):
        return header_size(path, self.resolution, self.decode_timeout)

    def score_paths(self, paths: list[str], *, progress: bool = False) -> list[dict]:
        """One row per path, in order (see the class docstring); an unreadable input gets an error row."""
        rows = [{"path": p, "score": math.nan, **({"std": math.nan} if self.has_std else {}), "error": "",
                 "tiles": None} for p in paths]
        if not paths:
            return rows
        sizes = [self._header_size(p) for p in paths]
        batches = []  # images to be tiled (by their header size) come one per batch
        for b in size_batches(sizes, self.batch_size, self.max_batch_pixels):
            tiled = sizes[b[0]] is not None and self.tiling.applies(*sizes[b[0]])
            batches += [[i] for i in b] if tiled else [b]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), desc="scoring", unit="img", dynamic_ncols=True)

        def decoded(b: list[int]) -> list[tuple[list[int], np.ndarray]]:
            groups: dict = {}
            for i in b:
                try:
                    a = decode(paths[i], self.resolution, self.decode_timeout)
                    groups.setdefault(a.shape, []).append((i, a))  # a header can lie: stack equal shapes only
                except Exception as e:  # reported as this input's row, never a crash
                    rows[i]["error"] = error_text(e)
            return [([i for i, _ in items], np.stack([a for _, a in items])) for items in groups.values()]

        def finish(b: list[int], results) -> None:
            for idx, res in results:
                for j, i in enumerate(idx):
                    s = float(res["score"][j])
                    rows[i]["score"] = min(max(s, self.score_range[0]), self.score_range[1]) if self.clip else s
                    rows[i]["tiles"] = int(res["tiles"][j])
                    if "std" in res:
                        rows[i]["std"] = float(res["std"][j])
            if bar is not None:
                bar.update(len(b))

        # The network runs in one worker thread while this thread decodes the next batch
        # (biqa.host.pipelined): onnxruntime releases the GIL, and its threads leave part of the CPUs
        # idle (on 2 cores, 2 threads run a 1024x768 forward only ~1.7x faster than 1: float32 126 -> 72 ms,
        # int8 75 -> 44 ms), which decoding then uses (64 JPEGs at 1024x768: float32 11.2 -> 13.7 images/s, int8 18.4 -> 23.0, one A/B run).
        # Decoding stays in the calling thread, where the decode time limit (SIGALRM) works.
        try:
            pipelined(batches, decoded, self.predict, finish)
        finally:
            if bar is not None:
                bar.close()
        return rows


# ---------------------------------------------------------------- rows out

def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or str(v) in ("<NA>", "nan")


def rows_for_writing(rows: list[dict], columns: list[str]) -> list[dict]:
    """Rows with printable, UTF-8-safe paths and errors (as :func:`biqa.scorer.scores_for_writing`)."""
    out = []
    for r in rows:
        r = {c: r.get(c) for c in columns}
        if isinstance(r.get("path"), str):
            r["path"] = path_to_text(r["path"])
        if isinstance(r.get("error"), str):
            r["error"] = printable(r["error"])
        out.append(r)
    return out


def write_rows(rows: list[dict], out: str | os.PathLike, columns: list[str]) -> Path:
    """Write rows as CSV or JSON exactly as :func:`biqa.scorer.write_scores` writes a DataFrame of
    them (CSV: floats ``%.6f``, missing values empty; JSON: a list of row objects, floats to 10
    decimals, missing values ``null``), atomically."""
    import csv
    import io

    from .files import _atomic_write_bytes

    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".json", ".csv", ""):
        raise ValueError(f"unsupported output {out.suffix!r}: use .csv or .json")
    rows = rows_for_writing(rows, columns)
    if kind == ".json":
        recs = [{c: (None if _missing(r[c]) else (round(r[c], 10) if isinstance(r[c], float) else r[c]))
                 for c in columns} for r in rows]
        text = json.dumps(recs, indent=1)
    else:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if _missing(r[c]) else (f"{r[c]:.6f}" if isinstance(r[c], float) else r[c]) for c in columns])
        text = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(out, lambda p: p.write_text(text, encoding="utf-8"))
    return out


def format_rows(rows: list[dict], has_std: bool) -> str:
    """The table ``biqa score`` prints: path, score, [std,] [tiles, when any image was tiled,] error."""
    rows = rows_for_writing(rows, ["path", "score"] + (["std"] if has_std else []) + ["error", "tiles"])
    w = min(max([len(str(r["path"])) for r in rows] + [4]), 70)
    has_tiles = any(not _missing(r["tiles"]) and int(r["tiles"]) > 1 for r in rows)
    lines = [f"{'path':<{w}}  {'score':>8}" + (f"  {'std':>7}" if has_std else "") + (f"  {'tiles':>5}" if has_tiles
                                                                                       else "") + "  error"]
    for r in rows:
        p = str(r["path"])
        p = p if len(p) <= w else "..." + p[-(w - 3):]
        s = f"{r['score']:8.4f}" if not _missing(r["score"]) else f"{'-':>8}"
        line = f"{p:<{w}}  {s}"
        if has_std:
            line += f"  {r['std']:7.4f}" if not _missing(r["std"]) else f"  {'-':>7}"
        if has_tiles:
            line += f"  {'-' if _missing(r['tiles']) else int(r['tiles']):>5}"
        err = r["error"] if isinstance(r["error"], str) else ""
        lines.append(line + (f"  {err}" if err else ""))
    return "\n".join(lines)


def torch_free_model(model: str | None, backend: str, precision: str | None) -> Path | None:
    """The ONNX file ``biqa score`` can score without torch for these options, or ``None`` (then the
    torch path runs, exporting a checkpoint first where needed): a ``.onnx`` file (backend ``auto`` or
    ``onnxruntime``), or the cached export of a checkpoint / trained model name when the options ask
    for onnxruntime (``--backend onnxruntime``, or ``--precision int8``) and it was exported before."""
    from .zoo import DEFAULT_MODEL, TRAINED_MODELS

    if backend not in ("auto", "onnxruntime", "ort", "onnx"):
        return None
    name = str(model or DEFAULT_MODEL)
    if name in TRAINED_MODELS:
        path = TRAINED_MODELS[name]
    else:
        p = Path(name).expanduser()
        path = p / "best.safetensors" if p.is_dir() else p
    if not path.is_file():
        return None  # the torch path reports it (or scores a classical model)
    if path.suffix.lower() == ".onnx":
        return path
    wants_ort = backend != "auto" or precision == "int8"
    if not wants_ort or path.suffix.lower() != ".safetensors":
        return None
    return find_cached_export(path, precision=precision or "fp32")
