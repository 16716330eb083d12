"""The fuzz set of benchmarks/fuzz.py (--quick: 200+ mutated JPEG, PNG, WebP, BMP and TIFF files)
scored by ``biqa score`` in a fresh process: one row per file, no crash, no hang, bounded memory."""
from __future__ import annotations

import io
import os
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import load_benchmark


@pytest.fixture(scope="module")
def fuzz():
    return load_benchmark("fuzz")


def test_mutations_are_what_they_say(fuzz):
    """The generator's own claims, checked with Pillow: regions tile the file, size lies are read back
    as written, the huge sizes straddle the bomb limit, and the set is the same for the same seed."""
    assert fuzz.BOMB == Image.MAX_IMAGE_PIXELS
    sides = [w * h for w, h in fuzz.HUGE]
    assert sides[0] < fuzz.BOMB < sides[1] <= 2 * fuzz.BOMB < sides[2]
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    for fmt, variants in fuzz.VARIANTS.items():
        for v in variants:
            d = fuzz.encode(im, fmt, v)
            regs = fuzz.regions(fmt, d)
            assert regs and regs[0][1] == 0 and all(a < b for _, a, b in regs), (fmt, v)
            lied = fuzz.with_size(fmt, d, 300, 200)
            if lied is not None:
                with Image.open(io.BytesIO(lied)) as back:
                    assert back.size == (300, 200), (fmt, v)
    png = fuzz.with_size("png", fuzz.encode(im, "png", "rgb"), 7, 9)
    assert struct.unpack(">I", png[29:33])[0] == __import__("zlib").crc32(png[12:29])
    a = [(f.name, f.data) for f in fuzz.mutate("jpeg", "b", fuzz.encode(im, "jpeg", "baseline"),
                                               np.random.default_rng(1), True)]
    b = [(f.name, f.data) for f in fuzz.mutate("jpeg", "b", fuzz.encode(im, "jpeg", "baseline"),
                                               np.random.default_rng(1), True)]
    assert a == b


def test_quick_fuzz_set_one_row_per_file_no_crash_no_hang(fuzz, tmp_path):
    files = fuzz.generate(tmp_path / "set", quick=True, seed=0)
    assert len(files) >= 200
    assert {f.fmt for f in files} >= {"jpeg", "png", "webp", "bmp", "tiff"}
    assert {f.kind for f in files} >= {"intact", "truncate", "bitflip", "lie", "huge", "wrong_ext", "zero"}
    df, tot = fuzz.run(tmp_path / "set", files, timeout=240, log=lambda m: None)
    assert tot["crashes"] == 0 and tot["hangs"] == 0, tot["crash_logs"]
    assert tot["rows"] == tot["files"] == tot["rows_matching_files"] == len(files) and tot["unknown_rows"] == 0
    assert tot["bad_rows"] == 0  # each row: a finite score, or an error message (never both, never neither)
    assert 0 < tot["peak_rss_mb"] < 3000
    # controls: the intact files (also under wrong extensions and odd names) score; empty ones are errors
    assert df[df["kind"].isin(["intact", "wrong_ext", "name"])]["score"].notna().all()
    assert (df[df["kind"] == "zero"]["error"] == "ValueError: empty file (0 bytes)").all()
    over = df[df["detail"].str.contains("over 2x")]
    assert len(over) and over["error"].str.contains("DecompressionBomb").all()
    assert not df["error"].str.contains("Traceback").any()
    assert os.path.isdir(tmp_path / "set")
