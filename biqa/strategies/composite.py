"""``supervised`` plus any combination of components: ``ohem``, ``mutual``, ``distill``.

Each component lives in its own module and owns its options, the networks it adds, its loss
terms, hooks and checkpoint state (:class:`~biqa.strategies.base.Component`):

- :mod:`~biqa.strategies.ohem`: a pruned self-competitor (OHEM, Wang et al., TMM 2023);
- :mod:`~biqa.strategies.distill`: a frozen teacher (KD and MobileIQA's stage / opinion terms);
- :mod:`~biqa.strategies.mutual`: K >= 2 peers learning from each other (DML, Yue et al. ICIP 2022).

The composite builds the listed components, runs every network once per batch (all predictions
before any update) and sums, per network, ``L = L_sup + [ohem terms] + [distill terms] + [mutual
term]`` (the registry's order); the total is the sum over networks. With peers it predicts with
their mean (:class:`biqa.models.Ensemble`). Every combination is supported and tested.

A new component: one module with a :class:`~biqa.strategies.base.Component` subclass, registered
with :func:`register_component` (the built-in ones are listed in :data:`REGISTRY` below).
"""
from __future__ import annotations

from torch import nn

from ..config import EXTRA_STRATEGY_BLOCKS, STRATEGY_KEYS
from ..heads import OUTPUT_INIT_STD
from ..losses import parse_loss_spec
from .base import Component, Strategy
from .distill import DISTILL_OPTIONS, Distill, MapProjection
from .mutual import HEAD_INIT_MODES, MUTUAL_OPTIONS, Mutual, _init_head
from .ohem import OHEM_OPTIONS, OHEM_REFRESH, Ohem
from .supervised import supervised_terms

# name -> component class, in the order their terms are added (and their ``attach`` runs)
REGISTRY: dict[str, type[Component]] = {"ohem": Ohem, "distill": Distill, "mutual": Mutual}
COMPONENTS = tuple(REGISTRY)  # the built-in components


def register_component(cls: type[Component]) -> type[Component]:
    """Make ``cls`` available as ``strategy.name: [..., cls.name]`` with options ``strategy.<cls.name>``;
    its terms are added after those registered before it. Usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Component)) or cls.name in ("component", "supervised",
                                                                                  "ranking"):
        raise ValueError(f"{cls!r} is not a Component subclass with a name of its own")
    REGISTRY[cls.name] = cls
    if cls.name not in STRATEGY_KEYS:  # its options block, strategy.<name>, is a known config key
        EXTRA_STRATEGY_BLOCKS.add(cls.name)
    return cls

# the names that lived here before each component had its own module, still importable from here
__all__ = ["REGISTRY", "COMPONENTS", "register_component", "Composite", "Component", "Ohem", "Mutual", "Distill", "OHEM_OPTIONS",
           "OHEM_REFRESH", "MUTUAL_OPTIONS", "HEAD_INIT_MODES", "DISTILL_OPTIONS", "MapProjection", "_init_head",
           "OUTPUT_INIT_STD"]


class Composite(Strategy):
    """``supervised`` plus any of :data:`COMPONENTS` (see the module docstring).

    Args:
        model: the main network (peer 0).
        components: names from ``COMPONENTS``.
        loss: the supervised loss spec (``"mse"``, ``{"mse": 1, "plcc": 0.5}``, ``"fidelity"`` ...).
        **options: one options block per component (``ohem={...}``, ``mutual={...}``,
            ``distill={...}``), documented in the component's module.
        context: what the trainer knows: ``pretrained`` (for peers), ``label_scale``, ``init_from`` ...
    """

    name = "composite"

    def __init__(self, model, *, components, loss="mse", context=None, **options):
        super().__init__(model)
        unknown = [c for c in components if c not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown strategy component(s) {unknown}; combine any of {tuple(REGISTRY)}")
        extra = sorted(set(options) - set(REGISTRY))
        if extra:
            raise TypeError(f"Composite got options for unknown component(s) {extra}")
        self.components = list(components)
        self.weights = parse_loss_spec(loss)
        ctx = {**(context or {}), "loss_weights": self.weights}
        self.parts: dict[str, Component] = {name: cls(options.get(name), model, ctx)
                                            for name, cls in REGISTRY.items() if name in components}
        self._peers: dict[str, nn.Module] = {"model": model}
        for part in self.parts.values():
            self._peers.update(part.peers)
        for part in self.parts.values():
            part.attach(dict(self._peers))
        self._ensemble = None
        if len(self._peers) > 1:
            from ..models import Ensemble

            self._ensemble = Ensemble(dict(self._peers))

    # ------------------------------------------------------------ interface
    @property
    def nets(self) -> dict[str, nn.Module]:
        nets = dict(self._peers)
        for part in self.parts.values():
            nets.update(part.extra_nets())
        return nets

    @property
    def frozen(self) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {}
        for part in self.parts.values():
            out.update(part.frozen())
        return out

    def forward_nets(self) -> list[str]:
        return list(self._peers)

    def checkpoint_meta(self) -> dict:
        meta = {"components": self.components}
        if self._ensemble is not None:  # the networks that predict together (load_model rebuilds the Ensemble)
            meta["ensemble"] = list(self._peers)
            meta["net_presets"] = {n: m.preset.to_dict() for n, m in self._peers.items()}
        for part in self.parts.values():
            meta.update(part.checkpoint_meta())
        return meta

    def predict(self, images):
        return self.model(images) if self._ensemble is None else self._ensemble(images)

    def on_epoch_start(self, epoch: int) -> None:
        for part in self.parts.values():
            part.on_epoch_start(epoch)

    def on_step_end(self, step: int) -> None:
        for part in self.parts.values():
            part.on_step_end(step)

    def epoch_report(self, epoch: int) -> dict:
        out: dict = {}
        for part in self.parts.values():
            out.update(part.epoch_report(epoch))
        return out

    def state_dict(self) -> dict:
        out: dict = {}
        for part in self.parts.values():
            out.update(part.state_dict())
        return out

    def load_state_dict(self, state: dict) -> None:
        for part in self.parts.values():
            part.load_state_dict(state or {})

    # ----------------------------------------------------------------- loss
    def loss(self, batch):
        x = batch["image"]
        outs = {name: self.run(name, x) for name in self._peers}  # all predictions before any update
        for part in self.parts.values():
            part.prepare(x)
        total = 0.0
        terms: dict[str, float] = {}

        def add(key, value, weight: float = 1.0):
            nonlocal total
            total = total + weight * value
            terms[key] = terms.get(key, 0.0) + float(value.detach())

        for name, out in outs.items():
            sup, sup_terms = supervised_terms(out, batch, self.weights)
            add("sup", sup)
            for k, v in sup_terms.items():
                terms[k] = terms.get(k, 0.0) + v
            for part in self.parts.values():
                part.terms(name, out, outs, batch, add)
        return total, terms  # the trainer checks that the loss is finite
