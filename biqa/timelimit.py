"""A wall-time limit for decoding one image (:func:`time_limit`), used where images are decoded:
the records checks (:mod:`biqa.records`), the datasets (:mod:`biqa.data`) and the scorer."""
from __future__ import annotations

import contextlib
import os
import signal
import threading


class DecodeTimeout(TimeoutError):
    """Decoding one image took longer than the scorer's ``decode_timeout``."""


def _env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# seconds one image may take to decode when scoring (0: no limit); BIQA_DECODE_TIMEOUT overrides
DEFAULT_DECODE_TIMEOUT = _env_seconds("BIQA_DECODE_TIMEOUT", 60.0)


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`DecodeTimeout` in the block after ``seconds`` of wall time (``SIGALRM``).

    Only where a signal can be delivered: the main thread of a process on a POSIX system (biqa
    decodes there: inline, or in the main thread of a DataLoader worker); elsewhere, or with
    ``seconds`` 0 / ``None``, no limit. The signal interrupts Python code, including Pillow's
    decoding loop between its chunks; a single C call that never returns is not interrupted. The
    block owns ``SIGALRM`` meanwhile: a handler or interval timer set by the caller is put back /
    cancelled at its end.
    """
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum, frame):
        raise DecodeTimeout(f"decoding took longer than the {seconds:g} s time limit")

    old = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
