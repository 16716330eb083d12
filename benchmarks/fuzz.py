"""Fuzzed inputs for ``biqa score``: every file gets exactly one row, nothing crashes or hangs.

A seeded generator mutates real JPEG, PNG, WebP, BMP and TIFF files (made from photos in
``../shared/data/photos``, downscaled to 64x48 and 96x72 so that scoring is quick; the bundled
example photos when ``../shared`` is absent):

- ``intact``: the base file itself (must score);
- ``truncate``: the file cut inside and at the end of every region of its format (JPEG segments and
  scan data, PNG chunks, RIFF chunks, BMP headers / palette / pixels, TIFF header / IFD / strips);
- ``bitflip``: 1, 4 or 32 random bits flipped anywhere, or 1-8 within the first 64 bytes;
- ``lie``: header fields that lie about the size (width / height smaller, larger, zero; the file size
  of BMP and RIFF), checksums fixed so that the lie is believed (PNG CRC);
- ``huge``: dimensions of 8000x8000 (under Pillow's decompression-bomb limit), 12000x12000 (between
  the limit and twice it: Pillow warns and decodes) and 20000x20000 and 65000x65000 (over: refused),
  with the original pixel data;
- ``wrong_ext``: intact files under another format's extension;
- ``zero``, ``garbage`` (random bytes, text, HTML under image extensions) and ``name`` (intact
  files whose names are not valid UTF-8).

Each chunk of files is scored by ``biqa score FOLDER --out chunk.csv --resolution max:1024`` in a fresh
process (the default model; a 20 s per-image decode limit, ``BIQA_DECODE_TIMEOUT``; a wall-clock limit per chunk, past
which the chunk counts as a hang). Checked: one row per file (rows matched to files through
:func:`biqa.paths.text_to_path`), each with a finite score or an error message and not both; a
process that dies (signal, traceback, exit status > 1) is a crash (its log is printed). Peak RSS: the largest ``ru_maxrss`` of the scoring processes.

  python benchmarks/fuzz.py            # 1,000+ files: table + benchmarks/results/fuzz.csv (one row per file)
  python benchmarks/fuzz.py --quick    # 200+ files (what CI runs: tests/test_fuzz.py); writes nothing
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
# never used as base files: these packages' images are reserved for other checks
RESERVED = ("lomiri-wallpapers", "palapeli", "libjxl", "glymur")
BASE_PHOTOS = ["mate-backgrounds__LadyBird.png", "scikit-image__coffee.png", "lxqt-themes__flowers.png",
               "plasma-workspace-wallpapers__Kite__2560x1600.png"]
SIZES = [(64, 48), (96, 72)]
EXT = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif"}
BOMB = 89478485  # PIL.Image.MAX_IMAGE_PIXELS (default); twice it raises DecompressionBombError
HUGE = [(8000, 8000), (12000, 12000), (20000, 20000), (65000, 65000)]
CHUNK = 250
# JPEGs whose header claims 8000x8000 or 12000x12000 decode (libjpeg fills the missing scan with grey):
# scored at full resolution they would take ~100-250 tiles each. This benchmark is about decoding, so
# images are scored at most 1024 px on the long side (JPEGs then decode at reduced size with draft()).
RESOLUTION = "max:1024"


class Fuzz:
    """One generated file: ``name`` (bytes: may not be valid UTF-8), format of its base file, base
    name, kind of mutation, what exactly was done, and the file's bytes."""

    __slots__ = ("name", "fmt", "base", "kind", "detail", "data")

    def __init__(self, name: bytes, fmt: str, base: str, kind: str, detail: str, data: bytes):
        self.name, self.fmt, self.base, self.kind, self.detail, self.data = name, fmt, base, kind, detail, data


# ------------------------------------------------------------------------------ base files
def base_photos(quick: bool) -> list[Path]:
    names = BASE_PHOTOS[:1] if quick else BASE_PHOTOS[:2]
    found = [PHOTOS / n for n in names if (PHOTOS / n).is_file()]
    if not found:  # no ../shared: the photos bundled with biqa
        found = sorted((ROOT / "biqa" / "examples").glob("*.jpg"))[: len(names)]
    assert not any(p.name.startswith(RESERVED) for p in found)
    return found


def encode(im, fmt: str, variant: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.save(buf, "JPEG", quality=90, progressive=variant == "progressive")
    elif fmt == "png":
        (im.quantize(64) if variant == "palette" else im).save(buf, "PNG")
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=80, lossless=variant == "lossless", method=0)
    elif fmt == "bmp":
        (im.quantize(16) if variant == "palette" else im).save(buf, "BMP")
    elif fmt == "tiff":
        im.save(buf, "TIFF", compression=None if variant == "raw" else "tiff_lzw")
    return buf.getvalue()


VARIANTS = {"jpeg": ["baseline", "progressive"], "png": ["rgb", "palette"], "webp": ["lossy", "lossless"],
            "bmp": ["rgb", "palette"], "tiff": ["raw", "lzw"]}


def base_files(quick: bool) -> list[tuple[str, str, bytes]]:
    """``(format, base name, bytes)`` for every photo x size x format variant."""
    from PIL import Image

    out = []
    for photo in base_photos(quick):
        with Image.open(photo) as im:
            im = im.convert("RGB")
            for w, h in SIZES[:1] if quick else SIZES:
                small = im.resize((w, h), Image.LANCZOS)
                for fmt, variants in VARIANTS.items():
                    for v in variants:
                        out.append((fmt, f"{photo.stem.split('__')[1][:12]}_{w}x{h}_{v}", encode(small, fmt, v)))
    return out


# --------------------------------------------------------------------------------- regions
def regions(fmt: str, d: bytes) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` of the parts of a file, in file order."""
    out: list[tuple[str, int, int]] = []
    if fmt == "jpeg":
        out.append(("SOI", 0, 2))
        i = 2
        while i + 4 <= len(d) and d[i] == 0xFF:
            marker = d[i + 1]
            n = struct.unpack(">H", d[i + 2:i + 4])[0]
            out.append((f"FF{marker:02X}", i, i + 2 + n))
            i += 2 + n
            if marker == 0xDA:  # start of scan: entropy-coded data up to EOI
                end = d.rfind(b"\xff\xd9")
                out.append(("scan", i, end))
                out.append(("EOI", end, len(d)))
                break
    elif fmt == "png":
        out.append(("signature", 0, 8))
        i = 8
        while i + 8 <= len(d):
            n = struct.unpack(">I", d[i:i + 4])[0]
            out.append((d[i + 4:i + 8].decode("latin-1"), i, i + 12 + n))
            i += 12 + n
    elif fmt == "webp":
        out.append(("RIFF", 0, 12))
        i = 12
        while i + 8 <= len(d):
            n = struct.unpack("<I", d[i + 4:i + 8])[0]
            out.append((d[i:i + 4].decode("latin-1").strip(), i, i + 8 + n + (n & 1)))
            i += 8 + n + (n & 1)
    elif fmt == "bmp":
        off = struct.unpack("<I", d[10:14])[0]
        dib = struct.unpack("<I", d[14:18])[0]
        out += [("file header", 0, 14), ("DIB header", 14, 14 + dib)]
        if off > 14 + dib:
            out.append(("palette", 14 + dib, off))
        out.append(("pixels", off, len(d)))
    elif fmt == "tiff":
        bo = "<" if d[:2] == b"II" else ">"
        ifd = struct.unpack(bo + "I", d[4:8])[0]
        n = struct.unpack(bo + "H", d[ifd:ifd + 2])[0]
        out += [("header", 0, 8), ("IFD", ifd, ifd + 2 + 12 * n + 4)]
        tags = _tiff_tags(d, bo, ifd)
        offs, counts = tags.get(273, []), tags.get(279, [])
        for k, (o, c) in enumerate(zip(offs, counts)):
            if k in (0, len(offs) - 1):
                out.append((f"strip{k}", o, o + c))
    return [(name, a, b) for name, a, b in out if 0 <= a < b <= len(d)]


def _tiff_tags(d: bytes, bo: str, ifd: int) -> dict[int, list[int]]:
    size = {3: 2, 4: 4}
    tags = {}
    n = struct.unpack(bo + "H", d[ifd:ifd + 2])[0]
    for k in range(n):
        e = ifd + 2 + 12 * k
        tag, typ, count = struct.unpack(bo + "HHI", d[e:e + 8])
        if typ not in size:
            continue
        fmt = {2: "H", 4: "I"}[size[typ]]
        at = e + 8 if size[typ] * count <= 4 else struct.unpack(bo + "I", d[e + 8:e + 12])[0]
        tags[tag] = list(struct.unpack(bo + fmt * count, d[at:at + size[typ] * count]))
    return tags


# ------------------------------------------------------------------------------ size lies
def with_size(fmt: str, d: bytes, w: int, h: int) -> bytes | None:
    """``d`` with its header claiming ``w`` x ``h`` (``None`` where the format cannot say it)."""
    b = bytearray(d)
    if fmt == "jpeg":
        for name, a, _ in regions(fmt, d):
            if name in ("FFC0", "FFC1", "FFC2"):
                if w > 65535 or h > 65535:
                    return None
                b[a + 5:a + 9] = struct.pack(">HH", h, w)
                return bytes(b)
        return None
    if fmt == "png":
        b[16:24] = struct.pack(">II", w, h)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)  # the lie is believed
        return bytes(b)
    if fmt == "bmp":
        b[18:26] = struct.pack("<ii", w, h)
        return bytes(b)
    if fmt == "webp":
        for name, a, _ in regions(fmt, d):
            if name == "VP8":  # lossy: 14-bit width and height after the 3-byte tag and the start code
                if w > 16383 or h > 16383:
                    return None
                b[a + 14:a + 18] = struct.pack("<HH", w, h)
                return bytes(b)
            if name == "VP8L":  # lossless: 14-bit width-1 and height-1 after the signature byte
                if not (1 <= w <= 16384 and 1 <= h <= 16384):
                    return None
                bits = struct.unpack("<I", d[a + 9:a + 13])[0]
                bits = (bits & ~0x0FFFFFFF) | (w - 1) | ((h - 1) << 14)
                b[a + 9:a + 13] = struct.pack("<I", bits)
                return bytes(b)
        return None
    if fmt == "tiff":
        bo = "<" if d[:2] == b"II" else ">"
        ifd = struct.unpack(bo + "I", d[4:8])[0]
        n = struct.unpack(bo + "H", d[ifd:ifd + 2])[0]
        for k in range(n):
            e = ifd + 2 + 12 * k
            tag = struct.unpack(bo + "H", d[e:e + 2])[0]
            if tag in (256, 257):  # ImageWidth, ImageLength as LONG
                b[e + 2:e + 12] = struct.pack(bo + "HII", 4, 1, w if tag == 256 else h)
        return bytes(b)
    return None


def image_size_of(fmt: str, d: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(d)) as im:
        return im.size


# ------------------------------------------------------------------------------- mutations
def mutate(fmt: str, base: str, d: bytes, rng: np.random.Generator, quick: bool) -> list[Fuzz]:
    ext = EXT[fmt]
    out: list[Fuzz] = []

    def add(kind, detail, data, e=ext):
        out.append(Fuzz(f"{fmt}_{base}_{kind}_{len(out):03d}{e}".encode(), fmt, base, kind, detail, data))

    add("intact", "", d)
    for name, a, b in regions(fmt, d):
        cuts = ({(a + b) // 2} if quick else {a + 1, (a + b) // 2, b - 1}) if b - a > 2 else {a + 1}
        for c in sorted(cuts):
            if 0 < c < len(d):
                add("truncate", f"{name} at byte {c} of {len(d)}", d[:c])
    for k in ([1, 4, 32] if quick else [1, 1, 4, 4, 32, 32]):
        b = bytearray(d)
        for pos in rng.integers(0, len(d) * 8, k):
            b[pos // 8] ^= 1 << int(pos % 8)
        add("bitflip", f"{k} bit(s)", bytes(b))
    for k in ([1, 8] if quick else [1, 3, 8]):
        b = bytearray(d)
        for pos in rng.integers(0, min(64, len(d)) * 8, k):
            b[pos // 8] ^= 1 << int(pos % 8)
        add("bitflip", f"{k} bit(s) in the first 64 bytes", bytes(b))
    w, h = image_size_of(fmt, d)
    lies = [(w // 2, h), (w, max(1, h // 3)), (w * 4, h * 4), (0, h), (w, 0)]
    for lw, lh in lies:
        lied = with_size(fmt, d, lw, lh)
        if lied is not None:
            add("lie", f"header says {lw}x{lh} (is {w}x{h})", lied)
    if fmt == "bmp":
        b = bytearray(d)
        b[2:6] = struct.pack("<I", 10 * len(d))
        add("lie", "file size field 10x too large", bytes(b))
        b = bytearray(d)
        b[34:38] = struct.pack("<I", 0xFFFFFFF0)
        add("lie", "image data size field 4 GB", bytes(b))
    if fmt == "webp":
        b = bytearray(d)
        b[4:8] = struct.pack("<I", 10 * len(d))
        add("lie", "RIFF size 10x too large", bytes(b))
    for hw, hh in HUGE:
        lied = with_size(fmt, d, hw, hh)
        if lied is not None:
            side = "under" if hw * hh <= BOMB else ("between 1x and 2x" if hw * hh <= 2 * BOMB else "over 2x")
            add("huge", f"{hw}x{hh} ({side} the bomb limit)", lied)
    others = [f for f in EXT if f != fmt]
    for other in ([others[0]] if quick else others[:2]):
        add("wrong_ext", f"{fmt} data named {EXT[other]}", d, EXT[other])
    return out


def extra_files(rng: np.random.Generator, bases: list[tuple[str, str, bytes]], quick: bool) -> list[Fuzz]:
    out = []
    exts = list(EXT.values())
    for k, e in enumerate(exts):
        out.append(Fuzz(f"zero_{k}{e}".encode(), "none", "-", "zero", "0 bytes", b""))
    junk = [("random bytes", rng.bytes(2048)), ("text", b"not an image\n" * 40),
            ("html", b"<!doctype html><html><body>404 Not Found</body></html>\n"),
            ("one byte", b"\xff"), ("zip", b"PK\x03\x04" + rng.bytes(200)),
            ("JPEG signature only", b"\xff\xd8\xff\xe0"), ("PNG signature only", b"\x89PNG\r\n\x1a\n"),
            ("RIFF WEBP, nothing else", b"RIFF\x04\x00\x00\x00WEBP"), ("BMP magic only", b"BM"),
            ("TIFF header, IFD past the end", b"II*\x00\xff\xff\xff\x00")]
    for k, (what, data) in enumerate(junk[:6] if quick else junk):
        out.append(Fuzz(f"garbage_{k}{exts[k % len(exts)]}".encode(), "none", "-", "garbage", what, data))
    for k, raw in enumerate([b"caf\xe9", b"\xff\xfe", b"na\xefve \"q\"", b"\x80\x81", b"\xc3("][: 2 if quick else 5]):
        fmt, base, data = bases[k % len(bases)]
        out.append(Fuzz(raw + f"_{k}".encode() + EXT[fmt].encode(), fmt, base, "name", "not valid UTF-8", data))
    return out


def generate(folder: str | os.PathLike, *, quick: bool = False, seed: int = 0) -> list[Fuzz]:
    """Write the fuzz set into chunk folders under ``folder``; returns the files' descriptions."""
    rng = np.random.default_rng(seed)
    bases = base_files(quick)
    files = [f for fmt, base, d in bases for f in mutate(fmt, base, d, rng, quick)]
    files += extra_files(rng, bases, quick)
    root = os.fsencode(folder)
    for k, f in enumerate(files):
        chunk = os.path.join(root, f"chunk{k // CHUNK:02d}".encode())
        os.makedirs(chunk, exist_ok=True)
        with open(os.path.join(chunk, f.name), "wb") as fh:
            fh.write(f.data)
    return files


# --------------------------------------------------------------------------------- scoring
def score_chunk(folder: bytes, out: Path, timeout: float, model: str | None, resolution: str = RESOLUTION) -> dict:
    """Score one folder with ``biqa score`` in a fresh process."""
    cmd = [sys.executable, "-m", "biqa", "score", os.fsdecode(folder), "--out", str(out), "-q", "--workers", "0",
           "--resolution", resolution]
    if model:
        cmd += ["--model", model]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "BIQA_DECODE_TIMEOUT": os.environ.get("BIQA_DECODE_TIMEOUT", "20")}
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace", timeout=timeout)
        rc, err, hang = p.returncode, p.stderr, False
    except subprocess.TimeoutExpired as e:
        rc, err, hang = None, (e.stderr or b"").decode("utf-8", "replace") if isinstance(e.stderr, bytes) else "", True
    crash = not hang and (rc not in (0, 1) or "Traceback" in err)
    return {"rc": rc, "stderr": err, "hang": hang, "crash": crash, "seconds": time.time() - t0}


def run(folder: str | os.PathLike, files: list[Fuzz], *, timeout: float = 900, model: str | None = None,
        resolution: str = RESOLUTION, log=print):
    """Score every chunk; one result row per file, and the run's totals."""
    import pandas as pd

    from biqa.paths import text_to_path

    root = os.fsencode(folder)
    chunks = sorted(c for c in os.listdir(root) if c.startswith(b"chunk"))
    by_name = {(c, f.name): f for k, f in enumerate(files) for c in [f"chunk{k // CHUNK:02d}".encode()]}
    rows, crashes, hangs, t0 = {}, [], [], time.time()
    for c in chunks:
        out = Path(tempfile.mkdtemp()) / "rows.csv"
        res = score_chunk(os.path.join(root, c), out, timeout, model, resolution)
        log(f"  {c.decode()}: exit {res['rc']}, {res['seconds']:.1f} s" + (" HANG" if res["hang"] else "")
            + (" CRASH" if res["crash"] else ""))
        if res["hang"]:
            hangs.append(c.decode())
        if res["crash"]:
            crashes.append((c.decode(), res["stderr"][-2000:]))
        if out.is_file():
            df = pd.read_csv(out, keep_default_na=False, dtype={"path": str, "error": str})
            for r in df.itertuples(index=False):
                name = os.path.basename(os.fsencode(text_to_path(r.path)))
                key = (c, name)
                rows.setdefault(key, []).append(r)
    wall = time.time() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest scoring process
    table = []
    for k, f in enumerate(files):
        key = (f"chunk{k // CHUNK:02d}".encode(), f.name)
        got = rows.get(key, [])
        r = got[0] if got else None
        score = float(r.score) if r is not None and r.score != "" else float("nan")
        error = r.error if r is not None else ""
        ok_row = len(got) == 1 and ((np.isfinite(score) and not error) or (not np.isfinite(score) and error != ""))
        table.append({"file": f.name.decode("utf-8", "backslashreplace"), "format": f.fmt, "kind": f.kind,
                      "detail": f.detail, "bytes": len(f.data), "rows": len(got),
                      "score": score, "error": error, "ok": ok_row})
    extra = sum(1 for key in rows if key not in by_name)
    return pd.DataFrame(table), {"files": len(files), "rows": int(sum(len(v) for v in rows.values())),
                                 "rows_matching_files": int(sum(t["rows"] == 1 for t in table)),
                                 "unknown_rows": extra, "bad_rows": int(sum(not t["ok"] for t in table)),
                                 "crashes": len(crashes), "hangs": len(hangs), "peak_rss_mb": peak_kb / 1024,
                                 "seconds": wall, "crash_logs": crashes}


def summarise(df):
    import pandas as pd

    g = df.groupby(["kind", "format"], sort=True)
    return pd.DataFrame({"files": g.size(), "scored": g["score"].apply(lambda s: int(np.isfinite(s).sum())),
                         "errors": g["error"].apply(lambda e: int((e != "").sum())),
                         "bad rows": g["ok"].apply(lambda o: int((~o).sum()))}).reset_index()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200+ files (CI); writes no CSV")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="model to score with (default: biqa-default)")
    ap.add_argument("--resolution", default=RESOLUTION, help=f"scoring resolution (default {RESOLUTION})")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per chunk of 250 files before it is a hang")
    ap.add_argument("--keep", default=None, help="generate into this folder and keep it")
    ap.add_argument("--out", default=str(HERE / "results" / "fuzz.csv"))
    a = ap.parse_args(argv)
    folder = a.keep or tempfile.mkdtemp(prefix="biqa-fuzz-")
    t0 = time.time()
    files = generate(folder, quick=a.quick, seed=a.seed)
    print(f"generated {len(files)} files in {time.time() - t0:.1f} s under {folder}", file=sys.stderr)
    df, tot = run(folder, files, timeout=a.timeout, model=a.model, resolution=a.resolution,
                  log=lambda m: print(m, file=sys.stderr))
    print(summarise(df).to_string(index=False))
    print(f"\nfiles {tot['files']}  rows {tot['rows']}  (exactly one per file: {tot['rows_matching_files']}; "
          f"unknown {tot['unknown_rows']}; bad {tot['bad_rows']})  crashes {tot['crashes']}  hangs {tot['hangs']}  "
          f"peak RSS {tot['peak_rss_mb']:.0f} MB  time {tot['seconds']:.1f} s")
    for c, log in tot["crash_logs"]:
        print(f"\n--- crash in {c} ---\n{log}")
    if not a.quick:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        df.drop(columns=["ok"]).to_csv(a.out, index=False, float_format="%.4f")
        print(f"wrote {a.out}", file=sys.stderr)
    good = (tot["rows"] == tot["files"] == tot["rows_matching_files"] and not tot["bad_rows"]
            and not tot["crashes"] and not tot["hangs"])
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
