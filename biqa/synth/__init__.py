"""Synthetic-distortion benchmark: the 25 KADID-10k distortion types, FR labels, dataset builder.

>>> from biqa.synth import DISTORTIONS, build_synthetic_dataset
>>> out = DISTORTIONS["jpeg"](img, 3, rng)          # float32 H x W x 3 in [0, 1] -> same
>>> csv = build_synthetic_dataset("photos/", "data/synth", kadid_labels="KADID-10k.txt")
"""
from __future__ import annotations

from .build import build_synthetic_dataset, crop_boxes, list_photos, split_by_reference
from .distortions import DISTORTIONS, JPEG2000_BACKEND, Distortion, apply_distortion, get_distortion, resolve_types
from .labels import (Calibrator, calibration_report, cross_fitted_labels, fr_quality, fr_quality_batch, fr_scores,
                     kadid_level_means)

__all__ = ["DISTORTIONS", "Distortion", "JPEG2000_BACKEND", "apply_distortion", "get_distortion", "resolve_types",
           "fr_quality", "fr_quality_batch", "fr_scores", "kadid_level_means", "Calibrator", "calibration_report",
           "cross_fitted_labels", "build_synthetic_dataset", "split_by_reference", "list_photos", "crop_boxes"]
