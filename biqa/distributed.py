"""The distributed primitives of multi-process training and scoring on ``torch.distributed``
(launched by ``torchrun``): the process group, rank and world size, gathering and broadcasting, and
how work is sharded over processes.

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

Scoring: the resumable scoring job (each process scores a strided shard, rank 0 merges) is
:func:`biqa.score_job.score_job`.
"""
from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .host import resolve_device


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
