"""Learning strategies (see :mod:`biqa.strategies.base`)."""
from __future__ import annotations

from .base import Strategy
from .supervised import Supervised, supervised_terms

STRATEGIES = {"supervised": Supervised}


def build_strategy(spec, model, **kwargs) -> Strategy:
    """Build a strategy from a name (``"supervised"``) and its keyword options."""
    name = spec if isinstance(spec, str) else spec.get("name")
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {sorted(STRATEGIES)}")
    return STRATEGIES[name](model, **kwargs)


__all__ = ["Strategy", "Supervised", "supervised_terms", "STRATEGIES", "build_strategy"]
