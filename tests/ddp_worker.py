"""Entry point for the multi-process tests (``torchrun ... tests/ddp_worker.py train CONFIG``).

Registers ``ddp-gn``, a tiny BatchNorm-free preset (timm's ``test_efficientnet_gn``: GroupNorm,
~0.1 M parameters), then runs the ``biqa`` command line. GroupNorm normalises each image on its
own, so a batch split over processes computes exactly what one process computes on the whole
batch (BatchNorm on the CPU would use per-process batch statistics). With ``BIQA_TEST_DUMP``
set, each rank saves its final weights and OHEM masks to ``$BIQA_TEST_DUMP/rank<r>.pt``; with
``BIQA_TEST_BATCH_DELAY`` (seconds), scoring sleeps after each batch.
"""
from __future__ import annotations

import os
import sys

import torch

from biqa.models import ModelPreset, register_preset

PRESET = ModelPreset("ddp-gn", "test_efficientnet_gn", "score", {"dropout": 0.0}, 32,
                     description="test only: tiny GroupNorm EfficientNet")



def _ohem_masks(strategy) -> dict:
    """The OHEM component's pruning masks (a strategy without OHEM: none)."""
    ohem = getattr(strategy, "parts", {}).get("ohem")
    return getattr(ohem, "masks", {}) if ohem is not None else {}

def register() -> None:
    register_preset(PRESET, overwrite=True)


def _dumping_fit():
    from biqa.trainer import Trainer

    fit = Trainer.fit

    def wrapped(self):
        summary = fit(self)
        folder = os.environ.get("BIQA_TEST_DUMP")
        if folder:
            nets = {n: {k: v.detach().cpu() for k, v in m.state_dict().items()} for n, m in self.strategy.nets.items()}
            masks = {n: {k: v.cpu() for k, v in ms.items()} for n, ms in _ohem_masks(self.strategy).items()}
            torch.save({"nets": nets, "masks": masks}, os.path.join(folder, f"rank{self.dist.rank}.pt"))
        return summary

    Trainer.fit = wrapped


def _slow_scoring(delay: float) -> None:
    """Sleep after each scored batch (so that a test can kill scoring mid-way)."""
    import time

    from biqa import score_job

    add = score_job._PartialWriter.add

    def slow(self, *args):
        add(self, *args)
        time.sleep(delay)

    score_job._PartialWriter.add = slow


if __name__ == "__main__":
    register()
    _dumping_fit()
    if os.environ.get("BIQA_TEST_BATCH_DELAY"):
        _slow_scoring(float(os.environ["BIQA_TEST_BATCH_DELAY"]))
    from biqa.cli import main

    sys.exit(main(sys.argv[1:]))
