"""The strategy seam: a strategy turns a batch into a loss; the trainer knows nothing else.

A strategy owns the network(s) it trains (``self.nets``: the main model first, then
peers, projections ...) and any frozen helpers (a teacher). It returns the total loss
and a dict of named float terms to log, and may react to ``on_epoch_start`` /
``on_step_end``. ``predict`` says how the trained system scores a batch at test
time (e.g. the mean of DML peers); the default is the main model's score.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import unknown_keys_error


class Strategy:
    name = "base"

    def __init__(self, model: nn.Module):
        self.model = model
        self._train_forward: dict[str, nn.Module] = {}

    def run(self, name: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward of net ``name``: through its ``DistributedDataParallel`` wrapper when the
        trainer runs on several processes (so that its gradients are averaged), else the net."""
        net = self._train_forward.get(name)
        return net(x) if net is not None else self.nets[name](x)

    def set_train_forward(self, wrappers: dict[str, nn.Module]) -> None:
        """The trainer's DDP wrappers, by net name (see :meth:`forward_nets`)."""
        self._train_forward = dict(wrappers)

    def forward_nets(self) -> list[str]:
        """Names of the nets :meth:`loss` runs as whole modules via :meth:`run` (DDP wraps these;
        other trainable nets, such as projections, get their gradients averaged by the trainer)."""
        return ["model"]

    @property
    def nets(self) -> dict[str, nn.Module]:
        """Trainable networks, saved in checkpoints under these names."""
        return {"model": self.model}

    @property
    def frozen(self) -> dict[str, nn.Module]:
        """Networks the strategy uses but never trains (e.g. a teacher); kept in eval mode."""
        return {}

    def checkpoint_meta(self) -> dict:
        """Extra JSON for checkpoints (e.g. which nets form the predicting ensemble)."""
        return {}

    def epoch_report(self, epoch: int) -> dict:
        """``{name: DataFrame}`` tables the trainer writes as ``<name>_epoch<N>.csv`` (an
        ``index`` column is mapped to the training image paths)."""
        return {}

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(images)

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_step_end(self, step: int) -> None:
        pass

    def state_dict(self) -> dict:
        """Extra strategy state to checkpoint (masks, counters); tensors only."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Component:
    """One part of :class:`~biqa.strategies.composite.Composite` (``ohem``, ``mutual``, ``distill`` ...):
    its options, the networks it adds, its loss terms, hooks and state. A new component is one module
    with one such class, registered in :data:`biqa.strategies.composite.REGISTRY`.

    Life cycle: ``__init__(opts, model, ctx)`` (``ctx``: what the trainer knows, e.g. ``pretrained``,
    ``label_scale``, plus ``loss_weights``, the parsed supervised loss) checks the options block
    (``strategy.<name>``) and may
    create ``peers`` (whole networks trained and predicting beside the main model: mutual learning);
    then, once every component is built, ``attach(networks)`` hands each the full ``{name: network}`` dict
    (the main model ``"model"`` first, then the peers) to build what depends on them (a teacher's
    projections). Per batch the composite runs every network once, calls ``prepare(x)`` and then, for
    each network in turn, every component's ``terms`` in registry order.
    """

    name = "component"
    OPTIONS: tuple[str, ...] = ()

    def __init__(self, opts: dict | None, model: nn.Module, ctx: dict):
        self.opts = dict(opts or {})
        unknown = set(self.opts) - set(self.OPTIONS)
        if unknown:
            raise unknown_keys_error(f"strategy.{self.name}", unknown, self.OPTIONS)
        self.model = model
        self.peers: dict[str, nn.Module] = {}  # networks this component adds (trained, and averaged at test)
        self.networks: dict[str, nn.Module] = {"model": model}  # every network of the composite, after attach

    def attach(self, networks: dict[str, nn.Module]) -> None:
        self.networks = networks

    def extra_nets(self) -> dict[str, nn.Module]:
        """Trainable modules besides the networks (e.g. projections), saved under these names."""
        return {}

    def frozen(self) -> dict[str, nn.Module]:
        return {}

    def prepare(self, x: torch.Tensor) -> None:
        """Once per batch, after every network's forward and before any ``terms``."""

    def terms(self, name: str, out: dict, outs: dict, batch: dict, add) -> None:
        """Add this component's loss terms for network ``name`` (``out`` its outputs, ``outs`` every
        network's) with ``add(key, value, weight=1.0)``."""

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_step_end(self, step: int) -> None:
        pass

    def epoch_report(self, epoch: int) -> dict:
        return {}

    def checkpoint_meta(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        """Tensors to checkpoint; keys must be this component's own (they share one dict)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """``state``: the whole strategy state (every component's keys): take your own."""
