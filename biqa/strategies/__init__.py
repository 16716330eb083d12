"""Learning strategies (see :mod:`biqa.strategies.base`).

``supervised`` is the baseline; ``ranking`` adds synthetic within-photo ranking; ``ohem``,
``mutual`` and ``distill`` (one module each) are components of
:class:`~biqa.strategies.composite.Composite` and combine freely, e.g.
``strategy: {name: [ohem, distill], distill: {teacher: runs/t/best.safetensors}}``.
"""
from __future__ import annotations

from .base import Strategy
from .composite import COMPONENTS, REGISTRY, Composite, register_component
from .supervised import Supervised, supervised_terms

STRATEGIES = ("supervised", "ranking") + COMPONENTS


def strategy_names(name) -> list[str]:
    """``strategy.name`` as a list: a single name (``"ohem"``) or a list of them (``[ohem, distill]``)."""
    return [name] if isinstance(name, str) else list(name or [])


def build_strategy(name, model, *, context: dict | None = None, **kwargs) -> Strategy:
    """Build a strategy from a name or a list of names (``"supervised"``, ``"ohem"``,
    ``["ohem", "distill"]`` ...) and its options (``loss``, ``ohem``, ``mutual``, ``distill``)."""
    names = [n for n in strategy_names(name) if n != "supervised"]
    if names == ["ranking"]:
        from .ranking import Ranking

        ctx = context or {}
        return Ranking(model, crop_size=int(ctx.get("crop_size", 224)), seed=int(ctx.get("seed", 0)), **kwargs)
    if not names:
        extra = sorted(k for k in kwargs if k != "loss")
        if extra:
            raise ValueError(f"strategy options {extra} given, but strategy.name is 'supervised' (add them to "
                             f"strategy.name, e.g. [ohem])")
        return Supervised(model, **kwargs)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown strategy {unknown}; available: {['supervised', 'ranking', *REGISTRY]} "
                         f"(combine with a list)")
    unused = sorted(k for k in kwargs if k in REGISTRY and k not in names)
    if unused:
        raise ValueError(f"options for {unused} given but not listed in strategy.name {names}")
    return Composite(model, components=names, context=context, **kwargs)


__all__ = ["Strategy", "Supervised", "Composite", "COMPONENTS", "REGISTRY", "STRATEGIES", "supervised_terms",
           "build_strategy", "register_component", "strategy_names"]
