"""LIVE Challenge import: stand-ins under the same stem, partial copies, the copied notice.

A fake release is built in tmp_path (the .mat files written here, with values
chosen here); one test runs against the real partial copy in
``../shared/data/livec/ChallengeDB_release`` when it exists.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import savemat

from biqa.cli import main
from biqa.datasets import import_dataset, read_meta
from biqa.datasets.files import is_lossless_file, webp_is_lossless
from biqa.records import load_records, read_records

REAL = next((p for p in (Path(__file__).resolve().parents[1] / "../shared/data/livec/ChallengeDB_release",
                         Path("/work/shared/data/livec/ChallengeDB_release")) if p.is_dir()), None)

PRACTICE = [f"t{k}.bmp" for k in range(1, 8)]
# labelled name -> what the copy holds under Images/
LAYOUT = {
    "10.bmp": "10.webp",        # lossless WebP stand-in
    "11.bmp": "11.webp",        # lossless WebP stand-in
    "12.bmp": "12.bmp",         # as released
    "1000.JPG": "1000.JPG",     # as released
    "13.bmp": None,             # withheld
    "14.bmp": "14.jpg",         # lossy stand-in: reported, not used
    "15.bmp": "15.lossy.webp",  # lossy WebP under the same stem (written as 15.webp): reported, not used
}
TEST_MOS = [12.5, 33.0, 47.25, 61.0, 70.5, 88.0, 95.5]
TEST_STD = [10.0, 11.5, 12.0, 13.25, 14.0, 15.5, 16.0]
NOTICE = "-----------COPYRIGHT NOTICE STARTS WITH THIS LINE------------\nfake notice for a test\n"


def _pixels(i: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (16, 16, len(mode)), dtype=np.uint8), mode)


def build(tmp: Path) -> Path:
    base = tmp / "ChallengeDB_release"
    (base / "Data").mkdir(parents=True)
    (base / "Images").mkdir()
    names = PRACTICE + list(LAYOUT)
    cell = np.array(names, dtype=object).reshape(1, -1)  # a MATLAB cell array, as released
    savemat(base / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(base / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[50.0] * 7 + TEST_MOS])})
    savemat(base / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.array([[20.0] * 7 + TEST_STD])})
    (base / "README.txt").write_text(NOTICE)
    for i, stored in enumerate(LAYOUT.values()):
        if stored is None:
            continue
        im = _pixels(i)
        if stored.endswith(".lossy.webp"):
            im.save(base / "Images" / stored.replace(".lossy", ""), format="WEBP", quality=60)
        elif stored.endswith(".webp"):
            im.save(base / "Images" / stored, format="WEBP", lossless=True)
        else:
            im.save(base / "Images" / stored, format="JPEG" if stored.lower().endswith(".jpg") else "BMP")
    return base


def test_strict_reports_missing_and_lossy(tmp_path):
    root = build(tmp_path)
    df, rep = import_dataset("livec", root)
    assert not rep.ok and len(df) == 7
    img = root / "Images"
    assert sorted(Path(p).name for p in rep.missing_files) == ["13.bmp", "14.bmp", "15.bmp"]
    assert sorted((Path(a).name, Path(b).name) for a, b in rep.lossy_substitutes) == [
        ("14.bmp", "14.jpg"), ("15.bmp", "15.webp")]
    assert sorted((Path(a).name, Path(b).name) for a, b in rep.substituted) == [
        ("10.bmp", "10.webp"), ("11.bmp", "11.webp")]
    assert any("2 image(s) matched by stem to a lossless stand-in (.bmp -> .webp: 2" in n for n in rep.notes)
    assert not rep.extra_files  # the lossy files are listed as lossy stand-ins, not as extra
    text = str(rep)
    assert "2 lossy stand-in(s) not used" in text and "14.jpg" in text and "NOT OK" in text
    assert df.loc[df["path"].str.endswith("10.webp"), "path"].item() == str(img / "10.webp")


def test_partial_drops_the_absent_rows_and_copies_the_notice(tmp_path):
    root = build(tmp_path)
    out = tmp_path / "rec" / "livec.csv"
    df, rep = import_dataset("livec", root, out, partial=True)
    assert rep.ok and rep.partial and not rep.missing_files and not rep.count_problems
    assert sorted(Path(p).name for p in rep.dropped_missing) == ["13.bmp", "14.bmp", "15.bmp"]
    kept = {"10.bmp": "10.webp", "11.bmp": "11.webp", "12.bmp": "12.bmp", "1000.JPG": "1000.JPG"}
    rec = load_records(out, mos_range=(0, 100))  # validates: every file exists, MOS in range
    assert [Path(p).name for p in rec["abspath"]] == list(kept.values())
    want = {n: (m, s) for n, m, s in zip(LAYOUT, TEST_MOS, TEST_STD)}
    assert rec["mos"].tolist() == [want[n][0] for n in kept]
    assert rec["std"].tolist() == [want[n][1] for n in kept]
    # the notice travels with the records, and the meta and report say so
    lic = out.with_name("livec.LICENSE.txt")
    assert lic.read_text() == NOTICE and str(lic) in rep.written and rep.notice == str(lic)
    meta = read_meta(out)
    assert meta["notice_file"] == "livec.LICENSE.txt" and meta["partial"] is True
    assert meta["higher_is_better"] is True and meta["n_images"] == 4
    assert meta["import"]["dropped_missing"] == 3 and meta["import"]["substituted"] == 2
    full = out.with_name("livec.import.txt").read_text()
    assert "dropped 3 row(s) whose image is missing:" in full
    assert all(f"Images/{n}" in full for n in ("13.bmp", "14.bmp", "15.bmp"))
    assert "livec.LICENSE.txt" in full and "10.bmp -> " in full


def test_cli_exit_status_follows_the_report(tmp_path, capsys):
    root = build(tmp_path)
    assert main(["data", "import", "livec", "--root", str(root), "--check"]) == 1
    assert "NOT OK" in capsys.readouterr().out  # the message and the exit status agree
    out = tmp_path / "o" / "livec.csv"
    assert main(["data", "import", "livec", "--root", str(root), "--partial", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "partial copy: dropped 3 row(s)" in printed and printed.rstrip().endswith(f"-> {out}")
    assert len(read_records(out)) == 4 and out.with_name("livec.LICENSE.txt").is_file()


def test_notice_missing_is_noted_and_partial_never_allows_more_rows(tmp_path, monkeypatch):
    root = build(tmp_path)
    (root / "README.txt").unlink()
    out = tmp_path / "livec.csv"
    _, rep = import_dataset("livec", root, out, partial=True)
    assert rep.ok and rep.notice is None and any("README.txt not found" in n for n in rep.notes)
    assert read_meta(out)["notice_file"] is None and not out.with_name("livec.LICENSE.txt").exists()
    # 7 labelled rows where only 3 are known to exist: a problem even for a partial copy
    import biqa.datasets.importing as importing
    small = dataclasses.replace(importing.get_info("livec"), n_images=3)
    monkeypatch.setattr(importing, "get_info", lambda name: small)
    _, rep = import_dataset("livec", root, partial=True)
    assert not rep.ok and rep.count_problems == ["7 labelled rows, expected at most 3 for " + small.title]


def test_stand_in_is_generic(tmp_path):
    """Any importer gets it: a BID layout whose first image is kept as PNG."""
    base = tmp_path / "BID"
    (base / "ImageDatabase").mkdir(parents=True)
    pd.DataFrame({"Image Number": [1, 2], "Average Subjective Grade": [3.0, 4.0]}).to_csv(
        base / "DatabaseGrades.csv", index=False)
    _pixels(1).save(base / "ImageDatabase" / "DatabaseImage0001.png")
    _pixels(2).save(base / "ImageDatabase" / "DatabaseImage0002.JPG")
    df, rep = import_dataset("bid", base)
    assert not rep.missing_files and [Path(p).name for p in df["path"]] == ["DatabaseImage0001.png",
                                                                          "DatabaseImage0002.JPG"]
    assert len(rep.substituted) == 1 and not rep.lossy_substitutes
    # a file another row labels is never a stand-in
    pd.DataFrame({"Image Number": [1, "DatabaseImage0001.png"], "Average Subjective Grade": [3.0, 4.0]}).to_csv(
        base / "DatabaseGrades.csv", index=False)
    df, rep = import_dataset("bid", base)
    assert [Path(p).name for p in rep.missing_files] == ["DatabaseImage0001.JPG"] and not rep.substituted


def test_lossless_detection(tmp_path):
    rgb, rgba = _pixels(0), _pixels(1, "RGBA")
    cases = {"a.webp": (rgb, dict(lossless=True), True), "b.webp": (rgb, dict(quality=80), False),
             "c.webp": (rgba, dict(lossless=True), True), "d.webp": (rgba, dict(quality=80), False),
             "e.png": (rgb, {}, True), "f.bmp": (rgb, {}, True), "g.jpg": (rgb, {}, False),
             "h.tif": (rgb, dict(compression="tiff_lzw"), True), "i.tif": (rgb, dict(compression="jpeg"), False)}
    for name, (im, kw, lossless) in cases.items():
        im.save(tmp_path / name, **kw)
        assert is_lossless_file(tmp_path / name) is lossless, name
    assert webp_is_lossless(tmp_path / "e.png") is None  # not a WebP
    (tmp_path / "x.webp").write_bytes(b"RIFF\x04\x00\x00\x00WEBP")  # truncated
    assert webp_is_lossless(tmp_path / "x.webp") is None and not is_lossless_file(tmp_path / "x.webp")


@pytest.mark.skipif(REAL is None, reason="needs ../shared/data/livec/ChallengeDB_release")
def test_real_partial_copy(tmp_path):
    out = tmp_path / "livec.csv"
    df, rep = import_dataset("livec", REAL, out, partial=True)
    assert rep.ok and len(df) == 880 and len(rep.dropped_missing) == 1162 - 880
    rec = load_records(out, mos_range=(0, 100))
    assert len(rec) == 880 and all(Path(p).is_file() for p in rec["abspath"])
    assert 0 < rec["mos"].min() and rec["mos"].max() < 100
    assert rec["std"].notna().all() and (rec["std"] > 0).all()
    assert len(rep.substituted) == sum(Path(p).suffix == ".webp" for p in rec["abspath"]) > 0
    assert not rep.lossy_substitutes and not rep.extra_files
    assert out.with_name("livec.LICENSE.txt").read_text() == (REAL / "README.txt").read_text()
    meta = json.loads(out.with_name("livec.meta.json").read_text())
    assert meta["notice_file"] == "livec.LICENSE.txt" and meta["import"]["ok"] is True


def test_ensure_livec_adds_the_protocol_splits_once(tmp_path):
    """A fresh checkout: ensure_livec imports the copy and adds split_seed1..10 (70/10/20), which the
    accuracy guard and the int8 calibration recipe read; existing columns are kept as they are."""
    from biqa.datasets import add_splits
    from biqa.recipe import ensure_livec

    out = tmp_path / "livec" / "livec.csv"
    df = ensure_livec(out, build(tmp_path))
    assert len(df) == 4 and [f"split_seed{s}" for s in range(1, 11)] == [c for c in df.columns if c.startswith("split")]
    assert set(read_records(out).columns) >= {"split_seed1", "split_seed10"}  # written back
    alone = add_splits(df[["path", "mos", "std"]], scheme="random", ratios=(70, 10, 20), seeds=[7])
    assert (alone["split_seed7"] == df["split_seed7"]).all()  # a column depends on its seed only
    rows = read_records(out)
    rows["split_seed1"] = ["test", "test", "train", "val"]  # a user's own split is not overwritten
    rows.to_csv(out, index=False)
    again = ensure_livec(out, tmp_path / "nowhere", seeds=[1, 11])
    assert list(again["split_seed1"]) == ["test", "test", "train", "val"] and "split_seed11" in again.columns
    assert all(Path(p).is_file() for p in again["abspath"])
