"""biqa: blind (no-reference) image quality assessment.

>>> import biqa
>>> metric = biqa.create_metric("biqa-default")   # a ready, trained metric: torch.nn.Module, x [B,3,H,W] in [0,1] -> [B]
>>> scorer = biqa.load()                          # the same model for files and folders
>>> df = scorer.score(["photo.jpg", "folder/"])   # one row per input, in order
>>> net = biqa.create_model("lite0-mos", pretrained=True)  # an UNTRAINED architecture, to train

The names below are imported on first use (PEP 562), so ``import biqa`` and the command line's
``--help`` do not pay for importing torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "ModelPreset": "models", "create_model": "models", "get_preset": "models", "list_models": "models",
    "register_preset": "models",
    "Scorer": "scorer", "list_trained_models": "zoo", "load": "scorer",
    "QualityMetric": "quality_metric", "create_metric": "quality_metric",
    "list_configs": "config", "find_config": "config",
}

__all__ = ["__version__", *_LAZY, "train"]


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'biqa' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def train(config, overrides=None, resume: bool = False) -> dict:
    """Train an experiment (a shipped config's name, a YAML path or a dict); see :func:`biqa.trainer.train`."""
    from .trainer import train as _train

    return _train(config, overrides, resume)
