"""The one dataset format of biqa: a records CSV.

Columns (only ``path`` and ``mos`` are required):

=============== ==============================================================
``path``        image path, absolute or relative to the CSV's folder
``mos``         mean opinion score (or any scalar label) in the dataset's units
``std``         optional standard deviation of the opinion scores
``c1`` .. ``cK``  optional vote counts per rating bin (e.g. KonIQ's c1..c5)
``ref``         optional reference / source image id (the grouping key for splits)
``dist_type``   optional distortion type
``dist_level``  optional distortion level (0 = pristine)
``split*``      split columns (``split``, ``split_official``, ``split_seed1`` ...),
                values ``train`` / ``val`` / ``test`` (empty = unused)
=============== ==============================================================

:func:`validate_records` reports *every* bad row at once instead of stopping at
the first one or silently dropping rows; :func:`check_images` decodes every image and reports
those that do not decode (``biqa data inspect --check-images``); :func:`drop_bad_images` leaves
them out and lists them (``biqa eval --skip-bad-images``, ``data.skip_bad_images: true`` in a
training config). A bad image met while training or evaluating raises :class:`BadImageError`,
naming the file and its CSV line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("path", "mos")
SPLIT_VALUES = ("train", "val", "test")


@dataclass
class RecordProblem:
    """One problem found in a records file: 1-based CSV line (header = line 1)."""

    line: int
    path: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path!r}: {self.problem}"


@dataclass
class ValidationReport:
    n_rows: int
    problems: list[RecordProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad_lines(self) -> set[int]:
        return {p.line for p in self.problems}

    def __str__(self) -> str:
        if self.ok:
            return f"{self.n_rows} records, no problems"
        head = f"{len(self.problems)} problem(s) in {len(self.bad_lines())} of {self.n_rows} records:"
        return "\n".join([head] + [f"  {p}" for p in self.problems])


class RecordsError(ValueError):
    """Raised when a records file is unusable; carries the full report."""

    def __init__(self, report: ValidationReport, source: str = "records"):
        self.report = report
        super().__init__(f"{source}: {report}")


def read_records(csv_path: str | os.PathLike) -> pd.DataFrame:
    """Read a records CSV; add ``abspath`` (paths resolved against the CSV's folder)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"records file not found: {csv_path}")
    df = pd.read_csv(csv_path, keep_default_na=True, dtype={"path": str, "ref": str})
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{csv_path}: missing required column(s) {missing}; found {list(df.columns)}. "
            "A records CSV needs at least 'path' and 'mos'."
        )
    root = csv_path.resolve().parent
    df["abspath"] = [resolve_path(p, root) for p in df["path"].fillna("")]
    df.attrs["root"] = str(root)
    df.attrs["source"] = str(csv_path)
    return df


def resolve_path(path: str, root: str | os.PathLike) -> str:
    p = Path(str(path)).expanduser()
    return str(p if p.is_absolute() else Path(root) / p)


def split_columns(df: pd.DataFrame) -> list[str]:
    """Names of the split columns (``split`` or ``split_*``)."""
    return [c for c in df.columns if c == "split" or c.startswith("split_")]


def default_split_column(df: pd.DataFrame) -> str | None:
    """The split column used when none is named: ``split`` when the records have one, else the first
    ``split_*`` column in the file's order (``split_official``, ``split_seed0`` ...); ``None`` without
    any. One rule for ``biqa train``, ``biqa eval`` (:func:`select_split`) and ``biqa probe``."""
    cols = split_columns(df)
    return "split" if "split" in cols else (cols[0] if cols else None)


def validate_records(
    df: pd.DataFrame,
    *,
    mos_range: tuple[float, float] | None = None,
    check_files: bool = True,
) -> ValidationReport:
    """Check every row; return a report listing all problems.

    Checks: empty path, missing file (when ``check_files``), NaN / non-numeric MOS,
    MOS outside ``mos_range`` (inclusive), duplicate paths (every occurrence after the
    first), negative std, unknown values in split columns.
    """
    report = ValidationReport(n_rows=len(df))
    paths = df["path"].fillna("").astype(str).tolist()
    abspaths = df["abspath"].tolist() if "abspath" in df.columns else paths
    mos = pd.to_numeric(df["mos"], errors="coerce").to_numpy(dtype=float)
    std = pd.to_numeric(df["std"], errors="coerce").to_numpy(dtype=float) if "std" in df.columns else None
    seen: dict[str, int] = {}
    splits = split_columns(df)
    for i, (p, ap) in enumerate(zip(paths, abspaths)):
        line = i + 2
        if not p.strip():
            report.problems.append(RecordProblem(line, p, "empty path"))
        elif check_files and not os.path.isfile(ap):
            report.problems.append(RecordProblem(line, p, f"file not found ({ap})"))
        key = os.path.normpath(ap) if p.strip() else None
        if key is not None:
            if key in seen:
                report.problems.append(RecordProblem(line, p, f"duplicate path (first on line {seen[key]})"))
            else:
                seen[key] = line
        if not np.isfinite(mos[i]):
            report.problems.append(RecordProblem(line, p, f"MOS is missing or not a number ({df['mos'].iloc[i]!r})"))
        elif mos_range is not None and not (mos_range[0] <= mos[i] <= mos_range[1]):
            report.problems.append(
                RecordProblem(line, p, f"MOS {mos[i]:g} outside the expected range [{mos_range[0]:g}, {mos_range[1]:g}]")
            )
        if std is not None and np.isfinite(std[i]) and std[i] < 0:
            report.problems.append(RecordProblem(line, p, f"negative std {std[i]:g}"))
        for c in splits:
            v = df[c].iloc[i]
            if isinstance(v, str) and v and v not in SPLIT_VALUES:
                report.problems.append(RecordProblem(line, p, f"column {c}: unknown split {v!r} (use train/val/test)"))
    return report


def load_records(
    csv_path: str | os.PathLike,
    *,
    mos_range: tuple[float, float] | None = None,
    check_files: bool = True,
    on_error: str = "raise",
) -> pd.DataFrame:
    """Read and validate a records CSV.

    ``on_error``: ``"raise"`` (default) raises :class:`RecordsError` listing every
    problem; ``"drop"`` drops the bad rows and warns with the full list; ``"ignore"``
    keeps everything.
    """
    df = read_records(csv_path)
    report = validate_records(df, mos_range=mos_range, check_files=check_files)
    if report.ok or on_error == "ignore":
        df.attrs["validation"] = str(report)
        return df
    if on_error == "raise":
        raise RecordsError(report, str(csv_path))
    if on_error == "drop":
        import warnings

        warnings.warn(f"{csv_path}: dropping bad rows\n{report}", stacklevel=2)
        keep = [i + 2 not in report.bad_lines() for i in range(len(df))]
        out = df.loc[keep].reset_index(drop=True)
        out.attrs.update(df.attrs)
        return out
    raise ValueError(f"on_error must be 'raise', 'drop' or 'ignore', not {on_error!r}")


class BadImageError(OSError):
    """An image of a records CSV that cannot be decoded; the message names the file and its line."""


def record_lines(df: pd.DataFrame) -> list[int | None]:
    """The 1-based CSV line (header = line 1) of each row of ``df``, a records frame read by
    :func:`read_records` (perhaps a split of it): found again through its ``attrs["source"]``."""
    src = df.attrs.get("source")
    key = "abspath" if "abspath" in df.columns else "path"
    if not src or not Path(src).is_file():
        return [None] * len(df)
    paths = pd.read_csv(src, usecols=["path"], dtype={"path": str})["path"].fillna("")
    root = df.attrs.get("root") or str(Path(src).resolve().parent)
    first: dict[str, int] = {}
    for i, p in enumerate(paths):
        first.setdefault(os.path.normpath(resolve_path(p, root)) if p else "", i + 2)
    return [first.get(os.path.normpath(str(p))) if p else None for p in df[key].fillna("")]


def describe_image_problem(df: pd.DataFrame, i: int, error: BaseException, line: int | None = None) -> str:
    """``records.csv: line 7: img/x.jpg: OSError: image file is truncated (...)``: row ``i`` of ``df``."""
    from .paths import printable

    if line is None:
        line = record_lines(df)[i]
    where = df.attrs.get("source", "records")
    return printable(f"{where}: line {line if line is not None else '?'}: {df['path'].iloc[i]}: "
                     f"{type(error).__name__}: {error}")


def decode_problem(path: str, timeout: float | None = 60.0) -> str | None:
    """Why the image at ``path`` cannot be decoded in full (``None``: it decodes)."""
    from PIL import Image

    from .timelimit import time_limit

    try:
        if not os.path.isfile(path):
            return "file not found" if not os.path.exists(path) else "not a regular file"
        with time_limit(timeout), Image.open(path) as im:
            im.load()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def check_images(df: pd.DataFrame, *, progress: bool = False) -> list[RecordProblem]:
    """Decode every image of ``df`` (a records frame) in full; one :class:`RecordProblem` (line,
    path, why) per image that does not decode: missing, truncated, corrupt, too large."""
    from tqdm.auto import tqdm

    from .paths import printable

    key = "abspath" if "abspath" in df.columns else "path"
    lines = record_lines(df)
    out = []
    for i, ap in enumerate(tqdm(df[key].fillna("").astype(str).tolist(), desc="decoding", disable=not progress,
                                leave=False)):
        why = decode_problem(ap) if ap else "empty path"
        if why:
            out.append(RecordProblem(lines[i] if lines[i] is not None else i + 2, str(df["path"].iloc[i]),
                                     printable(why)))
    return out


def drop_bad_images(df: pd.DataFrame, *, what: str = "records", log=None) -> tuple[pd.DataFrame, list[RecordProblem]]:
    """``df`` without the rows whose image does not decode, and the list of those rows (never a
    silent drop: ``log``, default a warning, gets the list)."""
    bad = check_images(df)
    if not bad:
        return df, bad
    text = f"{df.attrs.get('source', what)}: leaving out {len(bad)} of {len(df)} {what} whose image does not " \
           f"decode:\n" + "\n".join(f"  {p}" for p in bad)
    if log is None:
        import warnings

        warnings.warn(text, stacklevel=2)
    else:
        log(text)
    lines = record_lines(df)
    bad_lines = {p.line for p in bad}
    keep = [(ln if ln is not None else i + 2) not in bad_lines for i, ln in enumerate(lines)]
    out = df.loc[keep].reset_index(drop=True)
    out.attrs.update(df.attrs)
    return out, bad


def select_split(df: pd.DataFrame, split: str | None, column: str | None = None) -> pd.DataFrame:
    """Rows of one split. ``split=None`` or ``"all"`` returns every row.

    ``column`` defaults to :func:`default_split_column` (``split``, else the first ``split_*`` column).
    """
    if split in (None, "all"):
        return df
    cols = split_columns(df)
    if column is None:
        column = default_split_column(df)
        if column is None:
            raise ValueError(
                f"records have no split column (columns: {list(df.columns)}); use --split all "
                "or add a 'split' column with train/val/test"
            )
    if column not in df.columns:
        raise ValueError(f"split column {column!r} not in records (have {cols})")
    out = df[df[column] == split].reset_index(drop=True)
    out.attrs.update(df.attrs)
    return out


def write_records(df: pd.DataFrame, csv_path: str | os.PathLike) -> Path:
    """Write records (drops the derived ``abspath`` column)."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    df.drop(columns=[c for c in ("abspath",) if c in df.columns]).to_csv(csv_path, index=False)
    return csv_path
