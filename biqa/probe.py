"""Linear quality heads on a frozen ImageNet backbone: features, fitting, checkpoints.

A frozen backbone plus a linear head is the cheapest model that learns from human opinions: the
backbone's multi-level statistics (mean and std of each of EfficientNet-Lite0's 5 stages, 1,024
numbers, see :class:`biqa.models.MultiLevelPool`) are computed once per image, and the head is a
closed-form ridge regression (the *linear probe*) or a convex fit that adds within-photo ranking
constraints from synthetic distortions (:func:`fit_linear`). The result is an ordinary biqa
checkpoint of the ``lite0-ml-linear`` preset (BatchNorm with the features' mean/std as running
statistics, then one Linear layer), so it scores, tiles, exports to ONNX and evaluates like any
trained model.

Python::

    from biqa.probe import FeatureExtractor, fit_linear, save_linear_checkpoint
    fx = FeatureExtractor()                        # lite0-ml-linear, ImageNet weights (offline)
    X = fx.paths(train_paths)                      # [N, 1024] float32
    head = fit_linear(X, z_train, alpha=10.0)      # ridge on standardised features
    save_linear_checkpoint(head, "runs/probe/best.safetensors", label_scale=...)

CLI: ``biqa probe RECORDS.csv --out runs/probe`` (alpha chosen on the validation rows).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .data import Resolution, load_image

PROBE_PRESET = "lite0-ml-linear"
BN_EPS = 1e-5  # BatchNorm1d's eps: the head's standardisation uses sqrt(var + eps), exactly as the network does


# ----------------------------------------------------------------------------- features

class FeatureExtractor:
    """Pooled backbone features of a preset (``features`` output of :class:`biqa.models.IQAModel`).

    Images are seen whole at their native resolution (``resolution="full"``), as the scorer sees
    images up to its tiling threshold; inputs of one size are batched together.
    """

    def __init__(self, preset: str = PROBE_PRESET, *, pretrained: bool | str = True, batch_size: int = 8,
                 device: str = "cpu"):
        from .models import create_model

        self.preset_name = preset
        self.model = create_model(preset, pretrained=pretrained).eval().to(device)
        self.model.to(memory_format=torch.channels_last)
        self.mean, self.std = self.model.preset.normalisation()
        self._m = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._s = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.num_features = int(self.model.backbone.num_features)

    @torch.inference_mode()
    def _forward_u8(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        x = ((x - self._m) / self._s).to(self.device).contiguous(memory_format=torch.channels_last)
        return self.model.backbone(x).float().cpu().numpy()

    def arrays(self, images: Sequence[np.ndarray], *, progress: bool = False, desc: str = "features") -> np.ndarray:
        """Features of uint8 ``H x W x 3`` arrays (any sizes; equal sizes are batched)."""
        out = np.zeros((len(images), self.num_features), np.float32)
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(images):
            groups.setdefault(a.shape, []).append(i)
        bar = _bar(len(images), progress, desc)
        for idx in groups.values():
            for k in range(0, len(idx), self.batch_size):
                part = idx[k:k + self.batch_size]
                out[part] = self._forward_u8(np.stack([images[i] for i in part]))
                bar.update(len(part))
        bar.close()
        return out

    def paths(self, paths: Sequence[str], *, resolution: str = "full", progress: bool = True,
              desc: str = "features") -> np.ndarray:
        """Features of image files, decoded as the scorer decodes them (RGB, EXIF applied)."""
        res = Resolution.parse(resolution)
        out = np.zeros((len(paths), self.num_features), np.float32)
        bar = _bar(len(paths), progress, desc)
        pending: dict[tuple, list[tuple[int, np.ndarray]]] = {}

        def flush(key):
            items = pending.pop(key)
            out[[i for i, _ in items]] = self._forward_u8(np.stack([a for _, a in items]))
            bar.update(len(items))

        for i, p in enumerate(paths):
            a = np.asarray(load_image(str(p), res), dtype=np.uint8)
            pending.setdefault(a.shape, []).append((i, a))
            if len(pending[a.shape]) >= self.batch_size:
                flush(a.shape)
        for key in list(pending):
            flush(key)
        bar.close()
        return out


def _bar(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="img", leave=False)


def cached_path_features(paths: Sequence[str], cache: str | os.PathLike, extractor: FeatureExtractor | None = None,
                         *, preset: str | None = None, resolution: str = "full", progress: bool = True) -> np.ndarray:
    """:meth:`FeatureExtractor.paths`, cached in an ``.npz`` keyed by the files' contents (SHA-1), the
    preset and the resolution; only files not in the cache are computed. Content keys survive a
    dataset copied, moved or re-provisioned with new modification times (a path-and-mtime key
    recomputed every feature then). ``preset``: the extractor's (default: ``extractor``'s, else
    ``lite0-ml-linear``)."""
    cache = Path(cache)
    if preset is None:
        preset = extractor.preset_name if extractor is not None else PROBE_PRESET
    keys = [_file_key(p) for p in paths]
    tag = f"{preset}|{resolution}"
    have: dict[str, np.ndarray] = {}
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if str(z["tag"]) == tag:
            have = dict(zip(z["keys"].tolist(), z["X"]))
    todo = [i for i, k in enumerate(keys) if k not in have]
    if todo:
        extractor = extractor or FeatureExtractor(preset)
        X = extractor.paths([paths[i] for i in todo], resolution=resolution, progress=progress)
        for i, x in zip(todo, X):
            have[keys[i]] = x
        all_keys = sorted(have)
        save_npz_atomic(cache, tag=np.array(tag), keys=np.array(all_keys), X=np.stack([have[k] for k in all_keys]))
    return np.stack([have[k] for k in keys]).astype(np.float32)


def save_npz_atomic(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez`` to ``path`` through a temporary file and a rename (a killed run leaves no torn cache)."""
    from .checkpoint import _atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    _atomic_write_bytes(path, write)
    return path


def _file_key(p) -> str:
    """The SHA-1 of the file's bytes (about 1 GB/s: 0.2 s for LIVE Challenge's 880 photos)."""
    h = hashlib.sha1()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- the head

@dataclass
class LinearHead:
    """``z = b + sum_i w_i s_i [+ k(s)] [+ r(s)]`` on standardised features ``s = (x - mu) / sqrt(var + eps)``.

    ``residual`` (optional): ``{"W1": [H, F], "b1": [H], "W2": [1, H], "b2": [1]}``, the MLP
    ``r(s) = W2 gelu(W1 s + b1) + b2`` beside the linear term (:func:`fit_residual`).

    ``kernel`` (optional): ``{"L": [N, F], "a": [N], "gamma": g}``, a Gaussian-kernel term
    ``sum_n a_n exp(-g |s - L_n|^2)`` beside the linear one, its landmarks ``L`` the standardised
    features of the opinion-scored images it was fitted on (:func:`fit_kernel`)."""

    w: np.ndarray
    b: float
    mu: np.ndarray
    var: np.ndarray
    info: dict = field(default_factory=dict)
    residual: dict | None = None
    kernel: dict | None = None

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(self.var + BN_EPS)

    def predict(self, X: np.ndarray) -> np.ndarray:
        S = (np.asarray(X, np.float64) - self.mu) / self.sd
        out = S @ self.w + self.b
        if self.kernel is not None:
            k = self.kernel
            out = out + rbf_kernel(S, np.asarray(k["L"], np.float64), k["gamma"]) @ np.asarray(k["a"], np.float64)
        if self.residual is not None:
            from scipy.special import erf

            r = self.residual
            h = S @ np.asarray(r["W1"], np.float64).T + r["b1"]
            out = out + (0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))) @ np.asarray(r["W2"], np.float64)[0] + r["b2"][0]
        return out


def rbf_kernel(P: np.ndarray, L: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(-gamma |p - l|^2)`` for every row ``p`` of ``P`` and ``l`` of ``L``: ``[len(P), len(L)]``."""
    d2 = np.sum(P * P, 1)[:, None] + np.sum(L * L, 1)[None] - 2.0 * P @ L.T
    return np.exp(-gamma * np.maximum(d2, 0.0))


def standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, np.float64)
    return X.mean(0), X.var(0)


def fit_ridge(X: np.ndarray, y: np.ndarray, alpha: float, *, stats=None) -> LinearHead:
    """Ridge regression on standardised features (closed form; the intercept is not penalised).

    Minimises ``sum (y - b - Xs w)^2 + alpha * |w|^2``.
    """
    mu, var = stats if stats is not None else standardiser(X)
    Xs = (np.asarray(X, np.float64) - mu) / np.sqrt(var + BN_EPS)
    y = np.asarray(y, np.float64)
    xm, ym = Xs.mean(0), y.mean()
    Xc = Xs - xm
    A = Xc.T @ Xc + alpha * np.eye(Xs.shape[1])
    w = np.linalg.solve(A, Xc.T @ (y - ym))
    return LinearHead(w, float(ym - xm @ w), mu, var, {"alpha": float(alpha), "kind": "ridge"})


def fit_linear(X: np.ndarray, y: np.ndarray, alpha: float, *, pairs: tuple[np.ndarray, np.ndarray] | None = None,
               rank_weight: float = 0.0, margin: float = 0.0, stats=None, max_iter: int = 200) -> LinearHead:
    """A linear head fitted to opinion scores, optionally with ranking constraints.

    Minimises ``mean (y - b - Xs w)^2 + (alpha / n) |w|^2 + rank_weight * mean relu(margin - (s_hi - s_lo))^2``
    where ``(X_hi, X_lo) = pairs`` are features of image pairs whose first member is known to be
    better (e.g. a photo above its distorted version, a milder level above a stronger one), and
    ``s = b + Xs w``. Without pairs (or ``rank_weight=0``) this is :func:`fit_ridge`. Convex: solved
    by L-BFGS in float64 from the ridge solution.
    """
    head = fit_ridge(X, y, alpha, stats=stats)
    if pairs is None or rank_weight <= 0 or len(pairs[0]) == 0:
        return head
    sd = head.sd
    Xs = torch.from_numpy((np.asarray(X, np.float64) - head.mu) / sd)
    D = torch.from_numpy((np.asarray(pairs[0], np.float64) - np.asarray(pairs[1], np.float64)) / sd)
    yt = torch.from_numpy(np.asarray(y, np.float64))
    n = len(yt)
    w = torch.tensor(head.w, requires_grad=True)
    b = torch.tensor(head.b, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((Xs @ w + b - yt) ** 2).mean() + alpha / n * (w @ w) \
            + rank_weight * torch.relu(margin - D @ w).pow(2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        viol = float((D @ w < margin).double().mean())
    return LinearHead(w.detach().numpy().copy(), float(b.detach()), head.mu, head.var,
                      {"alpha": float(alpha), "kind": "ranked", "rank_weight": float(rank_weight),
                       "margin": float(margin), "n_pairs": int(len(D)), "pairs_violated": viol})


def fit_kernel(X: np.ndarray, y: np.ndarray, alpha: float, gamma: float, lam: float, *,
               ranking_X: np.ndarray | None = None, pairs: np.ndarray | None = None, rank_weight: float = 0.0,
               margin: float = 0.0, max_iter: int = 200) -> LinearHead:
    """A linear head plus a Gaussian-kernel term on the same standardised features ``s``:
    ``z = b + s.w + sum_n a_n exp(-(gamma / F) |s - s_n|^2)`` over the ``N`` rows of ``X`` (F features).

    Minimises ``mean (y - z)^2 + (alpha / N) |w|^2 + (lam / N) a'Ka [+ rank_weight * mean relu(margin -
    (z_hi - z_lo))^2]``, the ranking term over ``pairs`` (better, worse) indices into ``ranking_X`` as in
    :func:`fit_residual`. Without pairs the minimiser is kernel ridge regression with the summed kernel
    ``s.s' / alpha + k(s, s') / lam`` and an unpenalised intercept (one linear solve); with pairs, L-BFGS
    in float64 from that solution (convex). Without pairs, ``lam = inf`` gives :func:`fit_ridge`'s head.
    """
    mu, var = standardiser(X)
    sd = np.sqrt(var + BN_EPS)
    S = (np.asarray(X, np.float64) - mu) / sd
    y = np.asarray(y, np.float64)
    n, f = S.shape
    g = gamma / f
    K = rbf_kernel(S, S, g)
    A = np.zeros((n + 1, n + 1))
    A[:n, :n] = S @ S.T / alpha + K / lam + np.eye(n)
    A[:n, n] = A[n, :n] = 1.0
    sol = np.linalg.solve(A, np.append(y, 0.0))
    c, b = sol[:n], float(sol[n])
    w, a = S.T @ c / alpha, c / lam
    info = {"alpha": float(alpha), "kind": "kernel", "gamma": float(gamma), "lam": float(lam)}
    if pairs is not None and rank_weight > 0 and len(pairs):
        R = torch.from_numpy((np.asarray(ranking_X, np.float64) - mu) / sd)
        KR = torch.from_numpy(rbf_kernel(R.numpy(), S, g))
        St, Kt, yt = torch.from_numpy(S), torch.from_numpy(K), torch.from_numpy(y)
        P = torch.as_tensor(np.asarray(pairs), dtype=torch.long)
        wt = torch.tensor(w, requires_grad=True)
        at = torch.tensor(a, requires_grad=True)
        bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([wt, at, bt], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def gaps():
            zr = R @ wt + KR @ at
            return zr[P[:, 0]] - zr[P[:, 1]]

        def closure():
            opt.zero_grad()
            loss = ((St @ wt + Kt @ at + bt - yt) ** 2).mean() + alpha / n * (wt @ wt) \
                + lam / n * (at @ (Kt @ at)) + rank_weight * torch.relu(margin - gaps()).pow(2).mean()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            viol = float((gaps() < margin).double().mean())
        w, a, b = wt.detach().numpy().copy(), at.detach().numpy().copy(), float(bt.detach())
        info.update(kind="kernel-ranked", rank_weight=float(rank_weight), margin=float(margin),
                    n_pairs=int(len(P)), pairs_violated=viol)
    return LinearHead(w, b, mu, var, info, kernel={"L": S, "a": a, "gamma": g})


def fit_residual(head: LinearHead, X: np.ndarray, ranking_X: np.ndarray, pairs: np.ndarray, *, weight: float,
                 margin: float, lam: float, hidden: int = 64, epochs: int = 300, lr: float = 1e-3,
                 seed: int = 0) -> LinearHead:
    """Add a small MLP ``r`` beside a fitted linear head (which stays fixed) so that ranking pairs are
    ordered where a linear function of the features cannot order them (e.g. added noise against
    texture), while ``r`` stays near zero on the opinion-scored images ``X``:

        minimise  weight * mean relu(margin - (z_hi - z_lo))^2  +  lam * mean r(X)^2

    with ``z = linear + r`` on the ranking images ``ranking_X`` and ``pairs`` (better, worse) indices
    into them. Full-batch AdamW (weight decay 0.01) for ``epochs`` steps from ``r = 0``; seeded.
    """
    torch.manual_seed(seed)
    sd = head.sd

    def std(A):
        return torch.tensor((np.asarray(A, np.float64) - head.mu) / sd, dtype=torch.float32)

    S, R = std(X), std(ranking_X)
    w = torch.tensor(head.w, dtype=torch.float32)
    P = torch.as_tensor(np.asarray(pairs), dtype=torch.long)
    net = torch.nn.Sequential(torch.nn.Linear(S.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))
    torch.nn.init.zeros_(net[2].weight)
    torch.nn.init.zeros_(net[2].bias)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    if head.kernel is None:
        lin_r = R @ w + head.b
    else:  # the fixed part includes the kernel term
        lin_r = torch.tensor(head.predict(ranking_X), dtype=torch.float32)
    for _ in range(epochs):
        opt.zero_grad()
        z = lin_r + net(R).squeeze(-1)
        gap = z[P[:, 0]] - z[P[:, 1]]
        loss = weight * torch.relu(margin - gap).pow(2).mean() + lam * net(S).squeeze(-1).pow(2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = lin_r + net(R).squeeze(-1)
        gap = z[P[:, 0]] - z[P[:, 1]]
    res = {"W1": net[0].weight.detach().double().numpy(), "b1": net[0].bias.detach().double().numpy(),
           "W2": net[2].weight.detach().double().numpy(), "b2": net[2].bias.detach().double().numpy()}
    info = {**head.info, "residual": {"hidden": hidden, "weight": weight, "margin": margin, "lam": lam,
                                      "epochs": epochs, "pairs_below_margin": float((gap < margin).float().mean())}}
    return LinearHead(head.w, head.b, head.mu, head.var, info, res, head.kernel)


# ----------------------------------------------------------------------------- checkpoints

RESIDUAL_PRESET = "lite0-ml-linres"
KERNEL_PRESET = "lite0-ml-kernel"


def linear_model(head: LinearHead, *, preset: str | None = None, label_scale=None, pretrained: bool | str = True):
    """An :class:`biqa.models.IQAModel` of ``preset`` whose head computes ``head`` (in ``z`` units).
    Default preset: ``lite0-ml-linear``, ``lite0-ml-linres`` for a head with a residual MLP, or
    ``lite0-ml-kernel`` (its landmark count and residual MLP set from ``head``) for one with a kernel term.
    A given ``preset`` (it must pool the features ``head`` was fitted on, e.g. ``lite0-mln-kernel`` for
    ``lite0-mln-linear``'s) gets its kernel landmark count and residual width from ``head`` too."""
    from .models import create_model, get_preset

    over = {}
    if head.kernel is not None or preset is not None:  # a given preset's kernel and residual follow the head
        preset = preset or KERNEL_PRESET
        kw = dict(get_preset(preset).head_kwargs)
        for k, n in (("kernel", len(head.kernel["a"]) if head.kernel is not None else 0),
                     ("residual", len(head.residual["b1"]) if head.residual is not None else 0)):
            if n or k in kw:
                kw[k] = n
        over["head_kwargs"] = kw
    preset = preset or (RESIDUAL_PRESET if head.residual is not None else PROBE_PRESET)
    model = create_model(preset, pretrained=pretrained, label_scale=label_scale, **over).eval()
    model.trained = model._quiet = True  # its head is the fitted one, set below
    res_net = getattr(model.head, "residual", None)
    if (head.residual is None) != (res_net is None) or (
            res_net is not None and res_net[0].out_features != len(head.residual["b1"])):
        raise ValueError(f"preset {preset!r} does not match the head's residual MLP")
    n_kernel = getattr(model.head, "kernel", 0)
    if n_kernel != (0 if head.kernel is None else len(head.kernel["a"])):
        raise ValueError(f"preset {preset!r} does not match the head's kernel term")
    bn, lin = model.head.mlp[0], model.head.mlp[-1]
    if not isinstance(bn, torch.nn.BatchNorm1d) or not isinstance(lin, torch.nn.Linear) or lin.in_features != len(head.w):
        raise ValueError(f"preset {preset!r} has no BatchNorm1d -> Linear({len(head.w)}, 1) head")
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(head.mu))
        bn.running_var.copy_(torch.from_numpy(head.var))
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        lin.weight.copy_(torch.from_numpy(head.w).view(1, -1))
        lin.bias.fill_(head.b)
        if res_net is not None:
            for layer, (wk, bk) in ((res_net[0], ("W1", "b1")), (res_net[2], ("W2", "b2"))):
                layer.weight.copy_(torch.from_numpy(np.asarray(head.residual[wk])))
                layer.bias.copy_(torch.from_numpy(np.asarray(head.residual[bk])))
        if n_kernel:
            model.head.kernel_landmarks.copy_(torch.from_numpy(np.asarray(head.kernel["L"])))
            model.head.kernel_coef.copy_(torch.from_numpy(np.asarray(head.kernel["a"])))
            model.head.kernel_gamma.fill_(float(head.kernel["gamma"]))
    return model


def save_linear_checkpoint(head: LinearHead, path: str | os.PathLike, *, label_scale, preset: str | None = None,
                           config: dict | None = None, metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Save ``head`` on its frozen backbone as an ordinary biqa checkpoint (scores at full resolution)."""
    from .checkpoint import checkpoint_meta, save_checkpoint
    from .labels import LabelScale

    if isinstance(label_scale, dict):
        label_scale = LabelScale.from_dict(label_scale)
    model = linear_model(head, preset=preset, label_scale=label_scale)
    meta = checkpoint_meta(model.preset, label_scale, crop_size=model.preset.input_size, config=config or {},
                           metrics=metrics or {}, strategy="linear-head", head_fit=_jsonable(head.info),
                           **(extra or {}))
    return save_checkpoint(path, {"model": model}, meta)


def _jsonable(d: dict) -> dict:
    return {k: (_jsonable(v) if isinstance(v, dict) else v.item() if hasattr(v, "item") else v) for k, v in d.items()}


# ----------------------------------------------------------------------------- selection

def select_alpha(X_tr, y_tr, X_val, y_val, alphas: Iterable[float], **fit_kwargs) -> tuple[float, dict[float, float]]:
    """The ``alpha`` whose fit has the best validation SRCC (ties: the larger alpha)."""
    from scipy.stats import spearmanr

    scores = {}
    for a in alphas:
        head = fit_linear(X_tr, y_tr, a, **fit_kwargs)
        scores[float(a)] = float(spearmanr(head.predict(X_val), y_val)[0])
    best = max(scores, key=lambda a: (round(scores[a], 6), a))
    return best, scores


DEFAULT_ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
KERNEL_GAMMAS = (0.1, 0.3, 1.0)     # times 1 / F: the kernel term's width on standardised features (fit_kernel)
KERNEL_LAMS = (0.1, 0.3, 1.0, 3.0)  # its penalty


def fit_probe(records: str | os.PathLike, out: str | os.PathLike, *, split_column: str | None = None,
              preset: str = PROBE_PRESET, alphas: Sequence[float] = DEFAULT_ALPHAS, label_range=None,
              higher_is_better: bool | None = None, features_cache: str | os.PathLike | None = None,
              progress: bool = True, kernel: bool = False) -> dict:
    """Fit a linear probe on a records CSV and save it as ``out/best.safetensors``.

    Rows whose split is ``train`` are fitted; ``alpha`` is chosen by validation SRCC on the ``val``
    rows (without val rows: by 5-fold cross-validation on train), then the head is refitted on train +
    val. ``test`` rows, if any, are only measured. Without a split column every row is fitted (alpha by
    5-fold cross-validation). Label range and direction come from the records' sidecar meta (as in
    ``biqa train``), else ``label_range``.

    ``kernel``: then try a Gaussian-kernel term beside the linear head (:func:`fit_kernel`; the width and
    penalty grid :data:`KERNEL_GAMMAS` x :data:`KERNEL_LAMS`, as :mod:`biqa.recipe` uses) by the same
    validation rule, kept only if it beats the ridge head's validation SRCC (preset ``lite0-ml-kernel``;
    the checkpoint then holds the fitted rows' features).
    """
    from scipy.stats import pearsonr, spearmanr

    from .datasets.importing import read_meta
    from .labels import LabelScale
    from .records import default_split_column, load_records, resolve_path

    records = Path(records)
    df = load_records(records)
    meta = read_meta(records) or {}
    lo, hi = label_range or meta.get("mos_range") or (float(df["mos"].min()), float(df["mos"].max()))
    hib = meta.get("higher_is_better", True) if higher_is_better is None else higher_is_better
    scale = LabelScale(float(lo), float(hi), bool(hib))
    if split_column in ("none", "all"):
        col = None
    else:
        col = split_column or default_split_column(df)
    parts = df[col].fillna("").astype(str).to_numpy() if col else np.full(len(df), "train")
    paths = [resolve_path(p, records.parent) for p in df["path"]]
    cache = features_cache or Path(out) / "features.npz"
    X = cached_path_features(paths, cache, preset=preset, progress=progress)
    z = np.asarray(scale.normalise(df["mos"].to_numpy(float)), float)
    tr, va, te = parts == "train", parts == "val", parts == "test"
    idx = np.flatnonzero(tr)
    folds = np.random.default_rng(0).permutation(len(idx)) % 5

    def validation_srcc(fit_fn) -> float:
        """SRCC on the val rows of ``fit_fn`` fitted on train; without val rows, the mean over 5 folds of train."""
        if va.any():
            return float(spearmanr(fit_fn(X[tr], z[tr]).predict(X[va]), z[va])[0])
        return float(np.mean([spearmanr(fit_fn(X[idx[folds != k]], z[idx[folds != k]]).predict(X[idx[folds == k]]),
                                        z[idx[folds == k]])[0] for k in range(5)]))

    val_scores = {float(a): validation_srcc(lambda A, b, a=a: fit_ridge(A, b, a)) for a in alphas}
    alpha = max(val_scores, key=lambda a: (round(val_scores[a], 6), a))
    fit = tr | va
    result = {"records": str(records), "split_column": col, "n_fit": int(fit.sum()), "alpha": alpha,
              "validation_srcc": {str(k): v for k, v in val_scores.items()}}
    head = fit_ridge(X[fit], z[fit], alpha)
    if kernel:
        ks = {(g, lam): validation_srcc(lambda A, b, g=g, lam=lam: fit_kernel(A, b, alpha, g, lam))
              for g in KERNEL_GAMMAS for lam in KERNEL_LAMS}
        g, lam = max(ks, key=lambda k: (round(ks[k], 6), -k[0], k[1]))
        kept = ks[(g, lam)] > val_scores[alpha]
        result["kernel"] = {"gamma": g, "lam": lam, "validation_srcc": ks[(g, lam)], "kept": bool(kept)}
        if kept:
            head = fit_kernel(X[fit], z[fit], alpha, g, lam)
            preset = KERNEL_PRESET if preset == PROBE_PRESET else preset
    if te.any():
        p = scale.denormalise(head.predict(X[te]))
        result["test"] = {"n": int(te.sum()), "srcc": float(spearmanr(p, df["mos"][te])[0]),
                          "plcc": float(pearsonr(p, df["mos"][te])[0])}
    ckpt = save_linear_checkpoint(head, Path(out) / "best.safetensors", label_scale=scale, preset=preset,
                                  config={"probe": {k: v for k, v in result.items() if k != "validation_srcc"}},
                                  metrics=result.get("test", {}))
    result["checkpoint"] = str(ckpt)
    return result
