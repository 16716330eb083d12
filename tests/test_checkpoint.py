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


def test_kernel_head_round_trips_through_a_shipped_checkpoint(tmp_path):
    from biqa.checkpoint import export_checkpoint, load_model
    import torch

    from biqa.probe import LinearHead, rbf_kernel, save_linear_checkpoint

    rng = np.random.default_rng(2)
    f, n = 1024, 25
    kern = {"L": rng.normal(size=(n, f)), "a": rng.normal(size=n) * 0.3, "gamma": 0.3 / f}
    res = {"W1": rng.normal(size=(8, f)) * 0.05, "b1": rng.normal(size=8) * 0.1, "W2": rng.normal(size=(1, 8)) * 0.1,
           "b2": np.array([0.05])}
    head = LinearHead(rng.normal(size=f) * 0.01, 0.5, rng.normal(size=f), rng.uniform(0.5, 2, size=f), residual=res,
                      kernel=kern)
    src = save_linear_checkpoint(head, tmp_path / "k.safetensors", label_scale=LabelScale(1.0, 5.0, True))
    dst = export_checkpoint(src, tmp_path / "ship" / "k.safetensors", half=True)
    model, meta = load_model(dst)
    assert meta["preset"]["name"] == "lite0-ml-kernel"
    assert meta["preset"]["head_kwargs"] == {"norm": True, "residual": 8, "kernel": n}
    assert model.head.kernel_coef.dtype == torch.float32
    np.testing.assert_array_equal(model.head.kernel_coef.numpy(), kern["a"].astype(np.float32))  # kept float32
    s = rng.normal(size=(5, f))
    with torch.inference_mode():
        kt = model.head.kernel_term(torch.from_numpy(s).float()).double().numpy()
    np.testing.assert_allclose(kt, rbf_kernel(s, kern["L"], kern["gamma"]) @ kern["a"], atol=2e-3)
