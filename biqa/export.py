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

import torch
from torch import nn

ONNX_FORMAT = "biqa-onnx-1"
DEFAULT_OPSET = 17
INPUT_NAME = "image"
_OUTPUT_ORDER = ("score", "z", "std", "probs")
_EXPORT_SIZE = (224, 224)  # traced at this size; H and W are dynamic
_CHECK_SIZE = (161, 243)  # odd sizes: "same" padding must be computed from the input, not traced
_META_KEYS = ("preset", "label_scale", "preprocessing", "ensemble", "nets", "name", "weights_dtype")


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


def deployment_meta(meta: dict, *, source: str, peer: str | None, outputs, fmt: str) -> dict:
    """What a deployed model needs besides its weights (recorded in the exported file)."""
    from . import __version__

    d = {k: meta[k] for k in _META_KEYS if k in meta}
    d.update({"format": fmt, "source": source, "peer": peer, "input": INPUT_NAME, "outputs": list(outputs),
              "biqa_version": __version__, "torch_version": torch.__version__})
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
    }
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
    """Max |torch - exported| over ``names`` on a seeded batch of 2 at an odd size; raises if > atol."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *_CHECK_SIZE, generator=g)
    with torch.inference_mode():
        ref = model(x)
    got = run(x)
    worst = 0.0
    for n in names:
        d = float((ref[n].float() - torch.as_tensor(got[n]).float()).abs().max())
        worst = max(worst, d)
    if not worst <= atol:
        raise RuntimeError(f"the exported model disagrees with torch by {worst:.3g} (> {atol}) at "
                           f"{_CHECK_SIZE[1]}x{_CHECK_SIZE[0]}: this model does not export correctly")
    return worst


def export_onnx(src, out: str | os.PathLike, *, peer: str | None = None, opset: int = DEFAULT_OPSET,
                check: bool = True, atol: float = 1e-4) -> Path:
    """Export a trained model name / checkpoint to ONNX with dynamic batch, height and width.

    The checkpoint's preprocessing, label scale and preset go into the model's ``metadata_props``
    (key ``biqa``: JSON; plus flat ``biqa.mean``, ``biqa.std``, ``biqa.resolution`` ...). With
    ``check`` (and onnxruntime installed) the file is verified against torch before it is written.
    """
    onnx = _need("onnx")
    model, meta, path = _load(src, peer)
    names = _output_names(model)
    proto = onnx.load_from_string(_export_onnx_bytes(model, names, opset))
    d = deployment_meta(meta, source=str(src if src else path), peer=peer, outputs=names, fmt=ONNX_FORMAT)
    del proto.metadata_props[:]
    for k, v in _onnx_props(d).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name, proto.doc_string = "biqa", f"biqa quality model ({d.get('preset', {}).get('name', '?')})"
    data = proto.SerializeToString()
    if check:
        try:
            sess = OnnxRuntimeModel(data, threads=1)
        except ImportError:
            sess = None
        if sess is not None:
            _check_parity(model, sess, names, atol)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


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


def _session_options(threads: int | None):
    ort = _need("onnxruntime")
    from .host import default_threads

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or default_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Threads that spin between runs take the CPU that decoding needs when the two share cores:
    # measured on 2 cores, spinning cost 7% of the pipeline's throughput with inline decoding and
    # 15% with a decode worker, and gained ~3% on the bare forward. BIQA_ORT_SPIN=1 turns it on.
    if os.environ.get("BIQA_ORT_SPIN", "0") != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class OnnxRuntimeModel:
    """An exported model run by onnxruntime (CPU), called like an ``IQAModel``: tensor in, dict out.

    ``OnnxRuntimeModel("model.onnx")(x)`` with ``x`` a normalised ``[B, 3, H, W]`` float tensor
    returns ``{"score": ..., "z": ..., ["std", "probs"]}`` as torch tensors. ``meta`` is the
    record from the file's metadata (see :func:`read_onnx_meta`).
    """

    backend = "onnxruntime"

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None,
                 providers: list[str] | None = None):
        ort = _need("onnxruntime")
        self.meta = read_onnx_meta(model if isinstance(model, (bytes, bytearray)) else Path(model))
        src = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
        self.session = ort.InferenceSession(src, _session_options(threads),
                                            providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        outs = self.session.run(self.output_names, {self.input_name: a})
        return {n: torch.from_numpy(o) for n, o in zip(self.output_names, outs)}


# ---------------------------------------------------------------- cache for `--backend onnxruntime`

def cache_dir() -> Path:
    """Where checkpoints exported for ``--backend onnxruntime`` are kept: ``$BIQA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/biqa``, else ``~/.cache/biqa`` (an ``onnx/`` folder inside it)."""
    root = os.environ.get("BIQA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "biqa")
    return Path(root) / "onnx"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_onnx(src, *, peer: str | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """The ONNX export of a checkpoint, exported once and then reused from :func:`cache_dir`.

    The cache key is the checkpoint file's SHA-256, the peer, the opset and the export format
    version, so a retrained checkpoint never reuses an old export. If the cache folder cannot be
    written, the export goes to a temporary folder instead.
    """
    from . import __version__
    from .zoo import resolve_checkpoint

    path = resolve_checkpoint(src)
    key = f"{_file_digest(path)[:24]}-{peer or 'default'}-op{opset}-{ONNX_FORMAT}-{__version__}"
    for folder in (cache_dir(), Path(tempfile.gettempdir()) / "biqa-onnx-cache"):
        target = folder / f"{key}.onnx"
        if target.is_file():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return export_onnx(path, target, peer=peer, opset=opset)
        except OSError:
            continue
    raise OSError(f"could not write an ONNX export of {path} to {cache_dir()} or the temporary folder")
