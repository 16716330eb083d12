"""Checkpoints: weights in safetensors, everything needed to use them in JSON.

A checkpoint is one ``.safetensors`` file whose header metadata holds the JSON
(``metadata["biqa"]``): preset, label scale, preprocessing, config and metrics; a
readable copy of that JSON is written beside it (``<name>.json``). Loading needs
only the ``.safetensors`` file and opens nothing else: safetensors holds no code, the JSON's
``config`` (which names the training data, maybe a teacher) is a record only, and the
backbone must be a plain timm architecture name (:func:`check_backbone_name`). Writes are atomic (temp file, fsync, rename; the temp file is
removed when writing fails, e.g. on a full disk).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .files import _atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)

FORMAT = "biqa-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, nets: dict[str, nn.Module], meta: dict) -> Path:
    """Save networks (``{"model": m, "peer1": p, ...}``) and ``meta`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for net_name, net in nets.items():
        for k, v in net.state_dict().items():
            tensors[f"{net_name}.{k}"] = v.detach().to("cpu").contiguous()
    meta = {"format": FORMAT, "nets": list(nets), **meta}
    text = json.dumps(meta, default=_json_default)
    _atomic_write_bytes(path, lambda p: save_file(tensors, str(p), metadata={"biqa": text}))
    side = path.with_suffix(".json")
    _atomic_write_bytes(side, lambda p: p.write_text(json.dumps(meta, indent=2, default=_json_default)))
    return path


def checkpoint_meta(preset, label_scale, *, crop_size: int | None = None, resolution: str = "full",
                    **fields) -> dict:
    """The metadata a biqa checkpoint carries, built in one place for every writer (trainer, linear
    probe, :func:`save_untrained`, ``biqa bench``'s preset models): ``preset`` (its dict), ``label_scale``
    (its dict), ``preprocessing`` (the preset's normalisation ``mean`` / ``std``, then ``crop_size``
    when given, and the scoring ``resolution`` policy), then ``fields`` in the order given (``config``,
    ``metrics``, ``strategy``, ``trained`` ...). ``preset``: a :class:`~biqa.models.ModelPreset`;
    ``label_scale``: a :class:`~biqa.labels.LabelScale`."""
    mean, std = preset.normalisation()
    pre = {"mean": list(mean), "std": list(std)}
    if crop_size is not None:
        pre["crop_size"] = crop_size
    pre["resolution"] = str(resolution)
    return {"preset": preset.to_dict(), "label_scale": label_scale.to_dict(), "preprocessing": pre, **fields}


def save_untrained(path: str | os.PathLike, preset: str = "lite0-mos", *, seed: int = 0,
                   pretrained: bool = False) -> str:
    """Save a model straight from its preset (untrained head) as a checkpoint, the way the trainer
    saves one: a placeholder teacher for timing, or a fixture for tests."""
    from .models import create_model

    torch.manual_seed(seed)
    model = create_model(preset, pretrained=pretrained)
    meta = checkpoint_meta(model.preset, model.label_scale, crop_size=model.preset.input_size,
                           config={}, metrics={}, trained=False)
    save_checkpoint(path, {"model": model.eval()}, meta)
    return str(path)


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def read_meta(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception as e:  # safetensors' SafetensorError (e.g. "header too large" for a text file)
        raise ValueError(f"{path} is not a biqa checkpoint (a .safetensors file from biqa train / biqa probe, "
                         f"a run folder or a trained model name): safetensors says {e}") from None
    if "biqa" not in md:
        raise ValueError(f"{path} is a safetensors file but not a biqa checkpoint (no 'biqa' metadata)")
    return json.loads(md["biqa"])


def read_state_dicts(path: str | os.PathLike) -> dict[str, dict[str, torch.Tensor]]:
    """``{net_name: state_dict}`` from a checkpoint."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            net, sub = key.split(".", 1)
            out.setdefault(net, {})[sub] = f.get_tensor(key)
    return out


def check_backbone_name(name, source="checkpoint") -> None:
    """A checkpoint's backbone must be a plain timm architecture name (``tf_efficientnet_lite0``), or several
    joined by ``+`` (backbones side by side).

    timm also accepts names that make it read or fetch files (``local-dir:/path``, ``hf-hub:org/x``):
    loading a checkpoint never opens or downloads anything its JSON names, so those are refused."""
    import timm

    if not isinstance(name, str) or ":" in name or "/" in name or "\\" in name or not all(
            timm.is_model(n) for n in name.split("+")):
        raise ValueError(f"{source}: backbone {name!r} is not a timm architecture name; a checkpoint names "
                         f"architectures only (loading it opens no other file)")


def load_model(path: str | os.PathLike, net: str | None = None):
    """Rebuild a checkpoint's predicting network; returns ``(model, meta)``.

    ``net=None`` gives what the run predicts with: the ensemble of the nets listed in the
    checkpoint's ``ensemble`` (e.g. DML peers, averaged), else ``model``. A name (``model``,
    ``peer1`` ...) selects one network alone.
    """
    from .labels import LabelScale
    from .models import Ensemble, ModelPreset, create_model

    meta = read_meta(path)
    states = read_state_dicts(path)
    scale = LabelScale.from_dict(meta["label_scale"])

    def build(name: str):
        if name not in states:
            raise KeyError(f"{path} holds nets {sorted(states)}, not {name!r}")
        preset = ModelPreset.from_dict(meta.get("net_presets", {}).get(name, meta["preset"]))
        check_backbone_name(preset.backbone, path)
        m = create_model(preset, pretrained=False, label_scale=scale)
        m.load_state_dict(states[name], strict=True)
        m.trained = bool(meta.get("trained", True))  # save_untrained records False
        m._quiet = True  # the forward stays quiet: biqa.load / create_metric warn for an untrained checkpoint
        return m.eval()

    names = meta.get("ensemble") if net is None else None
    model = Ensemble({n: build(n) for n in names}).eval() if names and len(names) > 1 else build(net or "model")
    return model, meta


# a kernel head's score is a sum of ~1,000 coefficient * kernel products, so its few coefficients stay float32
# (3.5 kB). Measured on biqa-default's 880 LIVE Challenge photos (1-5 scale): every tensor float16 moved the
# scores by up to 0.0021 (mean 0.0015); with these two kept float32, up to 0.0013 (mean 0.0010), which is
# the rest of the float16 weights' share
KEEP_FLOAT32 = ("head.kernel_coef", "head.kernel_gamma")


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, half: bool = True,
                      extra_meta: dict | None = None) -> Path:
    """Copy a checkpoint for shipping: floating-point tensors stored as float16 (halves the
    size; loading casts them back to the model's float32), except :data:`KEEP_FLOAT32` (a kernel head's
    coefficients and width); ``extra_meta`` merged into its JSON."""
    meta = read_meta(src)
    meta.update(extra_meta or {})
    meta["weights_dtype"] = "float16" if half else "float32"
    tensors = {}
    for net, sd in read_state_dicts(src).items():
        for k, v in sd.items():
            tensors[f"{net}.{k}"] = v.half() if (half and v.is_floating_point() and not k.endswith(KEEP_FLOAT32)) else v
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta, default=_json_default)
    _atomic_write_bytes(dst, lambda p: save_file(tensors, str(p), metadata={"biqa": text}))
    side = dst.with_suffix(".json")
    _atomic_write_bytes(side, lambda p: p.write_text(json.dumps(meta, indent=2, default=_json_default)))
    return dst


def _backbone_key(key: str) -> str:
    """A backbone parameter's name without biqa's wrappers (``extractor.``: multi-level pooling)."""
    parts = key.split(".")
    while parts and parts[0] in ("extractor", "body"):
        parts = parts[1:]
    return ".".join(parts)


def load_backbone_weights(model, source: str | os.PathLike) -> int:
    """Copy the backbone of a trained checkpoint (or bundled model name) into ``model.backbone``.

    Parameters are matched by their timm names (biqa's pooling wrappers stripped), so a new head
    can start from another preset's trained backbone of the same architecture (e.g. the MobileIQA
    student from ``biqa-default``'s EfficientNet-Lite0). Every backbone tensor of ``model`` must
    find a source of the same shape; otherwise a ``ValueError`` names the missing ones. Returns the
    number of tensors copied.
    """
    import torch

    from .zoo import resolve_checkpoint

    src_all = read_state_dicts(resolve_checkpoint(source)).get("model", {})
    src = {_backbone_key(k[len("backbone."):]): v for k, v in src_all.items() if k.startswith("backbone.")}
    target = model.backbone.state_dict()
    missing, new = [], {}
    for k, v in target.items():
        s = src.get(_backbone_key(k))
        if s is None or tuple(s.shape) != tuple(v.shape):
            missing.append(k)
        else:
            new[k] = s.to(v.dtype)
    if missing:
        raise ValueError(f"{source}: no backbone weights of the right shape for {len(missing)} of "
                         f"{len(target)} tensors (e.g. {missing[:3]}); is it the same backbone architecture?")
    with torch.no_grad():
        model.backbone.load_state_dict(new, strict=True)
    return len(new)
