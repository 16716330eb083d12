"""The resumable scoring job behind ``biqa score``: score many inputs on one or several processes
(``torchrun``), surviving a kill.

:func:`score_job`: each process scores a strided shard of the inputs (:func:`biqa.distributed.shard_indices`)
with a :class:`biqa.scorer.Scorer` and appends its rows, one flushed write per batch, to
``.<out name>.partial/rank<r>.csv`` beside the output; rank 0 merges them into one output in input
order and removes the partial folder. With ``resume=True`` inputs already in the partial folder are not
scored again. Paths are stored as :func:`biqa.paths.path_to_text` writes them (any file name, UTF-8 or
not). One job at a time per output: rank 0 holds an exclusive lock (``.<out name>.lock``) while it
runs, and a second job on the same output is refused with a message.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
from pathlib import Path

from .files import atomic_write_text, output_lock
from .distributed import all_gather_object, barrier, rank, shard_indices, world_size
from .paths import path_to_text
from .scorer import collect_inputs, write_scores

PARTIAL_VERSION = 1


def partial_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def _read_complete_lines(path: Path) -> str:
    """A file's text up to its last newline: a kill during a write can only cut the last line."""
    data = path.read_text(encoding="utf-8", errors="replace")
    return data if data.endswith("\n") else data[: data.rfind("\n") + 1]


def read_partial(folder: str | os.PathLike, paths: list[str]) -> dict[int, dict]:
    """Rows already scored in a partial folder: ``{input index: row}``, keeping only rows whose
    (index, path) matches ``paths`` (a changed input list is rescored where it changed)."""
    rows: dict[int, dict] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return rows
    texts = [path_to_text(p) for p in paths]  # as _PartialWriter wrote them
    for f in sorted(folder.glob("rank*.csv")):
        for rec in csv.DictReader(io.StringIO(_read_complete_lines(f))):
            if rec.get("complete") != "1" or None in rec:
                continue  # a line cut short by a kill
            try:
                i = int(rec["index"])
            except (KeyError, TypeError, ValueError):
                continue
            if not (0 <= i < len(paths)) or rec.get("path") != texts[i]:
                continue
            row = {"path": paths[i], "error": rec.get("error") or ""}
            for k in ("score", "std"):
                if k in rec and rec[k] is not None:
                    try:
                        row[k] = float(rec[k]) if rec[k] != "" else float("nan")
                    except ValueError:
                        row[k] = float("nan")
            if rec.get("tiles"):
                try:
                    row["tiles"] = int(rec["tiles"])
                except ValueError:
                    pass
            rows[i] = row
    return rows


class _PartialWriter:
    """Appends finished rows to one rank's partial CSV: one write and flush per batch."""

    def __init__(self, path: Path, columns: list[str]):
        self.columns = ["index"] + columns + ["complete"]  # "complete" = 1: the line was written whole
        complete = _read_complete_lines(path) if path.is_file() else ""
        if complete and next(csv.reader(io.StringIO(complete)), []) != self.columns:
            # other columns (e.g. a job started by a biqa without the "tiles" column): keep that file,
            # readers take each file with its own header, and write this run's rows beside it
            k = 1
            while path.with_name(f"{path.stem}.{k}{path.suffix}").exists():
                k += 1
            path, complete = path.with_name(f"{path.stem}.{k}{path.suffix}"), ""
        # no complete line yet (not even the header): start the file again
        self.f = open(path, "a" if complete else "w", newline="", encoding="utf-8")
        if complete and not path.read_bytes().endswith(b"\n"):
            self.f.write("\n")  # end the line a killed run cut short; readers skip it
        if not complete:
            self._write([self.columns])

    def _write(self, records: list[list]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(records)
        try:
            self.f.write(buf.getvalue())
            self.f.flush()
        except OSError as e:  # e.g. a full disk: a cut line is skipped on --resume
            raise OSError(f"could not save scores to {path_to_text(self.f.name)}: {e.strerror or e}; the rows saved before "
                          f"are kept: make room and rerun with --resume to score the rest") from e

    def add(self, indices: list[int], rows: list[dict]) -> None:
        recs = []
        for i, r in zip(indices, rows):
            rec = [i]
            for c in self.columns[1:-1]:
                v = r.get(c, "")
                if c == "path":
                    v = path_to_text(v)
                rec.append("" if isinstance(v, float) and math.isnan(v) else (repr(v) if isinstance(v, float) else v))
            rec.append(1)
            recs.append(rec)
        if recs:
            self._write(recs)

    def close(self) -> None:
        try:
            self.f.close()
        except OSError:  # the error was raised by the write that failed already
            pass


def _job_info(scorer, paths: list[str]) -> dict:
    meta = scorer.meta
    return {"version": PARTIAL_VERSION, "model": str(meta.get("checkpoint", meta.get("preset", {}).get("name"))),
            "backend": getattr(scorer, "backend", "torch"), "resolution": str(scorer.resolution),
            "tile": str(getattr(scorer, "tiling", "off")), "precision": str(meta.get("precision", "fp32")),
            "n_inputs": len(paths)}


def score_job(scorer, inputs, *, out: str | os.PathLike | None = None, resume: bool = False,
              progress: bool = False):
    """Score ``inputs`` (files, folders, globs) on this process's shard; one merged DataFrame in
    input order on rank 0 (``None`` on other ranks), also written to ``out`` when given.

    With ``out``, finished rows are appended to ``.<out name>.partial/rank<r>.csv`` (one write
    and flush per batch) until rank 0 has written ``out``; ``resume=True`` skips the inputs
    found there (same path at the same position of the input list), so a killed job continues
    where it stopped, on any number of processes. Without ``resume`` a stale partial folder is
    discarded. Without ``out`` and with several processes, rows are gathered over the network.
    """
    paths = collect_inputs(inputs)
    r, w = rank(), world_size()
    if out is None:
        if resume:
            raise ValueError("--resume needs --out: the partial results live beside the output file")
        if w == 1:
            return scorer.score_paths(paths, progress=progress)
        mine = shard_indices(len(paths), r, w)
        df = scorer.score_paths([paths[i] for i in mine], progress=progress)
        parts = all_gather_object((mine, df.to_dict("records")))
        if r != 0:
            return None
        rows: dict[int, dict] = {}
        for idx, recs in parts:
            rows.update(zip(idx, recs))
        return scorer.frame([rows[i] for i in range(len(paths))])

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".json", ""):
        raise ValueError(f"unsupported output {out.suffix!r}: use .csv or .json")
    # rank 0 holds the output's lock for the whole job (taken before the partial folder is touched)
    with output_lock(out) if r == 0 else contextlib.nullcontext():
        return _score_job_locked(scorer, paths, out, resume, progress, r, w)


def _score_job_locked(scorer, paths: list[str], out: Path, resume: bool, progress: bool, r: int, w: int):
    folder = partial_dir(out)
    info = _job_info(scorer, paths)
    if r == 0:
        if not resume and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        job = folder / "job.json"
        if job.is_file():
            old = json.loads(job.read_text())
            diff = [k for k in ("model", "backend", "resolution", "tile", "precision")  # tile, precision: not in older jobs
                    if old.get(k, info[k] if k in ("tile", "precision") else None) != info[k]]
            if diff:
                raise ValueError(f"{path_to_text(folder)} holds partial scores made with other settings ({', '.join(diff)}: "
                                 f"{[old.get(k) for k in diff]}); delete it or score without --resume")
        atomic_write_text(job, json.dumps(info, indent=1))
    barrier()
    done = read_partial(folder, paths) if resume else {}
    todo = [i for i in range(len(paths)) if i not in done]
    mine = todo[r::w]
    writer = _PartialWriter(folder / f"rank{r}.csv", list(scorer.columns))
    try:
        def on_batch(local: list[int], rows: list[dict]) -> None:
            writer.add([mine[i] for i in local], [rows[i] for i in local])

        if mine:
            scorer.score_paths([paths[i] for i in mine], progress=progress, on_batch=on_batch)
    finally:
        writer.close()
    barrier()
    if r != 0:
        return None
    rows = read_partial(folder, paths)
    missing = [paths[i] for i in range(len(paths)) if i not in rows]
    if missing:
        raise RuntimeError(f"{len(missing)} input(s) have no row in {path_to_text(folder)} (first: {path_to_text(missing[0])}); "
                           f"rerun with --resume")
    df = scorer.frame([rows[i] for i in range(len(paths))])
    try:
        write_scores(df, out)  # atomic: a failed write leaves the previous output as it was
    except OSError as e:
        raise OSError(f"could not write {path_to_text(out)}: {e.strerror or e}; {path_to_text(out.name)} is unchanged (not written if it was "
                      f"not there) and every score is kept in {path_to_text(folder)}: make room and rerun with --resume "
                      f"(nothing is scored again)") from e
    shutil.rmtree(folder, ignore_errors=True)
    return df
