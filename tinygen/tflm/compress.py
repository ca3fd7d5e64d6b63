"""TFLM's compressed tensors: a clustered int8 model rewritten by TFLM's own compression tooling
(tflite_micro.tensorflow.lite.micro.compression, shipped in the tflite-micro wheel) so that each
weight tensor is b-bit indices into a small int8 table (per tensor, or per output channel) and a
TFLM_DECODE operator expands it in the arena before its consumer runs; and the proof that the
tflite-micro interpreter gives bit-identical outputs on the compressed and uncompressed model."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError, TinygenError
from ..model.graph import Graph, parse

DECODE_OP = "CUSTOM:TFLM_DECODE"
# The weight (input 1) of these ops is what clustering shares and TFLM's DECODE expands.
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
MAX_INDEX_BITS = 7      # TFLM's LUT format: 1-7-bit indices


@dataclass
class CompressedModel:
    model: bytes                          # the TFLM compressed-tensor .tflite
    bits: dict[int, int] = field(default_factory=dict)   # weight tensor index -> index bits
    skipped: dict[int, str] = field(default_factory=dict)  # weight tensor index -> why left dense


def weight_tensors(graph: Graph) -> list[int]:
    """Constant int8 weight tensors of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, each once."""
    found: dict[int, None] = {}
    for op in graph.operators:
        if op.op in WEIGHT_OPS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            t = graph.tensors[op.inputs[1]]
            if t.is_const and t.dtype == "INT8":
                found[t.index] = None
    return list(found)


def channel_axis(graph: Graph, tensor: int) -> int:
    """The output-channel axis of a weight: the quantized dimension (0 for CONV_2D and
    FULLY_CONNECTED, 3 for DEPTHWISE_CONV_2D); TFLM's kernels take axis 0 or the last."""
    t = graph.tensors[tensor]
    if t.scale is not None and len(t.scale) > 1:
        return t.quantized_dimension
    return len(t.shape) - 1 if any(o.op == "DEPTHWISE_CONV_2D" and o.inputs[1] == tensor for o in graph.operators) else 0


def table_axis(graph: Graph, tensor: int) -> int | None:
    """The axis of a weight's per-channel look-up tables, or None for one table: whatever its
    int8 quantization is. TFLM's LUT decoder (decode_state_lut.cc) lays the tables out by the
    tensor's quantization scales, not by the axis the table header names, and the compressor
    writes either: one table for a per-channel-quantized weight, or per-channel tables for a
    per-tensor one, decode wrong (measured in the tflite-micro wheel: vww_96_int8 off by up to
    176 steps, ad01_int8 by 203)."""
    t = graph.tensors[tensor]
    if t.scale is None or len(t.scale) <= 1:
        return None
    return channel_axis(graph, tensor)


def values(model_bytes: bytes, graph: Graph, tensor: int) -> np.ndarray:
    """A constant int8 tensor's values, shaped."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    t = model_editor.read(model_bytes).subgraphs[0].tensors[tensor]
    return np.frombuffer(bytes(t.buffer.data), np.int8).reshape(graph.tensors[tensor].shape)


def index_bits(w: np.ndarray, axis: int | None) -> int:
    """Index bits a LUT needs for `w`: enough for its distinct values (per slice along `axis`)."""
    slices = [w] if axis is None else list(np.moveaxis(w, axis, 0))
    most = max(len(np.unique(s)) for s in slices)
    return max(1, int(np.ceil(np.log2(most))))


def compress(model_bytes: bytes, graph: Graph) -> CompressedModel:
    """Compress every weight tensor of `model_bytes` that a LUT of at most 7-bit indices holds
    and that gets smaller for it, with TFLM's compressor (tables per channel or per tensor as
    the weight is quantized: table_axis); the rest stay dense (named in `skipped`). Raises
    TinygenError when no weight can be compressed."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor, spec
    from tflite_micro.tensorflow.lite.micro.compression.compress import compress as tflm_compress

    editor = model_editor.read(model_bytes)
    specs, bits, skipped = [], {}, {}
    for i in weight_tensors(graph):
        t = graph.tensors[i]
        w = np.frombuffer(bytes(editor.subgraphs[0].tensors[i].buffer.data), np.int8).reshape(t.shape)
        axis = table_axis(graph, i)
        b = index_bits(w, axis)
        if b > MAX_INDEX_BITS:
            skipped[i] = f"{len(np.unique(w))} distinct values need {b}-bit indices, more than TFLM's 7"
            continue
        tables = 1 if axis is None else t.shape[axis]
        if (w.size * b + 7) // 8 + tables * (1 << b) + 16 >= w.size:
            skipped[i] = "its indices and tables would not be smaller than the int8 weights"
            continue
        mode = spec.PerTensor() if axis is None else spec.PerChannel(axis=axis)
        specs.append(spec.Tensor(0, i, [spec.LookUpTableCompression(index_bitwidth=b, mode=mode)]))
        bits[i] = b
    if not specs:
        why = "; ".join(f"tensor {i}: {s}" for i, s in skipped.items()) or "it has no int8 weights"
        raise TinygenError(f"No weight of the model can be stored as TFLM compressed tensors ({why}); "
                           "cluster it first (tinygen shrink --cluster 16).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = bytes(tflm_compress(model_bytes, specs))
        out = _drop_encoded_quantization(out)
    except Exception as e:   # the compressor's own errors, and what it raises from its flatbuffer code
        raise ModelError(f"TFLM's compressor refuses the model: {str(e).splitlines()[0] if str(e) else type(e).__name__}.") from None
    return CompressedModel(out, bits, skipped)


def _drop_encoded_quantization(model: bytes) -> bytes:
    """The compressor means each encoded tensor (a flat UINT8 index stream) to lose its
    quantization (decode_insert sets it to None), but its model_editor keeps the original's
    when the new value is None: per-channel scales then name a dimension the stream does not
    have. TFLM's DECODE reads the scales from its output tensor, so they go; the model is then
    aligned as the compressor aligns it."""
    import os
    import tempfile

    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    m = schema.ModelT.InitFromPackedBuf(model, 0)
    for sg in m.subgraphs:
        for o in sg.operators or []:
            code = m.operatorCodes[o.opcodeIndex].customCode
            if code in (b"TFLM_DECODE", "TFLM_DECODE"):
                sg.tensors[int(o.inputs[0])].quantization = None
    b = flatbuffers.Builder(len(model) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.tflite"), os.path.join(tmp, "out.tflite")
        with open(src, "wb") as f:
            f.write(b.Output())
        tflite_flatbuffer_align_wrapper.align_tflite_model(src, dst)
        with open(dst, "rb") as f:
            return f.read()


@dataclass
class BitExact:
    identical: bool
    samples: int
    max_abs_diff: int


def run(model_bytes: bytes, x: np.ndarray, arena: int) -> np.ndarray:
    """Raw outputs (output 0) of the tflite-micro interpreter for int8 inputs x (one row each)."""
    from tflite_micro.python.tflite_micro import runtime

    try:
        it = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
        out = []
        for sample in x:
            it.set_input(sample[None], 0)
            it.invoke()
            out.append(it.get_output(0).copy())
    except (RuntimeError, ValueError, IndexError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"TensorFlow Lite Micro fails on the model: {first.rstrip('.')}.") from None
    return np.stack(out)


def check_bit_exact(uncompressed: bytes, compressed: bytes, x_int8: np.ndarray) -> BitExact:
    """Both models through the tflite-micro interpreter (reference kernels) on the same int8
    inputs; the compressed one decodes its tensors into the arena, so it gets that much more."""
    from .interpreter import host_arena_bytes

    g = parse(uncompressed)
    arena = host_arena_bytes(g)
    extra = sum(g.tensors[i].nbytes for i in weight_tensors(g))
    a = run(uncompressed, x_int8, arena)
    b = run(compressed, x_int8, arena + 2 * extra + 64 * 1024)
    diff = int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) if a.size else 0
    return BitExact(bool(np.array_equal(a, b)), len(x_int8), diff)


def synthetic_inputs(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    """Uniform int8 inputs of the model's input shape: for bit-exactness any input will do."""
    t = graph.tensors[graph.inputs[0]]
    if t.dtype != "INT8":
        raise ModelError(f"The model's input is {t.dtype}; TFLM compression here takes int8 models.")
    return np.random.default_rng(seed).integers(-128, 128, size=(n,) + tuple(t.shape[1:]), dtype=np.int8)
