"""Host tuning for inference on this machine: which device ``auto`` means, how many CPUs, decode workers
and threads, and the allocator setting that keeps large activations' memory in the process (used by
:class:`biqa.scorer.Scorer`, the trainer, ``biqa bench`` and the ONNX runtime sessions of :mod:`biqa.export`)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def resolve_device(device="auto"):
    """The :class:`torch.device` a ``device`` setting names: ``"auto"`` (or ``None``) is the GPU when
    torch sees one (``cuda``), else the CPU; anything else (``"cpu"``, ``"cuda:1"``, a ``torch.device``)
    is passed to :class:`torch.device` as it is. The one place ``auto`` is resolved (scorer, metric,
    trainer, distributed set-up)."""
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def default_workers() -> int:
    """Decoding worker processes: none up to 4 CPUs (decode inline), then one per 8 CPUs, at most 8.

    Decoding a 1024x768 JPEG costs a few percent of the network's forward pass. A worker process
    only pays where it has a core of its own: on 2 cores, one worker competing with the network's
    threads cut throughput to 0.83 of the bare forward, decoding inline kept 0.95-0.98.
    """
    n = available_cpus()
    return 0 if n <= 4 else max(1, min(8, n // 8))


def default_threads(workers: int | None = None) -> int:
    """Intra-op threads for the network: the CPUs the decode workers leave (all of them up to 4 CPUs)."""
    n = available_cpus()
    w = default_workers() if workers is None else workers
    return n if n <= 4 else max(1, n - w)


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of handing it back to the OS at once (glibc only).

    torch's CPU tensors come from ``malloc``; glibc serves large blocks (a 1024x768 activation is
    tens of MB) with ``mmap`` and unmaps them on free, so every forward pass page-faults all of its
    activations in again: on 2 cores that cost a third to a half of a 1024x768 forward (most of
    it system time). With mmap off and a high trim threshold the blocks are reused. The catch: the
    process keeps its peak heap. Called by :class:`Scorer` for torch on the CPU (set
    ``BIQA_TUNE_MALLOC=0`` to opt out). Returns whether it took effect.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if os.environ.get("BIQA_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # glibc's mallopt parameter numbers
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        ok = False
    _ALLOCATOR_TUNED = ok
    return ok


def pipelined(batches, prepare, compute, finish, *, threaded: bool = True) -> None:
    """Run ``compute`` in one worker thread while the calling thread prepares the next batch.

    For each batch in ``batches`` (iterating may itself do work, e.g. a DataLoader decoding inline):
    ``prepare(batch)`` gives ``[(key, arg), ...]`` in the calling thread (where a SIGALRM time limit
    works); ``compute(arg)`` runs in the worker thread (it gains only if it releases the GIL, as
    onnxruntime does); ``finish(batch, [(key, result), ...])`` runs in the calling thread, in batch
    order, once that batch's results are in, overlapping the next batch's preparation.
    ``threaded=False``: everything in the calling thread, in the same order."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biqa-net") if threaded else None
    pending = None

    def done(p) -> None:
        batch, work = p
        finish(batch, [(k, w.result() if pool is not None else w) for k, w in work])

    try:
        for batch in batches:
            work = [(k, pool.submit(compute, a) if pool is not None else compute(a)) for k, a in prepare(batch)]
            if pending is not None:
                done(pending)
            pending = (batch, work)
        if pending is not None:
            done(pending)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
