"""Records CSV: reading, validation (every bad row at once), dropping, splits."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

from biqa.records import (
    RecordsError,
    load_records,
    read_records,
    select_split,
    split_columns,
    validate_records,
    write_records,
)


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really a png")


@pytest.fixture()
def bad_csv(tmp_path, monkeypatch):
    """A records CSV written line by line, so the expected line numbers are known by hand.

    The working directory is moved elsewhere: relative paths must resolve against the CSV folder.
    """
    root = tmp_path / "data"
    for name in "abcdefghij":
        _touch(root / "img" / f"{name}.png")
    absolute = tmp_path / "elsewhere" / "abs.png"
    _touch(absolute)
    lines = [
        "path,mos,std,split",               # 1 header
        "img/a.png,3.0,0.5,train",          # 2 good
        "img/missing.png,3.0,0.5,train",    # 3 missing file
        "img/b.png,,0.5,train",             # 4 NaN MOS
        "img/c.png,abc,0.5,val",            # 5 non-numeric MOS
        "img/d.png,7.5,0.5,val",            # 6 MOS out of range [1, 5]
        "img/./a.png,2.0,0.5,test",         # 7 duplicate of line 2 (same file after normalisation)
        "img/e.png,2.0,-0.1,test",          # 8 negative std
        "img/f.png,2.0,0.5,training",       # 9 unknown split value
        ",2.0,0.5,train",                   # 10 empty path
        "img/g.png,1.0,0.5,train",          # 11 good (MOS at the lower bound)
        "img/h.png,5.0,,",                  # 12 good (MOS at the upper bound, no std, unused split)
        "img/nothere.png,,0.5,test",        # 13 missing file AND NaN MOS
        f"{absolute},4.0,0.1,test",         # 14 good (absolute path)
    ]
    csv = root / "records.csv"
    csv.write_text("\n".join(lines) + "\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return csv


EXPECTED = {  # line -> substrings of the problems on that line
    3: ["file not found"],
    4: ["MOS is missing or not a number"],
    5: ["MOS is missing or not a number"],
    6: ["outside the expected range"],
    7: ["duplicate path (first on line 2)"],
    8: ["negative std"],
    9: ["unknown split 'training'"],
    10: ["empty path"],
    13: ["file not found", "MOS is missing or not a number"],
}
GOOD_LINES = [2, 11, 12, 14]


def test_validate_reports_every_problem_with_line_numbers(bad_csv):
    df = read_records(bad_csv)
    assert len(df) == 13
    report = validate_records(df, mos_range=(1.0, 5.0))
    assert not report.ok
    assert report.n_rows == 13
    assert report.bad_lines() == set(EXPECTED)
    for line, needles in EXPECTED.items():
        msgs = [p.problem for p in report.problems if p.line == line]
        assert len(msgs) == len(needles), (line, msgs)
        for needle in needles:
            assert any(needle in m for m in msgs), (line, needle, msgs)
    assert len(report.problems) == sum(len(v) for v in EXPECTED.values())
    # The problem rows carry the path as written in the CSV.
    assert {p.path for p in report.problems if p.line == 5} == {"img/c.png"}
    text = str(report)
    assert f"{len(report.problems)} problem(s) in {len(EXPECTED)} of 13 records" in text


def test_validate_without_range_or_file_checks(bad_csv):
    report = validate_records(read_records(bad_csv), mos_range=None, check_files=False)
    # Out-of-range and missing files are no longer problems.
    assert report.bad_lines() == {4, 5, 7, 8, 9, 10, 13}
    assert not any("file not found" in p.problem for p in report.problems)


def test_load_raise_lists_all_problems(bad_csv):
    with pytest.raises(RecordsError) as exc:
        load_records(bad_csv, mos_range=(1, 5))
    msg = str(exc.value)
    for line in EXPECTED:
        assert f"line {line}:" in msg
    for line in GOOD_LINES:
        assert f"line {line}:" not in msg
    assert exc.value.report.bad_lines() == set(EXPECTED)
    assert isinstance(exc.value, ValueError)


def test_load_drop_keeps_exactly_the_good_rows(bad_csv):
    with pytest.warns(UserWarning, match="dropping bad rows"):
        df = load_records(bad_csv, mos_range=(1, 5), on_error="drop")
    assert len(df) == len(GOOD_LINES) == 4
    assert list(df.index) == [0, 1, 2, 3]
    assert [float(m) for m in df["mos"]] == [3.0, 1.0, 5.0, 4.0]
    assert list(df["path"])[:3] == ["img/a.png", "img/g.png", "img/h.png"]
    # The survivors validate cleanly.
    assert validate_records(df, mos_range=(1, 5)).ok


def test_load_ignore_keeps_everything_and_bad_mode_errors(bad_csv):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = load_records(bad_csv, mos_range=(1, 5), on_error="ignore")
    assert len(df) == 13
    assert "problem(s)" in df.attrs["validation"]
    with pytest.raises(ValueError, match="on_error"):
        load_records(bad_csv, on_error="explode")


def test_relative_paths_resolve_against_csv_folder(bad_csv):
    df = read_records(bad_csv)
    root = bad_csv.resolve().parent
    assert Path(os.getcwd()).resolve() != root
    assert df["abspath"].iloc[0] == str(root / "img" / "a.png")
    assert os.path.isfile(df["abspath"].iloc[0])
    # Absolute paths stay as they are.
    assert df["abspath"].iloc[-1] == df["path"].iloc[-1]
    assert Path(df.attrs["root"]) == root


def test_clean_file_loads(tiny_records):
    df = load_records(tiny_records, mos_range=(1, 5))
    assert len(df) == 36
    assert all(os.path.isfile(p) for p in df["abspath"])
    assert df.attrs["validation"] == "36 records, no problems"


def test_missing_columns_and_missing_file(tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("path,score\na.png,3\n")
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['mos'\]") as exc:
        read_records(csv)
    assert "'path' and 'mos'" in str(exc.value)
    csv.write_text("image,mos\na.png,3\n")
    with pytest.raises(ValueError, match=r"\['path'\]"):
        load_records(csv)
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "nope.csv")


def test_split_columns():
    df = pd.DataFrame(columns=["path", "mos", "split_seed1", "splitter", "split", "my_split", "split_official"])
    assert split_columns(df) == ["split_seed1", "split", "split_official"]
    assert split_columns(pd.DataFrame(columns=["path", "mos"])) == []


def test_select_split(tiny_records):
    df = load_records(tiny_records)
    assert len(select_split(df, "train")) == 24
    assert len(select_split(df, "val")) == 6
    assert len(select_split(df, "test")) == 6
    assert select_split(df, None) is df
    assert select_split(df, "all") is df
    test = select_split(df, "test")
    assert set(test["ref"]) == {"r5"}
    assert list(test.index) == list(range(6))
    assert test.attrs["root"] == df.attrs["root"]


def test_select_split_column_choice():
    df = pd.DataFrame({
        "path": ["a", "b", "c", "d"],
        "mos": [1, 2, 3, 4],
        "split_b": ["train", "train", "val", "test"],
        "split": ["test", "train", "train", "val"],
        "split_a": ["val", "val", "val", "train"],
    })
    # 'split' wins over earlier split_* columns.
    assert list(select_split(df, "train")["path"]) == ["b", "c"]
    assert list(select_split(df, "val", column="split_a")["path"]) == ["a", "b", "c"]
    no_plain = df.drop(columns=["split"])
    # Otherwise the first split column in column order.
    assert list(select_split(no_plain, "train")["path"]) == ["a", "b"]
    with pytest.raises(ValueError, match="split_zzz"):
        select_split(df, "train", column="split_zzz")
    with pytest.raises(ValueError, match="no split column"):
        select_split(df[["path", "mos"]], "train")


def test_write_records_round_trip(tiny_records, tmp_path):
    df = load_records(tiny_records)
    out = write_records(df, tmp_path / "sub" / "copy.csv")
    raw = pd.read_csv(out)
    assert "abspath" not in raw.columns
    assert len(raw) == 36
    assert list(raw["path"]) == list(df["path"])


def test_train_eval_and_probe_choose_the_same_default_split_column(tmp_path, monkeypatch):
    """'split' before any split_* column, wherever it stands; the probe took the first split column in
    the file's order (here split_official), so it fitted other rows than biqa train / eval."""
    import numpy as np

    import biqa.probe as P
    from biqa.config import load_config
    from biqa.records import default_split_column
    from biqa.trainer import Trainer
    from conftest import make_image

    assert default_split_column(pd.DataFrame(columns=["path", "split_b", "split", "split_a"])) == "split"
    assert default_split_column(pd.DataFrame(columns=["path", "split_b", "split_a"])) == "split_b"
    assert default_split_column(pd.DataFrame(columns=["path", "mos", "splitter"])) is None

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    n = 12
    for i in range(n):
        make_image(rng, blur=0.1 * i).save(tmp_path / "img" / f"{i}.png")
    # split_official first: all train; split (the default): 6 train, 3 val, 3 test
    split = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    recs = tmp_path / "r.csv"
    pd.DataFrame({"path": [f"img/{i}.png" for i in range(n)], "mos": np.linspace(1, 5, n),
                  "split_official": ["train"] * n, "split": split}).to_csv(recs, index=False)
    df = load_records(recs)
    assert len(select_split(df, "train")) == 6  # biqa eval's choice
    cfg = load_config({"name": "s", "out_dir": str(tmp_path / "run"), "progress": False,
                       "data": {"records": str(recs), "crop_size": 32, "num_workers": 0},
                       "model": {"preset": "lite0-mos", "pretrained": False}})
    t = Trainer(cfg)
    assert t.split_column == "split" and (len(t.train_df), len(t.val_df), len(t.test_df)) == (6, 3, 3)
    # the probe, on stand-in features (the choice of rows is what is checked)
    monkeypatch.setattr(P, "cached_path_features", lambda paths, *a, **k: rng.normal(size=(len(paths), 8)))
    monkeypatch.setattr(P, "save_linear_checkpoint", lambda *a, **k: tmp_path / "probe.safetensors")
    res = P.fit_probe(recs, tmp_path / "probe", progress=False)
    assert res["split_column"] == "split" and res["n_fit"] == 9 and res["test"]["n"] == 3
