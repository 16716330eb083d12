"""The accuracy guard of reduced-precision scoring: bf16 (torch) and int8 (onnxruntime) against float32.

For each reduced precision, against the float32 model of the same backend (bf16: torch float32;
int8: the float32 ONNX export), scoring through ``biqa.load(...).score`` exactly as ``biqa score``
does (same decoding, batching and tiling):

- the score difference (max and mean absolute) on the LIVE Challenge *validation + test* photos of
  ``split_seed1`` (264) and on the synthetic held-out level set (``benchmarks/heldout_levels.py``:
  9 photos never used in training or calibration, 6 distortion families x 5 levels: 279 images);
- the SRCC against MOS on the *test* part of ``split_seed1`` (N = 176) at both precisions, and its change.
  the bundled models were fitted on all 880 LIVE Challenge photos, so this SRCC is in-sample: it measures
  how far the reduced precision moves the model's agreement with people, not how well it generalises;
- the share of the level-ranking pairs of the held-out set (within each photo and family, the
  reference and its 5 levels: 15 pairs a group, 810 in all) whose order is unchanged.

A precision is offered (``biqa score --precision`` takes it without ``--force``) only if
|ΔSRCC| <= 0.005 and >= 99% of the pairs keep their order (:mod:`biqa.precision_guard`). The int8
model is calibrated on LIVE Challenge *training* photos and synthetic crops of other photos
(:mod:`biqa.calibration`): never on the images measured here.

Usage: python benchmarks/precision.py [--model biqa-default] [--precisions bf16,int8] [--quick]
    [--records data/livec/livec.csv] [--data data/heldout_levels] [--record auto|none|PATH]
Prints a table, writes benchmarks/results/precision.csv, and (full runs) the guard's record: for a
bundled model beside its weights (biqa/weights/<name>.precision.json, shipped), else in
$BIQA_CACHE_DIR/precision/ (``--record``). ``--quick``: 32 LIVE photos and the 3-photo quick held-out
set, no record (a smoke run: too few images to judge).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIVEC_ROOT = ROOT.parent / "shared" / "data" / "livec" / "ChallengeDB_release"
SPLIT = "split_seed1"
QUICK_HUMAN = 32


def level_groups(df) -> list[list[int]]:
    """Indices of each (photo, family) group of the held-out set: the reference and its levels."""
    pos = {p: i for i, p in enumerate(df.index)}
    ref = {photo: pos[i] for i, photo in zip(df.index[df["level"] == 0], df["photo"][df["level"] == 0])}
    groups = []
    for (photo, _), g in df[df["level"] > 0].groupby(["photo", "distortion"], sort=False):
        groups.append([ref[photo]] + [pos[i] for i in g.sort_values("level").index])
    return groups


def score(model: str, paths: list[str], *, backend: str, precision: str, threads: int | None):
    """(scores as biqa score gives them, the scorer's meta) at ``precision`` on ``backend``."""
    import biqa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # --force's warning: measuring the guard is the point
        scorer = biqa.load(model, device="cpu", backend=backend, precision=precision, force=True, threads=threads)
    df = scorer.score(paths)
    bad = df[df["error"].astype(str) != ""]
    if len(bad):
        raise SystemExit(f"{len(bad)} image(s) failed with {backend}/{precision}: {bad.iloc[0]['path']}: "
                         f"{bad.iloc[0]['error']}")
    return df["score"].to_numpy(float), scorer.meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="biqa-default")
    ap.add_argument("--precisions", default="bf16,int8", help="comma-separated: bf16 (torch), int8 (onnxruntime)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_HUMAN} LIVE photos, the quick held-out set, no record")
    ap.add_argument("--records", default=str(ROOT / "data" / "livec" / "livec.csv"),
                    help="LIVE Challenge records (imported from ../shared/data/livec when missing)")
    ap.add_argument("--data", default=str(ROOT / "data" / "heldout_levels"), help="held-out level set (built once)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(HERE / "results" / "precision.csv"))
    ap.add_argument("--record", default="auto",
                    help="where the guard's verdicts go: auto (bundled model: biqa/weights/<name>.precision.json; "
                         "else $BIQA_CACHE_DIR/precision/), none, or a path")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    import heldout_levels as hl
    import pandas as pd

    from biqa.ortscore import file_digest
    from biqa.precision_guard import (MAX_ABS_DSRCC, MIN_PAIR_AGREEMENT, bundled_record, calibration_variant,
                                      guard_metrics, records_dir, write_record)
    from biqa.recipe import ensure_livec
    from biqa.zoo import TRAINED_MODELS, resolve_checkpoint

    precisions = [p.strip() for p in a.precisions.split(",") if p.strip()]
    for p in precisions:
        if p not in ("bf16", "int8"):
            raise SystemExit(f"unknown precision {p!r}: bf16, int8")
    ckpt = resolve_checkpoint(a.model)
    if ckpt.suffix.lower() != ".safetensors":
        raise SystemExit("--model takes a trained model name or checkpoint (the guard exports and quantises it itself)")
    sha = file_digest(ckpt)

    livec = ensure_livec(a.records, LIVEC_ROOT)
    human = livec[livec[SPLIT].isin(["val", "test"])].sort_values("path").reset_index(drop=True)
    if a.quick:
        human = pd.concat([human[human[SPLIT] == "val"].head(QUICK_HUMAN // 4),
                           human[human[SPLIT] == "test"].head(QUICK_HUMAN - QUICK_HUMAN // 4)]).reset_index(drop=True)
    test = (human[SPLIT] == "test").to_numpy()
    photos, short, data = hl.HELDOUT_PHOTOS, None, Path(a.data)
    if a.quick:
        photos, short, data = hl.HELDOUT_PHOTOS[:hl.QUICK_PHOTOS], hl.QUICK_SHORT_SIDE, data.with_name(data.name + "_quick")
    levels = hl.build(data, hl.PHOTOS_DIR, photos=photos, short_side=short)
    groups = level_groups(levels)
    level_paths = [str(data / p) for p in levels["path"]]
    human_paths = human["abspath"].astype(str).tolist()
    print(f"[precision] {a.model}: {len(human)} LIVE Challenge {SPLIT} val+test photos (SRCC on the {int(test.sum())} "
          f"test ones), {len(levels)} held-out level images in {len(groups)} groups"
          + (" (quick: no record)" if a.quick else ""), file=sys.stderr)
    if a.model in TRAINED_MODELS:
        print(f"[precision] note: {a.model} was fitted on all 880 LIVE Challenge photos: the SRCC here is "
              "in-sample and measures agreement between precisions, not generalisation", file=sys.stderr)

    backend_of = {"bf16": "torch", "int8": "onnxruntime"}
    refs: dict[str, tuple] = {}
    rows, entries = [], []
    for p in precisions:
        backend = backend_of[p]
        if p == "bf16":
            from biqa.precision import native_bf16

            if not native_bf16("cpu"):
                print("[precision] bf16: this CPU has no native bf16 (AVX512-BF16 / AMX): not measured, not offered",
                      file=sys.stderr)
                continue
        if backend not in refs:
            t0 = time.perf_counter()
            rh, _ = score(a.model, human_paths, backend=backend, precision="fp32", threads=a.threads)
            rl, _ = score(a.model, level_paths, backend=backend, precision="fp32", threads=a.threads)
            refs[backend] = (rh, rl)
            print(f"[precision] fp32 on {backend}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        t0 = time.perf_counter()
        nh, meta = score(a.model, human_paths, backend=backend, precision=p, threads=a.threads)
        nl, _ = score(a.model, level_paths, backend=backend, precision=p, threads=a.threads)
        print(f"[precision] {p} on {backend}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rh, rl = refs[backend]
        m = guard_metrics(ref_human=rh, new_human=nh, mos=human["mos"].to_numpy(float), srcc_mask=test,
                          ref_levels=rl, new_levels=nl, level_groups=groups)
        variant = calibration_variant(meta) if p == "int8" else ""
        entry = {"precision": p, "backend": backend, "variant": variant, **m,
                 "calibration": meta.get("quantization", {}).get("calibration", {}).get("id", "") if p == "int8" else ""}
        entries.append(entry)
        rows.append({"model": a.model, "set": "quick" if a.quick else "full", **entry})
    if not rows:
        print("[precision] nothing measured", file=sys.stderr)
        return 1
    table = pd.DataFrame(rows)
    cols = ["precision", "backend", "srcc_fp32", "srcc", "delta_srcc", "human_mean_abs", "human_max_abs",
            "levels_mean_abs", "levels_max_abs", "pairs_kept", "pairs", "pair_agreement", "offered"]
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nguard: |ΔSRCC| <= {MAX_ABS_DSRCC} (LIVE Challenge {SPLIT} test, N = {int(test.sum())}) and >= "
          f"{100 * MIN_PAIR_AGREEMENT:g}% of the held-out level pairs keep their order")
    for r in rows:
        print(f"  {r['precision']} ({r['backend']}): {'OFFERED' if r['offered'] else 'NOT offered'}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    table.drop(columns=[c for c in ("record",) if c in table.columns]).to_csv(a.out, index=False, float_format="%.6f")
    print(f"wrote {a.out}")
    if not a.quick and a.record != "none":
        target = Path(a.record) if a.record != "auto" else (
            bundled_record(ckpt) if a.model in TRAINED_MODELS else records_dir() / f"{sha[:24]}.json")
        extra = {"measured": {"human": f"LIVE Challenge {SPLIT} val+test ({len(human)}), SRCC on test "
                                        f"({int(test.sum())})", "levels": f"benchmarks/heldout_levels.py full set "
                                                                          f"({len(levels)} images, {len(groups)} groups)"},
                 "command": "python benchmarks/precision.py" + (f" --model {a.model}" if a.model != "biqa-default" else ""),
                 "cpu_flags": _cpu_flags()}
        write_record(target, sha, entries, model=a.model, extra=extra)
        print(f"wrote the guard's record {target}")
    return 0


def _cpu_flags() -> list[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                                              "amx_int8"))


if __name__ == "__main__":
    sys.exit(main())
