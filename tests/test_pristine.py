"""biqa.synth.pristine: JPEG streams out of EET containers, files out of Debian packages, the data build."""
from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa.synth.pristine import BACKGROUNDS, PACKAGE, PHOTOS, build_pristine, deb_members, largest_jpeg


def _jpeg(w: int, h: int, seed: int) -> tuple[bytes, np.ndarray]:
    """JPEG bytes of a smooth random image and the pixels Pillow decodes from them."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _container(*streams: bytes) -> bytes:
    """An EET-like blob: a header, a false JPEG marker, the streams with padding between them."""
    parts = [b"\x1e\xe7\x0f\x42" + b"\x00" * 12, b"junk \xff\xd8\xff but not a jpeg", b"\x00" * 7]
    for s in streams:
        parts += [s, b"img-name.png\x00" * 3]
    return b"".join(parts)


def test_largest_jpeg_picks_the_biggest_stream_and_decodes_it_exactly():
    small, _ = _jpeg(64, 40, 1)
    big, big_px = _jpeg(160, 90, 2)
    mid, _ = _jpeg(120, 80, 3)
    im = largest_jpeg(_container(small, big, mid))
    assert im.size == (160, 90) and im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), big_px)


def test_largest_jpeg_without_any_stream_is_a_clear_error():
    with pytest.raises(ValueError, match="no JPEG"):
        largest_jpeg(b"\x1e\xe7\x0f\x42 nothing here \xff\xd8\xff")


def _make_deb(tmp_path, files: dict[str, bytes]):
    """A real .deb built by dpkg-deb (an independent tool) holding ``files`` (path -> bytes)."""
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: 9.9-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n")
    for path, data in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    deb = tmp_path / f"{PACKAGE}_9.9-1_all.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb


needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb (Debian) not available")


@needs_dpkg
def test_deb_members_reads_the_files_dpkg_packed(tmp_path):
    files = {BACKGROUNDS + "A.edj": b"alpha", BACKGROUNDS + "B.edj": b"\x00\x01" * 1001, "usr/share/doc/x": b"doc"}
    deb = _make_deb(tmp_path, files)
    got = dict(deb_members(deb, BACKGROUNDS))
    assert got == {k: v for k, v in files.items() if k.startswith(BACKGROUNDS)}


def test_deb_members_rejects_a_file_that_is_not_a_package(tmp_path):
    p = tmp_path / "x.deb"
    p.write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(ValueError, match="not a Debian package"):
        list(deb_members(p, BACKGROUNDS))


@needs_dpkg
def test_build_pristine_writes_the_largest_picture_of_each_chosen_background(tmp_path):
    b1, px1 = _jpeg(96, 54, 4)
    b2, px2 = _jpeg(80, 60, 5)
    files = {BACKGROUNDS + "Bamboo.edj": _container(_jpeg(32, 18, 6)[0], b1),
             BACKGROUNDS + "Peaks.edj": _container(b2),
             BACKGROUNDS + "Dunes.edj": _container(_jpeg(50, 50, 7)[0])}  # an illustration: never taken
    deb = _make_deb(tmp_path, files)
    out = tmp_path / "pristine"
    table = build_pristine(out, deb=deb, photos=("Bamboo", "Peaks"), progress=False)
    assert sorted(p.name for p in out.glob("*.png")) == [f"{PACKAGE}__Bamboo.png", f"{PACKAGE}__Peaks.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / f"{PACKAGE}__Bamboo.png")), px1)
    np.testing.assert_array_equal(np.asarray(Image.open(out / f"{PACKAGE}__Peaks.png")), px2)
    src = pd.read_csv(out / "SOURCES.csv")
    assert src["version"].tolist() == ["9.9-1", "9.9-1"] and set(src["licence"]) == {"BSD-2-clause"}
    assert src[["width", "height"]].values.tolist() == [[96, 54], [80, 60]]
    assert table["file"].tolist() == src["file"].tolist()
    with pytest.raises(ValueError, match="lacks"):  # a chosen background the package does not have
        build_pristine(tmp_path / "p2", deb=deb, photos=("Bamboo", "Mountain"), progress=False)
    with pytest.raises(ValueError, match="not among"):
        build_pristine(tmp_path / "p3", deb=deb, photos=("Dunes",), progress=False)


def test_the_photo_list_keeps_out_the_illustrations_and_the_heldout_photos():
    from biqa.recipe import HELDOUT_PHOTOS

    assert len(PHOTOS) == 15 and not {"Dunes", "Flat-Fan", "Flat-Stone-Pattern", "Paper-Flower"} & set(PHOTOS)
    assert not {f"{PACKAGE}__{s}" for s in PHOTOS} & set(HELDOUT_PHOTOS)


def test_cli_data_pristine_reports_a_missing_deb(tmp_path, capsys):
    from biqa.cli import main

    rc = main(["data", "pristine", "--deb", str(tmp_path / "nope.deb"), "--out", str(tmp_path / "o"), "-q"])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_pristine_files_are_the_pngs_of_the_folder_without_heldout_photos(tmp_path):
    from biqa.recipe import HELDOUT_PHOTOS, pristine_files

    assert pristine_files(tmp_path / "absent") == [] and pristine_files(None) == []
    for stem in ["b", "a", HELDOUT_PHOTOS[0]]:
        Image.new("RGB", (8, 8)).save(tmp_path / f"{stem}.png")
    (tmp_path / "SOURCES.csv").write_text("file\n")
    assert [p.name for p in pristine_files(tmp_path)] == ["a.png", "b.png"]
