"""Losses against independent brute-force references (numpy / scipy loops)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from biqa.losses import (
    LOSS_NAMES,
    emd_loss,
    fidelity_loss,
    l1_loss,
    mse_loss,
    parse_loss_spec,
    plcc_loss,
)


def _pair(seed: int, n: int = 9, ties: bool = True):
    rng = np.random.default_rng(seed)
    pred = rng.normal(0.5, 0.6, n)
    target = rng.normal(0.5, 0.3, n)
    if ties:
        target[3] = target[1]
        target[7] = target[1]
    return pred, target


def _t(a, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32, requires_grad=grad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mse_l1_vs_numpy(seed):
    pred, target = _pair(seed)
    assert float(mse_loss(_t(pred), _t(target))) == pytest.approx(np.mean((pred - target) ** 2), rel=1e-5)
    assert float(l1_loss(_t(pred), _t(target))) == pytest.approx(np.mean(np.abs(pred - target)), rel=1e-5)


def test_mse_l1_hand_values():
    p, t = _t([1.0, 2.0, 4.0]), _t([1.0, 0.0, 1.0])
    assert float(mse_loss(p, t)) == pytest.approx((0 + 4 + 9) / 3)
    assert float(l1_loss(p, t)) == pytest.approx((0 + 2 + 3) / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plcc_vs_corrcoef(seed):
    pred, target = _pair(seed)
    ref = (1.0 - np.corrcoef(pred, target)[0, 1]) / 2.0
    assert float(plcc_loss(_t(pred), _t(target))) == pytest.approx(ref, abs=1e-5)


def test_plcc_extremes_and_scale_invariance():
    x = np.linspace(0, 1, 7)
    assert float(plcc_loss(_t(3 * x + 2), _t(x))) == pytest.approx(0.0, abs=1e-6)
    assert float(plcc_loss(_t(-x), _t(x))) == pytest.approx(1.0, abs=1e-6)
    pred, target = _pair(5)
    a = float(plcc_loss(_t(pred), _t(target)))
    b = float(plcc_loss(_t(10 * pred - 3), _t(target)))
    assert a == pytest.approx(b, abs=1e-5)


def _fidelity_ref(f, y) -> float:
    n = len(f)
    total, count = 0.0, 0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            p = norm.cdf((f[i] - f[j]) / math.sqrt(2.0))
            ps = 1.0 if y[i] > y[j] else (0.5 if y[i] == y[j] else 0.0)
            total += 1.0 - math.sqrt(p * ps) - math.sqrt((1.0 - p) * (1.0 - ps))
            count += 1
    return total / count


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fidelity_vs_double_loop(seed):
    pred, target = _pair(seed, n=8)
    pred32 = _t(pred).numpy().astype(float)  # the loss sees float32 values; so does the reference
    tgt32 = _t(target).numpy().astype(float)
    ref = _fidelity_ref(pred32, tgt32)
    # The loss adds eps=1e-8 under each square root: at most ~1e-4 per pair.
    assert float(fidelity_loss(_t(pred), _t(target))) == pytest.approx(ref, abs=2e-4)


def test_fidelity_hand_values():
    # Two items, the better one predicted 1 higher: both ordered pairs cost 1 - sqrt(Phi(1/sqrt 2)).
    expected = 1.0 - math.sqrt(norm.cdf(1.0 / math.sqrt(2.0)))
    assert expected == pytest.approx(0.128077, abs=1e-5)  # Phi(0.7071) = 0.76025
    assert float(fidelity_loss(_t([1.0, 0.0]), _t([5.0, 1.0]))) == pytest.approx(expected, abs=2e-4)
    # A tie predicted as a tie costs nothing.
    assert float(fidelity_loss(_t([0.3, 0.3]), _t([2.0, 2.0]))) == pytest.approx(0.0, abs=2e-4)
    # Reversed order costs more than the right order.
    assert float(fidelity_loss(_t([0.0, 1.0]), _t([5.0, 1.0]))) > expected + 0.3
    # A batch of one has no pairs.
    assert float(fidelity_loss(_t([0.3]), _t([2.0]))) == 0.0


def _emd_ref(p: np.ndarray, q: np.ndarray, r: float) -> float:
    out = []
    for pb, qb in zip(p, q):
        n = len(pb)
        cp = cq = 0.0
        acc = 0.0
        for k in range(n):
            cp += pb[k]
            cq += qb[k]
            acc += abs(cp - cq) ** r
        out.append((acc / n) ** (1.0 / r))
    return float(np.mean(out))


@pytest.mark.parametrize("r", [1.0, 2.0])
def test_emd_vs_cdf_loop(r):
    rng = np.random.default_rng(int(r))
    p = rng.dirichlet(np.ones(10), size=4)
    q = rng.dirichlet(np.ones(10), size=4)
    got = float(emd_loss(_t(p), _t(q), r=r))
    assert got == pytest.approx(_emd_ref(p, q, r), rel=1e-5)


def test_emd_hand_value_and_identity():
    # All mass in bin 1 vs all in bin 3 (of 3): CDF diffs (1, 1, 0).
    p, q = _t([[1.0, 0.0, 0.0]]), _t([[0.0, 0.0, 1.0]])
    assert float(emd_loss(p, q, r=1)) == pytest.approx(2 / 3)
    assert float(emd_loss(p, q, r=2)) == pytest.approx(math.sqrt(2 / 3))
    d = _t(np.random.default_rng(0).dirichlet(np.ones(10), size=3))
    assert float(emd_loss(d, d.clone(), r=2)) == 0.0
    assert float(emd_loss(d, d.clone(), r=1)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        emd_loss(_t([[0.5, 0.5]]), _t([[1.0, 0.0, 0.0]]))


@pytest.mark.parametrize("fn", [mse_loss, l1_loss, plcc_loss, fidelity_loss])
def test_score_losses_differentiable(fn):
    pred, target = _pair(11)
    x = _t(pred, grad=True)
    loss = fn(x, _t(target))
    assert loss.dim() == 0
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("r", [1.0, 2.0])
def test_emd_differentiable_even_at_zero(r):
    rng = np.random.default_rng(3)
    logits = _t(rng.normal(size=(3, 10)), grad=True)
    target = _t(rng.dirichlet(np.ones(10), size=3))
    emd_loss(torch.softmax(logits, -1), target, r=r).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # Identical distributions: loss 0 and a finite (not NaN) gradient.
    logits.grad = None
    probs = torch.softmax(logits, -1)
    loss = emd_loss(probs, probs.detach().clone(), r=r)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.isfinite(logits.grad).all()


def test_emd_gradient_matches_finite_difference():
    rng = np.random.default_rng(4)
    p = torch.tensor(rng.dirichlet(np.ones(5), size=2), dtype=torch.float64, requires_grad=True)
    q = torch.tensor(rng.dirichlet(np.ones(5), size=2), dtype=torch.float64)
    emd_loss(p, q, r=2).backward()
    h = 1e-3
    for b, k in [(0, 0), (1, 3)]:
        pp, pm = p.detach().numpy().copy(), p.detach().numpy().copy()
        pp[b, k] += h
        pm[b, k] -= h
        fd = (_emd_ref(pp, q.numpy(), 2) - _emd_ref(pm, q.numpy(), 2)) / (2 * h)
        assert float(p.grad[b, k]) == pytest.approx(fd, rel=1e-3, abs=1e-4)


def test_parse_loss_spec():
    assert parse_loss_spec("mse") == {"mse": 1.0}
    assert parse_loss_spec("mse+plcc") == {"mse": 1.0, "plcc": 1.0}
    assert parse_loss_spec(" fidelity + l1 ") == {"fidelity": 1.0, "l1": 1.0}
    assert parse_loss_spec(["mse", "emd"]) == {"mse": 1.0, "emd": 1.0}
    assert parse_loss_spec(("plcc",)) == {"plcc": 1.0}
    out = parse_loss_spec({"mse": 1, "plcc": "0.5"})
    assert out == {"mse": 1.0, "plcc": 0.5}
    assert all(isinstance(v, float) for v in out.values())
    assert set(LOSS_NAMES) == {"mse", "l1", "plcc", "fidelity", "emd"}


@pytest.mark.parametrize("spec", ["mse+bogus", ["nope"], {"huber": 1.0}, {}, ""])
def test_parse_loss_spec_errors(spec):
    with pytest.raises(ValueError, match="unknown loss") as exc:
        parse_loss_spec(spec)
    assert "choose from" in str(exc.value) and "fidelity" in str(exc.value)
