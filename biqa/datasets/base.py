"""What a dataset reader returns, and the registry of readers.

A reader turns one dataset's original label files into rows with an
*expected* absolute image path per row; :func:`biqa.datasets.import_dataset`
then checks the files, counts and ranges, and writes the records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd


@dataclass
class RawLabels:
    """Output of a reader.

    ``df``: one row per labelled image, columns ``path`` (expected absolute path),
    ``mos`` and any optional record columns (``std``, ``c1``.., ``ref``,
    ``dist_type``, ``dist_level``, ``split_official``, extra metadata).
    ``image_dirs``: ``(folder, recursive)`` pairs scanned for extra image files.
    ``known_files``: absolute paths of image files that belong to the dataset but
    are not labelled rows (reference images, practice images); never "extra".
    """

    df: pd.DataFrame
    labels_file: Path
    image_dirs: list[tuple[Path, bool]] = field(default_factory=list)
    known_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: reader(root, labels_file or None, options) -> RawLabels
Reader = Callable[[Path, "Path | None", dict], RawLabels]
READERS: dict[str, Reader] = {}


def register_reader(name: str):
    def deco(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return deco


def split_value(v) -> str:
    """Map a dataset's own split names (training/validation/testing) to train/val/test."""
    s = str(v).strip().lower()
    return {"training": "train", "train": "train", "validation": "val", "valid": "val", "val": "val",
            "test": "test", "testing": "test"}.get(s, s)
