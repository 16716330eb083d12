"""biqa: blind (no-reference) image quality assessment.

>>> import biqa
>>> scorer = biqa.load()                      # the bundled default model
>>> df = scorer.score(["photo.jpg", "folder/"])  # one row per input, in order
>>> model = biqa.create_model("lite0-mos", pretrained=True)
"""
from __future__ import annotations

__version__ = "0.1.0"

from .models import ModelPreset, create_model, get_preset, list_models, register_preset
from .scorer import Scorer, list_trained_models, load

__all__ = ["__version__", "ModelPreset", "create_model", "get_preset", "list_models", "register_preset",
           "Scorer", "list_trained_models", "load", "train"]


def train(config, overrides=None, resume: bool = False) -> dict:
    """Train an experiment (YAML path or dict); see :func:`biqa.trainer.train`."""
    from .trainer import train as _train

    return _train(config, overrides, resume)
