"""int8 export (onnxruntime static QDQ), bf16 scoring, and the accuracy guard (biqa.precision_guard).

References are independent of the code under test: the float32 torch model and the float32 ONNX export
(scores of the quantised / bf16 model must stay close to them), brute-force pair counting and scipy's
SRCC (for the guard's numbers), and the ONNX graph itself (which nodes were quantised).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from biqa import precision_guard as G  # noqa: E402
from biqa.cli import main  # noqa: E402
from biqa.export import export_onnx  # noqa: E402
from biqa.ortscore import OrtModel, OrtScorer, default_calibration_table, file_digest, normalise  # noqa: E402
from biqa.precision import native_bf16  # noqa: E402
from biqa.scorer import EXAMPLES_DIR, TRAINED_MODELS, load  # noqa: E402

# the int8 machinery is pinned on biqa-fast (biqa-default v3: one EfficientNet-Lite0, 48 convolutions); the
# default model's own record is checked in test_every_bundled_guard_record_matches_its_model
FAST = TRAINED_MODELS["biqa-fast"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """biqa-fast exported as float32 and, by the command line, as int8 (the shipped calibration table)."""
    d = tmp_path_factory.mktemp("q")
    assert main(["export", "biqa-fast", "--quantize", "int8", "--out", str(d / "int8.onnx")]) == 0
    return export_onnx("biqa-fast", d / "fp32.onnx"), d / "int8.onnx"


@pytest.fixture(scope="module")
def level_set(tmp_path_factory):
    """A small level set (CI-sized): 4 bundled photos at 192 px, each with 3 distortions x 3 levels
    made here with Pillow (not biqa.synth, which made part of the calibration set)."""
    root = tmp_path_factory.mktemp("levels")
    paths, groups, level = [], [], []
    for photo in ["astronaut", "chelsea", "coffee", "raccoon"]:
        im = Image.open(EXAMPLES_DIR / f"{photo}.jpg").convert("RGB")
        im = im.resize((192, round(192 * im.height / im.width)), Image.BICUBIC)
        ref = root / f"{photo}_ref.png"
        im.save(ref)
        rng = np.random.default_rng(len(paths))
        for fam in ("blur", "noise", "jpeg"):
            g = [len(paths)]
            paths.append(str(ref))
            level.append(0)
            for lv in (1, 2, 3):
                if fam == "blur":
                    d = im.filter(ImageFilter.GaussianBlur(0.8 * lv ** 1.5))
                elif fam == "noise":
                    a = np.asarray(im, np.float64) + rng.normal(0, 10 * lv, (im.height, im.width, 1))
                    d = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
                else:
                    p = root / f"{photo}_{fam}{lv}.jpg"
                    im.save(p, quality=[40, 15, 5][lv - 1])
                    d = Image.open(p).convert("RGB")
                out = root / f"{photo}_{fam}{lv}.png"
                d.save(out)
                g.append(len(paths))
                paths.append(str(out))
                level.append(lv)
            groups.append(g)
    return paths, groups, np.asarray(level, float)


# ------------------------------------------------------------------------------ the export

def test_exported_graph_pads_inside_the_convolutions(exports):
    """timm's dynamic same-padding became Conv(auto_pad=SAME_UPPER): no Pad left, scores unchanged
    (torch is the reference, at odd and even sizes)."""
    import onnx

    from biqa.checkpoint import load_model

    g = onnx.load(str(exports[0])).graph
    assert not [n for n in g.node if n.op_type == "Pad"]
    auto = [n for n in g.node if n.op_type == "Conv" and any(a.name == "auto_pad" and a.s == b"SAME_UPPER"
                                                            for a in n.attribute)]
    assert len(auto) == 5  # Lite0: the stem and 4 stride-2 depthwise convolutions
    model, _ = load_model(FAST)
    m = OrtModel(exports[0], threads=1)
    x = torch.randn(2, 3, 70, 51, generator=torch.Generator().manual_seed(3))
    for xs in (x, x[..., :50], x[:, :, :69, :]):
        with torch.inference_mode():
            ref = model(xs)["score"].numpy()
        np.testing.assert_allclose(m(xs.numpy())["score"], ref, atol=1e-4)


def test_int8_export_is_quantised_and_records_its_calibration(exports):
    import onnx

    q = onnx.load(str(exports[1]))
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("QuantizeLinear") > 40 and ops.count("DequantizeLinear") > 80
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    producer = {o: n for n in q.graph.node for o in n.output}
    float_convs = [n.name for n in convs if getattr(producer.get(n.input[1]), "op_type", "") != "DequantizeLinear"]
    # float32: the stem and block 0 (its depthwise and pointwise convolutions); block 1.0's expansion is int8
    assert len(convs) == 48 and len(float_convs) == 3 and "conv_stem" in float_convs[0]
    assert "blocks.0.0/conv_pw" in float_convs[-1] and float_convs == m_float_convs(exports[1])
    m = OrtModel(exports[1])
    assert m.precision == "int8" and m.meta["checkpoint_sha256"] == file_digest(FAST)
    cal = m.meta["quantization"]["calibration"]
    table = default_calibration_table(FAST)
    assert cal["table_sha256"] == file_digest(table) and cal["id"] == json.loads(table.read_text())["biqa"]["id"]
    assert cal["images"] == 96 and "guard" in cal["excluded"]
    assert m.meta["quantization"]["check"]["abs_diff_vs_fp32"] < 0.2


def test_int8_scores_stay_close_to_fp32(exports):
    """The bundled photos, whole: int8 within 0.1 of float32 (a 1-5 scale), and the same order."""
    f = OrtScorer(exports[0], threads=1)
    q = OrtScorer(exports[1], threads=1)
    paths = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    a = np.array([r["score"] for r in f.score_paths(paths)])
    b = np.array([r["score"] for r in q.score_paths(paths)])
    assert np.abs(a - b).max() < 0.1
    assert list(np.argsort(a)) == list(np.argsort(b))


def m_float_convs(path):
    return OrtModel(path).meta["quantization"]["float_convs"]


def test_calibrating_writes_a_table_that_reproduces_the_model(tmp_path, tiny_checkpoint):
    """Quantising again from the table a calibration wrote gives the same model, offline."""
    table = tmp_path / "t.json"
    a = export_onnx(tiny_checkpoint, tmp_path / "a.onnx", quantize="int8", calibration=[str(EXAMPLES_DIR)],
                    write_calibration_table=table, check=False)
    b = export_onnx(tiny_checkpoint, tmp_path / "b.onnx", quantize="int8", calibration_table=table, check=False)
    ma, mb = OrtModel(a), OrtModel(b)
    x = normalise(np.asarray(Image.open(EXAMPLES_DIR / "coffee.jpg").convert("RGB")), *[ma.meta["preprocessing"][k]
                                                                                        for k in ("mean", "std")])
    assert np.array_equal(ma(x)["score"], mb(x)["score"])
    assert ma.meta["quantization"]["calibration"]["id"] == mb.meta["quantization"]["calibration"]["id"]
    assert ma.meta["quantization"]["calibration"]["table_sha256"] == file_digest(table)
    with pytest.raises(ValueError, match="for --quantize int8"):
        export_onnx(tiny_checkpoint, tmp_path / "c.onnx", calibration_table=table)


def test_calibration_never_uses_the_guard_images():
    from biqa import calibration as C
    from biqa.recipe import HELDOUT_PHOTOS

    assert tuple(C.HELDOUT_PHOTOS) == tuple(HELDOUT_PHOTOS)
    rec = json.loads(default_calibration_table(FAST).read_text())["biqa"]
    livec = [s for s in rec["sources"] if "records" in s]
    assert livec and all(s["split"] == "train" and s["column"] == "split_seed1" for s in livec)


def test_calibration_recipe_without_splits_says_how_to_add_them(tmp_path, monkeypatch):
    """Records imported but never split (a fresh `biqa data import livec`): the recipe's error names the split
    command instead of a missing column."""
    from biqa import calibration as C

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(C, "SRC_ROOT", tmp_path)
    (tmp_path / "data" / "livec").mkdir(parents=True)
    (tmp_path / C.RECIPE_LIVEC).write_text("path,mos,std\na.png,50,10\n")
    (tmp_path / "data" / "originals").mkdir()
    monkeypatch.setattr(C, "RECIPE_ORIGINALS", "data/originals")
    with pytest.raises(FileNotFoundError, match="biqa data split data/livec/livec.csv --scheme random --ratios 70,10,20"):
        C.recipe_sources()


# ------------------------------------------------------------------------------ the guard

def test_pair_agreement_against_brute_force():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=60)
    new = ref + rng.normal(0, 0.3, 60)
    new[5] = ref[5] = ref[6] = new[6] = 1.0  # a tie kept
    groups = [list(range(i, i + 6)) for i in range(0, 60, 6)]
    kept = total = 0
    for g in groups:
        for i in g:
            for j in g:
                if i < j:
                    total += 1
                    kept += np.sign(ref[i] - ref[j]) == np.sign(new[i] - new[j])
    assert G.pair_agreement(groups, ref, new) == (kept, total) and total == 150
    assert G.pair_agreement(groups, ref, ref) == (150, 150)


def test_guard_rule():
    from scipy import stats

    rng = np.random.default_rng(1)
    mos = rng.uniform(1, 5, 200)
    ref = mos + rng.normal(0, 0.5, 200)
    groups = [list(range(i, i + 6)) for i in range(0, 60, 6)]
    m = G.guard_metrics(ref_human=ref, new_human=ref + 1e-4, mos=mos, ref_levels=ref[:60], new_levels=ref[:60],
                        level_groups=groups)
    assert m["offered"] and m["pair_agreement"] == 1.0
    assert m["srcc_fp32"] == pytest.approx(stats.spearmanr(ref, mos).statistic)
    noisy = ref + rng.normal(0, 0.3, 200)
    m = G.guard_metrics(ref_human=ref, new_human=noisy, mos=mos, ref_levels=ref[:60], new_levels=noisy[:60],
                        level_groups=groups)
    assert m["delta_srcc"] == pytest.approx(stats.spearmanr(noisy, mos).statistic - stats.spearmanr(ref, mos).statistic)
    assert not m["offered"]  # this much noise moves SRCC and flips level pairs
    assert G.passes({"delta_srcc": 0.005, "pair_agreement": 0.99})
    assert not G.passes({"delta_srcc": -0.0051, "pair_agreement": 1.0})
    assert not G.passes({"delta_srcc": 0.0, "pair_agreement": 0.989})


def _robust_pairs_kept(groups, ref, new, margin=0.02) -> bool:
    """Every pair whose float32 scores are more than ``margin`` apart keeps its order."""
    for g in groups:
        for i in g:
            for j in g:
                if i < j and abs(ref[i] - ref[j]) > margin and np.sign(ref[i] - ref[j]) != np.sign(new[i] - new[j]):
                    return False
    return True


def test_reduced_precisions_pass_the_guard_on_a_small_set(exports, level_set):
    """Pinned on a CI-sized set (48 images, 72 level pairs), against float32: int8 and bf16 (where the CPU
    has it) keep >= 99% / 98% of the pairs and every pair whose float32 scores are more than 0.02 apart.
    This set has no opinion scores: its SRCC is against the level, pooled over 4 photos, where cross-photo
    near-ties move the rank, so it gets a looser bound than the guard's 0.005 on 176 human-rated photos.
    (In 72 pairs one flip of a near-tie is 1.4%; the guard's 810 pairs are benchmarks/precision.py's.)"""
    paths, groups, level = level_set
    ref = np.array([r["score"] for r in OrtScorer(exports[0], threads=1).score_paths(paths)])
    q = np.array([r["score"] for r in OrtScorer(exports[1], threads=1).score_paths(paths)])
    m = G.guard_metrics(ref_human=ref, new_human=q, mos=-level, ref_levels=ref, new_levels=q, level_groups=groups)
    # int8 (INT8_REVISION 4: only the stem and block 0 float32) keeps 72 of 72 pairs; pooled SRCC -0.0067 here
    # (revision 3, which also kept block 1.0's expansion and stride-2 depthwise float32: within 0.005), and
    # -0.0014 against MOS in the guard (benchmarks/precision.py)
    assert m["pair_agreement"] >= 0.99 and abs(m["delta_srcc"]) <= 0.01, m
    assert m["human_max_abs"] < 0.15 and _robust_pairs_kept(groups, ref, q)
    if native_bf16("cpu"):
        s32 = load("biqa-fast", device="cpu", num_workers=0).score(paths)["score"].to_numpy()
        # force: the unit test measures the guard itself, it does not rely on the shipped record
        s16 = load("biqa-fast", device="cpu", num_workers=0, precision="bf16", force=True).score(paths)
        s16 = s16["score"].to_numpy()
        m = G.guard_metrics(ref_human=s32, new_human=s16, mos=-level, ref_levels=s32, new_levels=s16,
                            level_groups=groups)
        # bf16 keeps the within-group order (72 of 72 pairs with biqa-fast); the pooled SRCC against the
        # level over 4 photos moves with cross-photo near-ties (+0.017 here, bf16 the higher), so it gets a
        # looser bound than the guard's 0.005 on 176 human-rated photos (benchmarks/precision.py: +0.003)
        assert abs(m["delta_srcc"]) <= 0.025 and m["pair_agreement"] >= 0.98 and m["human_max_abs"] < 0.15, m
        assert _robust_pairs_kept(groups, s32, s16)


def test_require_offered(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CACHE_DIR", str(tmp_path))
    sha = "ab" * 32
    assert G.require_offered(sha, "fp32", "torch") is None
    with pytest.raises(ValueError, match="no accuracy-guard record.*--force"):
        G.require_offered(sha, "int8", "onnxruntime", "v1", model="m")
    assert "--force" in G.require_offered(sha, "int8", "onnxruntime", "v1", force=True)
    good = {"precision": "int8", "backend": "onnxruntime", "variant": "v1", "delta_srcc": 0.001, "pair_agreement": 0.995,
            "n_srcc": 176, "offered": True}
    bad = dict(good, precision="bf16", backend="torch", variant="", delta_srcc=-0.02, offered=False)
    G.write_record(G.records_dir() / f"{sha[:24]}.json", sha, [good, bad], model="m")
    assert G.require_offered(sha, "int8", "onnxruntime", "v1") is None
    with pytest.raises(ValueError, match="no accuracy-guard record"):  # another calibration: not measured
        G.require_offered(sha, "int8", "onnxruntime", "v2")
    with pytest.raises(ValueError, match="failed the accuracy guard.*-0.0200"):
        G.require_offered(sha, "bf16", "torch")
    # a record is updated, not replaced: the bf16 entry survives a new int8 entry, which replaces the old one
    G.write_record(G.records_dir() / f"{sha[:24]}.json", sha, [dict(good, delta_srcc=0.002)], model="m")
    assert G.find_entry(sha, "bf16", "torch")["delta_srcc"] == -0.02
    assert G.find_entry(sha, "int8", "onnxruntime", "v1")["delta_srcc"] == 0.002


def test_precisions_not_shipped_say_why(capsys, tmp_path):
    img = tmp_path / "a.png"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(img)
    assert main(["score", str(img), "--backend", "onnxruntime", "--precision", "bf16"]) == 2
    assert "no bfloat16 convolution" in capsys.readouterr().err
    assert main(["score", str(img), "--backend", "torch", "--precision", "int8"]) == 2
    assert "int8 is not offered on torch" in capsys.readouterr().err
    with pytest.raises(ValueError, match="classical"):
        load("brisque", precision="int8")


@pytest.mark.parametrize("name", sorted(TRAINED_MODELS))
def test_every_bundled_guard_record_matches_its_model(name, exports):
    """The record shipped beside each bundled model names its checkpoint, offers exactly what passed the
    rule, and has an int8 entry; biqa-fast's names the int8 model biqa exports now (the shipped calibration
    table and the layers kept float32)."""
    ckpt = TRAINED_MODELS[name]
    rec = json.loads(G.bundled_record(ckpt).read_text())  # missing: python benchmarks/precision.py --model NAME
    assert rec["checkpoint_sha256"] == file_digest(ckpt) and default_calibration_table(ckpt) is not None
    int8 = [e for e in rec["entries"] if e["precision"] == "int8"]
    assert len(int8) == 1
    if ckpt == FAST:
        assert int8[0]["variant"] == G.calibration_variant(OrtModel(exports[1]).meta)
    for e in rec["entries"]:
        assert e["offered"] == G.passes(e)


def test_cached_int8_export_scores_without_torch(exports, tmp_path):
    """`biqa score --precision int8` finds the cached int8 export of biqa-fast (keyed by the checkpoint and
    the calibration table) and scores it on the torch-free path; the accuracy guard is checked there too."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from biqa.ortscore import cache_dir, cache_key, find_cached_export

    os.environ["BIQA_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        assert find_cached_export(FAST, precision="int8") is None
        key = cache_key(FAST, precision="int8", calibration_table=default_calibration_table(FAST))
        cache_dir().mkdir(parents=True)
        shutil.copyfile(exports[1], cache_dir() / f"{key}.onnx")
        assert find_cached_export(FAST, precision="int8") == cache_dir() / f"{key}.onnx"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "biqa", "score", str(EXAMPLES_DIR / "coffee.jpg"),
                            "--model", "biqa-fast", "--precision", "int8", "--force"], capture_output=True, text=True,
                           env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        names = {ln.rsplit("|", 1)[-1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")}
        assert "onnxruntime" in names and not names & {"torch", "timm", "torchvision"}
        assert "coffee.jpg" in r.stdout
        offered = (G.find_entry(file_digest(FAST), "int8", "onnxruntime",
                                G.calibration_variant(OrtModel(exports[1]).meta)) or {}).get("offered")
        r = subprocess.run([sys.executable, "-m", "biqa", "score", str(EXAMPLES_DIR / "coffee.jpg"), "--model",
                            "biqa-fast", "--precision", "int8", "-q"], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == (0 if offered else 2), r.stderr[-2000:]  # without --force: as the guard says
        s = load("biqa-fast", precision="int8", force=True, num_workers=0)  # the Python API: the same cached file
        assert s.backend == "onnxruntime" and s.meta["precision"] == "int8"
    finally:
        del os.environ["BIQA_CACHE_DIR"]


def test_bench_rows_for_the_precisions(tmp_path):
    import pandas as pd

    csv = tmp_path / "bench.csv"
    main(["bench", "biqa-fast", "--sizes", "64", "--batch", "1", "--repeats", "1", "--threads", "1",
          "--backends", "onnxruntime,onnxruntime-int8,torch-bf16", "--out", str(csv)])
    df = pd.read_csv(csv)
    assert list(df["backend"]) == ["onnxruntime", "onnxruntime-int8", "torch-bf16"]
    assert df["vs_onnxruntime_fp32"].iloc[0] == 1.0 and df["images_per_s"].iloc[1] > 0
    if native_bf16("cpu"):
        assert df["images_per_s"].iloc[2] > 0
    else:
        assert df["error"].iloc[2].startswith("not offered")


def test_int8_keeps_each_side_by_side_backbones_stem_and_first_block_float():
    """A two-backbone graph (biqa.models.SideBySide: /bodies.K/ node names): each backbone keeps its own stem
    and first block float32, and its pooling; residual Adds of two activations are quantised, Adds of a
    constant and everything after the last convolution are not. A one-backbone graph: the same rule once."""
    from onnx import helper

    from biqa.export import int8_float_nodes

    def body(k, prefix):
        p = f"{prefix}/extractor"
        conv = lambda name, x, y, s=1: helper.make_node("Conv", [x, "w"], [y], name=f"{p}/{name}/Conv",
                                                        strides=[s, s])
        return [conv("conv_stem", "x", f"a{k}", 2), conv("blocks.0/blocks.0.0/conv_dw", f"a{k}", f"b{k}"),
                conv("blocks.0/blocks.0.0/conv_pw", f"b{k}", f"c{k}"),
                conv("blocks.1/blocks.1.0/conv_pw", f"c{k}", f"d{k}"),  # feeds the 2nd stride-2 convolution
                conv("blocks.1/blocks.1.0/conv_dw", f"d{k}", f"e{k}", 2),
                conv("blocks.1/blocks.1.0/conv_pwl", f"e{k}", f"f{k}"),
                helper.make_node("Add", [f"f{k}", f"e{k}"], [f"g{k}"], name=f"{p}/blocks.1/blocks.1.1/Add"),
                conv("blocks.2/blocks.2.0/conv_pw", f"g{k}", f"g{k}2"),
                helper.make_node("Add", [f"g{k}2", "eps"], [f"h{k}"], name=f"{prefix}/noise/Add"),
                helper.make_node("ReduceMean", [f"h{k}"], [f"m{k}"], name=f"{prefix}/ReduceMean")]

    head = [helper.make_node("Concat", ["m0", "m1"], ["cat"], name="/model/backbone/Concat", axis=1),
            helper.make_node("Add", ["cat", "cat"], ["score"], name="/model/head/Add")]
    x = helper.make_tensor_value_info("x", 1, None)
    y = helper.make_tensor_value_info("score", 1, None)
    inits = [helper.make_tensor("w", 1, [1], [1.0]), helper.make_tensor("eps", 1, [1], [1e-6])]
    two = helper.make_model(helper.make_graph(body(0, "/model/backbone/bodies.0") + body(1, "/model/backbone/bodies.1")
                                              + head, "g", [x], [y], inits))
    floats, float_convs, quantized = int8_float_nodes(two)
    for k in (0, 1):
        p = f"/model/backbone/bodies.{k}"
        assert [c for c in float_convs if c.startswith(p)] == [
            f"{p}/extractor/{n}/Conv"
            for n in ("conv_stem", "blocks.0/blocks.0.0/conv_dw", "blocks.0/blocks.0.0/conv_pw")]
        assert [c for c in quantized if c.startswith(p)] == [
            f"{p}/extractor/{n}/Conv" for n in ("blocks.1/blocks.1.0/conv_pw", "blocks.1/blocks.1.0/conv_dw",
                                                "blocks.1/blocks.1.0/conv_pwl", "blocks.2/blocks.2.0/conv_pw")]
        assert f"{p}/noise/Add" in floats and f"{p}/ReduceMean" in floats  # a constant's Add; the pooling
        assert f"{p}/extractor/blocks.1/blocks.1.1/Add" not in floats  # a residual: quantised
    assert {"/model/backbone/Concat", "/model/head/Add"} <= set(floats)
    one = helper.make_model(helper.make_graph(body(0, "/model/backbone") + head[1:], "g", [x], [y], inits))
    floats, float_convs, quantized = int8_float_nodes(one)
    assert [c.split("/extractor/")[1] for c in float_convs] == [
        "conv_stem/Conv", "blocks.0/blocks.0.0/conv_dw/Conv", "blocks.0/blocks.0.0/conv_pw/Conv"]
    assert len(quantized) == 4 and int8_float_nodes(one, 1)[1] == float_convs[:1]
