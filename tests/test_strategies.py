"""OHEM masks and shared-weight gradients, DML stop-gradient, frozen teacher, every composition."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from biqa.checkpoint import load_model, read_meta, read_state_dicts
from biqa.config import load_config
from biqa.models import create_model
from biqa.strategies import build_strategy
from biqa.strategies.pruning import magnitude_masks, masked_forward, prunable_weights
from biqa.trainer import Trainer


def small_model(seed=0, preset="lite0-mos"):
    torch.manual_seed(seed)
    return create_model(preset, pretrained=False)


def batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, size, size, generator=g), "z": torch.rand(n, generator=g),
            "index": torch.arange(n)}


# ---------------------------------------------------------------- OHEM masks
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.7, 0.8])
def test_mask_has_exact_sparsity_and_magnitude_rule(ratio):
    model = small_model()
    weights = prunable_weights(model)
    assert weights and all(n.startswith("backbone.") for n in weights)  # head never pruned
    assert not any("bn" in n or n.endswith("bias") for n in weights)
    masks = magnitude_masks(weights, ratio)
    n = sum(w.numel() for w in weights.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == math.ceil(ratio * n)
    if pruned:
        kept_min = min(w.abs()[m].min() for w, m in zip(weights.values(), masks.values()) if m.any())
        pruned_max = max(w.abs()[~m].max() for w, m in zip(weights.values(), masks.values()) if (~m).any())
        assert kept_min >= pruned_max  # global magnitude rule, across layers
    # independent reference: k-th smallest magnitude over everything
    flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    if 0 < pruned < n:
        kth = torch.kthvalue(flat, pruned).values
        assert all(bool((w.abs()[~m] <= kth).all()) for w, m in zip(weights.values(), masks.values()))


def test_pruned_forward_uses_masked_weights_without_copying():
    model = small_model().eval()
    masks = magnitude_masks(prunable_weights(model), 0.7)
    x = torch.randn(2, 3, 32, 32)
    # reference: an explicit deep copy with the weights zeroed
    import copy

    ref = copy.deepcopy(model)
    with torch.no_grad():
        params = dict(ref.named_parameters())
        for name, m in masks.items():
            params[name].mul_(m)
    torch.testing.assert_close(masked_forward(model, masks, x)["z"], ref(x)["z"], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(model(x)["z"], ref(x)["z"])  # the original weights are untouched


def test_gradients_from_both_branches_reach_the_shared_weights():
    model = small_model().eval()  # deterministic forward (no dropout) so gradients are comparable
    masks = magnitude_masks(prunable_weights(model), 0.7)
    name = next(iter(masks))
    w = dict(model.named_parameters())[name]
    x = torch.randn(2, 3, 32, 32)

    def grad_of(fn):
        model.zero_grad()
        fn().backward()
        return w.grad.detach().clone()

    g_full = grad_of(lambda: model(x)["z"].sum())
    g_pruned = grad_of(lambda: masked_forward(model, masks, x)["z"].sum())
    g_both = grad_of(lambda: model(x)["z"].sum() + masked_forward(model, masks, x)["z"].sum())
    assert g_pruned.abs().sum() > 0
    assert torch.all(g_pruned[~masks[name]] == 0)  # pruned positions get no gradient from the pruned branch
    torch.testing.assert_close(g_both, g_full + g_pruned, rtol=1e-4, atol=1e-7)


def test_pruned_branch_leaves_running_statistics_alone():
    model = small_model().train()
    masks = magnitude_masks(prunable_weights(model), 0.7)
    before = {k: v.clone() for k, v in model.named_buffers()}
    masked_forward(model, masks, torch.randn(4, 3, 32, 32))["z"].sum().backward()
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())
    model(torch.randn(4, 3, 32, 32))  # the full branch does update them
    assert any(not torch.equal(before[k], v) for k, v in model.named_buffers())


def test_ohem_records_per_sample_disagreement():
    strat = build_strategy("ohem", small_model(), loss="mse", ohem={"ratio": 0.7})
    strat.on_epoch_start(0)
    loss, terms = strat.loss(batch())
    assert {"sup", "ohem_pruned_sup", "ohem_consistency"} <= set(terms)
    table = strat.epoch_report(0)["hard_samples"]
    assert sorted(table["index"]) == [0, 1, 2, 3]
    assert table["disagreement"].is_monotonic_decreasing


def test_ohem_crop_view_is_a_smaller_sub_image():
    model = small_model()
    strat = build_strategy("ohem", model, loss="mse", ohem={"view": "crop", "crop_scale": 0.5})
    strat.on_epoch_start(0)
    b = batch(size=32)
    torch.manual_seed(5)
    xp = strat.pruned_view(b["image"])
    assert xp.shape == (4, 3, 16, 16)
    # a window of the batch at one offset, the same for every sample
    hits = [(i, j) for i in range(17) for j in range(17) if torch.equal(b["image"][..., i:i + 16, j:j + 16], xp)]
    assert len(hits) == 1
    torch.manual_seed(5)
    assert torch.equal(strat.pruned_view(b["image"]), xp)  # seeded
    loss, terms = strat.loss(b)
    loss.backward()
    assert {"ohem_pruned_sup", "ohem_consistency"} <= set(terms)
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="crop_scale"):
        build_strategy("ohem", small_model(), ohem={"view": "crop", "crop_scale": 0.0})


def test_ohem_refresh_policies():
    model = small_model()
    strat = build_strategy("ohem", model, ohem={"refresh": 2})
    strat.on_epoch_start(0)
    first = {k: v.clone() for k, v in strat.masks["model"].items()}
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p))
    strat.on_step_end(0)
    assert all(torch.equal(first[k], strat.masks["model"][k]) for k in first)  # not yet
    strat.on_step_end(1)
    assert any(not torch.equal(first[k], strat.masks["model"][k]) for k in first)  # refreshed at step 2


# ----------------------------------------------------------------------- DML
def test_mutual_mimicry_target_carries_no_gradient():
    strat = build_strategy("mutual", small_model(), loss="mse", mutual={"peers": 2})
    peer0, peer1 = strat.nets["model"].eval(), strat.nets["peer1"].eval()  # no dropout: comparable gradients
    assert peer1.preset.hflip_input and not peer0.preset.hflip_input
    b = batch()
    out0, out1 = peer0(b["image"]), peer1(b["image"])
    # the mimicry term of peer 0 alone must not move peer 1
    mim0 = torch.nn.functional.mse_loss(out0["z"], out1["z"].detach())
    peer1.zero_grad()
    mim0.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in peer1.parameters())
    # in the full loss, peer 1's gradient equals that of its own terms only
    strat.nets["model"].zero_grad()
    peer1.zero_grad()
    loss, terms = strat.loss(b)
    loss.backward()
    g_full = [p.grad.clone() for p in peer1.head.parameters()]
    peer1.zero_grad()
    out1 = peer1(b["image"])
    own = torch.nn.functional.mse_loss(out1["z"], b["z"]) + torch.nn.functional.mse_loss(
        out1["z"], peer0(b["image"])["z"].detach())
    own.backward()
    for a, c in zip(g_full, [p.grad for p in peer1.head.parameters()]):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["scaled", "full", "none", True, False])
def test_mutual_head_init_modes(mode):
    """Kaiming (even peers) vs Xavier (odd peers) on every head Linear; "scaled" then brings the output
    layer to a fresh head's std (0.01) with its bias, so peers start near the range centre."""
    from biqa.strategies.composite import OUTPUT_INIT_STD

    fresh = small_model(seed=1, preset="lite0-ml-mos")  # head: BN, dropout, Linear(1280, 256), GELU, Linear(256, 1)
    strat = build_strategy("mutual", small_model(seed=1, preset="lite0-ml-mos"), mutual={"peers": 2, "init": mode})
    kind = {True: "scaled", False: "none"}.get(mode, mode)
    ref = [m for m in fresh.head.modules() if isinstance(m, torch.nn.Linear)]
    for name, fam in (("model", "kaiming"), ("peer1", "xavier")):
        hidden, out = [m for m in strat.nets[name].head.modules() if isinstance(m, torch.nn.Linear)]
        fan_out, fan_in = hidden.weight.shape
        if kind == "none":
            if name == "model":
                torch.testing.assert_close(hidden.weight, ref[0].weight)
                torch.testing.assert_close(out.weight, ref[1].weight)
            continue
        # uniform draws: std = bound / sqrt(3); Kaiming (a=0): sqrt(2 / fan_in), Xavier: sqrt(2 / (fan_in + fan_out))
        want = math.sqrt(2 / fan_in) if fam == "kaiming" else math.sqrt(2 / (fan_in + fan_out))
        assert float(hidden.weight.detach().std()) == pytest.approx(want, rel=0.02)
        if kind == "scaled":
            assert float(out.weight.detach().std()) == pytest.approx(OUTPUT_INIT_STD, rel=1e-4)
        else:
            o_in = out.weight.shape[1]
            want_out = math.sqrt(2 / o_in) if fam == "kaiming" else math.sqrt(2 / (o_in + 1))
            assert float(out.weight.detach().std()) == pytest.approx(want_out, rel=0.15)
        torch.testing.assert_close(out.bias, ref[1].bias)  # the range centre
    heads = [strat.nets[n].head.mlp[-1].weight for n in ("model", "peer1")]
    assert not torch.equal(*heads)


def test_mutual_init_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mutual.init"):
        build_strategy("mutual", small_model(), mutual={"peers": 2, "init": "orthogonal"})


def test_mutual_predicts_with_peer_mean():
    strat = build_strategy("mutual", small_model(), mutual={"peers": 3})
    for n in strat.nets.values():
        n.eval()
    x = batch()["image"]
    with torch.no_grad():
        mean = torch.stack([n(x)["score"] for n in strat.nets.values()]).mean(0)
        torch.testing.assert_close(strat.predict(x)["score"], mean)


# ------------------------------------------------------------------- distill
@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory, tiny_records):
    out = tmp_path_factory.mktemp("teacher")
    Trainer(_cfg(tiny_records, out, "supervised", preset="lite1-mos")).fit()
    return str(out / "best.safetensors")


def test_teacher_gets_no_gradient_and_stays_in_eval(teacher_ckpt):
    strat = build_strategy("distill", small_model(), distill={"teacher": teacher_ckpt})
    teacher = strat.frozen["teacher"]
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    assert "kd_proj" not in strat.nets  # lite0 and lite1 both pool 1280 features: no projection needed
    other = build_strategy("distill", small_model(preset="resnet18-mos"), distill={"teacher": teacher_ckpt})
    proj = other.nets["kd_proj"]["model"]  # resnet18's 512 features -> the teacher's 1280
    assert (proj.in_features, proj.out_features) == (512, 1280)
    for n in strat.nets.values():
        n.train()
    loss, terms = strat.loss(batch())
    loss.backward()
    assert {"kd_output", "kd_feature"} <= set(terms)
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


# -------------------------------------------------------------- compositions
def _cfg(records, out, name, preset="lite0-mos", **strategy):
    return load_config({
        "name": "s", "out_dir": str(out), "seed": 1, "progress": False,
        "data": {"records": records, "crop_size": 32, "num_workers": 0},
        "model": {"preset": preset, "pretrained": False},
        "strategy": {"name": name, "loss": "mse", **strategy},
        "train": {"epochs": 2, "batch_size": 8, "max_steps_per_epoch": 2},
        "test_at_end": False,
    })


COMPOSITIONS = [["ohem"], ["mutual"], ["distill"], ["ohem", "distill"], ["ohem", "mutual"],
                ["mutual", "distill"], ["ohem", "mutual", "distill"]]


@pytest.mark.parametrize("components", COMPOSITIONS, ids=lambda c: "+".join(c))
def test_composition_trains_and_resumes(components, tiny_records, teacher_ckpt, tmp_path, monkeypatch):
    extra = {"distill": {"teacher": teacher_ckpt}} if "distill" in components else {}
    full = tmp_path / "full"
    Trainer(_cfg(tiny_records, full, components, **extra)).fit()
    part = tmp_path / "part"
    orig = Trainer._write_history
    calls = {"n": 0}

    def killed(self):
        orig(self)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_write_history", killed)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(tiny_records, part, components, **extra)).fit()
    monkeypatch.setattr(Trainer, "_write_history", orig)
    Trainer(_cfg(tiny_records, part, components, **extra), resume=True).fit()
    a, b = read_state_dicts(full / "last.safetensors"), read_state_dicts(part / "last.safetensors")
    assert a.keys() == b.keys()
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    meta = read_meta(full / "last.safetensors")
    assert meta["components"] == components
    if "mutual" in components:
        assert meta["ensemble"] == ["model", "peer1"]
        model, _ = load_model(full / "last.safetensors")
        assert hasattr(model, "members")
    if "ohem" in components:
        assert (full / "hard_samples_epoch1.csv").is_file()
        hs = pd.read_csv(full / "hard_samples_epoch1.csv")
        assert {"rank", "path", "index", "disagreement"} <= set(hs.columns)
        assert abs(meta["ohem_sparsity"]["model"] - 0.7) < 1e-3


def test_unknown_or_misplaced_strategy_options_are_errors():
    with pytest.raises(ValueError, match="unknown strategy"):
        build_strategy(["ohem", "magic"], small_model())
    with pytest.raises(ValueError, match="not listed"):
        build_strategy(["ohem"], small_model(), mutual={"peers": 2})
    with pytest.raises(ValueError, match="teacher"):
        build_strategy("distill", small_model(), distill={})
