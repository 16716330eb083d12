"""Calibration images for int8 quantisation (``biqa export --quantize int8``).

Static quantisation fixes each activation's int8 range from the values it takes on a calibration
set. The set is drawn from data biqa has, and never from the images the accuracy guard measures
(``benchmarks/precision.py``: LIVE Challenge validation + test of ``split_seed1`` and the held-out
level photos, :data:`biqa.recipe.HELDOUT_PHOTOS`):

- ``recipe`` (the default, and what the shipped ``biqa-default`` table was made from): 64 LIVE
  Challenge *training* photos of ``split_seed1`` (``data/livec/livec.csv``, made by
  ``biqa data import livec``) and 32 synthetic crops of ``../shared/data/originals``: a 512-px crop
  at native scale of a photo (never a held-out one), with one of the 25 distortions of
  :mod:`biqa.synth` at a random level (every 26th crop left pristine);
- ``CSV`` or ``CSV:COLUMN=SPLIT``: photos of a records file (e.g. ``data/koniq/koniq.csv:split_seed1=train``);
- ``synth:DIR``: synthetic crops of the photos in ``DIR``, as above;
- ``DIR``: the images in a folder.

Every selection is seeded; :attr:`CalibrationSet.id` (a SHA-256 of the sources, the files and the
crops and distortions drawn) goes into the quantised model's metadata.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .imageio import IMAGE_EXTENSIONS, load_image
from .resolution import Resolution

SRC_ROOT = Path(__file__).resolve().parent.parent  # a source checkout's root (data/ and ../shared beside it)
RECIPE_LIVEC = "data/livec/livec.csv"
RECIPE_SPLIT = ("split_seed1", "train")
_SPLIT_COMMAND = f"biqa data split {RECIPE_LIVEC} --scheme random --ratios 70,10,20 --seeds 1-10"
RECIPE_ORIGINALS = "../shared/data/originals"
N_RECORDS, N_SYNTH, CROP = 64, 32, 512
# The guard's held-out photos (biqa.recipe.HELDOUT_PHOTOS, repeated so that this module needs no torch;
# tests/test_quantize.py checks that the lists agree).
HELDOUT_PHOTOS = ("lomiri-wallpapers__Picture_1A_by_freespace", "lomiri-wallpapers__life_by_Aitzol_Berasategi",
                  "lomiri-wallpapers__picosdeeuropa_by_Aitzol_Berasategi", "lxqt-themes__drop",
                  "mate-backgrounds__YellowFlower", "matplotlib__grace_hopper",
                  "plasma-workspace-wallpapers__EveningGlow__2560x1600", "scikit-image__rocket", "scikit-learn__china")


@dataclass
class CalibrationItem:
    path: str
    crop: tuple[int, int, int] | None = None  # (left, top, side) at native scale
    distortion: str | None = None
    level: int = 0
    seed: int = 0

    def describe(self) -> dict:
        d = {"file": Path(self.path).name}
        if self.crop is not None:
            d.update(crop=list(self.crop), distortion=self.distortion or "none", level=self.level, seed=self.seed)
        return d


@dataclass
class CalibrationSet:
    """The images to calibrate on, and how they were chosen."""

    items: list[CalibrationItem]
    sources: list[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        blob = json.dumps({"sources": self.sources, "items": [it.describe() for it in self.items]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"id": self.id, "images": len(self.items), "sources": self.sources,
                "excluded": "the accuracy guard's images (LIVE Challenge split_seed1 val + test; the held-out "
                            "level photos, biqa.recipe.HELDOUT_PHOTOS)"}

    def images(self, resolution: str | Resolution = "full"):
        """uint8 ``[H, W, 3]`` arrays, as the scorer would see them (``resolution``), in order."""
        res = Resolution.parse(resolution)
        for it in self.items:
            yield render(it, res)


def render(item: CalibrationItem, resolution: Resolution) -> np.ndarray:
    if item.crop is None:
        return np.asarray(load_image(item.path, resolution), dtype=np.uint8)
    from .synth import apply_distortion

    x, y, s = item.crop
    im = load_image(item.path).crop((x, y, x + s, y + s))
    a = np.asarray(im, dtype=np.float32) / 255.0
    if item.distortion:
        a = apply_distortion(a, item.distortion, item.level, np.random.default_rng(item.seed))
    a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    from PIL import Image

    im = Image.fromarray(a)
    tw, th = resolution.target_size(*im.size)
    if (tw, th) != im.size:
        im = im.resize((tw, th), Image.BICUBIC, reducing_gap=None)
    return np.asarray(im, dtype=np.uint8)


def _existing(candidates) -> Path | None:
    return next((Path(c) for c in candidates if Path(c).exists()), None)


def _records_items(spec: str, n: int, rng: np.random.Generator) -> tuple[list[CalibrationItem], dict]:
    from .records import read_records

    csv, column, split = spec, None, None
    if ":" in spec and not os.path.exists(spec):
        csv, _, sel = spec.rpartition(":")
        if "=" not in sel:
            raise ValueError(f"bad calibration records {spec!r}: use CSV or CSV:COLUMN=SPLIT")
        column, split = sel.split("=", 1)
    df = read_records(csv)
    if column is not None:
        if column not in df.columns:
            raise ValueError(f"{csv} has no column {column!r} (calibration: {spec})")
        df = df[df[column].astype(str) == split]
    paths = sorted(df["abspath"].astype(str))
    paths = [p for p in paths if Path(p).stem not in HELDOUT_PHOTOS]
    if not paths:
        raise ValueError(f"no images for calibration in {spec}")
    pick = sorted(rng.choice(len(paths), min(n, len(paths)), replace=False).tolist())
    return [CalibrationItem(paths[i]) for i in pick], {"records": str(csv), "column": column, "split": split,
                                                        "n": len(pick), "of": len(paths)}


def _photos_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return [p for p in files if p.stem not in HELDOUT_PHOTOS]


def _synth_items(folder: Path, n: int, rng: np.random.Generator, crop: int = CROP) -> tuple[list[CalibrationItem], dict]:
    from PIL import Image

    from .synth import DISTORTIONS

    photos = _photos_in(folder)
    if not photos:
        raise ValueError(f"no photos for synthetic calibration crops in {folder}")
    kinds = list(DISTORTIONS) + [None]  # every 26th crop pristine
    items = []
    for k in range(n):
        p = photos[k % len(photos)]
        with Image.open(p) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
        s = min(crop, w, h)
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        kind = kinds[k % len(kinds)]
        items.append(CalibrationItem(str(p), (x, y, s), kind, int(rng.integers(1, 6)) if kind else 0,
                                     int(rng.integers(0, 2**31))))
    return items, {"synthetic": str(folder), "n": n, "crop": crop, "distortions": "biqa.synth (25 types, levels 1-5)"}


def recipe_sources() -> tuple[Path, Path]:
    """The recipe's LIVE Challenge records and originals folder, or a ``FileNotFoundError`` saying how to get them."""
    livec = _existing([Path.cwd() / RECIPE_LIVEC, SRC_ROOT / RECIPE_LIVEC])
    originals = _existing([SRC_ROOT / RECIPE_ORIGINALS, Path.cwd() / RECIPE_ORIGINALS])
    if livec is None:
        raise FileNotFoundError(
            f"the calibration recipe needs the LIVE Challenge records at {RECIPE_LIVEC} (in the working folder or the "
            "source checkout); make them with `biqa data import livec --root ../shared/data/livec/ChallengeDB_release "
            f"--partial --out {RECIPE_LIVEC} && {_SPLIT_COMMAND}`, or calibrate on other photos: --calibration FOLDER "
            "(or a records CSV)")
    with open(livec, newline="") as f:
        header = next(csv.reader(f), [])
    if RECIPE_SPLIT[0] not in header:
        raise FileNotFoundError(f"{livec} has no {RECIPE_SPLIT[0]} column (the calibration recipe's photos are its "
                                f"{RECIPE_SPLIT[1]} part): add the protocol's splits with `{_SPLIT_COMMAND}`")
    if originals is None:
        raise FileNotFoundError(f"the calibration recipe needs the pristine photos of {RECIPE_ORIGINALS}; or calibrate "
                                "on other photos: --calibration FOLDER (or a records CSV)")
    return livec, originals


def build_calibration(specs: list[str] | str | None = None, *, n_records: int = N_RECORDS, n_synth: int = N_SYNTH,
                      n_folder: int = N_RECORDS, seed: int = 0) -> CalibrationSet:
    """The calibration set for ``specs`` (see the module docstring; ``None``: ``["recipe"]``)."""
    if specs is None:
        specs = ["recipe"]
    if isinstance(specs, str):
        specs = [specs]
    rng = np.random.default_rng(seed)
    items: list[CalibrationItem] = []
    sources: list[dict] = []
    for spec in specs:
        if spec == "recipe":
            livec, originals = recipe_sources()
            it, src = _records_items(f"{livec}:{RECIPE_SPLIT[0]}={RECIPE_SPLIT[1]}", n_records, rng)
            items += it
            sources.append({**src, "records": RECIPE_LIVEC})
            it, src = _synth_items(originals, n_synth, rng)
            items += it
            sources.append({**src, "synthetic": RECIPE_ORIGINALS})
        elif spec.startswith("synth:"):
            it, src = _synth_items(Path(spec[len("synth:"):]), n_synth, rng)
            items += it
            sources.append(src)
        elif os.path.isdir(spec):
            photos = _photos_in(Path(spec))
            if not photos:
                raise ValueError(f"no images in {spec} for calibration")
            pick = sorted(rng.choice(len(photos), min(n_folder, len(photos)), replace=False).tolist())
            items += [CalibrationItem(str(photos[i])) for i in pick]
            sources.append({"folder": spec, "n": len(pick), "of": len(photos)})
        elif spec.split(":")[0].lower().endswith(".csv") or spec.lower().endswith(".csv"):
            it, src = _records_items(spec, n_records, rng)
            items += it
            sources.append(src)
        else:
            raise ValueError(f"bad calibration source {spec!r}: use recipe, a folder of images, synth:FOLDER, or a "
                             "records CSV[:COLUMN=SPLIT]")
    sources.append({"seed": seed})
    return CalibrationSet(items, sources)


class CalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` over a calibration set: one normalised image a step."""

    def __init__(self, cal: CalibrationSet, input_name: str, mean, std, resolution="full", log=None):
        from .ortscore import normalise

        self._normalise = lambda a: normalise(a, mean, std)
        self._it = iter(cal.images(resolution))
        self.input_name = input_name
        self.n, self.total, self.log = 0, len(cal.items), log

    def get_next(self):
        a = next(self._it, None)
        if a is None:
            return None
        self.n += 1
        if self.log and (self.n % 16 == 0 or self.n == self.total):
            self.log(f"  calibration: {self.n}/{self.total} images")
        return {self.input_name: self._normalise(a)}

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item
