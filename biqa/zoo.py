"""The model zoo: trained models that ship with biqa, by name, and how a name or path becomes a checkpoint.

A trained model is a checkpoint (:mod:`biqa.checkpoint`: weights plus the JSON naming its preset, label
scale and preprocessing), so the zoo sits beside the checkpoints: ``biqa-default`` is the bundled
``weights/biqa-default.safetensors`` (v6: EfficientNet-Lite0 and Lite2 side by side), ``biqa-fast`` the
bundled ``weights/biqa-fast.safetensors`` (v5: Lite0 alone, for throughput). Everything that
takes "a trained model name or a checkpoint" (scoring, evaluation, export, bench, gMAD, the protocols)
resolves it here.
"""
from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "biqa-default"
FAST_MODEL = "biqa-fast"  # v5 (v3 was biqa-default v3): EfficientNet-Lite0 alone, ~2.4x less compute a photo than
# biqa-default v4, v5 and v6
TRAINED_MODELS = {DEFAULT_MODEL: WEIGHTS_DIR / "biqa-default.safetensors",
                  FAST_MODEL: WEIGHTS_DIR / "biqa-fast.safetensors"}


def list_trained_models() -> dict[str, Path]:
    """Named trained models that ship with biqa (name -> checkpoint path)."""
    return dict(TRAINED_MODELS)


def resolve_checkpoint(name_or_path: str | os.PathLike | None) -> Path:
    """A trained model name (``biqa-default``) or a checkpoint path -> checkpoint path."""
    name = str(name_or_path or DEFAULT_MODEL)
    if name in TRAINED_MODELS:
        path = TRAINED_MODELS[name]
        if not path.is_file():
            raise FileNotFoundError(f"the bundled model file {path} is missing: reinstall biqa (pip install biqa)")
        return path
    p = Path(name).expanduser()
    if p.is_dir() and (p / "best.safetensors").is_file():
        return p / "best.safetensors"
    if p.is_dir():
        raise FileNotFoundError(f"{name} is a folder without best.safetensors: pass a run folder of `biqa train` / "
                                "`biqa probe`, or the checkpoint file itself")
    if p.is_file():
        if p.suffix.lower() in (".yaml", ".yml"):
            raise ValueError(f"{name} is a YAML file, not a trained model: a training config? Train it with "
                             f"`biqa train {name}` and score with the run's best.safetensors")
        return p
    known = f"trained models: {', '.join(sorted(TRAINED_MODELS))}; classical: brisque, niqe, piqe (biqa models)"
    if "/" in name or os.sep in name or p.suffix.lower() in (".safetensors", ".onnx", ".pt", ".pth"):
        raise FileNotFoundError(f"checkpoint file not found: {name}")
    from .models import list_models

    if name in list_models():
        raise ValueError(f"{name!r} is a model preset (an untrained architecture), not a trained model: train it "
                         f"with `biqa train` and pass the checkpoint; {known}")
    raise FileNotFoundError(f"no trained model named {name!r} and no such file; {known}")
