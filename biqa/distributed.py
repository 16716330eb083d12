"""Multi-process training and scoring on ``torch.distributed`` (launched by ``torchrun``), and
resumable scoring jobs.

Launching: ``torchrun --nproc_per_node N -m biqa train CONFIG`` / ``... -m biqa score ...``.
:func:`setup` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: NCCL when the process runs on a
GPU (``cuda:LOCAL_RANK``), gloo on the CPU. Without those variables (a plain ``biqa`` call)
everything here is a no-op for one process.

Training (see :class:`biqa.trainer.Trainer`): the configured ``train.batch_size`` is the
*global* batch; each of the ``W`` processes gets ``batch_size / W`` images of it. The global
batches are exactly those a single process would draw (:func:`epoch_batches`), so a run on
``W`` processes follows the single-process run up to floating-point reduction order (see the
README for what differs: BatchNorm statistics on the CPU, dropout masks, batch-level losses).

Scoring (:func:`score_job`): each process scores a strided shard of the inputs and appends
its rows, one flushed write per batch, to ``.<out name>.partial/rank<r>.csv`` beside the
output; rank 0 merges them into one output in input order and removes the partial folder.
With ``resume=True`` inputs already in the partial folder are not scored again. Paths are
stored as :func:`biqa.paths.path_to_text` writes them (any file name, UTF-8 or not). One job at
a time per output: rank 0 holds an exclusive lock (``.<out name>.lock``) while it runs, and a
second job on the same output is refused with a message.
"""
from __future__ import annotations

import atexit
import contextlib
import csv
import datetime
import io
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .host import resolve_device
from .paths import path_to_text


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: str | torch.device = "auto", timeout_s: float = 1800) -> DistContext:
    """Join the process group torchrun describes (once per process) and pick this rank's device.

    One process (no ``WORLD_SIZE`` > 1 in the environment): ``DistContext`` for rank 0 of 1 on
    ``device``; nothing is initialised. Several: a CUDA ``device`` (or ``auto`` with a GPU)
    becomes ``cuda:LOCAL_RANK`` with NCCL, anything else the CPU with gloo.
    """
    dev = resolve_device(device)
    if env_world_size() <= 1 and not is_distributed():
        return DistContext(device=dev)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
        atexit.register(cleanup)
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dev, dist.get_backend())


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` for one process)."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(values: list[float]) -> list[float]:
    """The mean over ranks of each number (identity for one process)."""
    if not is_distributed() or not values:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def broadcast_tensors_(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` (in place, any dtypes, one device) with rank ``src``'s, in one collective."""
    tensors = list(tensors)
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    dist.broadcast(flat, src)
    i = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(flat[i:i + t.numel()].view_as(t).to(t.dtype))
            i += t.numel()


def broadcast_masks_(masks: dict[str, dict[str, torch.Tensor]], src: int = 0) -> None:
    """Make boolean pruning masks (``{net: {weight: mask}}``) rank ``src``'s on every rank."""
    if not is_distributed():
        return
    items = [m for net in sorted(masks) for _, m in sorted(masks[net].items())]
    if not items:
        return
    flat = torch.cat([m.reshape(-1).to(torch.uint8) for m in items])
    dist.broadcast(flat, src)
    i = 0
    for m in items:
        m.copy_(flat[i:i + m.numel()].view_as(m).bool())
        i += m.numel()


def sync_grads_(params: list[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` over ranks (for trainable parameters that no
    ``DistributedDataParallel`` wrapper covers, e.g. distillation projections)."""
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:  # the same on every rank: these parameters took no part in the loss
            continue
        dist.all_reduce(p.grad)
        p.grad.div_(dist.get_world_size())


# ----------------------------------------------------------------------------- sharding
def epoch_batches(n: int, batch_size: int, generator: torch.Generator, drop_last: bool) -> list[list[int]]:
    """The batches of dataset indices a single process draws in one epoch: those of
    ``DataLoader(ds, batch_size, shuffle=True, generator=generator, drop_last=drop_last)``
    (built the same way, over the indices alone, so the order is the same by construction)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(range(n), batch_size=batch_size, shuffle=True, generator=generator,
                        drop_last=drop_last, collate_fn=list)
    return [[int(i) for i in b] for b in loader]


def shard_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Rank ``rank``'s part of each global batch (``batch[rank::world]``)."""
    out = [b[rank::world] for b in batches]
    if any(not b for b in out):
        raise ValueError(f"a batch of {min(len(b) for b in batches)} image(s) cannot be split over {world} "
                         f"processes: use a larger train.batch_size or more training images")
    return out


def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """A strided shard of ``range(n)``: no padding, no duplicates, shards differ by at most one."""
    return list(range(rank, n, world))


# ------------------------------------------------------------------------------ scoring
PARTIAL_VERSION = 1


def partial_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def _read_complete_lines(path: Path) -> str:
    """A file's text up to its last newline: a kill during a write can only cut the last line."""
    data = path.read_text(encoding="utf-8", errors="replace")
    return data if data.endswith("\n") else data[: data.rfind("\n") + 1]


def read_partial(folder: str | os.PathLike, paths: list[str]) -> dict[int, dict]:
    """Rows already scored in a partial folder: ``{input index: row}``, keeping only rows whose
    (index, path) matches ``paths`` (a changed input list is rescored where it changed)."""
    rows: dict[int, dict] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return rows
    texts = [path_to_text(p) for p in paths]  # as _PartialWriter wrote them
    for f in sorted(folder.glob("rank*.csv")):
        for rec in csv.DictReader(io.StringIO(_read_complete_lines(f))):
            if rec.get("complete") != "1" or None in rec:
                continue  # a line cut short by a kill
            try:
                i = int(rec["index"])
            except (KeyError, TypeError, ValueError):
                continue
            if not (0 <= i < len(paths)) or rec.get("path") != texts[i]:
                continue
            row = {"path": paths[i], "error": rec.get("error") or ""}
            for k in ("score", "std"):
                if k in rec and rec[k] is not None:
                    try:
                        row[k] = float(rec[k]) if rec[k] != "" else float("nan")
                    except ValueError:
                        row[k] = float("nan")
            if rec.get("tiles"):
                try:
                    row["tiles"] = int(rec["tiles"])
                except ValueError:
                    pass
            rows[i] = row
    return rows


class _PartialWriter:
    """Appends finished rows to one rank's partial CSV: one write and flush per batch."""

    def __init__(self, path: Path, columns: list[str]):
        self.columns = ["index"] + columns + ["complete"]  # "complete" = 1: the line was written whole
        complete = _read_complete_lines(path) if path.is_file() else ""
        if complete and next(csv.reader(io.StringIO(complete)), []) != self.columns:
            # other columns (e.g. a job started by a biqa without the "tiles" column): keep that file,
            # readers take each file with its own header, and write this run's rows beside it
            k = 1
            while path.with_name(f"{path.stem}.{k}{path.suffix}").exists():
                k += 1
            path, complete = path.with_name(f"{path.stem}.{k}{path.suffix}"), ""
        # no complete line yet (not even the header): start the file again
        self.f = open(path, "a" if complete else "w", newline="", encoding="utf-8")
        if complete and not path.read_bytes().endswith(b"\n"):
            self.f.write("\n")  # end the line a killed run cut short; readers skip it
        if not complete:
            self._write([self.columns])

    def _write(self, records: list[list]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(records)
        try:
            self.f.write(buf.getvalue())
            self.f.flush()
        except OSError as e:  # e.g. a full disk: a cut line is skipped on --resume
            raise OSError(f"could not save scores to {path_to_text(self.f.name)}: {e.strerror or e}; the rows saved before "
                          f"are kept: make room and rerun with --resume to score the rest") from e

    def add(self, indices: list[int], rows: list[dict]) -> None:
        recs = []
        for i, r in zip(indices, rows):
            rec = [i]
            for c in self.columns[1:-1]:
                v = r.get(c, "")
                if c == "path":
                    v = path_to_text(v)
                rec.append("" if isinstance(v, float) and math.isnan(v) else (repr(v) if isinstance(v, float) else v))
            rec.append(1)
            recs.append(rec)
        if recs:
            self._write(recs)

    def close(self) -> None:
        try:
            self.f.close()
        except OSError:  # the error was raised by the write that failed already
            pass


class OutputLocked(OSError):
    """Another job is writing the same output."""


@contextlib.contextmanager
def output_lock(out: str | os.PathLike):
    """Hold an exclusive lock on ``out`` for a scoring job (``fcntl.flock`` on ``.<out name>.lock``
    beside it, holding the owner's pid); raise :class:`OutputLocked` when another process holds it.
    The lock goes with the process, so a killed job never leaves ``out`` locked. No-op where
    ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    out = Path(out)
    lock = out.with_name(f".{out.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise OutputLocked(f"{path_to_text(out)} is being written by another biqa scoring job (pid {holder}, lock file "
                               f"{path_to_text(lock)}); wait for it to finish or choose another --out") from None
        try:  # a job that just finished may have removed the file we locked: lock the one in place
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def _job_info(scorer, paths: list[str]) -> dict:
    meta = scorer.meta
    return {"version": PARTIAL_VERSION, "model": str(meta.get("checkpoint", meta.get("preset", {}).get("name"))),
            "backend": getattr(scorer, "backend", "torch"), "resolution": str(scorer.resolution),
            "tile": str(getattr(scorer, "tiling", "off")),
            "n_inputs": len(paths)}


def score_job(scorer, inputs, *, out: str | os.PathLike | None = None, resume: bool = False,
              progress: bool = False):
    """Score ``inputs`` (files, folders, globs) on this process's shard; one merged DataFrame in
    input order on rank 0 (``None`` on other ranks), also written to ``out`` when given.

    With ``out``, finished rows are appended to ``.<out name>.partial/rank<r>.csv`` (one write
    and flush per batch) until rank 0 has written ``out``; ``resume=True`` skips the inputs
    found there (same path at the same position of the input list), so a killed job continues
    where it stopped, on any number of processes. Without ``resume`` a stale partial folder is
    discarded. Without ``out`` and with several processes, rows are gathered over the network.
    """
    from .scorer import collect_inputs

    paths = collect_inputs(inputs)
    r, w = rank(), world_size()
    if out is None:
        if resume:
            raise ValueError("--resume needs --out: the partial results live beside the output file")
        if w == 1:
            return scorer.score_paths(paths, progress=progress)
        mine = shard_indices(len(paths), r, w)
        df = scorer.score_paths([paths[i] for i in mine], progress=progress)
        parts = all_gather_object((mine, df.to_dict("records")))
        if r != 0:
            return None
        rows: dict[int, dict] = {}
        for idx, recs in parts:
            rows.update(zip(idx, recs))
        return scorer._frame([rows[i] for i in range(len(paths))])

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".json", ""):
        raise ValueError(f"unsupported output {out.suffix!r}: use .csv or .json")
    # rank 0 holds the output's lock for the whole job (taken before the partial folder is touched)
    with output_lock(out) if r == 0 else contextlib.nullcontext():
        return _score_job_locked(scorer, paths, out, resume, progress, r, w)


def _score_job_locked(scorer, paths: list[str], out: Path, resume: bool, progress: bool, r: int, w: int):
    from .checkpoint import atomic_write_text
    from .scorer import write_scores

    folder = partial_dir(out)
    info = _job_info(scorer, paths)
    if r == 0:
        if not resume and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        job = folder / "job.json"
        if job.is_file():
            old = json.loads(job.read_text())
            diff = [k for k in ("model", "backend", "resolution", "tile")
                    if old.get(k, info[k] if k == "tile" else None) != info[k]]  # "tile": not in older jobs
            if diff:
                raise ValueError(f"{path_to_text(folder)} holds partial scores made with other settings ({', '.join(diff)}: "
                                 f"{[old.get(k) for k in diff]}); delete it or score without --resume")
        atomic_write_text(job, json.dumps(info, indent=1))
    barrier()
    done = read_partial(folder, paths) if resume else {}
    todo = [i for i in range(len(paths)) if i not in done]
    mine = todo[r::w]
    writer = _PartialWriter(folder / f"rank{r}.csv", list(scorer._frame([]).columns))
    try:
        def on_batch(local: list[int], rows: list[dict]) -> None:
            writer.add([mine[i] for i in local], [rows[i] for i in local])

        if mine:
            scorer.score_paths([paths[i] for i in mine], progress=progress, on_batch=on_batch)
    finally:
        writer.close()
    barrier()
    if r != 0:
        return None
    rows = read_partial(folder, paths)
    missing = [paths[i] for i in range(len(paths)) if i not in rows]
    if missing:
        raise RuntimeError(f"{len(missing)} input(s) have no row in {path_to_text(folder)} (first: {path_to_text(missing[0])}); "
                           f"rerun with --resume")
    df = scorer._frame([rows[i] for i in range(len(paths))])
    try:
        write_scores(df, out)  # atomic: a failed write leaves the previous output as it was
    except OSError as e:
        raise OSError(f"could not write {path_to_text(out)}: {e.strerror or e}; {path_to_text(out.name)} is unchanged (not written if it was "
                      f"not there) and every score is kept in {path_to_text(folder)}: make room and rerun with --resume "
                      f"(nothing is scored again)") from e
    shutil.rmtree(folder, ignore_errors=True)
    return df


def gather_predictions(indices: list[int], arrays: list, n: int) -> list:
    """Reassemble per-rank predictions of ``indices`` (a shard of ``range(n)``) into full arrays
    in index order, on every rank. ``arrays``: numpy arrays / tensors aligned with ``indices``
    (``None`` entries stay ``None``)."""
    parts = all_gather_object((list(indices), [None if a is None else np.asarray(a) for a in arrays]))
    out = []
    for k in range(len(arrays)):
        pieces = [(idx, arr[k]) for idx, arr in parts if arr[k] is not None and len(idx)]
        if not pieces:
            out.append(None if arrays[k] is None else np.asarray(arrays[k]))
            continue
        full = np.empty((n,) + pieces[0][1].shape[1:], dtype=pieces[0][1].dtype)
        seen = np.zeros(n, dtype=bool)
        for idx, arr in pieces:
            full[idx] = arr
            seen[idx] = True
        if not seen.all():
            raise RuntimeError("predictions missing after gathering over ranks")
        out.append(full)
    return out
