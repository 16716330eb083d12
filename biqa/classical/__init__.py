"""Classical no-reference quality models: BRISQUE, NIQE and PIQE, offline, as biqa models.

``biqa.load("brisque")`` (or ``niqe``, ``piqe``) returns a :class:`biqa.scorer.Scorer` whose model is a
:class:`ClassicalModel` (:func:`classical_model`): it runs the classical method on each decoded 8-bit
image, so scoring goes through the same file listing, decoding, batching, worker processes, progress
bar, error rows (one per unreadable or unscorable input) and output files as a trained model; ``biqa
eval`` and ``biqa gmad`` take the same names. (Like the ONNX Runtime model of :mod:`biqa.export`, this
package provides the model and :func:`biqa.load` builds the Scorer, so it never imports the scorer.)

Orientation: every score is **higher = better**, ``score = -raw`` where ``raw`` is the method's
own value (lower = better for all three; :data:`CLASSICAL_MODELS` documents each raw scale).
Images are scored whole at full resolution (no tiling).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ClassicalMethod:
    name: str
    compute: Callable[[np.ndarray], float]  # uint8 RGB [H, W, 3] -> raw value
    raw_scale: str  # the raw value's range and direction, for people
    reference: str
    backend: str  # what computes it
    check: Callable[[], None] | None = None  # raises ImportError when a dependency is missing

    @property
    def description(self) -> str:
        return f"{self.reference}; raw {self.raw_scale}; score = -raw ({self.backend})"


def _brisque(a):
    from .brisque import brisque

    return brisque(a)


def _niqe(a):
    from .niqe import niqe

    return niqe(a)


def _piqe(a):
    from .piqe import piqe

    return piqe(a)


def _check_brisque():
    from .brisque import check_available

    check_available()


CLASSICAL_MODELS: dict[str, ClassicalMethod] = {
    "brisque": ClassicalMethod(
        "brisque", _brisque, "0..100, lower is better (OpenCV clamps to [0, 100])",
        "BRISQUE (Mittal et al. 2012), LIVE-trained SVR", "OpenCV contrib cv2.quality, biqa[classical]",
        _check_brisque),
    "niqe": ClassicalMethod(
        "niqe", _niqe, ">= 0, lower is better (distance to the pristine-photo model)",
        "NIQE (Mittal et al. 2013), the authors' pristine model", "NumPy/SciPy"),
    "piqe": ClassicalMethod(
        "piqe", _piqe, "0..100, lower is better (a flat image scores 100)",
        "PIQE (Venkatanath et al. 2015), training-free", "NumPy/SciPy"),
}


def is_classical(name) -> bool:
    return isinstance(name, str) and name.lower() in CLASSICAL_MODELS


def list_classical_models() -> dict[str, ClassicalMethod]:
    return dict(CLASSICAL_MODELS)


def get_method(name: str) -> ClassicalMethod:
    try:
        return CLASSICAL_MODELS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown classical model {name!r}; known: {', '.join(CLASSICAL_MODELS)}") from None


class ClassicalModel:
    """The Scorer's "network" for a classical method: ``[B, 3, H, W]`` images in [0, 1] (the Scorer's
    normalisation is the identity) -> ``{"score": -raw [B], "raw": [B], "errors": [str]}``. An image
    the method cannot score (e.g. too small for NIQE) gets a NaN score and an error message, which the
    Scorer turns into an error row (:meth:`biqa.prediction.Predictor.predict` passes ``errors`` on)."""

    backend = "classical"

    def __init__(self, method: ClassicalMethod):
        self.method = method

    def __call__(self, x: torch.Tensor) -> dict:
        import torch  # here, not at the top: biqa.classical.cues (gMAD) and listing the models need no torch

        imgs = (x.detach().float().cpu().clamp(0, 1) * 255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        raw, errors = [], []
        for a in imgs:
            try:
                raw.append(float(self.method.compute(np.ascontiguousarray(a))))
                errors.append("")
            except (ValueError, np.linalg.LinAlgError, FloatingPointError) as e:
                raw.append(float("nan"))
                errors.append(f"{type(e).__name__}: {e}")
        r = torch.tensor(raw, dtype=torch.float64)
        return {"score": -r, "raw": r, "errors": errors}


def _meta(method: ClassicalMethod, resolution: str) -> dict:
    lo, hi = (-100.0, 0.0) if method.name != "niqe" else (-25.0, 0.0)  # nominal; NIQE is unbounded
    return {
        "checkpoint": method.name,
        "classical": {"method": method.name, "raw_scale": method.raw_scale, "score": "-raw (higher is better)",
                      "reference": method.reference, "backend": method.backend},
        "preset": {"name": method.name, "head": "classical", "higher_is_better": True},
        # identity normalisation: the model receives the decoded image in [0, 1]
        "preprocessing": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "resolution": resolution},
        "label_scale": {"lo": lo, "hi": hi, "higher_is_better": True},
    }


def classical_model(name: str, *, resolution: str | None = None, threads: int | None = None, peer: str | None = None,
                    backend: str = "auto") -> tuple[ClassicalModel, dict]:
    """The model and metadata a :class:`biqa.scorer.Scorer` scores ``brisque``, ``niqe`` or ``piqe``
    with (what :func:`biqa.load` does with these names). ``resolution`` (default ``full``) sizes images
    before scoring, as for a trained model; ``threads`` sets OpenCV's threads (BRISQUE)."""
    method = get_method(name)
    if peer:
        raise ValueError(f"--peer selects a network of a checkpoint; {method.name} is a classical model")
    if backend not in ("auto", "torch", None):
        raise ValueError(f"{method.name} is a classical model: it has no {backend} backend")
    if method.check is not None:
        method.check()
    if threads:
        try:
            import cv2

            cv2.setNumThreads(int(threads))
        except ImportError:
            pass
    return ClassicalModel(method), _meta(method, resolution or "full")
