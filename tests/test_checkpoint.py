"""Checkpoint metadata: every writer (trainer, linear probe, save_untrained, biqa bench's preset models)
builds it with biqa.checkpoint.checkpoint_meta; the keys and values are the ones they wrote before."""
from __future__ import annotations

import json

import numpy as np

from biqa.checkpoint import read_meta, save_untrained
from biqa.labels import LabelScale
from biqa.models import get_preset

LITE0 = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # tf_efficientnet_lite0's normalisation in timm


def test_every_writer_writes_the_same_metadata(tmp_path):
    from biqa.bench import _resolve_model
    from biqa.probe import LinearHead, save_linear_checkpoint

    preset = json.loads(json.dumps(get_preset("lite0-mos").to_dict()))  # tuples become lists in JSON
    scale = {"lo": 1.0, "hi": 5.0, "higher_is_better": True}

    m = read_meta(save_untrained(tmp_path / "u.safetensors", "lite0-mos"))
    assert m == {"format": "biqa-checkpoint-1", "nets": ["model"], "preset": preset, "label_scale": scale,
                 "preprocessing": {**LITE0, "crop_size": 224, "resolution": "full"},
                 "config": {}, "metrics": {}, "trained": False}
    assert list(m) == ["format", "nets", "preset", "label_scale", "preprocessing", "config", "metrics", "trained"]

    rng = np.random.default_rng(1)
    head = LinearHead(rng.normal(size=1024) * 0.01, 0.5, rng.normal(size=1024), rng.uniform(0.5, 2, size=1024))
    m = read_meta(save_linear_checkpoint(head, tmp_path / "p.safetensors", label_scale=LabelScale(0.0, 100.0, False),
                                         config={"probe": {"alpha": 1.0}}, metrics={"srcc": 0.5}, extra={"x": 2}))
    assert list(m) == ["format", "nets", "preset", "label_scale", "preprocessing", "config", "metrics", "strategy",
                       "head_fit", "x"]
    assert m["label_scale"] == {"lo": 0.0, "hi": 100.0, "higher_is_better": False}
    assert m["preprocessing"] == {**LITE0, "crop_size": 224, "resolution": "full"}
    assert (m["config"], m["metrics"], m["strategy"], m["x"]) == ({"probe": {"alpha": 1.0}}, {"srcc": 0.5},
                                                                   "linear-head", 2)

    path, label = _resolve_model("lite0-mos", tmp_path)
    m = read_meta(path)
    assert label == "lite0-mos (preset, random weights)"
    assert m == {"format": "biqa-checkpoint-1", "nets": ["model"], "preset": preset, "label_scale": scale,
                 "preprocessing": {**LITE0, "resolution": "full"}}  # no crop size: never trained
