"""Model presets, create_model and the IQAModel forward contract (random weights, CPU)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from biqa.labels import LabelScale
from biqa.models import ModelPreset, create_model, get_preset, list_models, register_preset


@pytest.fixture(scope="module")
def lite0():
    torch.manual_seed(0)
    return create_model("lite0-mos", pretrained=False).eval()


@pytest.fixture(scope="module")
def nima0():
    torch.manual_seed(1)
    return create_model("nima-lite0", pretrained=False).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))


def test_list_models():
    assert list_models("*lite*") == ["lite0-ml-kernel", "lite0-ml-linear", "lite0-ml-linres", "lite0-ml-mos",
                                     "lite0-mlb-linear", "lite0-mlbn-linear", "lite0-mln-kernel", "lite0-mln-linear",
                                     "lite0-mos", "lite012-ml-linear", "lite02-ml-linear", "lite02-mlbn-linear",
                                     "lite02-mln-linear", "lite1-ml-linear", "lite1-mlb-linear", "lite1-mos",
                                     "lite2-ml-linear", "lite2-mlb-linear", "lite2-mos",
                                     "mobileiqa-teacher-lite2", "nima-lite0", "nima-lite0-ml", "nima-lite1", "nima-lite2"]
    assert list_models("nima-*") == sorted(["nima-lite0", "nima-lite0-ml", "nima-lite1", "nima-lite2", "nima-mobilenetv2"])
    everything = list_models()
    assert everything == sorted(everything)
    assert {"resnet18-mos", "resnet50-mos", "mobilenetv3-mos"} <= set(everything)
    assert list_models("no-such-*") == []


@pytest.mark.parametrize("name,stages", [("lite1-ml-linear", (16, 24, 40, 112, 320)),
                                         ("lite2-ml-linear", (16, 24, 48, 120, 352))])
def test_larger_probe_bodies(name, stages, x):
    # Stage widths of EfficientNet-Lite1/2 (Lite1 keeps Lite0's widths; Lite2 scales them by 1.1, rounded to 8):
    # the mean and std of each stage, side by side.
    model = create_model(name, pretrained=False).eval()
    with torch.no_grad():
        out = model(x)
    assert out["features"].shape == (2, 2 * sum(stages))
    assert model.preset.pooling == "multilevel" and model.preset.head_kwargs == {"norm": True}


def test_score_model_forward(lite0, x):
    with torch.no_grad():
        out = lite0(x)
    assert out["z"].shape == (2,)
    assert out["score"].shape == (2,)
    assert out["features"].shape == (2, lite0.backbone.num_features)
    assert out["features"].shape[1] == 1280  # EfficientNet-Lite0's pooled width
    assert "probs" not in out
    # Preset range 1..5, higher is better: score = 1 + 4 z.
    assert torch.allclose(out["score"], 1.0 + 4.0 * out["z"], atol=1e-6)
    assert torch.allclose(out["score"], lite0.label_scale.denormalise(out["z"]))
    assert torch.isfinite(out["z"]).all()
    assert lite0.preset.name == "lite0-mos"


def test_distribution_model_forward(nima0, x):
    with torch.no_grad():
        out = nima0(x)
    probs = out["probs"]
    assert probs.shape == (2, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(2), atol=1e-5)
    assert (probs >= 0).all()
    assert (out["std_bins"] > 0).all() and (out["std"] > 0).all()
    assert ((out["z"] >= 0) & (out["z"] <= 1)).all()
    # z from the distribution mean over bins 1..10, computed here independently.
    mean = (probs * torch.arange(1.0, 11.0)).sum(-1)
    assert torch.allclose(out["z"], (mean - 1) / 9, atol=1e-6)
    var = (probs * (torch.arange(1.0, 11.0) - mean[:, None]) ** 2).sum(-1)
    assert torch.allclose(out["std_bins"], var.sqrt(), atol=1e-5)
    # std in score units: 9 bin steps span the 1..5 range.
    assert torch.allclose(out["std"], out["std_bins"] * 4 / 9, atol=1e-6)
    assert torch.allclose(out["score"], 1 + 4 * out["z"], atol=1e-6)


def test_custom_label_scale(x):
    torch.manual_seed(0)
    m = create_model("lite0-mos", label_scale=LabelScale(0.0, 100.0)).eval()
    with torch.no_grad():
        out = m(x)
    assert torch.allclose(out["score"], 100.0 * out["z"], atol=1e-4)
    m2 = create_model("nima-lite0", label_scale={"lo": 0, "hi": 100, "higher_is_better": False}).eval()
    assert m2.label_scale == LabelScale(0.0, 100.0, False)
    with torch.no_grad():
        out2 = m2(x)
    assert torch.allclose(out2["score"], 100.0 * (1.0 - out2["z"]), atol=1e-4)
    assert torch.allclose(out2["std"], out2["std_bins"] * 100 / 9, atol=1e-4)


def test_unknown_preset_lists_known_names():
    with pytest.raises(KeyError) as exc:
        create_model("lite9-mos")
    msg = str(exc.value)
    assert "lite9-mos" in msg
    for name in ("lite0-mos", "nima-lite0", "resnet18-mos"):
        assert name in msg


def test_param_groups_cover_all_params_once(lite0):
    groups = lite0.param_groups()
    assert set(groups) == {"backbone", "head"}
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in lite0.parameters()}
    assert {id(p) for p in groups["head"]} == {id(p) for p in lite0.head.parameters()}
    # Head of lite0-mos: dropout -> Linear(1280, 1).
    assert sum(p.numel() for p in groups["head"]) == 1280 + 1


def test_param_groups_skip_frozen():
    m = create_model("lite0-mos")
    for p in m.backbone.parameters():
        p.requires_grad_(False)
    groups = m.param_groups()
    assert groups["backbone"] == []
    assert len(groups["head"]) == 2


def test_preset_overrides():
    m = create_model("lite0-mos", head_kwargs={"hidden": 16, "dropout": 0.0})
    linears = [mod for mod in m.head.modules() if isinstance(mod, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(1280, 16), (16, 1)]
    assert m.preset.head_kwargs == {"hidden": 16, "dropout": 0.0}
    # The registry itself is untouched.
    assert get_preset("lite0-mos").head_kwargs == {"dropout": 0.2}


def test_preset_dict_round_trip():
    p = ModelPreset("t", "tf_efficientnet_lite0", "distribution", {"n_bins": 5}, 192,
                    mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), score_range=(0.0, 10.0),
                    higher_is_better=False, description="d")
    d = p.to_dict()
    json.dumps(d)  # plain data
    assert ModelPreset.from_dict(d) == p
    assert ModelPreset.from_dict(json.loads(json.dumps(d))) == p
    # Unknown keys (e.g. from a newer checkpoint) are ignored.
    assert ModelPreset.from_dict({**d, "extra": 1}) == p


def test_preset_dict_records_backbone_normalisation():
    p = get_preset("lite0-mos")
    d = p.to_dict()
    # EfficientNet-Lite (tf_ port) normalises with mean = std = 0.5.
    assert d["mean"] == [0.5, 0.5, 0.5] and d["std"] == [0.5, 0.5, 0.5]
    q = ModelPreset.from_dict(json.loads(json.dumps(d)))
    assert q.normalisation() == p.normalisation()
    assert q.to_dict() == d
    for k in ("name", "backbone", "head", "head_kwargs", "input_size", "score_range", "higher_is_better"):
        assert getattr(q, k) == getattr(p, k)


def test_register_preset_duplicate():
    with pytest.raises(ValueError, match="already registered"):
        register_preset(get_preset("lite0-mos"))


def test_multilevel_pooling_model(tmp_path, x):
    """lite0-ml-mos: mean and std of every stage, computed independently here from the extractor."""
    from biqa.checkpoint import load_model, save_checkpoint

    torch.manual_seed(3)
    model = create_model("lite0-ml-mos", pretrained=False).eval()
    extractor = model.backbone.extractor
    assert model.backbone.num_features == 2 * (16 + 24 + 40 + 112 + 320)
    with torch.no_grad():
        out = model(x)
        maps = extractor(x)
    assert [m.shape[1] for m in maps] == [16, 24, 40, 112, 320]
    # per stage: its channel means, then its channel stds (unbiased), stage after stage
    expected = torch.cat([torch.cat([m.mean((2, 3)), m.std((2, 3))], 1) for m in maps], 1)
    assert torch.allclose(out["features"], expected, atol=1e-5)
    assert out["score"].shape == (2,) and torch.isfinite(out["score"]).all()
    assert isinstance(model.head.mlp[0], torch.nn.BatchNorm1d)
    # any input size, batch of one in eval mode
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 131)).get("score").shape == (1,)
    # checkpoint round trip rebuilds the multi-level model
    meta = {"preset": model.preset.to_dict(), "label_scale": model.label_scale.to_dict()}
    save_checkpoint(tmp_path / "ml.safetensors", {"model": model}, meta)
    loaded, _ = load_model(tmp_path / "ml.safetensors")
    assert loaded.preset.pooling == "multilevel"
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x)["score"], out["score"], atol=1e-6)


def test_unknown_pooling():
    with pytest.raises(ValueError, match="pooling"):
        create_model("lite0-mos", pretrained=False, pooling="max")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_spatial_std_mean_matches_float64_reference(channels_last, grad):
    """The fast per-channel std/mean equals torch.std_mean in float64, in either memory layout;
    with gradients enabled it back-propagates like the reference."""
    from biqa.models import spatial_std_mean

    g = torch.Generator().manual_seed(5)
    f = (torch.randn(3, 7, 13, 11, generator=g) * 2 + 5).requires_grad_(grad)
    f_in = f.contiguous(memory_format=torch.channels_last) if channels_last else f
    with torch.set_grad_enabled(grad):
        std, mean = spatial_std_mean(f_in)
    ref_std, ref_mean = torch.std_mean(f.detach().double().flatten(2), dim=-1)
    assert std.shape == mean.shape == (3, 7)
    assert torch.allclose(std.double(), ref_std, rtol=1e-5) and torch.allclose(mean.double(), ref_mean, rtol=1e-6)
    if grad:
        (std.sum() + mean.sum()).backward()
        f2 = f.detach().clone().requires_grad_(True)
        s2, m2 = torch.std_mean(f2.flatten(2), dim=-1)
        (s2.sum() + m2.sum()).backward()
        assert torch.allclose(f.grad, f2.grad, atol=1e-5)


def test_load_backbone_weights_copies_backbone_only(tmp_path):
    """model.init_backbone_from: another checkpoint's backbone (names matched through biqa's
    pooling wrappers), the head untouched; a different architecture is a clear error."""
    from biqa.checkpoint import load_backbone_weights, save_untrained

    src = save_untrained(tmp_path / "src.safetensors", "lite0-ml-mos", seed=1)
    torch.manual_seed(2)
    model = create_model("lite0-ml-mos", pretrained=False)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    torch.manual_seed(1)
    ref = create_model("lite0-ml-mos", pretrained=False)
    n = load_backbone_weights(model, src)
    assert n == len(model.backbone.state_dict())
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, ref.backbone.state_dict()[k]), k
    for k, v in model.head.state_dict().items():
        assert torch.equal(v, head_before[k]), k
    other = create_model("resnet18-mos", pretrained=False)
    with pytest.raises(ValueError, match="same backbone architecture"):
        load_backbone_weights(other, src)


def test_multilevel_block_pooling_pools_every_block_group(x):
    """levels "blocks" (lite0-mlb-linear): mean and std of each of the 7 block groups' outputs, taken here
    with forward hooks on timm's own forward pass; the 5 stage maps among them give lite0-ml-linear's
    statistics exactly."""
    torch.manual_seed(4)
    blocks = create_model("lite0-mlb-linear", pretrained=False).eval()
    stages = create_model("lite0-ml-linear", pretrained=False).eval()
    stages.backbone.load_state_dict(blocks.backbone.state_dict())
    extractor = blocks.backbone.extractor
    seen = []
    hooks = [g.register_forward_hook(lambda m, i, o: seen.append(o)) for g in extractor.blocks]
    with torch.no_grad():
        extractor(x)  # timm's forward: every group runs, the hooks keep each one's output
    for h in hooks:
        h.remove()
    assert [m.shape[1] for m in seen] == [16, 24, 40, 80, 112, 192, 320]
    expected = torch.cat([torch.cat([m.mean((2, 3)), m.std((2, 3))], 1) for m in seen], 1)
    with torch.no_grad():
        got = blocks.backbone(x)
        staged = stages.backbone(x)
    assert blocks.backbone.num_features == got.shape[1] == 2 * (16 + 24 + 40 + 80 + 112 + 192 + 320)
    assert torch.allclose(got, expected, atol=1e-5)
    # groups 0, 1, 2, 4 and 6 end the stages where the stride changes
    offsets = np.cumsum([0] + [2 * m.shape[1] for m in seen])
    picked = torch.cat([got[:, offsets[i]:offsets[i + 1]] for i in (0, 1, 2, 4, 6)], 1)
    assert torch.equal(picked, staged)


def test_multilevel_levels_are_checked():
    from biqa.models import MultiLevelPool

    extractor = create_model("lite0-ml-linear", pretrained=False).backbone.extractor
    with pytest.raises(ValueError, match="unknown levels 'all'"):
        MultiLevelPool(extractor, levels="all")
    with pytest.raises(ValueError, match="pooling 'multilevel' takes only 'levels'"):
        create_model("lite0-ml-linear", pretrained=False, pooling_kwargs={"noise_repeat": 2})
    resnet = create_model(ModelPreset("r", "resnet18", "score", {}, pooling="multilevel"), pretrained=False)
    with pytest.raises(ValueError, match="EfficientNet-style extractor"):
        MultiLevelPool(resnet.backbone.extractor, levels="blocks")
