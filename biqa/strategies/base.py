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
