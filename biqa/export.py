"""Deployment formats: ONNX (scored with onnxruntime) and TorchScript.

``export_onnx(checkpoint, "model.onnx")`` writes a model with one input ``image``
(``float32 [batch, 3, height, width]``, normalised: ``(rgb / 255 - mean) / std``) whose batch,
height and width are all dynamic, and outputs ``score`` and ``z`` (plus ``std`` and ``probs``
for distribution models). The checkpoint's preprocessing (mean, std, resolution policy), label
scale (range and direction) and preset are recorded in the ONNX model's ``metadata_props``, so
the ``.onnx`` file alone is enough to score with (``biqa score --model model.onnx``).

The legacy TorchScript-based exporter is used (``dynamo=False``): it exports EfficientNet-Lite
with dynamic axes in about a second, and every export is checked against the torch model on an
input of another size before it is kept.

Two rewrites make the exported graph faster without changing a score: timm's dynamic "same" padding
of the stride-2 convolutions (a ``Pad`` computed from the input's shape, then the convolution) becomes
the convolution's own ``auto_pad="SAME_UPPER"`` (the same padding: TensorFlow's, extra pixel at the
end), which onnxruntime fuses with its neighbours; the shape arithmetic it needed is removed.

``export_onnx(..., quantize="int8")`` writes a statically quantised model (onnxruntime's QDQ format:
int8 weights, symmetric, one scale per output channel; uint8 activations, asymmetric, one scale per
tensor, ranges from a calibration set: :mod:`biqa.calibration`). The stem and the first block (the
convolutions that read the full-resolution image or the stem's output: where int8 gains least and
loses most accuracy) stay in float32, as do the pooling and the head. The calibration (its images, or the
table of ranges it produced) is recorded in the metadata. See docs/speed.md.

``onnx`` and ``onnxruntime`` are optional: ``pip install biqa[onnx]``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .ortscore import (DEFAULT_OPSET, GRAPH_REVISION, INT8_REVISION, ONNX_FORMAT, OrtModel, cache_dir,  # noqa: F401
                       cache_folders, cache_key, default_calibration_table, file_digest, session_options)

_session_options = session_options  # the names this module used before the torch-free module held them
_file_digest = file_digest
INPUT_NAME = "image"
_OUTPUT_ORDER = ("score", "z", "std", "probs")
_EXPORT_SIZE = (224, 224)  # traced at this size; H and W are dynamic
_CHECK_SIZE = (161, 243)  # odd sizes: "same" padding must be computed from the input, not traced
_CHECK_SIZE_EVEN = (160, 242)  # and even ones: TensorFlow's "same" padding puts the odd pixel at the end
# int8: the convolutions before the 2nd stride-2 block stay float32: the stem and the first block (EfficientNet-Lite0:
# the stride-2 stem and block 0's depthwise and pointwise convolutions, all reading the full-resolution image or the
# stem's 32-channel output), i.e. every convolution before the one that feeds the 2nd stride-2 convolution (its
# 1x1 expansion). Measured on biqa-default v3 with its kernel term (benchmarks/precision.py, docs/speed.md): keeping
# the expansion and the stride-2 depthwise convolution float32 as well (INT8_REVISION 3) kept 807 / 810 level pairs
# against 808 / 810 now, with |delta SRCC| 0.0017 against 0.0014, but ran 1.61x float32 in the pipeline against
# 1.91x now (paired, docs/speed.md); quantising their 96-channel tensor moves very smooth photos (a bokeh macro)
# up by ~0.2 on the 1-5 scale (docs/speed.md).
FLOAT_BEFORE_STRIDE2 = 2
INT8_CHECK_TOL = 0.05  # int8: at most this share of the label range from float32 on the check photo
_META_KEYS = ("preset", "label_scale", "preprocessing", "ensemble", "nets", "name", "weights_dtype")
QUANTIZE_CHOICES = ("int8",)


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{module} is not installed: pip install 'biqa[onnx]' (onnx and onnxruntime)") from None


class _TupleOutputs(nn.Module):
    """A quality model whose dict output is flattened into a fixed tuple (exporters need tensors)."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        return tuple(out[k] for k in self.names)


def _load(src, peer: str | None):
    from .checkpoint import load_model
    from .zoo import resolve_checkpoint

    path = resolve_checkpoint(src)
    model, meta = load_model(path, net=peer)
    return model.eval(), meta, path


def _output_names(model: nn.Module) -> tuple[str, ...]:
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 64, 64))
    return tuple(k for k in _OUTPUT_ORDER if k in out)


def deployment_meta(meta: dict, *, source: str, peer: str | None, outputs, fmt: str,
                    checkpoint: str | os.PathLike | None = None) -> dict:
    """What a deployed model needs besides its weights (recorded in the exported file);
    ``checkpoint_sha256`` names the checkpoint it came from (the accuracy guard's records are keyed by it)."""
    from . import __version__

    d = {k: meta[k] for k in _META_KEYS if k in meta}
    d.update({"format": fmt, "source": source, "peer": peer, "input": INPUT_NAME, "outputs": list(outputs),
              "biqa_version": __version__, "torch_version": torch.__version__, "precision": "fp32"})
    if checkpoint is not None:
        d["checkpoint_sha256"] = file_digest(checkpoint)
    return d


def _onnx_props(d: dict) -> dict[str, str]:
    """metadata_props: the whole record as JSON under ``biqa``, plus flat keys for other tools."""
    pre, ls = d.get("preprocessing", {}), d.get("label_scale", {})
    props = {
        "biqa": json.dumps(d),
        "biqa.format": d["format"],
        "biqa.preset": str(d.get("preset", {}).get("name", "")),
        "biqa.input": (f"{INPUT_NAME}: float32 [batch, 3, height, width], RGB, (pixel / 255 - mean) / std; "
                       "batch, height and width are dynamic"),
        "biqa.mean": json.dumps(pre.get("mean")),
        "biqa.std": json.dumps(pre.get("std")),
        "biqa.resolution": str(pre.get("resolution", "full")),
        "biqa.score_range": json.dumps([ls.get("lo"), ls.get("hi")]),
        "biqa.higher_is_better": json.dumps(bool(ls.get("higher_is_better", True))),
        "biqa.outputs": ",".join(d["outputs"]),
        "biqa.precision": str(d.get("precision", "fp32")),
    }
    if "quantization" in d:
        props["biqa.calibration"] = json.dumps(d["quantization"].get("calibration", {}))
    return props


def _export_onnx_bytes(model: nn.Module, names, opset: int) -> bytes:
    wrapper = _TupleOutputs(model, names).eval()
    x = torch.zeros(1, 3, *_EXPORT_SIZE)
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    axes.update({n: {0: "batch"} for n in names})
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(wrapper, (x,), buf, dynamo=False, input_names=[INPUT_NAME], output_names=list(names),
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    return buf.getvalue()


def _check_parity(model: nn.Module, run, names, atol: float) -> float:
    """Max |torch - exported| over ``names`` on seeded batches of 2 at an odd and an even size; raises if > atol."""
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for size in (_CHECK_SIZE, _CHECK_SIZE_EVEN):
        x = torch.randn(2, 3, *size, generator=g)
        with torch.inference_mode():
            ref = model(x)
        got = run(x)
        for n in names:
            d = float((ref[n].float() - torch.as_tensor(got[n]).float()).abs().max())
            worst = max(worst, d)
        if not worst <= atol:
            raise RuntimeError(f"the exported model disagrees with torch by {worst:.3g} (> {atol}) at "
                               f"{size[1]}x{size[0]}: this model does not export correctly")
    return worst


def _same_pad_convs(model: nn.Module) -> int:
    """How many convolutions of ``model`` pad "same" dynamically (timm's ``Conv2dSame``)."""
    return sum(type(m).__name__ == "Conv2dSame" and isinstance(m, nn.Conv2d) for m in model.modules())


def _remove_dead_nodes(graph) -> None:
    """Drop nodes (and initializers) that no graph output depends on."""
    need = {o.name for o in graph.output}
    live = []
    for n in reversed(list(graph.node)):
        if any(o in need for o in n.output):
            live.append(n)
            need.update(i for i in n.input if i)
    live.reverse()
    del graph.node[:]
    graph.node.extend(live)
    inits = [t for t in graph.initializer if t.name in need]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def same_padding_to_auto_pad(proto, expected: int) -> int:
    """Rewrite each ``Pad`` (constant zeros) -> ``Conv`` (no padding of its own) pair of an exported
    timm model into one ``Conv`` with ``auto_pad="SAME_UPPER"``, and drop the shape arithmetic that
    computed the pads. Only when exactly ``expected`` such pairs are found (the model's ``Conv2dSame``
    layers); the caller checks the result against torch at an odd and an even size. Returns the pairs
    rewritten (0: graph unchanged)."""
    from onnx import helper, numpy_helper

    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    pairs = []
    for conv in g.node:
        if conv.op_type != "Conv":
            continue
        pad = producer.get(conv.input[0])
        if pad is None or pad.op_type != "Pad" or len(consumers.get(pad.output[0], [])) != 1:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        mode = {a.name: helper.get_attribute_value(a) for a in pad.attribute}.get("mode", b"constant")
        if mode not in (b"constant", "constant") or any(attrs.get("pads", [0])) or attrs.get("auto_pad", b"NOTSET") not in (
                b"NOTSET", "NOTSET"):
            continue
        if len(pad.input) > 2 and pad.input[2]:
            value = consts.get(pad.input[2])
            if value is None or float(value) != 0.0:
                continue
        pairs.append((pad, conv))
    if not pairs or len(pairs) != expected:
        return 0
    drop = set()
    for pad, conv in pairs:
        conv.input[0] = pad.input[0]
        keep = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
        del conv.attribute[:]
        conv.attribute.extend(keep + [helper.make_attribute("auto_pad", "SAME_UPPER")])
        drop.add(id(pad))
    nodes = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(nodes)
    _remove_dead_nodes(g)
    return len(pairs)


def export_onnx(src, out: str | os.PathLike, *, peer: str | None = None, opset: int = DEFAULT_OPSET,
                check: bool = True, atol: float = 1e-4, quantize: str | None = None,
                calibration: "list[str] | str | None" = None, calibration_table: str | os.PathLike | None = None,
                write_calibration_table: str | os.PathLike | None = None, keep_float_convs: int | None = None,
                rewrite_same_padding: bool = True, log=None) -> Path:
    """Export a trained model name / checkpoint to ONNX with dynamic batch, height and width.

    The checkpoint's preprocessing, label scale and preset go into the model's ``metadata_props``
    (key ``biqa``: JSON; plus flat ``biqa.mean``, ``biqa.std``, ``biqa.resolution`` ...). With
    ``check`` (and onnxruntime installed) the file is verified against torch before it is written.

    ``quantize="int8"``: static int8 quantisation (see the module docstring). Its activation ranges
    come from ``calibration`` (sources of :func:`biqa.calibration.build_calibration`: ``"recipe"``, a
    folder, ``synth:FOLDER``, a records CSV[:COLUMN=SPLIT]), or from ``calibration_table`` (the ranges
    a calibration wrote, onnxruntime's calibration-cache JSON: ``write_calibration_table``), or, with
    neither, from the table shipped with a bundled model, else the ``recipe``. The int8 model is
    checked against the float32 one on a photo (within :data:`INT8_CHECK_TOL` of the label range).
    """
    onnx = _need("onnx")
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown quantisation {quantize!r}: use one of {', '.join(QUANTIZE_CHOICES)}")
    if quantize is None and (calibration or calibration_table or write_calibration_table):
        raise ValueError("--calibration / --calibration-table are for --quantize int8")
    model, meta, path = _load(src, peer)
    names = _output_names(model)
    proto = onnx.load_from_string(_export_onnx_bytes(model, names, opset))
    same_pad = _same_pad_convs(model)
    rewritten = same_padding_to_auto_pad(proto, same_pad) if same_pad and rewrite_same_padding else 0
    d = deployment_meta(meta, source=str(src if src else path), peer=peer, outputs=names, fmt=ONNX_FORMAT,
                        checkpoint=path)
    d["graph_revision"] = GRAPH_REVISION
    if rewritten:
        d["graph_rewrites"] = [f"{rewritten} dynamic same-padding Pad+Conv -> Conv(auto_pad=SAME_UPPER)"]
    _set_props(proto, d)
    data = proto.SerializeToString()
    if check:
        try:
            sess = OnnxRuntimeModel(data, threads=1)
        except ImportError:
            sess = None
        if sess is not None:
            _check_parity(model, sess, names, atol)
    if quantize == "int8":
        data = _quantize_int8(data, d, path, calibration=calibration, calibration_table=calibration_table,
                              write_calibration_table=write_calibration_table, keep_float_convs=keep_float_convs,
                              check=check, log=log)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def _set_props(proto, d: dict) -> None:
    del proto.metadata_props[:]
    for k, v in _onnx_props(d).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name, proto.doc_string = "biqa", f"biqa quality model ({d.get('preset', {}).get('name', '?')})"


def _check_photo() -> "np.ndarray":
    """A bundled photo (uint8 HWC), the int8 export's sanity check input."""
    from .imageio import load_image

    return np.asarray(load_image(str(Path(__file__).resolve().parent / "examples" / "chelsea.jpg")), dtype=np.uint8)


def int8_float_nodes(proto, keep_float_convs: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """The nodes an int8 export keeps float32 (``nodes_to_exclude``), and its float32 and quantised
    convolutions' names, for an ONNX model ``proto``.

    Per backbone (a side-by-side body's ``/bodies.K/`` nodes, each its own; one backbone otherwise): its
    first ``keep_float_convs`` convolutions (default: those before the convolution that feeds its
    FLOAT_BEFORE_STRIDE2-th stride-2 convolution: the stem and the first block) and what follows its last
    convolution (its pooling). Float32 too: everything after the model's last convolution (the head, the
    score's affine map: quantising that Add would round the score itself to 1/255 of its range) and any Add
    of a constant (an epsilon, an offset): only residual additions of two activations are quantised.
    """
    import re

    from onnx import helper

    nodes = list(proto.graph.node)
    body = [int(m.group(1)) if (m := re.search(r"/bodies\.(\d+)/", n.name)) else None for n in nodes]
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    bodies = sorted({body[i] for i in convs} - {None})
    groups = [[i for i in convs if body[i] == b] for b in bodies] if bodies else [convs]
    keep = set()
    for group in groups:
        k = keep_float_convs
        if k is None:  # those before the convolution feeding the FLOAT_BEFORE_STRIDE2-th stride-2 one
            strided = [j for j, i in enumerate(group) if any(
                a.name == "strides" and max(helper.get_attribute_value(a)) >= 2 for a in nodes[i].attribute)]
            k = max(strided[FLOAT_BEFORE_STRIDE2 - 1] - 1, 0) if len(strided) >= FLOAT_BEFORE_STRIDE2 else 0
        cut = group[k] if k < len(group) else len(nodes)
        members = [i for i in range(len(nodes)) if body[i] == body[group[0]]] if bodies else range(len(nodes))
        keep |= {i for i in members if i < cut or i > group[-1]}
    if convs:
        keep |= set(range(convs[-1] + 1, len(nodes)))
    consts = {t.name for t in proto.graph.initializer} | {o for n in nodes if n.op_type == "Constant" for o in n.output}
    keep |= {i for i, n in enumerate(nodes) if n.op_type == "Add" and any(x in consts for x in n.input)}
    return ([nodes[i].name for i in sorted(keep)], [nodes[i].name for i in convs if i in keep],
            [nodes[i].name for i in convs if i not in keep])


def _quantize_int8(fp32: bytes, d: dict, checkpoint: Path, *, calibration, calibration_table, write_calibration_table,
                   keep_float_convs: int | None, check: bool, log) -> bytes:
    """``fp32`` (an exported model) statically quantised to int8; ``d`` (the metadata) gains the record."""
    import logging
    import shutil

    onnx = _need("onnx")
    ort = _need("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .calibration import CalibrationReader, build_calibration
    from .ortscore import normalise

    log = log or (lambda m: None)
    if calibration is None and calibration_table is None:
        calibration_table = default_calibration_table(checkpoint)
        if calibration_table is None:
            calibration = ["recipe"]
    proto = onnx.load_from_string(fp32)
    float_nodes, float_convs, quantized_convs = int8_float_nodes(proto, keep_float_convs)
    pre = d["preprocessing"]
    with tempfile.TemporaryDirectory(prefix="biqa-int8-") as tmp:
        src, dst, table = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "calibration.json"
        src.write_bytes(fp32)
        reader = None
        if calibration is not None:
            cal = build_calibration(calibration)
            cal_info = cal.describe()
            log(f"calibrating on {len(cal.items)} images ({cal_info['id']})")
            reader = CalibrationReader(cal, INPUT_NAME, pre["mean"], pre["std"], pre.get("resolution", "full"), log=log)
        else:
            shutil.copyfile(calibration_table, table)
            raw = json.loads(Path(calibration_table).read_text())
            cal_info = dict(raw.get("biqa", {"id": "unknown (a table without biqa's record)"}))
            cal_info["table_sha256"] = file_digest(calibration_table)
            log(f"quantising with the calibration table {calibration_table} ({cal_info.get('id')})")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime's advice to pre-process (its shape inference fails on dynamic sizes)
        ort.set_default_logger_severity(3)
        try:
            quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "Clip", "Add"], nodes_to_exclude=float_nodes,
                            calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(table),
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        finally:
            root.setLevel(level)
        if calibration is not None:
            raw = json.loads(table.read_text())
            raw["biqa"] = cal_info
            text = json.dumps(raw, sort_keys=True)
            if write_calibration_table:
                Path(write_calibration_table).parent.mkdir(parents=True, exist_ok=True)
                Path(write_calibration_table).write_text(text)
            cal_info = dict(cal_info, table_sha256=hashlib.sha256(text.encode()).hexdigest())
        q = onnx.load(str(dst))
    producer = {o: n for n in q.graph.node for o in n.output}
    missing = [n.name for n in q.graph.node if n.op_type == "Conv" and n.name in quantized_convs
               and getattr(producer.get(n.input[1]), "op_type", None) != "DequantizeLinear"]
    if missing:
        raise RuntimeError(f"{len(missing)} convolution(s) were not quantised (e.g. {missing[0]}): the calibration table "
                           "does not match this export (made with another torch or biqa version?); calibrate again "
                           "with --calibration")
    d["precision"] = "int8"
    d["quantization"] = {
        "format": "onnxruntime QDQ (static)", "weights": "int8, symmetric, per output channel",
        "activations": "uint8, asymmetric, per tensor", "method": "MinMax",
        "revision": INT8_REVISION, "quantized_ops": ["Conv", "Clip", "Add (residual)"],
        "float_nodes": len(float_nodes),
        "float_convs": float_convs, "calibration": cal_info,
        "onnxruntime_version": ort.__version__}
    _set_props(q, d)
    data = q.SerializeToString()
    if check:
        x = normalise(_check_photo(), pre["mean"], pre["std"])
        ref = OrtModel(fp32, threads=1)(x)["score"]
        got = OrtModel(data, threads=1)(x)["score"]
        ls = d.get("label_scale", {})
        span = abs(float(ls.get("hi", 1.0)) - float(ls.get("lo", 0.0))) or 1.0
        diff = float(np.abs(np.asarray(ref, np.float64) - np.asarray(got, np.float64)).max())
        if not diff <= INT8_CHECK_TOL * span:
            raise RuntimeError(f"the int8 model scores a photo {diff:.3g} away from float32 (> {INT8_CHECK_TOL:g} of "
                               f"the label range): quantisation failed for this model")
        d["quantization"]["check"] = {"photo": "biqa/examples/chelsea.jpg", "abs_diff_vs_fp32": round(diff, 6)}
        _set_props(q, d)
        data = q.SerializeToString()
    return data


def export_torchscript(src, out: str | os.PathLike, *, peer: str | None = None, atol: float = 1e-4) -> Path:
    """Export to TorchScript by tracing (``torch.jit.load`` + the ``biqa.json`` extra file to use it).

    The traced module returns a tuple in the order of ``biqa.json``'s ``outputs``. Tracing can bake
    input sizes into a model; the result is checked at a second size and refused if it disagrees.
    """
    model, meta, path = _load(src, peer)
    names = _output_names(model)
    wrapper = _TupleOutputs(model, names).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, torch.zeros(1, 3, *_EXPORT_SIZE), check_trace=False)
        traced = torch.jit.freeze(traced)

    def run(x):
        with torch.no_grad():
            return dict(zip(names, traced(x)))

    _check_parity(model, run, names, atol)
    d = deployment_meta(meta, source=str(src if src else path), peer=peer, outputs=names, fmt="biqa-torchscript-1")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(traced, str(out), _extra_files={"biqa.json": json.dumps(d)})
    return out


def read_onnx_meta(path_or_bytes) -> dict:
    """The ``biqa`` record of an exported ONNX model (preprocessing, label scale, preset, outputs)."""
    onnx = _need("onnx")
    if isinstance(path_or_bytes, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(path_or_bytes))
    else:
        proto = onnx.load(str(path_or_bytes), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if "biqa" not in props:
        raise ValueError(f"{path_or_bytes if not isinstance(path_or_bytes, bytes) else 'the model'} is an ONNX "
                         "model but not one exported by biqa (no 'biqa' metadata): use `biqa export`")
    return json.loads(props["biqa"])


class OnnxRuntimeModel:
    """An exported model run by onnxruntime (CPU), called like an ``IQAModel``: tensor in, dict out.

    ``OnnxRuntimeModel("model.onnx")(x)`` with ``x`` a normalised ``[B, 3, H, W]`` float tensor
    returns ``{"score": ..., "z": ..., ["std", "probs"]}`` as torch tensors. ``meta`` is the
    record from the file's metadata (see :func:`read_onnx_meta`); ``precision``: ``fp32`` or ``int8``.
    The torch-free :class:`biqa.ortscore.OrtModel` (NumPy in and out) does the work.
    """

    backend = "onnxruntime"

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None,
                 providers: list[str] | None = None):
        self.ort = OrtModel(model, threads=threads, providers=providers)
        self.meta, self.precision = self.ort.meta, self.ort.precision
        self.session, self.input_name, self.output_names = self.ort.session, self.ort.input_name, self.ort.output_names

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return {n: torch.from_numpy(o) for n, o in self.ort(a).items()}


# ---------------------------------------------------------------- cache for `--backend onnxruntime`

def cached_onnx(src, *, peer: str | None = None, opset: int = DEFAULT_OPSET, precision: str = "fp32") -> Path:
    """The ONNX export of a checkpoint, exported once and then reused from :func:`cache_dir`.

    The cache key (:func:`biqa.ortscore.cache_key`) is the checkpoint file's SHA-256, the peer, the
    opset, the export format and graph revision, and for ``precision="int8"`` the calibration table's
    SHA-256 (int8 needs one: bundled models ship theirs; export others with ``biqa export --quantize
    int8 --calibration ...``), so a retrained checkpoint never reuses an old export. If the cache
    folder cannot be written, the export goes to a temporary folder instead.
    """
    from .zoo import resolve_checkpoint

    path = resolve_checkpoint(src)
    table = None
    if precision == "int8":
        table = default_calibration_table(path)
        if table is None:
            raise ValueError(f"no int8 calibration table ships with {src or path}: export an int8 model with `biqa export "
                             f"{src or path} --quantize int8 --calibration FOLDER|CSV -o model-int8.onnx` and score that "
                             "file")
    elif precision != "fp32":
        raise ValueError(f"no {precision} ONNX export: onnxruntime scores fp32 or int8")
    key = cache_key(path, peer=peer, opset=opset, precision=precision, calibration_table=table)
    for folder in cache_folders():
        target = folder / f"{key}.onnx"
        if target.is_file():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return export_onnx(path, target, peer=peer, opset=opset, quantize="int8" if precision == "int8" else None,
                               calibration_table=table)
        except OSError:
            continue
    raise OSError(f"could not write an ONNX export of {path} to {cache_dir()} or the temporary folder")
