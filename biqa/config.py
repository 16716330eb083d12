"""Experiment configs: one YAML per experiment, merged over defaults, with ``key=value`` overrides."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"  # the configs that ship with biqa (package data)
# Not a trainer config: biqa-default (v6) is fitted by biqa.recipe (frozen backbones, a ridge head and a kernel term).
DEFAULT_MODEL_RECIPE = ("'default_model' is not a trainer config: the shipped model biqa-default (v6) is frozen "
                        "EfficientNet-Lite0 and Lite2 with a linear + kernel head fitted by biqa.recipe, not trained "
                        "by `biqa train`. Reproduce it from a biqa source checkout with `biqa data pristine --out "
                        "data/pristine && python scripts/train_default_model.py --pristine data/pristine` "
                        "(LIVE Challenge and the pristine photos in ../shared/data, 15 more from Debian's "
                        "enlightenment-data; ~18 min on 2 CPU cores, ~12 for biqa-fast v5 with --name "
                        "biqa-fast); "
                        "`biqa configs` lists the trainer configs")

DEFAULTS: dict = {
    "name": "experiment",
    "description": "",  # one line, shown by `biqa configs`
    "out_dir": None,  # default: runs/<name>
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "data": {
        "records": None,  # records CSV (see biqa.records); relative paths resolve against the YAML's folder
        "split_column": None,  # default: 'split', else the first split_* column
        "label_range": None,  # [lo, hi] of the MOS; default: the records' sidecar meta, else the preset's
        "higher_is_better": None,  # False for DMOS-style labels; default: the records' sidecar meta, else True
        "crop_size": None,  # training crop; default: the preset's input size
        "eval_resolution": "full",  # full | max:N | short:N | WxH
        # validation / test score large images in tiles exactly as `biqa score --tile` does (biqa.tiling):
        # auto (above 2 Mi px) | off | N (every image larger than NxN); overlap: default 1/8 of the side
        "eval_tile": "auto",
        "eval_tile_overlap": None,
        "num_workers": 2,
        "check_files": True,
        # true: decode every image first and leave out (and list, in out_dir/skipped_images.csv) those
        # that do not decode; false: such an image stops the run with an error naming it and its line
        "skip_bad_images": False,
    },
    "model": {"preset": "lite0-mos", "pretrained": True, "head_kwargs": None,
              "init_from": None,  # a biqa checkpoint to start from (its 'model' network)
              "init_backbone_from": None},  # a checkpoint or bundled model name: its backbone weights only
    "strategy": {"name": "supervised", "loss": "mse"},
    "optim": {
        "name": "adamw",  # adamw | adam | sgd
        "lr_backbone": 1e-4,
        "lr_head": 1e-3,
        "weight_decay": 1e-4,
        "momentum": 0.9,
    },
    "sched": {
        "name": "cosine",  # cosine | step | none  (stepped per optimiser step; step: per epoch)
        "warmup_steps": 0,
        "step_size": 3,  # epochs, for 'step'
        "gamma": 0.2,
        "min_lr_ratio": 0.01,
    },
    "train": {
        "epochs": 10,
        "batch_size": 16,
        "eval_batch_size": 16,
        "grad_accum": 1,
        "amp": False,  # bf16 autocast on CPU, fp16 on CUDA
        "fp32_depthwise": "auto",  # depthwise convs in float32 under autocast: auto = with bf16 on a CPU
        "channels_last": True,
        "max_steps_per_epoch": None,
        "freeze_backbone_epochs": 0,  # the OHEM paper's stage 1: head only
        "grad_clip": None,
        # under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm); auto = on GPUs
        # (torch's SyncBatchNorm does not run on the CPU, where each process normalises its own share)
        "sync_bn": "auto",
    },
    "early_stop": {"metric": "srcc", "patience": 5, "min_delta": 0.0},
    "test_at_end": True,
    "progress": True,
}


# strategy: its name and supervised loss, and one options block per component (each component checks
# its own block's keys: biqa.strategies)
STRATEGY_KEYS = ("name", "loss", "ohem", "mutual", "distill", "ranking")
# options blocks of strategy components registered beyond the built-in ones
# (biqa.strategies.composite.register_component adds their names)
EXTRA_STRATEGY_BLOCKS: set[str] = set()
CHECKED_SECTIONS = ("data", "model", "optim", "sched", "train", "early_stop")


def unknown_keys_error(where: str, unknown, known) -> ValueError:
    """A ValueError naming unknown keys of ``where`` (``"train"``, ``"strategy.ohem"`` ...), each with a
    did-you-mean suggestion where one is close, and the known keys."""
    import difflib

    parts = []
    for k in sorted(map(str, unknown)):
        close = difflib.get_close_matches(k, [str(x) for x in known], n=1, cutoff=0.6)
        parts.append(f"{where + '.' if where else ''}{k}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ValueError(f"unknown config key{'s' if len(parts) > 1 else ''} {', '.join(parts)}; known"
                      f"{' ' + where if where else ''} keys: {', '.join(sorted(map(str, known)))}")


def check_keys(cfg: dict) -> None:
    """Every key of the config must be one biqa knows: top level, the typed sections (``data``,
    ``model``, ``optim``, ``sched``, ``train``, ``early_stop``) and ``strategy``'s own keys. A typo
    (``train.epoch``, ``train.bacth_size``) is an error with a suggestion, never a silently used
    default. (``model.head_kwargs`` goes to the head, which refuses what it does not take.)"""
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise unknown_keys_error("", unknown, DEFAULTS)
    for sec in CHECKED_SECTIONS:
        if not isinstance(cfg.get(sec), dict):
            raise ValueError(f"config section {sec!r} must be a mapping of keys, not {cfg.get(sec)!r}")
        unknown = set(cfg[sec]) - set(DEFAULTS[sec])
        if unknown:
            raise unknown_keys_error(sec, unknown, DEFAULTS[sec])
    strat = cfg.get("strategy")
    if not isinstance(strat, dict):
        raise ValueError(f"config section 'strategy' must be a mapping of keys, not {strat!r}")
    known = STRATEGY_KEYS + tuple(sorted(EXTRA_STRATEGY_BLOCKS))
    unknown = set(strat) - set(known)
    if unknown:
        raise unknown_keys_error("strategy", unknown, known)


def deep_update(base: dict, upd: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (upd or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(cfg: dict, item: str) -> None:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key.sub=value")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw != "" else None
    node = cfg
    parts = key.strip().split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def list_configs() -> dict[str, str]:
    """The configs that ship with biqa: ``{name: one-line description}`` (``biqa configs``)."""
    out = {}
    for p in sorted(CONFIGS_DIR.glob("*.yaml")):
        d = yaml.safe_load(p.read_text()) or {}
        out[p.stem] = str(d.get("description") or "")
    return out


def find_config(name_or_path: str | os.PathLike) -> Path:
    """A config file: an existing YAML path, else a shipped config by name (``livec_finetune``,
    ``livec_finetune.yaml`` or ``configs/livec_finetune.yaml``, the repository's old location)."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    stem = p.name[:-5] if p.name.endswith(".yaml") else p.name[:-4] if p.name.endswith(".yml") else p.name
    if str(p.parent) in (".", "configs"):
        shipped = CONFIGS_DIR / f"{stem}.yaml"
        if shipped.is_file():
            return shipped
        if stem == "default_model":
            raise FileNotFoundError(DEFAULT_MODEL_RECIPE)
    names = ", ".join(list_configs()) or "(none)"
    raise FileNotFoundError(f"config not found: {name_or_path} is neither a YAML file nor a shipped config; "
                            f"shipped configs: {names} (biqa configs lists them)")


def load_config(path: str | os.PathLike | dict | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults <- YAML file (or dict) <- overrides. ``path``: a YAML file or the name of a shipped
    config (:func:`find_config`). The YAML's relative ``data.records`` resolves against the YAML's
    folder where it exists there, else against the working directory (the shipped configs' records,
    e.g. ``data/livec/livec.csv``, are relative to the working directory)."""
    user: dict = {}
    base_dir = Path.cwd()
    if isinstance(path, dict):
        user = path
    elif path is not None:
        path = find_config(path)
        user = yaml.safe_load(path.read_text()) or {}
        base_dir = path.resolve().parent
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise unknown_keys_error("", unknown, DEFAULTS)
    cfg = deep_update(DEFAULTS, user)
    # The YAML's own relative records path resolves against the YAML's folder (before
    # overrides, whose paths stay relative to the working directory).
    user_rec = user["data"].get("records") if isinstance(user.get("data"), dict) else None
    if user_rec and not Path(user_rec).is_absolute() and (base_dir / user_rec).exists():
        cfg["data"]["records"] = str(base_dir / user_rec)
    for item in overrides or []:
        top = item.split("=", 1)[0].strip().split(".")[0]
        if "=" in item and top not in DEFAULTS:
            raise ValueError(f"override {item!r}: {unknown_keys_error('', [top], DEFAULTS)}")
        apply_override(cfg, item)
    rec = cfg["data"].get("records")
    if rec and not Path(rec).is_absolute() and not Path(rec).exists() and (base_dir / rec).exists():
        cfg["data"]["records"] = str(base_dir / rec)
    check_keys(cfg)
    if not cfg.get("out_dir"):
        cfg["out_dir"] = str(Path("runs") / str(cfg["name"]))
    return cfg


def save_config(cfg: dict, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False))
