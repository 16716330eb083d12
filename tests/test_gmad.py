"""gMAD competition: pair selection, judgements, matrices, outputs, CLI, and the page in Chromium."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa.cli import main
from biqa.gmad import (JudgementsError, competition_matrices, parse_model_spec, read_judgements, run_gmad,
                       select_pairs, simulate_judgements)

from conftest import make_image


def synthetic_pool(n=3000, seed=0):
    """Ground truth uniform on [1, 5]; 'truth' = it, 'weak' = it + moderate noise, 'noise' = pure noise."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1, 5, n)
    weak = truth + rng.normal(0, 0.6, n)
    noise = rng.normal(0, 1, n)
    return truth, np.stack([truth, weak, noise], 1), ["truth", "weak", "noise"]


def _pairs(sel, d, a):
    return sel.pairs[(sel.pairs["defender"] == d) & (sel.pairs["attacker"] == a)]


def test_truth_attacker_falsifies_noise_defender_not_the_reverse():
    truth, scores, names = synthetic_pool()
    sel = select_pairs(scores, names, levels=6, band_width=0.02, min_candidates=5)
    # truth attacks the noise defender: a pair at every level, far apart in ground truth
    tn = _pairs(sel, "noise", "truth")
    assert sorted(tn["level"]) == [1, 2, 3, 4, 5, 6]
    gap_tn = truth[tn["hi_index"]] - truth[tn["lo_index"]]
    assert (gap_tn > 3.0).all()  # the ground truth spans 4: the noise defender's bands hold everything
    # noise attacks the truth defender: pairs exist, but the band holds the ground truth nearly fixed
    nt = _pairs(sel, "truth", "noise")
    assert len(nt) == 6
    gap_nt = np.abs(truth[nt["hi_index"]] - truth[nt["lo_index"]])
    assert (gap_nt <= 0.02 * 4 + 1e-9).all()
    # every pair sits inside its defender's band, and the attacker's hi beats its lo
    for r in sel.pairs.itertuples():
        d, a = names.index(r.defender), names.index(r.attacker)
        for i in (r.hi_index, r.lo_index):
            assert r.band_lo - 1e-12 <= scores[i, d] <= r.band_hi + 1e-12
        assert scores[r.hi_index, a] > scores[r.lo_index, a]
        assert r.attacker_hi == scores[r.hi_index, a] and r.defender_lo == scores[r.lo_index, d]


def test_selection_matches_brute_force():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(400, 3))
    s[5, 1] = np.nan  # an image a model could not score is left out everywhere
    names = ["a", "b", "c"]
    sel = select_pairs(s, names, levels=5, band_width=0.1, min_candidates=4, range_quantile=0.0)
    ok = np.isfinite(s).all(1)
    assert sel.params["n_used"] == 399 and sel.params["n_dropped_unscored"] == 1
    found = 0
    for d in range(3):
        v = s[ok, d]
        lo, hi = v.min(), v.max()
        for k in range(5):
            c = lo + (k + 0.5) * (hi - lo) / 5
            h = 0.1 * (hi - lo) / 2
            idx = np.flatnonzero(ok & (s[:, d] >= c - h) & (s[:, d] <= c + h))
            for a in range(3):
                if a == d:
                    continue
                row = sel.pairs[sel.pairs["pair_id"] == f"D{d + 1}-A{a + 1}-L{k + 1}"]
                if len(idx) < 4:
                    assert row.empty
                    continue
                found += 1
                assert row["hi_index"].item() == idx[np.argmax(s[idx, a])]
                assert row["lo_index"].item() == idx[np.argmin(s[idx, a])]
                assert row["n_candidates"].item() == len(idx)
    assert found == len(sel.pairs) > 0


def test_simulated_judgements_rank_truth_first():
    truth, scores, names = synthetic_pool()
    sel = select_pairs(scores, names, levels=6, band_width=0.02, min_candidates=5)
    judg = simulate_judgements(sel.pairs, truth, tolerance=0.3, n_raters=3, noise=0.05, seed=1)
    res = competition_matrices(sel.pairs, read_judgements(judg, sel.pairs), names)
    A, R, models = res["aggressiveness"], res["resistance"], res["models"]
    assert list(models["model"]) == ["truth", "weak", "noise"]
    assert list(models["rank"]) == [1, 2, 3]
    assert A.loc["truth", "noise"] == pytest.approx(1.0)  # every attack on the noise model succeeds
    assert A.loc["noise", "truth"] == pytest.approx(0.0, abs=0.05)  # nobody sees its pairs differ
    assert R.loc["truth", "noise"] == pytest.approx(1.0, abs=0.05)
    assert R.loc["noise", "truth"] == pytest.approx(0.0)
    assert np.isnan(A.loc["truth", "truth"]) and np.isnan(R.loc["weak", "weak"])
    assert res["counts"].loc["truth", "noise"] == 6 and res["n_pairs_judged"] == len(sel.pairs)


def test_left_right_are_mapped_to_the_attackers_order():
    truth, scores, names = synthetic_pool(600)
    sel = select_pairs(scores, names, levels=3, band_width=0.1, min_candidates=5, paths=[f"p{i}" for i in range(600)])
    assert sel.pairs["left_is_hi"].any() and not sel.pairs["left_is_hi"].all()  # both layouts occur
    r = sel.pairs.iloc[0]
    assert r["left"] == (r["hi_path"] if r["left_is_hi"] else r["lo_path"])
    hi_side = "left" if r["left_is_hi"] else "right"
    lo_side = "right" if r["left_is_hi"] else "left"
    j = pd.DataFrame({"pair_id": [r["pair_id"]] * 3, "preferred": [hi_side, lo_side, "same"]})
    assert read_judgements(j, sel.pairs)["s"].tolist() == [1.0, -1.0, 0.0]
    # the mean over raters decides each pair: (1 - 1 + 0) / 3 = 0 -> resistance 1 for that pair
    res = competition_matrices(sel.pairs, read_judgements(j, sel.pairs), names)
    assert res["aggressiveness"].loc[r["attacker"], r["defender"]] == 0.0
    assert res["resistance"].loc[r["defender"], r["attacker"]] == 1.0
    # reversed judgements (people prefer the attacker's worse image) count as -1: the defender still failed
    jr = pd.DataFrame({"pair_id": [r["pair_id"]], "preferred": [lo_side]})
    res = competition_matrices(sel.pairs, read_judgements(jr, sel.pairs), names)
    assert res["aggressiveness"].loc[r["attacker"], r["defender"]] == -1.0
    assert res["resistance"].loc[r["defender"], r["attacker"]] == 0.0


def test_judgements_csv_parsing_and_errors(tmp_path):
    truth, scores, names = synthetic_pool(600)
    sel = select_pairs(scores, names, levels=3, band_width=0.1, min_candidates=5)
    ids = sel.pairs["pair_id"].tolist()
    good = tmp_path / "good.csv"
    good.write_text(f"pair_id,preferred,rater\n{ids[0]}, Left ,ann\n{ids[0]},SAME,bob\n{ids[1]},right,ann\n")
    j = read_judgements(good, sel.pairs)
    assert j["preferred"].tolist() == ["left", "same", "right"] and j["rater"].tolist() == ["ann", "bob", "ann"]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"pair_id,preferred\n{ids[0]},left\nD9-A9-L9,left\n{ids[1]},better\n,same\n{ids[2]},\n")
    with pytest.raises(JudgementsError) as e:
        read_judgements(bad, sel.pairs)
    msg = str(e.value)
    assert "4 bad row(s)" in msg
    assert "line 3: unknown pair_id 'D9-A9-L9'" in msg
    assert "line 4: preferred is 'better'; use left, right or same" in msg
    assert "line 5: empty pair_id" in msg and "line 6: preferred is ''" in msg
    assert "line 2" not in msg
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("pair,choice\nx,left\n")
    with pytest.raises(ValueError, match="missing column.*'pair_id', 'preferred'"):
        read_judgements(nocol, sel.pairs)
    with pytest.raises(FileNotFoundError):
        read_judgements(tmp_path / "none.csv", sel.pairs)


def test_sparse_levels_are_reported():
    rng = np.random.default_rng(0)
    # defender 'gappy' has images only at the two ends of its range: the middle levels are empty
    gappy = np.concatenate([rng.uniform(0, 1, 200), rng.uniform(9, 10, 200), [5.0, 5.1]])
    other = rng.uniform(size=len(gappy))
    sel = select_pairs(np.stack([gappy, other], 1), ["gappy", "other"], levels=5, band_width=0.1,
                       min_candidates=3, range_quantile=0.0)
    assert sel.sparse_levels() == {"gappy": [2, 3, 4], "other": []}
    sk = sel.skipped[sel.skipped["defender"] == "gappy"]
    assert sk["level"].tolist() == [2, 3, 4] and sk["n_candidates"].tolist() == [0, 2, 0]
    assert "too sparse: 2 image(s) in the band < min_candidates 3" in sk["reason"].tolist()[1]
    from biqa.gmad import format_summary

    text = format_summary(sel)
    assert "too sparse (fewer than 3 images in the band): defender gappy: level 2, 3, 4" in text
    # an attacker that scores every candidate alike yields no pair, with the reason
    flat = np.stack([rng.uniform(size=100), np.ones(100)], 1)
    sel2 = select_pairs(flat, ["x", "flat"], levels=2, band_width=0.5)
    assert set(sel2.skipped["reason"]) == {"the attacker scores every candidate alike",
                                          "the defender gives every image the same score"}


def test_lower_is_better_models():
    truth, scores, names = synthetic_pool(2000)
    dmos = 6 - scores[:, 0]  # the truth model in DMOS units
    s = np.stack([dmos, scores[:, 2]], 1)
    sel = select_pairs(s, ["dmos", "noise"], levels=4, band_width=0.03, higher_is_better=[False, True])
    p = _pairs(sel, "noise", "dmos")
    assert len(p) == 4
    assert (truth[p["hi_index"]] > truth[p["lo_index"]] + 2).all()  # "hi" = the better image, lower DMOS
    assert (p["attacker_hi"] < p["attacker_lo"]).all()  # reported in the model's own units
    q = _pairs(sel, "dmos", "noise").sort_values("level")
    assert q["center"].is_monotonic_decreasing  # level 1 = worst quality = highest DMOS


def test_bad_arguments():
    s = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="at least two"):
        select_pairs(s[:, :1], ["a"])
    with pytest.raises(ValueError, match="unique"):
        select_pairs(s, ["a", "a"])
    with pytest.raises(ValueError, match="band_width"):
        select_pairs(s, ["a", "b"], band_width=2)


def test_model_specs(tmp_path, tiny_checkpoint):
    csv = tmp_path / "mine.csv"
    csv.write_text("path,score\n")
    assert parse_model_spec(str(csv)).kind == "csv" and parse_model_spec(str(csv)).name == "mine"
    assert parse_model_spec(f"alt={csv}").name == "alt"
    assert parse_model_spec("classical:sharpness").name == "sharpness"
    assert parse_model_spec("n=classical:noise").kind == "classical"
    assert parse_model_spec("column:mos").kind == "column"
    assert parse_model_spec("biqa-default").kind == "trained"
    sp = parse_model_spec(tiny_checkpoint)
    assert sp.kind == "checkpoint" and sp.name == "tiny"
    with pytest.raises(ValueError, match="classical:sharpness"):
        parse_model_spec("classical:nope")
    assert parse_model_spec("classical:brisque").kind == "classical-model"  # = the model brisque (biqa.classical)
    with pytest.raises(FileNotFoundError, match="scores CSV"):
        parse_model_spec(str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError, match="not a trained model name"):
        parse_model_spec("no-such-model")


@pytest.fixture(scope="module")
def image_pool(tmp_path_factory):
    """48 small images (blur and noise levels) + records.csv with a 'quality' column, and two score CSVs."""
    root = tmp_path_factory.mktemp("gmadpool")
    rng = np.random.default_rng(0)
    rows, truth_rows, noise_rows = [], [], []
    (root / "img").mkdir()
    for i in range(48):
        lvl = i % 6
        im = make_image(rng, size=(40, 32), blur=0.5 * lvl, noise=0.02 * (i % 3))
        rel = f"img/i{i:02d}.png"
        im.save(root / rel)
        q = 5 - 0.7 * lvl - 0.3 * (i % 3) + rng.normal(0, 0.05)
        rows.append({"path": rel, "quality": q})
        truth_rows.append({"path": str(root / rel), "score": q})
        noise_rows.append({"path": str(root / rel), "score": rng.normal()})
    pd.DataFrame(rows).to_csv(root / "records.csv", index=False)
    pd.DataFrame(truth_rows).to_csv(root / "truth.csv", index=False)
    pd.DataFrame(noise_rows).to_csv(root / "noise.csv", index=False)
    return root


def test_run_gmad_outputs(image_pool, tmp_path):
    root = image_pool
    out = tmp_path / "g"
    res = run_gmad([str(root / "truth.csv"), str(root / "noise.csv"), "classical:sharpness"],
                   [str(root / "records.csv")], out, levels=3, band_width=0.2, min_candidates=3,
                   simulate_from="quality", simulate_tolerance=0.3)
    for f in ["pairs.json", "pairs.csv", "index.html", "judgements_template.csv", "judgements_simulated.csv",
              "aggressiveness.csv", "resistance.csv", "model_scores.csv", "matrices.png", "results.json",
              "sheets/truth__vs__noise.png", "sheets/noise__vs__sharpness.png", "scores/sharpness.csv"]:
        assert (out / f).is_file(), f
    doc = json.loads((out / "pairs.json").read_text())
    assert [m["name"] for m in doc["models"]] == ["truth", "noise", "sharpness"]
    assert len(doc["pairs"]) == len(res["selection"].pairs) > 0
    p0 = doc["pairs"][0]
    assert set(p0["scores"]) == {"truth", "noise", "sharpness"} and p0["attacker_prefers"] in ("left", "right")
    assert Path(p0["left"]).is_file() and set(doc["sparse_levels"]) == {"truth", "noise", "sharpness"}
    assert res["results"]["models"]["model"].iloc[0] == "truth"
    page = (out / "index.html").read_text()
    srcs = re.findall(r"src='([^']*)'", page)
    assert srcs and all(s.startswith("data:image/") for s in srcs)  # self-contained: nothing to fetch
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("<div class='pair'>") == len(doc["pairs"])
    assert "Defender <b>truth</b> · attacker <b>noise</b>" in page and "aggressiveness" in page
    template = pd.read_csv(out / "judgements_template.csv")
    assert template["pair_id"].tolist() == [p["pair_id"] for p in doc["pairs"]]
    # blind page: no scores, no model names
    blind = run_gmad([str(root / "truth.csv"), str(root / "noise.csv")], [str(root / "img")], tmp_path / "b",
                     levels=3, band_width=0.2, min_candidates=3, blind=True, sheets=False)
    bpage = (tmp_path / "b" / "index.html").read_text()
    assert "truth" not in bpage.split("</style>")[1] and "noise" not in bpage.split("</style>")[1]
    assert blind["results"] is None and not (tmp_path / "b" / "sheets").exists()


def test_cli_gmad_with_judgements_and_cache(image_pool, tmp_path, tiny_checkpoint, capsys):
    root = image_pool
    out = tmp_path / "cli"
    args = ["gmad", "--models", f"t={root / 'truth.csv'}", tiny_checkpoint, "--pool", str(root / "img"),
            "--out", str(out), "--levels", "3", "--band-width", "0.25", "--min-candidates", "3", "--no-sheets",
            "--batch-size", "16"]
    assert main(args + ["-q"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^t\s+tiny\s+\d", printed, re.M) and "pairs from 48 images" in printed
    assert (out / "scores" / "tiny.csv").is_file()
    pairs = json.loads((out / "pairs.json").read_text())["pairs"]
    j = tmp_path / "j.csv"
    pd.DataFrame({"pair_id": [p["pair_id"] for p in pairs],
                  "preferred": [p["attacker_prefers"] if p["attacker"] == "t" else "same" for p in pairs]}
                 ).to_csv(j, index=False)
    assert main(args + ["--judgements", str(j)]) == 0
    cap = capsys.readouterr()
    assert "reused" in cap.err and "tiny.csv" in cap.err  # the checkpoint's scores were not recomputed
    ms = pd.read_csv(out / "model_scores.csv")
    assert ms["model"].tolist() == ["t", "tiny"] and ms["overall"].tolist() == [1.0, 0.25]
    # bad judgements: exit status 2 and every bad line named
    bad = tmp_path / "bad.csv"
    bad.write_text("pair_id,preferred\nnope,left\nD1-A2-L1,maybe\n")
    assert main(args + ["--judgements", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "line 2: unknown pair_id 'nope'" in err and "line 3: preferred is 'maybe'" in err
    assert main(["gmad", "--models", "classical:sharpness", "--pool", str(root / "img"), "--out",
                 str(tmp_path / "x"), "-q"]) == 2
    assert "at least two models" in capsys.readouterr().err


CHROMIUM = next((shutil.which(c) for c in ("chromium", "chromium-browser", "chromium-headless-shell")
                 if shutil.which(c)), None)

# Appended to a copy of the page: once everything has loaded, what the browser decoded and laid out,
# written into the DOM as JSON for --dump-dom to print (the page itself has no scripts).
_PAGE_PROBE = """<script>
window.addEventListener('load', function () {
  function box(e) { var b = e.getBoundingClientRect(); return {x: b.left, y: b.top, r: b.right, b: b.bottom}; }
  var all = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var r = {
    images: all('img').map(function (i) {
      return {complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, box: box(i)}; }),
    pairs: all('div.pair').map(function (p) {
      return Array.prototype.map.call(p.children, function (c) { return {tag: c.tagName, box: box(c)}; }); }),
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    text: document.body.innerText
  };
  var pre = document.createElement('pre');
  pre.id = 'biqa-probe';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


def _chromium_or_skip() -> str:
    """The Chromium binary; skip without one (bash scripts/test.sh installs Debian's), fail under CI=true."""
    if CHROMIUM is not None:
        return CHROMIUM
    msg = ("headless Chromium not installed: bash scripts/test.sh installs Debian's chromium "
           "(scripts/setup_chromium.sh; or apt-get install chromium)")
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{msg}; CI=true: the gMAD page must be checked in a browser on CI")
    pytest.skip(msg)


def _chromium(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium_or_skip(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", "--window-size=1000,900", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_missing_chromium_skips_locally_and_fails_on_ci(monkeypatch):
    import sys

    mod = sys.modules[__name__]
    monkeypatch.setattr(mod, "CHROMIUM", None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/test.sh installs Debian's chromium"):
        _chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: the gMAD page must be checked in a browser"):
        _chromium_or_skip()
    monkeypatch.setattr(mod, "CHROMIUM", "/usr/bin/chromium")
    assert _chromium_or_skip() == "/usr/bin/chromium"


def test_page_renders_in_headless_chromium(image_pool, tmp_path):
    """The page as a browser shows it: every thumbnail decodes at the pool image's size and is painted
    where the layout puts it, each pair's two images stand side by side, nothing overflows sideways,
    and every pair of pairs.json is on the page with both models' scores."""
    import base64
    import html as htmlmod
    import io

    _chromium_or_skip()
    out = tmp_path / "page"
    run_gmad([str(image_pool / "truth.csv"), str(image_pool / "noise.csv")], [str(image_pool / "img")], out,
             levels=3, band_width=0.25, min_candidates=3, sheets=False)
    page = (out / "index.html").read_text(encoding="utf-8")
    pairs = json.loads((out / "pairs.json").read_text())["pairs"]
    assert len(pairs) >= 4
    probe_page = out / "probe.html"
    probe_page.write_text(page.replace("</body>", _PAGE_PROBE + "</body>"), encoding="utf-8")
    proc = _chromium("--virtual-time-budget=10000", "--dump-dom", probe_page.as_uri())
    m = re.search(r'<pre id="biqa-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no probe result in the dumped DOM; chromium said: {proc.stderr[-2000:]}"
    r = json.loads(htmlmod.unescape(m.group(1)))

    # every thumbnail decoded, at the size of the 40x32 pool images (thumbnails never upscale)
    assert len(r["images"]) == 2 * len(pairs)
    for im in r["images"]:
        assert im["complete"] and (im["w"], im["h"]) == (40, 32), im
        assert im["box"]["r"] - im["box"]["x"] == 42 and im["box"]["b"] - im["box"]["y"] == 34  # + 1 px border
    # each pair: its level box, then the two figures side by side on one line, inside the window
    assert len(r["pairs"]) == len(pairs)
    for row in r["pairs"]:
        assert [c["tag"] for c in row] == ["DIV", "FIGURE", "FIGURE"]
        lvl, left, right = (c["box"] for c in row)
        assert lvl["r"] <= left["x"] and left["r"] <= right["x"] and left["y"] == right["y"] == lvl["y"]
        assert right["r"] <= 1000
    assert r["overflow"] <= 0  # no horizontal scrolling at 1000 px
    # every pair is on the page as the browser shows it: its id, then the left and the right image with the
    # attacker's and the defender's scores (from the score CSVs) and which one the attacker rates better
    text = r["text"]
    score = {n: pd.read_csv(image_pool / f"{n}.csv").set_index("path")["score"] for n in ("truth", "noise")}
    for p in pairs:
        start = text.index(f"pair {p['pair_id']}\n")
        nxt = text.find("\nlevel ", start)
        shown = text[start:nxt if nxt > 0 else None]
        a, d = p["attacker"], p["defender"]
        for side in ("left", "right"):
            word = "rated better" if p["attacker_prefers"] == side else "rated worse"
            want = (f"{side}: attacker {a} {score[a][p[side]]:.3f} ({word})\n"
                    f"defender {d} {score[d][p[side]]:.3f}\n")
            assert want in shown, (want, shown)
        assert shown.index("left: ") < shown.index("right: ")

    # the screenshot of the page itself: the first thumbnail is painted where the layout puts it, and
    # matches the embedded JPEG decoded by Pillow (another decoder)
    shot = tmp_path / "shot.png"
    proc = _chromium(f"--screenshot={shot}", (out / "index.html").as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    im = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert im.shape[:2] == (900, 1000)
    b = r["images"][0]["box"]
    assert b["b"] < 900  # the first pair is in view
    x0, y0 = round(b["x"]) + 1, round(b["y"]) + 1  # inside the 1 px border
    src = re.search(r"<img alt='(?:left|right)' src='data:image/jpeg;base64,([^']+)'", page).group(1)
    ref = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB")).astype(float)
    painted = im[y0:y0 + 32, x0:x0 + 40]
    assert np.abs(painted - ref).mean() < 6, np.abs(painted - ref).mean()
    assert np.abs(im[y0:y0 + 32, x0 - 60:x0 - 20] - ref).mean() > 20  # elsewhere: not the image
    # and the page around it: light background, dark text
    assert np.median(im.reshape(-1, 3), 0).min() > 230 and (im.sum(2) < 150).mean() > 0.001


def test_score_csv_paths_are_matched(tmp_path, monkeypatch):
    from biqa.gmad import load_score_csv

    (tmp_path / "imgs").mkdir()
    pool = [str(tmp_path / "imgs" / f"{k}.png") for k in "abcd"]
    csv = tmp_path / "s.csv"
    # a: absolute; b: relative to the CSV's folder; c: twice (the first row counts); d: absent
    csv.write_text(f"path,score\n{pool[0]},1\nimgs/b.png,2\nimgs/c.png,3\n{pool[2]},30\nelsewhere.png,9\n")
    monkeypatch.chdir(tmp_path.parent)
    got = load_score_csv(csv, pool)
    assert got[:3].tolist() == [1.0, 2.0, 3.0] and np.isnan(got[3])
    # relative to the working directory
    csv2 = tmp_path / "imgs" / "s2.csv"
    csv2.write_text(f"path,score\n{tmp_path.name}/imgs/d.png,4\n")
    assert load_score_csv(csv2, pool)[3] == 4.0
    with pytest.raises(ValueError, match="'path' and 'score'"):
        (tmp_path / "bad.csv").write_text("file,score\nx,1\n")
        load_score_csv(tmp_path / "bad.csv", pool)


def test_cli_gmad_names_the_images_it_left_out(image_pool, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    out = tmp_path / "left"
    assert main(["gmad", "--models", "classical:sharpness", "classical:noise", "--pool", str(image_pool / "img"),
                 str(broken), "--out", str(out), "--levels", "3", "--band-width", "0.25", "--min-candidates", "3",
                 "--no-sheets", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "1 of the 49 pool images lack a score from some model and were left out" in printed
    assert f"{broken}  (no score from " in printed  # named, not just counted
    left = pd.read_csv(out / "left_out.csv")
    assert left["path"].tolist() == [str(broken)] and "sharpness" in left["no_score_from"].iloc[0]
