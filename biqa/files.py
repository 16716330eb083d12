"""Writing files safely, with the standard library only (no torch): atomic writes (checkpoints,
score files) and the lock that keeps two scoring jobs off one output."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .paths import path_to_text


def _atomic_write_bytes(path: Path, write) -> None:
    """Write ``path`` all or nothing: ``write(tmp)`` fills a temporary file beside it, which is
    flushed to disk and then renamed over ``path``. A kill, a full disk or any error on the way
    leaves the previous ``path`` as it was (and no temporary file, except after a kill)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the rename makes it the file
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`_atomic_write_bytes`)."""
    path = Path(path)
    _atomic_write_bytes(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path


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
