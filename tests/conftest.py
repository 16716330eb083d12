"""Shared fixtures: tiny generated images and records (offline, seeded, fast)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageFilter

torch.set_num_threads(min(2, os.cpu_count() or 1))


def make_image(rng: np.random.Generator, size=(48, 40), blur: float = 0.0, noise: float = 0.0) -> Image.Image:
    """A textured RGB image, degraded by Gaussian blur and noise."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.25 * np.sin(xx / 3.0 + rng.uniform(0, 6)) * np.cos(yy / 4.0 + rng.uniform(0, 6))
    img = np.stack([base, np.roll(base, 5, 1), 1 - base], -1)
    im = Image.fromarray((img * 255).astype(np.uint8))
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(im).astype(float) + rng.normal(0, noise * 255, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory) -> str:
    """36 images (6 references x 6 degradation levels) with MOS 1..5 and a split by reference."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    rows = []
    for r in range(6):
        split = ["train", "train", "train", "train", "val", "test"][r]
        for lvl in range(6):
            im = make_image(rng, blur=0.4 * lvl, noise=0.03 * lvl)
            rel = f"img/r{r}_l{lvl}.png"
            (root / "img").mkdir(exist_ok=True)
            im.save(root / rel)
            rows.append({"path": rel, "mos": 5.0 - 0.8 * lvl, "std": 0.5, "ref": f"r{r}",
                         "dist_level": lvl, "split": split})
    pd.DataFrame(rows).to_csv(root / "records.csv", index=False)
    return str(root / "records.csv")


def save_untrained_checkpoint(path, seed: int = 0, preset: str = "lite0-mos") -> str:
    """Save an untrained model as a checkpoint, the way the trainer saves one."""
    from biqa.checkpoint import save_untrained

    return save_untrained(path, preset, seed=seed)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """An (untrained) lite0 checkpoint."""
    return save_untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", seed=0)


def load_script(folder: str, name: str, module_name: str | None = None):
    """A script of the repository's ``folder`` (benchmarks/, scripts/; ``name`` without .py) imported as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name or name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_benchmark(name: str):
    """A script of benchmarks/ (``name`` without .py) imported as a module."""
    return load_script("benchmarks", name, f"bench_{name}")


class MeanStdExtractor:
    """A stand-in feature extractor for ranking sets: each image's mean and std."""

    preset_name = "mean-std"

    def arrays(self, images):
        return np.array([[im.mean(), im.std()] for im in images])
