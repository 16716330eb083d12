"""Dataset importers, splits and inspection.

>>> from biqa.datasets import import_dataset, add_splits, inspect_records
>>> df, report = import_dataset("kadid10k", "/data/kadid10k", "records/kadid10k.csv")
>>> print(report)                      # counts, MOS range, every missing / extra file
>>> df = add_splits(df, "by-reference", ratios=(70, 20, 10), seeds="1-10")
>>> inspect_records("records/kadid10k.csv", histogram="kadid_mos.png")

Records keep each dataset's own units; direction (``higher_is_better``) and
range are in the sidecar ``<stem>.meta.json`` (:func:`read_meta`).
"""
from __future__ import annotations

from .importing import ImportReport, import_dataset, meta_path, read_meta, split_counts, write_meta
from .inspect import inspect_records, plot_mos_histogram
from .registry import DATASETS, DatasetInfo, get_info, list_datasets, resolve_name
from .splits import add_splits, long_tailed_kadid, parse_seeds, part_sizes

__all__ = [
    "DATASETS", "DatasetInfo", "ImportReport", "add_splits", "get_info", "import_dataset", "inspect_records",
    "list_datasets", "long_tailed_kadid", "meta_path", "parse_seeds", "part_sizes", "plot_mos_histogram",
    "read_meta", "resolve_name", "split_counts", "write_meta",
]
