"""Several frozen backbones side by side (presets ``lite02-ml-linear``, ``lite012-ml-linear``): the body's
features are each backbone's own statistics, concatenated, and a probe on them saves and scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from biqa.models import ModelPreset, create_model


def _features(model, x):
    with torch.inference_mode():
        return model.backbone(x).double().numpy()


def test_body_is_each_backbones_statistics_concatenated():
    x = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    combo = create_model("lite012-ml-linear", pretrained=False).eval()
    singles = [create_model(p, pretrained=False).eval()
               for p in ("lite0-ml-linear", "lite1-ml-linear", "lite2-ml-linear")]
    for body, single in zip(combo.backbone.bodies, singles):  # the same (random) weights in both
        body.load_state_dict(single.backbone.state_dict())
    want = np.concatenate([_features(s, x) for s in singles], axis=1)
    assert combo.backbone.num_features == want.shape[1] == 1024 + 1024 + 1120
    np.testing.assert_allclose(_features(combo, x), want, rtol=1e-5, atol=1e-6)
    assert combo.preset.normalisation() == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    out = combo(x)
    assert out["z"].shape == (2,) and torch.isfinite(out["z"]).all()


@pytest.mark.parametrize("combo_name, single_names, n_features", [
    ("lite02-mln-linear", ("lite0-mln-linear", "lite2-ml-linear"), 1024 + 4 * 8 + 1120),
    # every block group pooled: 7 maps of each backbone instead of 5
    ("lite02-mlbn-linear", ("lite0-mlbn-linear", "lite2-mlb-linear"), 1568 + 4 * 8 + 1712)])
def test_noise_floor_comes_once_after_the_first_backbones_statistics(combo_name, single_names, n_features):
    x = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(1))
    combo = create_model(combo_name, pretrained=False).eval()
    singles = [create_model(p, pretrained=False).eval() for p in single_names]
    for body, single in zip(combo.backbone.bodies, singles):
        body.load_state_dict(single.backbone.state_dict())
    want = np.concatenate([_features(s, x) for s in singles], axis=1)
    assert combo.backbone.num_features == want.shape[1] == n_features
    np.testing.assert_allclose(_features(combo, x), want, rtol=1e-5, atol=1e-6)


def test_side_by_side_needs_one_normalisation_and_multilevel_pooling():
    with pytest.raises(ValueError, match="normalise their inputs differently"):
        create_model(ModelPreset("mixed", "tf_efficientnet_lite0+resnet18", "score", {"norm": True},
                                 pooling="multilevel"), pretrained=False)
    with pytest.raises(ValueError, match="need pooling 'multilevel' or 'multilevel-noise'"):
        create_model(ModelPreset("staged", "tf_efficientnet_lite0+tf_efficientnet_lite2", "mal", {},
                                 pooling="stages"), pretrained=False)
    with pytest.raises(ValueError, match="pretrained must be True or False"):
        create_model("lite02-ml-linear", pretrained="/some/weights.pth")


def test_checkpoint_names_may_join_timm_architectures_only():
    from biqa.checkpoint import check_backbone_name

    check_backbone_name("tf_efficientnet_lite0+tf_efficientnet_lite2")
    for bad in ("tf_efficientnet_lite0+hf-hub:org/x", "tf_efficientnet_lite0+no_such_net", "tf_efficientnet_lite0+"):
        with pytest.raises(ValueError, match="not a timm architecture"):
            check_backbone_name(bad)


def test_probe_on_two_backbones_saves_and_scores_like_its_head(tmp_path):
    import biqa
    from biqa.labels import LabelScale
    from biqa.probe import LinearHead, save_linear_checkpoint

    rng = np.random.default_rng(2)
    f = 1024 + 1120
    head = LinearHead(rng.normal(size=f) * 0.01, 0.5, rng.normal(size=f), rng.uniform(0.5, 2, size=f))
    path = save_linear_checkpoint(head, tmp_path / "probe.safetensors", label_scale=LabelScale(1.0, 5.0),
                                  preset="lite02-ml-linear")
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(3))
    scores = biqa.load(str(path)).score(x)["score"].to_numpy()
    # reference: the two single-backbone probes' bodies (ImageNet weights), their features side by side
    singles = [create_model(p, pretrained=True).eval() for p in ("lite0-ml-linear", "lite2-ml-linear")]
    mean, std = singles[0].preset.normalisation()
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    feats = np.concatenate([_features(s, xn) for s in singles], axis=1)
    np.testing.assert_allclose(scores, 1.0 + 4.0 * head.predict(feats), atol=1e-4)
