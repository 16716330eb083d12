"""BRISQUE: Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy and Bovik, "No-reference
image quality assessment in the spatial domain", IEEE TIP 21(12), 2012), as OpenCV contrib's
``cv2.quality.QualityBRISQUE`` computes it, with the LIVE-trained SVR model and feature ranges that
OpenCV publishes (``brisque_model_live.yml``, ``brisque_range_live.yml``; vendored in ``data/`` from
Debian's ``opencv-data`` package, see ``data/NOTICE.md``).

36 features (MSCN AGGD shape and variance, and the AGGD parameters of the four neighbour products,
at full and half scale) are scaled to [-1, 1] with the range file and fed to an RBF epsilon-SVR.

Raw scale: OpenCV clamps to 0..100, lower is better (about 0-30 for clean photos).

Needs ``opencv-contrib-python-headless`` (``pip install 'biqa[classical]'``).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
MODEL_FILE = DATA / "brisque_model_live.yml"
RANGE_FILE = DATA / "brisque_range_live.yml"
EXTRA_HINT = ("BRISQUE needs OpenCV's contrib modules (cv2.quality): pip install 'biqa[classical]' "
              "(opencv-contrib-python-headless; it replaces opencv-python(-headless) if installed)")

_local = threading.local()


def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError(EXTRA_HINT) from e
    if not hasattr(cv2, "quality"):
        raise ImportError(f"{EXTRA_HINT}; the installed cv2 ({getattr(cv2, '__version__', '?')}) has no "
                          "cv2.quality module")
    return cv2


def check_available() -> None:
    """Raise ImportError (naming the ``classical`` extra) when cv2.quality is missing."""
    _cv2()


def _model():
    m = getattr(_local, "model", None)  # one per thread: OpenCV objects are not shared across threads
    if m is None:
        cv2 = _cv2()
        for f in (MODEL_FILE, RANGE_FILE):
            if not f.is_file():
                raise FileNotFoundError(f"the bundled BRISQUE file {f} is missing: reinstall biqa")
        m = _local.model = cv2.quality.QualityBRISQUE_create(str(MODEL_FILE), str(RANGE_FILE))
    return m


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` -> uint8 grey (OpenCV's BT.601 conversion, the one BRISQUE applies to
    its BGR input); grey input is passed through."""
    a = np.ascontiguousarray(image)
    if a.ndim == 2:
        return a
    return _cv2().cvtColor(a[..., :3], _cv2().COLOR_RGB2GRAY)


def brisque(image: np.ndarray) -> float:
    """BRISQUE of an image: ``uint8 [H, W, 3]`` RGB or ``[H, W]`` grey. Lower is better (0..100)."""
    g = to_gray(image)
    if min(g.shape[:2]) < 8:
        raise ValueError(f"image too small for BRISQUE ({g.shape[1]}x{g.shape[0]})")
    return float(_model().compute(g)[0])


def brisque_features(image: np.ndarray) -> np.ndarray:
    """OpenCV's 36 BRISQUE features of an image (before range scaling)."""
    cv2 = _cv2()
    return np.asarray(cv2.quality.QualityBRISQUE_computeFeatures(to_gray(image)), dtype=np.float64).reshape(-1)
