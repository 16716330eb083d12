"""gMAD's outputs for people: ``pairs.json``, the self-contained HTML page (embedded thumbnails), contact
sheets, the matrices' plot and the plain-text summaries."""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .pool import ModelSpec, safe_name
from .selection import Selection


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_pairs_json(sel: Selection, specs: Sequence[ModelSpec], scores: np.ndarray, paths: Sequence[str],
                     out: str | os.PathLike) -> Path:
    """``pairs.json``: the models, parameters, bands (with sparse levels) and every pair, with all
    models' scores for its left and right image."""
    out = Path(out)
    names = sel.names
    pairs = []
    for r in sel.pairs.to_dict("records"):
        li, ri = (r["hi_index"], r["lo_index"]) if r["left_is_hi"] else (r["lo_index"], r["hi_index"])
        pairs.append({
            "pair_id": r["pair_id"], "defender": r["defender"], "attacker": r["attacker"], "level": int(r["level"]),
            "band": [r["band_lo"], r["band_hi"]], "center": r["center"], "n_candidates": int(r["n_candidates"]),
            "left": str(paths[li]), "right": str(paths[ri]),
            "attacker_prefers": "left" if r["left_is_hi"] else "right",
            "attacker_gap": r["attacker_gap"],
            "scores": {n: {"left": _jsonable(scores[li, j]), "right": _jsonable(scores[ri, j])}
                       for j, n in enumerate(names)},
        })
    doc = {
        "method": "gMAD (group maximum differentiation competition), Ma et al., CVPR 2016",
        "models": [s.to_dict() for s in specs], "params": sel.params,
        "bands": json.loads(sel.bands.to_json(orient="records")),
        "sparse_levels": sel.sparse_levels(),
        "skipped": json.loads(sel.skipped.to_json(orient="records")),
        "pairs": pairs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=_jsonable))
    return out


def _thumb_b64(path: str, size: int, cache: dict) -> str:
    key = (path, size)
    if key not in cache:
        from PIL import Image

        from ..data import load_image, Resolution

        try:
            im = load_image(path, Resolution.parse(f"max:{size}"))
        except Exception:
            im = Image.new("RGB", (size, size * 3 // 4), (200, 200, 200))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        cache[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return cache[key]


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px;color:#222;
background:#fafafa;max-width:1400px}
h1{font-size:22px;margin:0 0 6px} h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ccc}
p.note,div.note{color:#555;font-size:13px;margin:4px 0}
table.meta{border-collapse:collapse;font-size:13px;margin:8px 0}
table.meta td,table.meta th{border:1px solid #ddd;padding:3px 8px;text-align:left}
table.meta td.num{text-align:right;font-variant-numeric:tabular-nums}
div.pair{display:flex;gap:14px;align-items:flex-start;margin:10px 0;padding:8px;background:#fff;
border:1px solid #e3e3e3;border-radius:6px}
div.lvl{width:150px;font-size:12px;color:#444;flex:none}
div.lvl b{font-size:15px;color:#111}
figure{margin:0;text-align:center;flex:none}
figure img{display:block;max-width:300px;max-height:300px;border:1px solid #bbb}
figcaption{font-size:12px;margin-top:4px;line-height:1.35;font-variant-numeric:tabular-nums}
.hi{color:#0a6e2a;font-weight:600} .lo{color:#a0301c;font-weight:600}
.sparse{color:#8a5a00;font-size:12px}
"""


def _short(path) -> str:
    """The file's folder and name (enough to tell pool images apart on the page)."""
    p = Path(str(path))
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _fmt(x, nd=3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def write_html(sel: Selection, specs: Sequence[ModelSpec], scores: np.ndarray, paths: Sequence[str],
               out: str | os.PathLike, *, thumb: int = 300, blind: bool = False, results: dict | None = None,
               matrices_png: str | os.PathLike | None = None, title: str = "gMAD competition") -> Path:
    """A single self-contained HTML page (images embedded as base64 JPEG thumbnails; no scripts, no
    external assets): per (defender, attacker), each level's pair side by side with both models'
    scores, the level and its band; sparse levels are listed. ``blind``: no scores, no model names
    (pair ids only), for collecting judgements. ``results``: :func:`competition_matrices` output."""
    out = Path(out)
    e = html.escape
    names = sel.names
    cache: dict = {}
    p = sel.params
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    parts.append(
        f"<p class='note'>Pool: {p['n_pool']} images ({p['n_used']} scored by every model). Levels: {p['levels']}, "
        f"band width {p['band_width']:g} of the defender's score range, at least {p['min_candidates']} candidates per "
        f"level. Pairs: {len(sel.pairs)}.</p>")
    if blind:
        parts.append("<p class='note'>For each pair, which image looks better: <b>left</b>, <b>right</b>, or "
                     "are they the <b>same</b>? Write one row per pair: <code>pair_id,preferred</code>.</p>")
    else:
        parts.append(
            "<p class='note'>In each row the defender scores both images (nearly) the same — they sit in one "
            "narrow band of its scores — while the attacker scores them as far apart as it can. If the two "
            "look equally good the defender was right; if the image the attacker <span class='hi'>rates better</span> "
            "looks clearly better, the attacker was right.</p>")
        rows = "".join(f"<tr><td>{i + 1}</td><td>{e(s.name)}</td><td>{e(s.kind)}</td><td>{e(s.source)}</td></tr>"
                       for i, s in enumerate(specs))
        parts.append("<table class='meta'><tr><th>#</th><th>model</th><th>kind</th><th>source</th></tr>"
                     f"{rows}</table>")
    if results is not None and not blind:
        parts.append("<h2>Results from judgements</h2>")
        parts.append(f"<p class='note'>{results['n_judgements']} judgements of {results['n_pairs_judged']} "
                     f"pairs.</p>")
        mt = results["models"]
        rows = "".join(
            f"<tr><td>{'' if pd.isna(r.rank) else int(r.rank)}</td><td>{e(r.model)}</td>"
            f"<td class='num'>{_fmt(r.aggressiveness)}</td><td class='num'>{_fmt(r.resistance)}</td>"
            f"<td class='num'>{_fmt(r.overall)}</td></tr>" for r in mt.itertuples())
        parts.append("<table class='meta'><tr><th>rank</th><th>model</th><th>aggressiveness</th><th>resistance</th>"
                     f"<th>overall</th></tr>{rows}</table>")
        if matrices_png and os.path.isfile(matrices_png):
            b64 = base64.b64encode(Path(matrices_png).read_bytes()).decode("ascii")
            parts.append(f"<img alt='matrices' style='max-width:100%' src='data:image/png;base64,{b64}'>")
    sparse = sel.sparse_levels()
    judged = ({} if results is None or blind else
              {r.pair_id: (r.m, int(r.n)) for r in results["per_pair"].itertuples(index=False)})
    for d in names:
        for a in names:
            if a == d:
                continue
            g = sel.pairs[(sel.pairs["defender"] == d) & (sel.pairs["attacker"] == a)].sort_values("level")
            sk = sel.skipped[(sel.skipped["defender"] == d) & (sel.skipped["attacker"] == a)]
            head = ("Pairs " + e(f"{names.index(d) + 1}→{names.index(a) + 1}") if blind else
                    f"Defender <b>{e(d)}</b> · attacker <b>{e(a)}</b>")
            parts.append(f"<h2 id='d{names.index(d) + 1}-a{names.index(a) + 1}'>{head}</h2>")
            if len(sk):
                parts.append("<div class='sparse'>No pair at level(s) " + ", ".join(
                    f"{int(r.level)} ({e(r.reason)})" for r in sk.itertuples()) + "</div>")
            for r in g.itertuples(index=False):
                cells = []
                for side in ("left", "right"):
                    is_hi = (side == "left") == bool(r.left_is_hi)
                    i = r.hi_index if is_hi else r.lo_index
                    src = _thumb_b64(str(paths[i]), thumb, cache)
                    if blind:
                        cap = f"{side}"
                    else:
                        cls, word = ("hi", "rated better") if is_hi else ("lo", "rated worse")
                        cap = (f"{side}: <span class='{cls}'>attacker {e(a)} {_fmt(scores[i, names.index(a)])} "
                               f"({word})</span><br>defender {e(d)} {_fmt(scores[i, names.index(d)])}"
                               f"<br><span title='{e(str(paths[i]))}'>{e(_short(paths[i]))}</span>")
                    cells.append(f"<figure><img alt='{side}' src='{src}'><figcaption>{cap}</figcaption></figure>")
                info = (f"<b>{e(r.pair_id)}</b><br>level {int(r.level)} of {p['levels']}" if blind else
                        f"<b>level {int(r.level)}</b> of {p['levels']}<br>pair {e(r.pair_id)}<br>"
                        f"defender band {_fmt(r.band_lo)} – {_fmt(r.band_hi)}<br>{int(r.n_candidates)} candidates")
                if r.pair_id in judged:
                    mj, nj = judged[r.pair_id]
                    verdict = ("the attacker's pick preferred" if mj > 0 else "reversed" if mj < 0 else "same")
                    info += f"<br><b>judged</b>: {verdict} (m = {mj:+.2f}, {nj} judgement{'s' * (nj != 1)})"
                parts.append(f"<div class='pair'><div class='lvl'>{info}</div>{''.join(cells)}</div>")
            if not len(g) and not len(sk):
                parts.append("<div class='sparse'>no pairs</div>")
    if not blind and any(sparse.values()):
        parts.append("<h2>Sparse levels</h2><p class='note'>"
                     + "; ".join(f"defender {e(d)}: level(s) {', '.join(map(str, ls))}"
                                 for d, ls in sparse.items() if ls)
                     + " — fewer than min_candidates images in the band (widen --band-width, lower "
                       "--min-candidates or grow the pool).</p>")
    parts.append("</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def write_contact_sheets(sel: Selection, scores: np.ndarray, paths: Sequence[str], out_dir: str | os.PathLike,
                         *, thumb: int = 200, dpi: int = 100) -> list[Path]:
    """One PNG per ordered (defender, attacker): a column per level, the attacker's higher-scored image
    on top, its lower-scored one below, with both models' scores. Returns the files written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..data import Resolution, load_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, L = sel.names, sel.params["levels"]
    written = []
    for d in names:
        for a in names:
            if a == d:
                continue
            g = sel.pairs[(sel.pairs["defender"] == d) & (sel.pairs["attacker"] == a)]
            by_level = {int(r.level): r for r in g.itertuples(index=False)}
            fig = Figure(figsize=(2.3 * L, 5.4), dpi=dpi)
            FigureCanvasAgg(fig)
            fig.suptitle(f"gMAD — defender {d}, attacker {a}: the attacker's better-rated image (top) vs its "
                         "worse-rated one (bottom)",
                         fontsize=10)
            ja, jd = names.index(a), names.index(d)
            for k in range(1, L + 1):
                for row in range(2):
                    ax = fig.add_subplot(2, L, row * L + k)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    r = by_level.get(k)
                    if r is None:
                        ax.axis("off")
                        ax.text(0.5, 0.5, "too sparse" if row == 0 else "", ha="center", va="center",
                                fontsize=9, color="#8a5a00", transform=ax.transAxes)
                        if row == 0:
                            ax.set_title(f"level {k}", fontsize=9)
                        continue
                    i = r.hi_index if row == 0 else r.lo_index
                    try:
                        ax.imshow(np.asarray(load_image(str(paths[i]), Resolution.parse(f"max:{thumb}"))))
                    except Exception:
                        ax.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=ax.transAxes)
                    if row == 0:
                        ax.set_title(f"level {k}", fontsize=9)
                    ax.set_xlabel(f"{a}: {scores[i, ja]:.3g}\n{d}: {scores[i, jd]:.3g}", fontsize=8)
            fig.tight_layout(rect=(0, 0, 1, 0.95))
            f = out_dir / f"{safe_name(d)}__vs__{safe_name(a)}.png"
            fig.savefig(f, format="png")
            written.append(f)
    return written


def plot_matrices(results: dict, out: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Heat maps of the aggressiveness and resistance matrices and a bar chart of per-model scores."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    A, R, mt = results["aggressiveness"], results["resistance"], results["models"]
    names = list(A.index)
    m = len(names)
    fig = Figure(figsize=(4.2 * 3 + 0.3 * m, 4.2 + 0.15 * m), dpi=dpi)
    FigureCanvasAgg(fig)
    for k, (mat, title, rl, cl, vmin) in enumerate([
            (A, "aggressiveness A[attacker, defender]", "attacker", "defender", -1.0),
            (R, "resistance R[defender, attacker]", "defender", "attacker", 0.0)]):
        ax = fig.add_subplot(1, 3, k + 1)
        im = ax.imshow(mat.to_numpy(dtype=float), cmap="RdYlGn", vmin=vmin, vmax=1.0)
        ax.set_xticks(range(m), names, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(m), names, fontsize=8)
        ax.set_xlabel(cl)
        ax.set_ylabel(rl)
        ax.set_title(title, fontsize=10)
        for i in range(m):
            for j in range(m):
                v = mat.iat[i, j]
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax = fig.add_subplot(1, 3, 3)
    x = np.arange(len(mt))
    ax.bar(x - 0.2, (mt["aggressiveness"].to_numpy(dtype=float) + 1) / 2, 0.4, label="(aggressiveness + 1) / 2")
    ax.bar(x + 0.2, mt["resistance"].to_numpy(dtype=float), 0.4, label="resistance")
    ax.plot(x, mt["overall"].to_numpy(dtype=float), "kD", label="overall")
    ax.set_xticks(x, [f"{int(r) if pd.notna(r) else '-'}. {n}" for r, n in zip(mt["rank"], mt["model"])],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("per-model scores (ranked)", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def format_summary(sel: Selection) -> str:
    """Plain-text table: pairs found per (defender, attacker) and the levels without a pair."""
    lines = [f"{'defender':<16} {'attacker':<16} {'pairs':>5}  attacker gap*  levels without a pair"]
    for d in sel.names:
        for a in sel.names:
            if a == d:
                continue
            g = sel.pairs[(sel.pairs["defender"] == d) & (sel.pairs["attacker"] == a)]
            sk = sel.skipped[(sel.skipped["defender"] == d) & (sel.skipped["attacker"] == a)]
            gap = f"{g['attacker_gap'].mean():.3f}" if len(g) else "-"
            miss = ", ".join(str(int(x)) for x in sk["level"]) or "-"
            lines.append(f"{d:<16} {a:<16} {len(g):>5}  {gap:>13}  {miss}")
    lines.append("* mean over levels of the attacker's score difference within the pair, as a fraction of its range")
    sp = {d: ls for d, ls in sel.sparse_levels().items() if ls}
    if sp:
        lines.append("too sparse (fewer than %d images in the band): " % sel.params["min_candidates"]
                     + "; ".join(f"defender {d}: level {', '.join(map(str, ls))}" for d, ls in sp.items()))
    return "\n".join(lines)


def format_matrices(results: dict) -> str:
    """Plain-text aggressiveness / resistance matrices and the ranking."""
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        return ("aggressiveness (rows: attacker, columns: defender)\n" + results["aggressiveness"].to_string()
                + "\n\nresistance (rows: defender, columns: attacker)\n" + results["resistance"].to_string()
                + "\n\n" + results["models"].to_string(index=False))
