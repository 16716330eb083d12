"""Importers: a miniature of every dataset's original on-disk layout, and the full-size republished labels.

Miniatures take their file names and MOS values from the first rows of the real
label files in /work/shared/data/labels (BID is not there: its rows are made up
in the BID layout).  Each has one missing image, one MOS out of range and one
extra image file, which the report must name.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import savemat

from biqa.datasets import (get_info, import_dataset, inspect_records, list_datasets, read_meta, resolve_name)
from biqa.records import load_records, read_records

LABELS = Path("/work/shared/data/labels")
needs_labels = pytest.mark.skipif(not LABELS.is_dir(), reason="republished label files not available")


def head(name: str, n: int = 6) -> pd.DataFrame:
    return pd.read_csv(LABELS / name).head(n)


def img(path: Path, i: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((8, 8, 3), (i * 37) % 256, np.uint8)
    a[::2, ::2] = 255
    fmt = {".jpg": "JPEG", ".bmp": "BMP", ".png": "PNG"}[path.suffix.lower()]
    Image.fromarray(a).save(path, format=fmt)


# Each builder writes a miniature under ``root`` and returns (root, labels_file, expected), where
# expected = {rows, missing: file name, oor: file name, oor_value, extra: file name}.

def build_koniq(tmp: Path):
    t = head("KonIQ-10k.txt")
    base = tmp / "koniq10k"
    names = [p.rsplit("/", 1)[1] for p in t["dis_img_path"]]
    mos = t["score"].to_numpy().copy()
    mos[2] = 7.5  # out of range (1-5)
    rows = []
    for i, (n, m) in enumerate(zip(names, mos)):
        votes = np.array([1, 2, 10, 60, 27]) if i % 2 else np.array([2, 8, 30, 50, 10])
        rows.append({"image_name": n, **{f"c{k + 1}": int(v) for k, v in enumerate(votes)}, "c_total": int(votes.sum()),
                     "MOS": m, "SD": 0.6, "MOS_zscore": (m - 1) * 25, "set": ["training", "validation", "test"][i % 3]})
    base.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(base / "koniq10k_distributions_sets.csv", index=False)
    for i, n in enumerate(names):
        if i != 4:
            img(base / "1024x768" / n, i)
    img(base / "1024x768" / "999999.jpg")
    return base, None, dict(rows=6, missing=names[4], oor=names[2], oor_value=7.5, extra="999999.jpg")


def build_spaq(tmp: Path):
    t = head("SPAQ.txt")
    base = tmp / "SPAQ"
    names = [p.rsplit("/", 1)[1] for p in t["dis_img_path"]]
    mos = t["score"].to_numpy().copy()
    mos[1] = 120.0
    (base / "Annotations").mkdir(parents=True)
    table = pd.DataFrame({"Image name": names, "MOS": mos, "Brightness": 50.0, "Colorfulness": 40.0,
                          "Contrast": 45.0, "Noisiness": 30.0, "Sharpness": 55.0})
    table.to_csv(base / "Annotations" / "MOS and Image attribute scores.csv", index=False)
    for i, n in enumerate(names):
        if i != 3:
            img(base / "TestImage" / n, i)
    img(base / "TestImage" / "99999.jpg")
    return base, None, dict(rows=6, missing=names[3], oor=names[1], oor_value=120.0, extra="99999.jpg")


def build_livec(tmp: Path):
    t = head("LIVE_Challenge.txt")
    base = tmp / "ChallengeDB_release"
    practice = [f"t{k}.bmp" for k in range(1, 8)]
    names = [p.rsplit("/", 1)[1] for p in t["dis_img_path"]]
    mos = np.concatenate([np.full(7, 50.0), t["score"].to_numpy()])
    mos[7 + 5] = -4.0
    all_names = practice + names
    (base / "Data").mkdir(parents=True)
    cell = np.array(all_names, dtype=object).reshape(-1, 1)  # a MATLAB cell array, one name per row
    savemat(base / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(base / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos.reshape(1, -1)})
    savemat(base / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.full((1, len(mos)), 15.0)})
    for i, n in enumerate(practice):
        img(base / "Images" / "trainingImages" / n, i)
    for i, n in enumerate(names):
        if i != 0:
            img(base / "Images" / n, i)
    img(base / "Images" / "5000.bmp")
    return base, None, dict(rows=6, missing=names[0], oor=names[5], oor_value=-4.0, extra="5000.bmp")


def build_bid(tmp: Path):
    base = tmp / "BID"
    nums = [1, 2, 3, 4, 5, 6]
    mos = [3.1, 4.2, 0.7, 2.5, 5.8, 1.9]  # 5.8 is out of range (0-5)
    base.mkdir(parents=True)
    grades = pd.DataFrame({"Image Number": nums, "Average Subjective Grade": mos})
    grades.to_csv(base / "DatabaseGrades.csv", index=False)
    for i in nums:
        if i != 2:
            img(base / "ImageDatabase" / f"DatabaseImage{i:04d}.JPG", i)
    img(base / "ImageDatabase" / "DatabaseImage0999.JPG")
    return base, None, dict(rows=6, missing="DatabaseImage0002.JPG", oor="DatabaseImage0005.JPG", oor_value=5.8,
                            extra="DatabaseImage0999.JPG")


def build_uhdiqa(tmp: Path):
    full = pd.read_csv(LABELS / "UHD-IQA.txt")
    folder = full["dis_img_path"].str.split("/").str[1]
    t = pd.concat([full[folder == f].head(2) for f in ("training", "validation", "test")], ignore_index=True)
    base = tmp / "UHD-IQA"
    names = [p.rsplit("/", 1)[1] for p in t["dis_img_path"]]
    folders = [p.split("/")[1] for p in t["dis_img_path"]]
    mos = t["score"].to_numpy().copy()
    mos[1] = 1.3
    base.mkdir(parents=True)
    for f in ("training", "validation", "test"):
        sel = [i for i, x in enumerate(folders) if x == f]
        pd.DataFrame({"image_name": [names[i] for i in sel], "quality_mos": mos[sel],
                      "width": 3840, "user_name": [t["user_name"][i] for i in sel]}
                     ).to_csv(base / f"uhd-iqa-{f}-metadata.csv", index=False)
    for i, (n, f) in enumerate(zip(names, folders)):
        if i != 3:
            img(base / "challenge" / f / n, i)
    img(base / "challenge" / "test" / "99999.jpg")
    return base, None, dict(rows=6, missing=names[3], oor=names[1], oor_value=1.3, extra="99999.jpg",
                            splits={"train": 2, "val": 2, "test": 2})


def build_tid2013(tmp: Path):
    t = head("TID2013.txt")
    base = tmp / "tid2013"
    names = [p.rsplit("/", 1)[1] for p in t["dis_img_path"]]
    mos = t["score"].to_numpy().copy()
    mos[5] = 9.7
    base.mkdir(parents=True)
    (base / "mos_with_names.txt").write_text("".join(f"{m:.5f} {n}\r\n" for m, n in zip(mos, names)))
    (base / "mos_std.txt").write_text("".join(f"{0.1 * (i + 1):.5f}\n" for i in range(len(names))))
    img(base / "reference_images" / "I01.BMP")
    for i, n in enumerate(names):
        if i != 1:
            img(base / "distorted_images" / n, i)
    img(base / "distorted_images" / "i26_01_1.bmp")
    return base, None, dict(rows=6, missing=names[1], oor=names[5], oor_value=9.7, extra="i26_01_1.bmp")


def build_kadid10k(tmp: Path):
    t = head("KADID-10k.txt")
    base = tmp / "kadid10k"
    names = [p.rsplit("/", 1)[1] for p in t["dis_img_path"]]
    refs = [p.rsplit("/", 1)[1] for p in t["ref_img_path"]]
    mos = t["score"].to_numpy().copy()
    mos[0] = 0.5
    base.mkdir(parents=True)
    pd.DataFrame({"dist_img": names, "ref_img": refs, "dmos": mos, "var": 0.25}).to_csv(base / "dmos.csv", index=False)
    img(base / "images" / "I01.png")
    for i, n in enumerate(names):
        if i != 2:
            img(base / "images" / n, i)
    img(base / "images" / "I99_01_01.png")
    return base, None, dict(rows=6, missing=names[2], oor=names[0], oor_value=0.5, extra="I99_01_01.png")


def build_csiq(tmp: Path):
    t = head("CSIQ.txt")
    base = tmp / "CSIQ"
    rel = [p.split("/", 1)[1] for p in t["dis_img_path"]]  # dst_imgs/AWGN/1600.AWGN.1.png
    names = [p.rsplit("/", 1)[1] for p in rel]
    mos = t["score"].to_numpy().copy()
    mos[3] = 1.4
    base.mkdir(parents=True)
    rows = [{"image": n.split(".")[0] if not n.split(".")[0].isdigit() else int(n.split(".")[0]), "dst_idx": 1,
             "dst_type": "noise", "dst_lev": int(n.split(".")[2]), "dmos_std": 0.05, "dmos": m}
            for n, m in zip(names, mos)]
    pd.DataFrame(rows).to_csv(base / "csiq.DMOS.csv", index=False)
    img(base / "src_imgs" / "1600.png")
    img(base / "src_imgs" / "aerial_city.png")
    for i, r in enumerate(rel):
        if i != 4:
            img(base / r, i)
    img(base / "dst_imgs" / "AWGN" / "zzz.AWGN.1.png")
    return base, None, dict(rows=6, missing=names[4], oor=names[3], oor_value=1.4, extra="zzz.AWGN.1.png")


def build_live(tmp: Path):
    t = head("LIVE.txt")  # LIVE/jp2k/img2.bmp .. img7.bmp
    base = tmp / "databaserelease2"
    total = 982
    orgs = np.ones(total)
    dmos = np.zeros(total)
    refnames = ["studentsculpture.bmp"] * total
    rows = []
    for n, (p, r, s) in enumerate(zip(t["dis_img_path"], t["ref_img_path"], t["score"])):
        k = int(Path(p).stem[3:])  # jp2k is first in .mat order: entry k-1
        orgs[k - 1], dmos[k - 1], refnames[k - 1] = 0, s, Path(r).name
        rows.append((p.split("/", 1)[1], Path(r).name))
    dmos[5] = 130.0  # img6.bmp out of range
    base.mkdir(parents=True)
    savemat(base / "dmos_realigned.mat", {"dmos_new": dmos.reshape(1, -1), "orgs": orgs.reshape(1, -1),
                                          "dmos_std": np.full((1, total), 8.0)})
    savemat(base / "refnames_all.mat", {"refnames_all": np.array(refnames, dtype=object).reshape(1, -1)})
    img(base / "jp2k" / "img1.bmp")  # a reference copy (orgs == 1): known, not extra
    for i, (rel, ref) in enumerate(rows):
        if i != 2:
            img(base / rel, i)
        img(base / "refimgs" / ref)
    img(base / "jp2k" / "img300.bmp")
    return base, None, dict(rows=6, missing="img4.bmp", oor="img6.bmp", oor_value=130.0, extra="img300.bmp")


BUILDERS = {"koniq10k": build_koniq, "spaq": build_spaq, "livec": build_livec, "bid": build_bid,
            "uhdiqa": build_uhdiqa, "tid2013": build_tid2013, "kadid10k": build_kadid10k, "csiq": build_csiq,
            "live": build_live}


def test_every_dataset_has_a_miniature():
    assert sorted(BUILDERS) == sorted(list_datasets())


@needs_labels
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_miniature_import_reports_missing_extra_and_out_of_range(tmp_path, name):
    root, lf, exp = BUILDERS[name](tmp_path / "data")
    out = tmp_path / "records" / f"{name}.csv"
    df, rep = import_dataset(name, tmp_path / "data", out, labels_file=lf)
    info = get_info(name)
    assert rep.n_rows == exp["rows"] == len(df)
    # one missing file, named in the report
    assert [Path(p).name for p in rep.missing_files] == [exp["missing"]]
    # one extra file (references / practice images / reference copies are not extra)
    assert [Path(p).name for p in rep.extra_files] == [exp["extra"]]
    # one MOS out of range, with its value
    assert [(Path(p).name, v) for p, v in rep.out_of_range] == [(exp["oor"], pytest.approx(exp["oor_value"]))]
    # a miniature never has the real count
    assert any(f"expected {info.n_images}" in c for c in rep.count_problems)
    assert not rep.ok
    text = str(rep)
    for key in ("missing", "extra", "oor"):
        assert exp[key] in text
    assert "1 image file(s) missing" in text and "1 MOS value(s) outside" in text
    # written: records + meta + full report; paths relative to the CSV folder when inside it (here: absolute)
    assert out.is_file() and (out.parent / f"{name}.meta.json").is_file()
    assert (out.parent / f"{name}.import.txt").is_file()
    meta = read_meta(out)
    assert meta["dataset"] == name and meta["higher_is_better"] is info.higher_is_better
    assert meta["mos_range"] == list(info.mos_range) and meta["n_images"] == 6
    rec = read_records(out)
    assert len(rec) == 6 and all(Path(p).is_absolute() for p in rec["path"])
    present = rec[~rec["path"].map(lambda p: Path(p).name == exp["missing"])]
    assert all(Path(p).is_file() for p in present["abspath"])
    assert rep.files_checked


@needs_labels
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_miniature_records_inside_the_dataset_folder_are_relative(tmp_path, name):
    root, lf, exp = BUILDERS[name](tmp_path)
    out = root / "records.csv"
    df, rep = import_dataset(name, root, out, labels_file=lf, drop_bad=True)
    assert rep.dropped_rows == 2 and len(df) == 4
    rec = load_records(out, mos_range=get_info(name).mos_range)  # validates: all files exist, MOS in range
    assert not any(Path(p).is_absolute() for p in rec["path"])
    assert all(Path(p).is_file() for p in rec["abspath"])


@needs_labels
def test_synthetic_miniatures_carry_reference_type_and_level(tmp_path):
    root, _, _ = build_tid2013(tmp_path / "t")
    df, _ = import_dataset("tid2013", root)
    assert set(df["ref"]) == {"i01"}
    assert df["dist_type"].tolist() == [1, 1, 1, 1, 1, 2] and df["dist_level"].tolist() == [1, 2, 3, 4, 5, 1]
    assert df["std"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    root, _, _ = build_kadid10k(tmp_path / "k")
    df, _ = import_dataset("kadid10k", root)
    assert set(df["ref"]) == {"I01"} and df["dist_level"].tolist() == [1, 2, 3, 4, 5, 1]
    assert df["std"].tolist() == pytest.approx([0.5] * 6)
    root, _, _ = build_csiq(tmp_path / "c")
    df, rep = import_dataset("csiq", root)
    assert set(df["dist_type"]) == {"awgn"} and rep.higher_is_better is False
    assert set(df["ref"]) == {"1600", "aerial_city"}
    root, _, _ = build_live(tmp_path / "l")
    df, rep = import_dataset("live", root)
    assert set(df["dist_type"]) == {"jp2k"} and df["std"].tolist() == [8.0] * 6
    assert any("dropped 976 reference copies" in n for n in rep.notes)


@needs_labels
def test_koniq_votes_official_split_and_512_folder(tmp_path):
    root, _, _ = build_koniq(tmp_path)
    df, rep = import_dataset("koniq10k", root)
    assert [f"c{k}" for k in range(1, 6)] == [c for c in df.columns if c in {f"c{k}" for k in range(1, 6)}]
    assert df["split_official"].tolist() == ["train", "val", "test"] * 2
    assert rep.split_counts["split_official"] == {"train": 2, "val": 2, "test": 2}
    assert any("official split: 2 train images, expected 7058" in c for c in rep.count_problems)
    df, rep = import_dataset("koniq10k", root, labels_only=True, resize="512x384")
    assert all("/512x384/" in p for p in df["path"]) and not rep.missing_files and not rep.files_checked


@needs_labels
def test_livec_drops_practice_images(tmp_path):
    root, _, _ = build_livec(tmp_path)
    df, rep = import_dataset("livec", root)
    assert len(df) == 6 and not any(Path(p).name.startswith("t") for p in df["path"])
    assert any("practice" in n and "t1.bmp" in n for n in rep.notes)
    assert df["std"].tolist() == [15.0] * 6


@needs_labels
def test_uhdiqa_official_split_from_metadata_files(tmp_path):
    root, _, exp = build_uhdiqa(tmp_path)
    df, rep = import_dataset("uhdiqa", root)
    assert df["split_official"].value_counts().to_dict() == exp["splits"]
    assert "user_name" in df.columns


@needs_labels
def test_check_only_and_labels_only_write_nothing(tmp_path):
    root, _, _ = build_spaq(tmp_path / "d")
    out = tmp_path / "o" / "spaq.csv"
    df, rep = import_dataset("spaq", root, out, check_only=True)
    assert not out.exists() and not rep.written and len(rep.missing_files) == 1
    df, rep = import_dataset("spaq", root, labels_only=True)
    assert not rep.missing_files and not rep.extra_files and not rep.files_checked
    assert "not checked" in str(rep)


@needs_labels
def test_resize_writes_copies_next_to_records(tmp_path):
    root, _, _ = build_spaq(tmp_path / "d")
    out = tmp_path / "o" / "spaq.csv"
    df, rep = import_dataset("spaq", root, out, resize=4)
    rec = read_records(out)
    present = [p for p in rec["abspath"] if Path(p).is_file()]
    assert len(present) == 5 and all("spaq_images_4" in p for p in present)
    assert all(Image.open(p).size == (4, 4) for p in present)
    assert not any(Path(p).is_absolute() for p in rec["path"][rec["abspath"].isin(present)])


def test_xlsx_without_reader_is_a_clear_error(tmp_path):
    if importlib.util.find_spec("openpyxl") is not None:
        pytest.skip("openpyxl installed")
    (tmp_path / "Annotations").mkdir()
    x = tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx"
    x.write_bytes(b"PK\x03\x04")
    with pytest.raises(ImportError, match="pip install openpyxl"):
        import_dataset("spaq", tmp_path)


def test_missing_label_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="koniq10k_distributions_sets.csv"):
        import_dataset("koniq10k", tmp_path)
    with pytest.raises(KeyError, match="unknown dataset"):
        import_dataset("nope", tmp_path)


def test_names_and_aliases():
    assert resolve_name("KonIQ-10k") == "koniq10k" and resolve_name("LIVE_Challenge") == "livec"
    assert resolve_name("KADID") == "kadid10k" and resolve_name("clive") == "livec"
    assert get_info("live").higher_is_better is False and get_info("csiq").higher_is_better is False
    assert get_info("kadid10k").higher_is_better is True


# ----------------------------------------------------------------------------- full-size republished labels

FULL = {  # file, rows, refs, official split
    "koniq10k": ("KonIQ-10k.txt", 10073, None, None),
    "spaq": ("SPAQ.txt", 11125, None, None),
    "livec": ("LIVE_Challenge.txt", 1161, None, None),  # the republished file lacks 100.bmp (1,162 in the release)
    "uhdiqa": ("UHD-IQA.txt", 6073, None, {"train": 4269, "val": 904, "test": 900}),
    "tid2013": ("TID2013.txt", 3000, 25, None),
    "kadid10k": ("KADID-10k.txt", 10125, 81, None),
    "csiq": ("CSIQ.txt", 866, 30, None),
    "live": ("LIVE.txt", 779, 29, None),
}


@needs_labels
@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_republished_labels(tmp_path, name):
    fname, rows, refs, split = FULL[name]
    df, rep = import_dataset("republished", tmp_path, labels_file=LABELS / fname, labels_only=True)
    assert rep.dataset == name and len(df) == rows == rep.n_rows
    assert not rep.out_of_range and not rep.invalid
    lo, hi = get_info(name).mos_range
    assert lo <= df["mos"].min() and df["mos"].max() <= hi
    if refs is not None:
        assert df["ref"].nunique() == refs == rep.n_refs
    if split is not None:
        assert df["split_official"].value_counts().to_dict() == split
    if name == "livec":
        assert rep.count_problems == ["1161 rows, expected 1162 for LIVE In the Wild Image Quality Challenge"]
    else:
        assert rep.ok, str(rep)


@needs_labels
def test_republished_by_name_and_parsed_types(tmp_path):
    df, rep = import_dataset("tid2013", LABELS, labels_only=True, republished=True)
    assert len(df) == 3000 and df["dist_type"].nunique() == 24 and sorted(df["dist_level"].unique()) == [1, 2, 3, 4, 5]
    assert (df.groupby("ref").size() == 120).all()
    df, _ = import_dataset("kadid10k", LABELS, labels_only=True, republished=True)
    assert df["dist_type"].nunique() == 25 and (df.groupby(["ref", "dist_type"]).size() == 5).all()
    out = tmp_path / "kadid.csv"
    import_dataset("kadid10k", LABELS, out, labels_only=True, republished=True)
    assert json.loads((tmp_path / "kadid.meta.json").read_text())["n_refs"] == 81


@needs_labels
def test_inspect_records(tmp_path):
    out = tmp_path / "uhd.csv"
    import_dataset("republished", tmp_path, out, labels_file=LABELS / "UHD-IQA.txt", labels_only=True)
    info = inspect_records(out, histogram=tmp_path / "hist.png")
    assert info["n"] == 6073 and info["dataset"] == "uhdiqa" and info["direction"] == "higher is better"
    assert info["splits"]["split_official"] == {"train": 4269, "val": 904, "test": 900}
    assert info["mos"]["min"] == pytest.approx(0.2865) and info["mos"]["max"] == pytest.approx(0.889)
    assert info["n_refs"] is None
    with Image.open(info["histogram"]) as im:
        assert im.format == "PNG" and im.size[0] > 100
    out = tmp_path / "live.csv"
    import_dataset("republished", tmp_path, out, labels_file=LABELS / "LIVE.txt", labels_only=True)
    info = inspect_records(out)
    assert info["higher_is_better"] is False and info["n_refs"] == 29 and "histogram" not in info
