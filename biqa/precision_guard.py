"""Reduced-precision scoring: which precision runs on which backend, and the accuracy guard.

``biqa score --precision fp32|bf16|int8``:

============  ===========================================  ============================================
precision     torch backend                                onnxruntime backend
============  ===========================================  ============================================
fp32          yes (default)                                yes (default)
bf16          autocast, where the CPU (AVX512-BF16, AMX)   not shipped: no bfloat16 convolutions in
              or GPU computes bf16 natively                onnxruntime's CPU kernels (see below)
int8          not shipped: int8 runs on onnxruntime        static QDQ quantisation (``biqa export
                                                           --quantize int8``)
============  ===========================================  ============================================

**The guard.** A reduced precision is *offered* for a model (``--precision`` takes it without
``--force``) only when ``benchmarks/precision.py`` measured, against float32 on the same backend's
float32 model: ``|ΔSRCC| <= 0.005`` against MOS on LIVE Challenge (test part of ``split_seed1``) and
the level order of at least 99% of the pairs of the synthetic held-out set kept
(:func:`pair_agreement`). Its verdicts are stored as *records*, keyed by the checkpoint's SHA-256
(and, for int8, the calibration): shipped beside a bundled model (``weights/<name>.precision.json``)
or written by the guard script to ``$BIQA_CACHE_DIR/precision/``. No torch here: the command line's
torch-free path checks records too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

PRECISIONS = ("fp32", "bf16", "int8")
MAX_ABS_DSRCC = 0.005
MIN_PAIR_AGREEMENT = 0.99
RECORD_FORMAT = "biqa-precision-guard-1"

SUPPORTED = {("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
NOT_SHIPPED = {
    ("onnxruntime", "bf16"): (
        "bf16 is not offered on onnxruntime: its CPU kernels have no bfloat16 convolution (ONNX's Conv takes "
        "bfloat16 only from opset 22, which onnxruntime's CPU provider does not implement), and float16, which it "
        "runs, measured 1.5x slower than float32 (docs/speed.md). Use --precision int8 (onnxruntime), or "
        "--backend torch --precision bf16"),
    ("torch", "int8"): (
        "int8 is not offered on torch: biqa's int8 model is an onnxruntime one (static QDQ quantisation). Use "
        "--precision int8 with --backend onnxruntime (or auto)"),
}


def check_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    p = str(precision).lower()
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return p


def check_supported(backend: str, precision: str) -> None:
    """Raise ``ValueError`` (with the reason) for a precision that is not shipped on ``backend``."""
    if (backend, precision) in SUPPORTED:
        return
    raise ValueError(NOT_SHIPPED.get((backend, precision), f"--precision {precision} is not available with the "
                                                           f"{backend} backend"))


# ---------------------------------------------------------------- the measurements

def _srcc(a, b) -> float:
    from scipy import stats

    return float(stats.spearmanr(a, b).statistic)


def pair_agreement(groups, ref, new) -> tuple[int, int]:
    """(pairs whose order is the same under ``new`` as under ``ref``, pairs): every pair of images
    within each group (e.g. a held-out photo's reference and its 5 levels of one distortion: 15
    pairs). A pair keeps its order when ``sign(ref_i - ref_j) == sign(new_i - new_j)`` (a tie counts
    as an order). Pairs with a missing score are left out."""
    ref, new = np.asarray(ref, np.float64), np.asarray(new, np.float64)
    kept = total = 0
    for idx in groups:
        idx = np.asarray(idx)
        r, n = ref[idx], new[idx]
        iu, ju = np.triu_indices(len(idx), 1)
        ok = ~(np.isnan(r[iu]) | np.isnan(r[ju]) | np.isnan(n[iu]) | np.isnan(n[ju]))
        kept += int((np.sign(r[iu] - r[ju]) == np.sign(n[iu] - n[ju]))[ok].sum())
        total += int(ok.sum())
    return kept, total


def guard_metrics(*, ref_human, new_human, mos, srcc_mask=None, ref_levels=None, new_levels=None,
                  level_groups=None) -> dict:
    """The guard's numbers for one precision against float32.

    ``ref_human`` / ``new_human``: float32 / reduced-precision scores of the human-rated images
    (e.g. LIVE Challenge validation + test), ``mos`` their opinion scores, ``srcc_mask`` the ones SRCC is
    measured on (e.g. the test part; default all); ``ref_levels`` / ``new_levels``: scores of the
    synthetic held-out level set, ``level_groups`` its groups of indices (see :func:`pair_agreement`).
    """
    ref_h, new_h, mos = (np.asarray(x, np.float64) for x in (ref_human, new_human, mos))
    m = np.ones(len(mos), bool) if srcc_mask is None else np.asarray(srcc_mask, bool)
    d = np.abs(new_h - ref_h)
    out = {"n_human": int(len(ref_h)), "human_max_abs": float(np.nanmax(d)), "human_mean_abs": float(np.nanmean(d)),
           "n_srcc": int(m.sum()), "srcc_fp32": _srcc(ref_h[m], mos[m]), "srcc": _srcc(new_h[m], mos[m])}
    out["delta_srcc"] = out["srcc"] - out["srcc_fp32"]
    if ref_levels is not None:
        ref_l, new_l = np.asarray(ref_levels, np.float64), np.asarray(new_levels, np.float64)
        dl = np.abs(new_l - ref_l)
        kept, total = pair_agreement(level_groups, ref_l, new_l)
        out.update({"n_levels": int(len(ref_l)), "levels_max_abs": float(np.nanmax(dl)),
                    "levels_mean_abs": float(np.nanmean(dl)), "pairs": total, "pairs_kept": kept,
                    "pair_agreement": kept / total if total else float("nan")})
    out["offered"] = passes(out)
    return out


def passes(metrics: dict) -> bool:
    """The guard: ``|ΔSRCC| <= 0.005`` and at least 99% of the level pairs keep their order."""
    ds = metrics.get("delta_srcc")
    pa = metrics.get("pair_agreement")
    return bool(ds is not None and pa is not None and abs(ds) <= MAX_ABS_DSRCC and pa >= MIN_PAIR_AGREEMENT)


# ---------------------------------------------------------------- records

def bundled_record(checkpoint: str | os.PathLike) -> Path:
    """Where the record of a bundled checkpoint is shipped: ``<name>.precision.json`` beside it."""
    p = Path(checkpoint)
    return p.with_name(f"{p.stem}.precision.json")


def records_dir() -> Path:
    """Where ``benchmarks/precision.py`` writes records of other models: ``$BIQA_CACHE_DIR/precision``
    (default ``~/.cache/biqa/precision``)."""
    from .ortscore import cache_dir

    return cache_dir().parent / "precision"


def _candidates(sha: str) -> list[Path]:
    from .zoo import WEIGHTS_DIR

    return sorted(WEIGHTS_DIR.glob("*.precision.json")) + [records_dir() / f"{sha[:24]}.json"]


def find_entry(sha: str, precision: str, backend: str, variant: str = "") -> dict | None:
    """The guard's entry for a model (checkpoint SHA-256) at ``precision`` on ``backend``; ``variant``:
    the int8 calibration (:func:`calibration_variant`), empty for bf16. ``None`` when never measured."""
    for path in _candidates(sha):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("checkpoint_sha256") != sha:
            continue
        for e in rec.get("entries", []):
            if e.get("precision") == precision and e.get("backend") == backend and e.get("variant", "") == variant:
                return dict(e, record=str(path))
    return None


def calibration_variant(meta: dict) -> str:
    """The int8 model as the records name it: a digest of its table of ranges, the convolutions kept float32
    and the int8 recipe's revision (another calibration or recipe is another model, to be measured again)."""
    import hashlib

    q = meta.get("quantization", {})
    table = str(q.get("calibration", {}).get("table_sha256", ""))
    if not table:
        return ""
    recipe = f"{table}|{','.join(q.get('float_convs', []))}|r{q.get('revision', 1)}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def describe(entry: dict) -> str:
    pa = entry.get("pair_agreement")
    return (f"ΔSRCC {entry.get('delta_srcc', float('nan')):+.4f} against MOS (N = {entry.get('n_srcc', '?')}), "
            f"{100 * pa if pa is not None else float('nan'):.2f}% of the level pairs keep their order, scores "
            f"{entry.get('human_mean_abs', float('nan')):.4f} mean / {entry.get('human_max_abs', float('nan')):.4f} max "
            "from float32")


def require_offered(sha: str | None, precision: str, backend: str, variant: str = "", *, force: bool = False,
                    model: str = "this model") -> str | None:
    """Raise ``ValueError`` unless ``precision`` passed the guard for this model on ``backend`` (fp32
    always passes). With ``force``, return a warning instead of raising (``None`` when all is well)."""
    if precision == "fp32":
        return None
    entry = find_entry(sha, precision, backend, variant) if sha else None
    rule = f"|ΔSRCC| <= {MAX_ABS_DSRCC} and >= {100 * MIN_PAIR_AGREEMENT:g}% of level pairs kept"
    if entry is None:
        reason = f"no accuracy-guard record for {model}" + (f" (calibration {variant})" if variant else "")
        advice = (f"run `python benchmarks/precision.py --model {model}` (needs LIVE Challenge and the held-out "
                  f"photos; the guard asks {rule}), or pass --force")
    elif not entry.get("offered"):
        reason = f"{model} failed the accuracy guard: {describe(entry)} (needs {rule}; {entry['record']})"
        advice = "--force scores anyway"
    else:
        return None
    if force:
        return f"warning: scoring at {precision} on {backend} with --force although {reason}"
    raise ValueError(f"--precision {precision} on {backend}: {reason}; {advice}")


def write_record(path: str | os.PathLike, checkpoint_sha256: str, entries: list[dict], *, model: str = "",
                 extra: dict | None = None) -> Path:
    """Write (or update: entries of other precisions or backends are kept; a new entry replaces the one of its
    precision and backend, whatever model variant that one measured) a guard record."""
    path = Path(path)
    old = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
    keep = [] if old.get("checkpoint_sha256") != checkpoint_sha256 else [
        e for e in old.get("entries", []) if not any(
            (e.get("precision"), e.get("backend")) == (n["precision"], n["backend"]) for n in entries)]
    rec = {"format": RECORD_FORMAT, "model": model, "checkpoint_sha256": checkpoint_sha256,
           "rule": {"max_abs_delta_srcc": MAX_ABS_DSRCC, "min_pair_agreement": MIN_PAIR_AGREEMENT},
           **(extra or {}), "entries": keep + list(entries)}
    path.parent.mkdir(parents=True, exist_ok=True)
    from .files import _atomic_write_bytes

    text = json.dumps(rec, indent=1, sort_keys=False) + "\n"
    _atomic_write_bytes(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path
