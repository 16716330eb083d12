"""MobileIQA: MAL head shapes, identity at init, exact slab LDA, presets, distillation, checkpoints, configs."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import biqa
from biqa.checkpoint import load_model, save_checkpoint, save_untrained
from biqa.config import load_config
from biqa.mobileiqa import MAL, LDABlock, MALHead, SpatialSelfAttention, lda_pool_slabs, pool_bins
from biqa.models import create_model, get_preset
from biqa.strategies import build_strategy

CONFIGS = Path(__file__).resolve().parents[1] / "biqa" / "configs"
LITE0_CHANNELS = [16, 24, 40, 112, 320]
# Small heads keep the file fast; the presets' default head (C=256, S=22) is built in test_presets_build.
SMALL = {"hidden": 32, "channels": 16, "size": 6}


def stage_maps(b, h, w, channels=LITE0_CHANNELS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, -(-h // 2 ** (i + 1)), -(-w // 2 ** (i + 1)), generator=g)
            for i, c in enumerate(channels)]


# ----------------------------------------------------------------- shapes
@pytest.mark.parametrize("hw", [(64, 64), (96, 128), (224, 160)])
@pytest.mark.parametrize("views", [1, 3, 5])
def test_mal_head_shapes(hw, views):
    torch.manual_seed(0)
    head = MALHead(LITE0_CHANNELS, hidden=32, channels=32, size=22, views=views).eval()
    out = head(stage_maps(2, *hw))
    assert out["z"].shape == (2,)
    assert out["features"].shape == (2, 128)
    assert out["stage_features"].shape == (5, 2, 32, 22, 22)
    assert out["opinion_features"].shape == (3, 2, 32, 22 * 22)
    assert ((out["z"] > 0) & (out["z"] < 1)).all()  # sigmoid by default
    assert len(head.view_index) == views and set(head.view_index) <= set(range(5))


@pytest.mark.parametrize("views", [1, 3, 5])
def test_mal_maps_views_to_one_map(views):
    mal = MAL(channels=8, size=5, views=views)
    x = [torch.randn(3, 8, 5, 5) for _ in range(views)]
    assert mal(x).shape == (3, 8, 25)
    with pytest.raises(ValueError, match="views"):
        mal(x + [x[0]])


def _attend(tokens, lin):
    """Reference self-attention with a residual, written out: softmax(q k^T / sqrt(d)) v + x."""
    d = tokens.shape[-1]
    w, b = lin.weight, lin.bias
    q, k, v = (tokens @ w[i * d:(i + 1) * d].T + b[i * d:(i + 1) * d] for i in range(3))
    return tokens + torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1) @ v


@pytest.mark.parametrize("layout", ["paper", "channels"])
def test_mal_token_layout_matches_a_written_out_computation(layout):
    """"paper" (docs/methods.md §3): views concatenated along the positions, X = [B, C, V*S*S]; the C
    channels are tokens of size V*S*S, the V*S*S positions tokens of size C. "channels": X = [B, V*C,
    S*S]; V*C channel tokens of size S*S, S*S position tokens of size V*C."""
    torch.manual_seed(0)
    C, S, V = 6, 3, 4
    mal = MAL(channels=C, size=S, views=V, layout=layout).eval()  # eval: no attention dropout
    for sa in mal.spatial:  # a non-trivial spatial attention, so each view is transformed before concatenation
        with torch.no_grad():
            sa.gamma.fill_(0.7)
    views = [torch.randn(2, C, S, S) for _ in range(V)]
    with torch.no_grad():
        got = mal(views)
        maps = [sa(v).reshape(2, C, S * S) for sa, v in zip(mal.spatial, views)]
        if layout == "paper":
            assert mal.channel_attn.qkv.in_features == V * S * S and mal.position_attn.qkv.in_features == C
            x = torch.cat(maps, dim=2)  # [B, C, V*N]
            y = 0.5 * (_attend(x, mal.channel_attn.qkv) + _attend(x.transpose(1, 2), mal.position_attn.qkv).transpose(1, 2))
            want = torch.stack([y[:, :, v * S * S:(v + 1) * S * S] for v in range(V)]).mean(0)
        else:
            assert mal.channel_attn.qkv.in_features == S * S and mal.position_attn.qkv.in_features == V * C
            x = torch.cat(maps, dim=1)  # [B, V*C, N]
            y = 0.5 * (_attend(x, mal.channel_attn.qkv) + _attend(x.transpose(1, 2), mal.position_attn.qkv).transpose(1, 2))
            want = torch.stack([y[:, v * C:(v + 1) * C] for v in range(V)]).mean(0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_mal_layout_is_named_and_old_checkpoints_keep_theirs():
    """Unknown layouts are refused; presets name theirs; a checkpoint written before the option
    (no "layout" in its head_kwargs) loads with the layout it was trained with, "channels"."""
    with pytest.raises(ValueError, match="layout"):
        MAL(channels=4, size=2, views=3, layout="tokens")
    assert get_preset("mobileiqa-student").head_kwargs["layout"] == "paper"
    from biqa.models import ModelPreset

    old = ModelPreset.from_dict({"name": "x", "backbone": "tf_efficientnet_lite0", "head": "mal",
                                 "head_kwargs": {"sigmoid": True}})
    assert old.head_kwargs["layout"] == "channels"


def test_spatial_attention_is_the_identity_at_init():
    sa = SpatialSelfAttention(16)
    assert isinstance(sa.gamma, torch.nn.Parameter) and sa.gamma.item() == 0.0
    x = torch.randn(2, 16, 7, 5)
    assert torch.equal(sa(x), x)
    with torch.no_grad():
        sa.gamma.fill_(0.5)
    assert not torch.allclose(sa(x), x)
    assert all(m.gamma.item() == 0.0 for m in MALHead(LITE0_CHANNELS, **SMALL).modules()
               if isinstance(m, SpatialSelfAttention))


# ---------------------------------------------------------------- slab LDA
def test_pool_bins_are_adaptive_pooling_bins():
    assert pool_bins(44, 22) == [(2 * i, 2 * i + 2) for i in range(22)]
    assert pool_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert pool_bins(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]


@pytest.mark.parametrize("hw", [(44, 66), (50, 37), (9, 13), (1, 30), (23, 5)])
def test_slab_lda_equals_plain_lda(hw):
    torch.manual_seed(0)
    block = LDABlock(8, hidden=24, out_channels=6, size=22, slab_bytes=0)
    x = torch.randn(2, 8, *hw)
    plain = F.adaptive_avg_pool2d(F.gelu(block.expand(x)), 22)
    torch.testing.assert_close(lda_pool_slabs(x, block.expand, 22), plain, atol=1e-5, rtol=1e-5)
    calls = []
    hook = block.expand.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[2]))
    with torch.no_grad():
        slab = block(x)  # no gradients and over slab_bytes (0): one slab per output row
    hook.remove()
    assert len(calls) == 22 and max(calls) <= -(-hw[0] // 22) + 1
    block.train()
    torch.testing.assert_close(slab, block(x), atol=1e-5, rtol=1e-5)  # training: the plain path


def test_slab_threshold_and_checkpointed_training_path():
    torch.manual_seed(0)
    block = LDABlock(4, hidden=8, out_channels=4, size=3)
    x = torch.randn(1, 4, 12, 12)
    assert block.expanded_bytes(x) == 8 * 12 * 12 * 4
    calls = []
    block.expand.register_forward_hook(lambda m, i, o: calls.append(1))
    with torch.no_grad():
        block(x)
    assert len(calls) == 1  # small map: plain computation
    ref = block(x)
    ref.sum().backward()
    g_ref = block.expand.weight.grad.clone()
    block.zero_grad()
    block.checkpoint = True
    out = block(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(block.expand.weight.grad, g_ref)


# ----------------------------------------------------------------- presets
def test_presets_build_and_score():
    assert biqa.list_models("mobileiqa*") == ["mobileiqa-student", "mobileiqa-student-mnv3", "mobileiqa-student-s",
                                              "mobileiqa-teacher", "mobileiqa-teacher-lite2"]
    x = torch.randn(2, 3, 64, 64)
    for name in biqa.list_models("mobileiqa*"):
        torch.manual_seed(0)
        model = create_model(name, pretrained=False).eval()
        assert model.preset.input_size == 384 and model.preset.pooling == "stages"
        with torch.no_grad():
            out = model(x)
        c = 64 if name == "mobileiqa-student-s" else 256  # the small head: C = 64
        assert out["z"].shape == (2,) and out["score"].shape == (2,)
        assert out["features"].shape == (2, 128)
        assert out["stage_features"].shape == (5, 2, c, 22, 22)
        assert out["opinion_features"].shape == (3, 2, c, 22 * 22)
        assert torch.isfinite(out["z"]).all()
        if "student" in name:
            assert ((out["z"] > 0) & (out["z"] < 1)).all()


def test_teacher_without_weight_file_says_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="mobileiqa-teacher-lite2") as e:
        create_model("mobileiqa-teacher", pretrained=True)
    assert "pretrained=" in str(e.value)
    with pytest.raises(ValueError, match="mobileiqa-student'"):
        create_model("mobileiqa-student-mnv3", pretrained=True)
    with pytest.raises(FileNotFoundError):
        create_model("mobileiqa-teacher", pretrained=str(tmp_path / "missing.safetensors"))


def test_local_weight_file_loads_into_the_stage_extractor(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    full = timm.create_model("mobilenetv3_large_100", pretrained=False)
    path = tmp_path / "mnv3.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    model = create_model("mobileiqa-student-mnv3", pretrained=str(path))
    torch.testing.assert_close(model.backbone.extractor.conv_stem.weight, full.conv_stem.weight)


# --------------------------------------------------------------- distillation
def _small(name, **head):
    p = get_preset(name)
    return replace(p, head_kwargs={**p.head_kwargs, **SMALL, **head})


def _batch(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, size, size, generator=g), "z": torch.rand(n, generator=g),
            "index": torch.arange(n)}


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    # teacher C=24, S=8 vs the student's C=16, S=6: both projections are needed
    return save_untrained(tmp_path_factory.mktemp("mteacher") / "t.safetensors",
                          _small("mobileiqa-teacher-lite2", channels=24, size=8), seed=3)


def test_distillation_trains_the_student_and_projections_only(teacher_ckpt):
    torch.manual_seed(0)
    student = create_model(_small("mobileiqa-student"))
    strat = build_strategy("distill", student, loss="mse", distill={"teacher": teacher_ckpt})
    teacher = strat.frozen["teacher"]
    assert not teacher.training
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    proj = strat.nets["kd_proj"]
    assert set(proj) >= {"model_stage", "model_opinion"}
    assert len(proj["model_stage"].convs) == 5 and len(proj["model_opinion"].convs) == 3
    s_before = {k: v.detach().clone() for k, v in student.named_parameters()}
    p_before = {k: v.detach().clone() for k, v in proj.named_parameters()}
    params = [p for net in strat.nets.values() for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    for net in strat.nets.values():
        net.train()
    loss, terms = strat.loss(_batch())
    assert {"sup", "kd_stage", "kd_opinion"} <= set(terms)  # the method's terms; no score or pooled-feature term
    assert "kd_feature" not in terms and "kd_output" not in terms
    assert all(v > 0 for k, v in terms.items() if k.startswith("kd_"))
    loss.backward()
    opt.step()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(t_before[k], v) for k, v in teacher.state_dict().items())
    changed = {k for k, v in student.named_parameters() if not torch.equal(v, s_before[k])}
    assert any(k.startswith("backbone.") for k in changed) and any(k.startswith("head.lda") for k in changed)
    assert all(not torch.equal(v, p_before[k]) for k, v in proj.named_parameters() if "convs.0.weight" in k)


def test_distillation_same_shapes_needs_no_projection(tmp_path):
    ckpt = save_untrained(tmp_path / "t.safetensors", _small("mobileiqa-teacher-lite2"), seed=1)
    strat = build_strategy("distill", create_model(_small("mobileiqa-student")),
                           distill={"teacher": ckpt, "w_output": 0, "w_feature": 0.5, "kd_loss": "l1"})
    assert "kd_proj" not in strat.nets  # equal stage / opinion / pooled shapes
    _, terms = strat.loss(_batch(n=2))
    assert {"kd_stage", "kd_opinion", "kd_feature"} <= set(terms) and "kd_output" not in terms


def test_distillation_from_a_pooled_teacher_keeps_the_generic_terms(tmp_path):
    ckpt = save_untrained(tmp_path / "t.safetensors", "lite0-mos", seed=1)
    strat = build_strategy("distill", create_model(_small("mobileiqa-student")), distill={"teacher": ckpt})
    assert strat.nets["kd_proj"]["model"].in_features == 128  # the MAL tail vector -> lite0's 1280
    _, terms = strat.loss(_batch(n=2))
    assert "kd_feature" in terms and "kd_output" not in terms and "kd_stage" not in terms


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_gives_the_same_output(tmp_path):
    torch.manual_seed(0)
    model = create_model(_small("mobileiqa-student", views=3))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SpatialSelfAttention):
                m.gamma.fill_(0.3)  # non-trivial attention
    model.eval()
    mean, std = model.preset.normalisation()
    meta = {"preset": model.preset.to_dict(), "label_scale": model.label_scale.to_dict(),
            "preprocessing": {"mean": list(mean), "std": list(std), "crop_size": 384, "resolution": "full"},
            "config": {}, "metrics": {}}
    path = save_checkpoint(tmp_path / "m.safetensors", {"model": model}, meta)
    loaded, _ = load_model(path)
    x = torch.randn(2, 3, 80, 72)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for k in ("z", "score", "features", "stage_features", "opinion_features"):
        torch.testing.assert_close(a[k], b[k])


# -------------------------------------------------------------------- configs
def test_configs_load_and_chain():
    teacher = load_config(CONFIGS / "mobileiqa_uhd.yaml")
    student = load_config(CONFIGS / "mobileiqa_uhd_student.yaml")
    for cfg in (teacher, student):
        assert get_preset(cfg["model"]["preset"]).head == "mal"
        assert cfg["data"]["label_range"] == [0, 1]  # one fixed range for every split
        assert cfg["data"]["eval_resolution"].startswith("max:")
        assert cfg["early_stop"]["metric"] == "srcc"
    assert teacher["strategy"]["name"] == "supervised"
    assert student["strategy"]["name"] == ["distill"]
    assert student["strategy"]["distill"]["teacher"] == str(Path(teacher["out_dir"]) / "best.safetensors")


def test_trainer_runs_teacher_then_distilled_student(tiny_records, tmp_path):
    from biqa.checkpoint import read_state_dicts
    from biqa.trainer import Trainer

    def cfg(preset, out, head, **strategy):
        return load_config({
            "name": preset, "out_dir": str(out), "seed": 1, "progress": False,
            "data": {"records": tiny_records, "crop_size": 32, "num_workers": 0, "eval_resolution": "max:48"},
            "model": {"preset": preset, "pretrained": False, "head_kwargs": head},
            "strategy": {"loss": "mse", **strategy},
            "train": {"epochs": 1, "batch_size": 8, "max_steps_per_epoch": 2, "amp": True, "channels_last": True},
            "test_at_end": False})

    Trainer(cfg("mobileiqa-teacher-lite2", tmp_path / "t", {**SMALL, "channels": 24})).fit()
    teacher = str(tmp_path / "t" / "best.safetensors")
    Trainer(cfg("mobileiqa-student", tmp_path / "s", SMALL, name=["distill"],
                distill={"teacher": teacher, "w_output": 0.0})).fit()
    hist = (tmp_path / "s" / "metrics.csv").read_text()
    assert "train_kd_stage" in hist and "train_kd_opinion" in hist and "train_kd_output" not in hist
    assert {"model", "kd_proj"} <= set(read_state_dicts(tmp_path / "s" / "best.safetensors"))
    model, _ = load_model(tmp_path / "s" / "best.safetensors")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 56))["z"].shape == (1,)
