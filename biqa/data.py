"""Image decoding, resolution policies, transforms and the records Dataset."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from .imageio import IMAGE_EXTENSIONS, image_size, load_image, size_batches  # noqa: F401  (re-exported)
from .labels import LabelScale, max_entropy_distribution, rebin_votes
from .resolution import Resolution  # noqa: F401  (re-exported: biqa.data.Resolution)
from .timelimit import DEFAULT_DECODE_TIMEOUT, DecodeTimeout, time_limit  # noqa: F401  (re-exported)

def to_tensor(im: Image.Image, mean, std) -> torch.Tensor:
    """PIL RGB -> normalised float tensor ``[3, H, W]``."""
    a = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return a.sub_(m).div_(s)


def check_image_batch(x, *, who: str = "Scorer.score", slack: float = 1e-3) -> torch.Tensor:
    """``x`` as an image batch ``[B, 3, H, W]`` after checking it is what the scorers take: RGB floats
    in [0, 1], not normalised (the scorer subtracts the checkpoint's mean and divides by its std
    itself). A ``[3, H, W]`` image becomes a batch of one. Anything else raises a ``ValueError``
    naming ``who`` and saying what to pass: an integer tensor (8-bit pixels), values above 1 (0-255
    data), negative values (a tensor already normalised), NaN / infinity. ``slack`` is the rounding
    allowed outside [0, 1]. Used by :meth:`biqa.scorer.Scorer.score` and :class:`biqa.QualityMetric`.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{who}: expected an image [3, H, W] or a batch [B, 3, H, W] (RGB, values in [0, 1]), "
                         f"got shape {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{who}: expected a float tensor in [0, 1], got {x.dtype} (divide 0-255 images by 255: "
                         f"x.float() / 255)")
    if x.numel() == 0:
        return x
    v = x.detach()
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{who}: the tensor holds NaN or infinite values; expected RGB values in [0, 1]")
    lo, hi = float(v.min()), float(v.max())
    got = f"expected values in [0, 1] (not normalised), got [{lo:.3g}, {hi:.3g}]"
    if lo < -slack and (lo < -0.1 or hi > 1 + slack):
        raise ValueError(f"{who}: {got}: negative values mean a tensor already normalised with a mean and std; "
                         "pass the image in [0, 1] (biqa applies the checkpoint's mean and std itself)")
    if hi > 2.0:
        raise ValueError(f"{who}: {got}: this looks like 0-255 data; divide 0-255 images by 255")
    if lo < -slack or hi > 1 + slack:
        raise ValueError(f"{who}: {got}: clamp small overshoots (e.g. after resizing) with x.clamp(0, 1)")
    return x


def random_crop(im: Image.Image, size: int, rng: np.random.Generator, hflip: bool = True) -> Image.Image:
    """A ``size`` x ``size`` crop at native scale (upscaled first if the image is smaller)."""
    w, h = im.size
    if min(w, h) < size:
        s = size / min(w, h)
        im = im.resize((max(size, math.ceil(w * s)), max(size, math.ceil(h * s))), Image.BICUBIC)
        w, h = im.size
    x = int(rng.integers(0, w - size + 1))
    y = int(rng.integers(0, h - size + 1))
    im = im.crop((x, y, x + size, y + size))
    if hflip and rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    return im


def vote_columns(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if re.fullmatch(r"c\d+", str(c))]
    return sorted(cols, key=lambda c: int(c[1:]))


class RecordsDataset(Dataset):
    """Images and labels from a records DataFrame (see :mod:`biqa.records`).

    Training mode (``train=True``): random native-scale crops of ``crop_size`` and
    horizontal flips, drawn from a generator seeded by ``(seed, epoch, index)`` so
    that data order and augmentation are reproducible (and resumable) regardless of
    the number of workers. Evaluation mode: the whole image under ``resolution``.

    Items: ``image`` ``[3, H, W]``, ``z`` (normalised target), ``mos``, ``index``,
    and ``dist`` ``[n_bins]`` when ``n_bins`` is set (from vote counts ``c1..cK`` when
    present, else the maximum-entropy distribution with the mean and std of ``mos`` and
    ``std``, both mapped linearly onto bins 1..N).
    """

    def __init__(
        self,
        df: pd.DataFrame,
        label_scale: LabelScale,
        mean,
        std,
        *,
        train: bool = False,
        crop_size: int = 224,
        resolution: str | Resolution = "full",
        n_bins: int | None = None,
        seed: int = 0,
        default_std: float | None = None,
    ):
        self.paths = (df["abspath"] if "abspath" in df.columns else df["path"]).astype(str).tolist()
        self.records = df  # to name a bad image's file and CSV line
        self.mos = pd.to_numeric(df["mos"]).to_numpy(dtype=np.float64)
        self.scale = label_scale
        self.mean, self.std = tuple(mean), tuple(std)
        self.train = train
        self.crop_size = crop_size
        self.resolution = Resolution.parse(resolution)
        self.seed = seed
        self.epoch = 0
        self.dists = None
        if n_bins:
            votes = vote_columns(df)
            if votes:
                self.dists = torch.from_numpy(rebin_votes(df[votes].to_numpy(float), n_bins)).float()
            else:
                z = torch.as_tensor(label_scale.normalise(self.mos), dtype=torch.float32)
                if "std" in df.columns and df["std"].notna().all():
                    sd = torch.as_tensor(df["std"].to_numpy(float).copy(), dtype=torch.float32)
                    sd = sd * (n_bins - 1) / (label_scale.hi - label_scale.lo)
                else:  # no spread known: a typical opinion spread of ~1/8 of the range
                    sd = torch.full_like(z, default_std or (n_bins - 1) / 8)
                p = max_entropy_distribution((1 + z * (n_bins - 1)).numpy(), sd.numpy(), n_bins)
                self.dists = torch.from_numpy(p).float()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int, resolution=None) -> Image.Image:
        try:
            return load_image(self.paths[i], resolution)
        except Exception as e:
            from .records import BadImageError, describe_image_problem

            raise BadImageError(
                f"{describe_image_problem(self.records, i, e)}. List every such image with `biqa data inspect "
                f"RECORDS --check-images`; leave them out (listed) with `biqa eval --skip-bad-images` or "
                f"data.skip_bad_images=true (training)") from e

    def __getitem__(self, i: int) -> dict:
        if self.train:
            im = self._load(i)
            rng = np.random.default_rng((self.seed, self.epoch, i))
            im = random_crop(im, self.crop_size, rng)
        else:
            im = self._load(i, self.resolution)
        item = {
            "image": to_tensor(im, self.mean, self.std),
            "z": torch.tensor(float(self.scale.normalise(self.mos[i])), dtype=torch.float32),
            "mos": torch.tensor(self.mos[i], dtype=torch.float64),
            "index": i,
        }
        if self.dists is not None:
            item["dist"] = self.dists[i]
        return item


class SizeBucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices whose images share one size, in first-appearance order.

    ``sizes[i]`` is the (w, h) the network will see, or ``None`` for unreadable items
    (each gets a batch of its own so that its error is reported on its own row).
    ``max_pixels``: a batch of large images holds fewer than ``batch_size`` of them, at most
    ``max_pixels`` pixels in all (at least one image).
    """

    def __init__(self, sizes: list, batch_size: int, max_pixels: int | None = None):
        self.batches: list[list[int]] = size_batches(sizes, batch_size, max_pixels)

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
