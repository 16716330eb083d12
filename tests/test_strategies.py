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


def _pruned_copy(model, masks):
    """An independent pruned network: a deep copy with its masked weights multiplied out."""
    import copy

    ref = copy.deepcopy(model)
    with torch.no_grad():
        params = dict(ref.named_parameters())
        for name, m in masks.items():
            params[name].mul_(m)
    return ref


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_ohem_loss_and_disagreement_recomputed_by_hand(lam):
    """L = MSE(f, y) + MSE(f_p, y) + lam * MSE(f, f_p) (docs/methods.md §1), with the pruned network
    rebuilt independently as a masked deep copy; the hard-sample table holds |f - f_p| per index."""
    model = small_model().eval()  # no dropout: both computations see the same function
    strat = build_strategy("ohem", model, loss="mse", ohem={"ratio": 0.7, "lam": lam})
    strat.on_epoch_start(0)
    b = batch(n=5)
    b["index"] = torch.tensor([7, 3, 11, 0, 4])
    loss, terms = strat.loss(b)
    pruned = _pruned_copy(model, strat.parts["ohem"].masks["model"])
    with torch.no_grad():
        f, fp = model(b["image"])["z"], pruned(b["image"])["z"]
    mse = lambda a, c: float(((a - c) ** 2).mean())  # noqa: E731
    want = mse(f, b["z"]) + mse(fp, b["z"]) + lam * mse(f, fp)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)
    assert terms["ohem_consistency"] == pytest.approx(mse(f, fp), rel=1e-5)  # recorded before the weight lam
    table = strat.epoch_report(0)["hard_samples"]
    gap = dict(zip(b["index"].tolist(), (f - fp).abs().tolist()))
    assert len(table) == 5 and list(table["rank"]) == [1, 2, 3, 4, 5]
    for i, d in zip(table["index"], table["disagreement"]):
        assert d == pytest.approx(gap[int(i)], rel=1e-5)
    assert list(table["index"]) == sorted(gap, key=lambda i: -gap[i])


def test_ohem_consistency_has_no_stop_gradient():
    """The consistency term pulls both branches together: its gradient on the shared weights is that of
    MSE(f, f_p) through both f and f_p; stopping either side's gradient gives a measurably different one."""
    from torch.func import functional_call

    model = small_model().eval()
    strat = build_strategy("ohem", model, loss="mse", ohem={"ratio": 0.7, "lam": 1.0})
    strat.on_epoch_start(0)
    masks = strat.parts["ohem"].masks["model"]
    b = batch()
    params = dict(model.named_parameters())

    def grads(detach_full=False, detach_pruned=False):
        model.zero_grad()
        f = model(b["image"])["z"]
        fp = functional_call(model, {**params, **{k: params[k] * m for k, m in masks.items()}},
                             (b["image"],))["z"]
        f_, fp_ = (f.detach() if detach_full else f), (fp.detach() if detach_pruned else fp)
        (((f - b["z"]) ** 2).mean() + ((fp - b["z"]) ** 2).mean() + ((f_ - fp_) ** 2).mean()).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()

    want = grads()
    model.zero_grad()
    strat.loss(b)[0].backward()
    got = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    for variant in (grads(detach_full=True), grads(detach_pruned=True)):
        assert (variant - want).norm() > 1e-3 * want.norm()  # the check can tell a stop-gradient apart


def test_ohem_crop_view_is_a_smaller_sub_image():
    model = small_model()
    strat = build_strategy("ohem", model, loss="mse", ohem={"view": "crop", "crop_scale": 0.5})
    strat.on_epoch_start(0)
    b = batch(size=32)
    torch.manual_seed(5)
    xp = strat.parts["ohem"].pruned_view(b["image"])
    assert xp.shape == (4, 3, 16, 16)
    # a window of the batch at one offset, the same for every sample
    hits = [(i, j) for i in range(17) for j in range(17) if torch.equal(b["image"][..., i:i + 16, j:j + 16], xp)]
    assert len(hits) == 1
    torch.manual_seed(5)
    assert torch.equal(strat.parts["ohem"].pruned_view(b["image"]), xp)  # seeded
    loss, terms = strat.loss(b)
    loss.backward()
    assert {"ohem_pruned_sup", "ohem_consistency"} <= set(terms)
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="crop_scale"):
        build_strategy("ohem", small_model(), ohem={"view": "crop", "crop_scale": 0.0})


def _refresh_log(refresh, epochs=3, steps_per_epoch=4, **ohem):
    """(epoch, step) at which the masks were recomputed, for a refresh policy: the weights are perturbed
    before every step, so a refresh always changes the masks."""
    model = small_model()
    strat = build_strategy("ohem", model, ohem={"refresh": refresh, **ohem})
    log, step, last = [], 0, None

    def changed():
        nonlocal last
        cur = {k: v.clone() for k, v in strat.parts["ohem"].masks["model"].items()} if strat.parts["ohem"].masks else None
        diff = last is None or any(not torch.equal(last[k], cur[k]) for k in cur)
        last = cur
        return diff

    for epoch in range(epochs):
        strat.on_epoch_start(epoch)
        if changed():
            log.append((epoch, "start"))
        for _ in range(steps_per_epoch):
            with torch.no_grad():
                for p in model.backbone.parameters():
                    p.add_(torch.randn_like(p))
            strat.on_step_end(step)
            step += 1
            if changed():
                log.append((epoch, step))
    return log


def test_ohem_refresh_policies():
    assert _refresh_log("stage") == [(0, "start")]  # default stage_epochs [0]: once
    assert _refresh_log("stage", stage_epochs=[0, 2]) == [(0, "start"), (2, "start")]
    assert _refresh_log("epoch") == [(0, "start"), (1, "start"), (2, "start")]
    assert _refresh_log(3) == [(0, "start"), (0, 3), (1, 6), (2, 9), (2, 12)]  # every 3 optimiser steps


@pytest.mark.parametrize("bad", ["online", "Epoch", "never", 0, -2, 1.5, True, "3"])
def test_ohem_refresh_rejects_unknown_policies(bad):
    with pytest.raises(ValueError, match="ohem.refresh"):
        build_strategy("ohem", small_model(), ohem={"refresh": bad})


def test_ohem_stage_epochs_must_be_epoch_numbers():
    with pytest.raises(ValueError, match="stage_epochs"):
        build_strategy("ohem", small_model(), ohem={"refresh": "stage", "stage_epochs": ["first"]})


# ----------------------------------------------------------------------- DML
@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_mutual_loss_recomputed_by_hand(lam):
    """Per peer k: MSE(z_k, y) + lam * MSE(z_k, z_j) (docs/methods.md §2); the total is their sum."""
    strat = build_strategy("mutual", small_model(), loss="mse", mutual={"peers": 2, "lam": lam})
    peer0, peer1 = strat.nets["model"].eval(), strat.nets["peer1"].eval()
    b = batch()
    with torch.no_grad():
        z0, z1 = peer0(b["image"])["z"], peer1(b["image"])["z"]
    mse = lambda a, c: float(((a - c) ** 2).mean())  # noqa: E731
    want = mse(z0, b["z"]) + mse(z1, b["z"]) + 2 * lam * mse(z0, z1)
    assert float(strat.loss(b)[0].detach()) == pytest.approx(want, rel=1e-5)


def test_mutual_mimicry_target_carries_no_gradient():
    strat = build_strategy("mutual", small_model(), loss="mse", mutual={"peers": 2})
    peer0, peer1 = strat.nets["model"].eval(), strat.nets["peer1"].eval()  # no dropout: comparable gradients
    assert peer1.preset.hflip_input and not peer0.preset.hflip_input
    b = batch()
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
    layer to a fresh head's std (0.01) times the family's gain, with its bias, so peers start near the
    range centre."""
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
        if kind == "scaled":  # a fresh head's std times the family's gain (Kaiming: the ReLU gain sqrt(2))
            gain = math.sqrt(2) if fam == "kaiming" else 1.0
            assert float(out.weight.detach().std()) == pytest.approx(OUTPUT_INIT_STD * gain, rel=1e-4)
        else:
            o_in = out.weight.shape[1]
            want_out = math.sqrt(2 / o_in) if fam == "kaiming" else math.sqrt(2 / (o_in + 1))
            assert float(out.weight.detach().std()) == pytest.approx(want_out, rel=0.15)
        torch.testing.assert_close(out.bias, ref[1].bias)  # the range centre
    heads = [strat.nets[n].head.mlp[-1].weight for n in ("model", "peer1")]
    assert not torch.equal(*heads)


def test_mutual_single_linear_heads_start_measurably_apart():
    """lite0-mos's head is one Linear(1280, 1): Kaiming's and Xavier's draws have the same std there
    (sqrt(2/1280) vs sqrt(2/1281)), so the default init must keep the families' gains apart (Kaiming
    sqrt(2) : Xavier 1) while staying near a fresh head's scale (no whole-range initial spread)."""
    from biqa.strategies.composite import OUTPUT_INIT_STD

    strat = build_strategy("mutual", small_model(seed=3), mutual={"peers": 3})
    stds = {}
    for name in ("model", "peer1", "peer2"):
        (out,) = [m for m in strat.nets[name].head.modules() if isinstance(m, torch.nn.Linear)]
        stds[name] = float(out.weight.detach().std())
    assert stds["model"] / stds["peer1"] == pytest.approx(math.sqrt(2), rel=1e-3)  # Kaiming / Xavier
    assert stds["peer2"] == pytest.approx(stds["model"], rel=1e-3)  # even peers: Kaiming again
    assert max(stds.values()) <= 1.5 * OUTPUT_INIT_STD
    x = batch(n=8)["image"]
    with torch.no_grad():
        z = {n: strat.nets[n].eval()(x)["z"] for n in ("model", "peer1")}
    assert float((z["model"] - z["peer1"]).abs().mean()) > 1e-3  # the peers' first predictions differ


def _trained_lite0(records, out):
    Trainer(_cfg(records, out, "supervised")).fit()
    return str(out / "best.safetensors")


def test_mutual_with_init_from_gives_every_peer_the_checkpoint(tiny_records, tmp_path):
    """model.init_from: the loaded head is kept (no re-draw) and every peer starts from the checkpoint."""
    ckpt = _trained_lite0(tiny_records, tmp_path / "a")
    want = read_state_dicts(ckpt)["model"]
    cfg = _cfg(tiny_records, tmp_path / "b", "mutual", mutual={"peers": 2})
    cfg["model"]["init_from"] = ckpt
    trainer = Trainer(cfg)
    for name in ("model", "peer1"):
        got = trainer.strategy.nets[name].state_dict()
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k].cpu(), want[k]), (name, k)
    assert trainer.strategy.nets["peer1"].preset.hflip_input  # the view still differs
    # an explicit init re-draws every head, the loaded ones included
    cfg = _cfg(tiny_records, tmp_path / "c", "mutual", mutual={"peers": 2, "init": "scaled"})
    cfg["model"]["init_from"] = ckpt
    nets = Trainer(cfg).strategy.nets
    assert not torch.equal(nets["model"].head.mlp[-1].weight.detach().cpu(), want["head.mlp.1.weight"])
    assert torch.equal(nets["peer1"].backbone.conv_stem.weight.detach().cpu(), want["backbone.conv_stem.weight"])
    cfg = _cfg(tiny_records, tmp_path / "d", "mutual", mutual={"peers": ["lite0-mos", "lite1-mos"]})
    cfg["model"]["init_from"] = ckpt
    with pytest.raises(ValueError, match="init_from"):
        Trainer(cfg)


def test_mutual_with_init_backbone_from_gives_every_peer_the_backbone(tiny_records, tmp_path):
    ckpt = _trained_lite0(tiny_records, tmp_path / "a")
    want = read_state_dicts(ckpt)["model"]
    cfg = _cfg(tiny_records, tmp_path / "b", "mutual", mutual={"peers": 2})
    cfg["model"]["init_backbone_from"] = ckpt
    nets = Trainer(cfg).strategy.nets
    for name in ("model", "peer1"):
        bb = nets[name].backbone.state_dict()
        assert all(torch.equal(bb[k].cpu(), want["backbone." + k]) for k in bb), name


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
    assert "kd_feature" in terms and "kd_output" not in terms  # no score term unless asked for
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


@pytest.mark.parametrize("w_output", [None, 0.5])
def test_distill_loss_recomputed_by_hand(teacher_ckpt, w_output):
    """L = MSE(z_s, y) + w_feature * MSE(f_s, f_t) [+ w_output * MSE(z_s, z_t) only when set]; the
    teacher sees the student's input in its own normalisation (lite0 and lite1 share theirs)."""
    opts = {"teacher": teacher_ckpt, "w_feature": 0.7}
    if w_output is not None:
        opts["w_output"] = w_output
    strat = build_strategy("distill", small_model(), distill=opts)
    student, teacher = strat.nets["model"].eval(), strat.frozen["teacher"]
    b = batch()
    with torch.no_grad():
        s, t = student(b["image"]), teacher(b["image"])
    mse = lambda a, c: float(((a - c) ** 2).mean())  # noqa: E731
    want = mse(s["z"], b["z"]) + 0.7 * mse(s["features"], t["features"]) + (w_output or 0.0) * mse(s["z"], t["z"])
    assert float(strat.loss(b)[0].detach()) == pytest.approx(want, rel=1e-5)


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


# ------------------------------------------------------- a new component: one class
def test_a_new_component_is_one_class_and_combines(tiny_records, tmp_path):
    """A component defined here alone (options, a loss term, a hook, checkpoint state) trains beside
    OHEM through the trainer, its option block checked, its state checkpointed."""
    from biqa.strategies.base import Component
    from biqa.strategies.composite import REGISTRY, register_component

    class Toy(Component):
        name = "toy"
        OPTIONS = ("weight",)

        def __init__(self, opts, model, ctx):
            super().__init__(opts, model, ctx)
            self.weight = float(self.opts.get("weight", 0.5))
            self.steps = torch.zeros(())

        def terms(self, name, out, outs, batch, add):
            add("toy_l2", out["z"].float().pow(2).mean(), self.weight)

        def on_step_end(self, step):
            self.steps += 1

        def state_dict(self):
            return {"toy/steps": self.steps.clone()}

        def load_state_dict(self, state):
            if "toy/steps" in state:
                self.steps = state["toy/steps"].clone()

    register_component(Toy)
    try:
        strat = build_strategy(["ohem", "toy"], small_model().eval(), toy={"weight": 2.0})
        b = batch()
        loss, terms = strat.loss(b)
        out = strat.nets["model"](b["image"])
        assert terms["toy_l2"] == pytest.approx(float(out["z"].pow(2).mean()), rel=1e-5)
        assert float(loss.detach()) == pytest.approx(terms["sup"] + terms["ohem_pruned_sup"] + terms[
            "ohem_consistency"] + 2.0 * terms["toy_l2"], rel=1e-5)
        with pytest.raises(ValueError, match="strategy.toy.wieght"):
            build_strategy(["toy"], small_model(), toy={"wieght": 1})
        Trainer(_cfg(tiny_records, tmp_path, ["ohem", "toy"], toy={"weight": 0.1})).fit()
        assert read_meta(tmp_path / "last.safetensors")["components"] == ["ohem", "toy"]
        assert int(torch.load(tmp_path / "state.pt", weights_only=True)["strategy"]["toy/steps"]) == 4
    finally:
        REGISTRY.pop("toy", None)
        from biqa.config import EXTRA_STRATEGY_BLOCKS

        EXTRA_STRATEGY_BLOCKS.discard("toy")
