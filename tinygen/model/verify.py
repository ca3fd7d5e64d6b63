"""Verify a .tflite before any interpreter or compiler sees it.

TFLite Micro reads the flatbuffer in place without a verifier: an offset, a vector length,
a tensor, buffer or opcode index taken from the file is trusted, and a bad one is a read
outside the model (SIGSEGV on the host, a HardFault on the board). Its kernels assert
(TFLITE_CHECK: abort) on quantized multipliers out of range, and index and divide by the
shapes and options they are given.
`verify()` checks all of that first and says what is wrong in one sentence:

1. the flatbuffer itself: every table, vtable, offset, vector and string the schema reads
   lies inside the file, aligned, with no more shared bytes than a writer produces (the
   `flatbuffers` package has no verifier for Python; this walks TFLite's schema the way
   flatbuffers' C++ Verifier does);
2. the graph: opcode, tensor and buffer indices; shapes, types, constant data against
   shape and type; quantization parameters; option tables of the op's own type;
3. the ops tinygen lowers and replays (convolutions, fully connected, pools, element-wise,
   softmax, logistic, quantize, mean, pad, concatenation): ranks, shapes, options,
   and the quantized multipliers with TFLM's own limits (tensorflow/lite/kernels/internal/
   quantization_util.cc and micro/kernels/*_common.cc, tflite-micro 90b983c2).

What TFLM rejects politely (a kernel's Prepare returning an error) is left to TFLM: the
pipeline runs the model once in the tflite-micro interpreter, in a child process
(tflm.interpreter.check_runs)."""

from __future__ import annotations

import math
import struct

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import ModelError


class VerifyError(ModelError):
    """A model verify() refuses. `tflm` is what TensorFlow Lite Micro does with it: "aborts"
    (a TFLITE_CHECK), "refuses" (AllocateTensors returns an error), or "undefined" (it reads,
    writes or shifts outside what is defined, or computes with a meaningless value: what
    happens is luck, a crash here, wrong numbers there)."""

    def __init__(self, message: str, tflm: str = "undefined"):
        super().__init__(message)
        self.tflm = tflm


# --- 1. the flatbuffer ------------------------------------------------------------------

# scalar kind -> (struct format, bytes)
_SCALAR = {"bool": ("<?", 1), "u8": ("<B", 1), "i8": ("<b", 1), "u16": ("<H", 2), "i32": ("<i", 4),
           "u32": ("<I", 4), "f32": ("<f", 4), "i64": ("<q", 8), "u64": ("<Q", 8)}
_NUMPY = {"bool": "?", "u8": "u1", "i8": "i1", "u16": "<u2", "i32": "<i4", "u32": "<u4", "f32": "<f4",
          "i64": "<i8", "u64": "<u8"}


def _enum(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_")}


def _camel(snake: str) -> str:
    """The schema's field name as the generated Python classes spell it: stride_h -> strideH."""
    head, *rest = snake.split("_")
    return head + "".join(p.capitalize() for p in rest)


# Table -> {slot: (field, kind[, default])}: kind is a scalar, "string", ("vector", element),
# ("table", name) or ("union", type slot, {type: table}). Fields not listed are still checked
# to lie inside their table; tables not listed (most option tables) get that check only.
_TABLES: dict[str, dict[int, tuple]] = {
    "Model": {0: ("version", "u32"), 1: ("operator_codes", ("vector", "OperatorCode")),
              2: ("subgraphs", ("vector", "SubGraph")), 3: ("description", "string"),
              4: ("buffers", ("vector", "Buffer")), 5: ("metadata_buffer", ("vector", "i32")),
              6: ("metadata", ("vector", "Metadata")), 7: ("signature_defs", ("vector", "SignatureDef")),
              8: ("external_buffer_groups", ("vector", "ExternalBufferGroup")),
              9: ("external_buffers", ("vector", "ExternalBuffer"))},
    "OperatorCode": {0: ("deprecated_builtin_code", "i8"), 1: ("custom_code", "string"), 2: ("version", "i32", 1),
                     3: ("builtin_code", "i32")},
    "SubGraph": {0: ("tensors", ("vector", "Tensor")), 1: ("inputs", ("vector", "i32")),
                 2: ("outputs", ("vector", "i32")), 3: ("operators", ("vector", "Operator")), 4: ("name", "string"),
                 5: ("debug_metadata_index", "i32", -1)},
    "Tensor": {0: ("shape", ("vector", "i32")), 1: ("type", "i8"), 2: ("buffer", "u32"), 3: ("name", "string"),
               4: ("quantization", ("table", "QuantizationParameters")), 5: ("is_variable", "bool", False),
               6: ("sparsity", ("table", "SparsityParameters")), 7: ("shape_signature", ("vector", "i32")),
               8: ("has_rank", "bool", False), 9: ("variant_tensors", ("vector", "VariantSubType")),
               10: ("external_buffer", "u32")},
    "QuantizationParameters": {0: ("min", ("vector", "f32")), 1: ("max", ("vector", "f32")),
                               2: ("scale", ("vector", "f32")), 3: ("zero_point", ("vector", "i64")),
                               4: ("details_type", "u8"),
                               5: ("details", ("union", 4, _enum(schema.QuantizationDetails))),
                               6: ("quantized_dimension", "i32")},
    "CustomQuantization": {0: ("custom", ("vector", "u8"))},
    "SparsityParameters": {0: ("traversal_order", ("vector", "i32")), 1: ("block_map", ("vector", "i32")),
                           2: ("dim_metadata", ("vector", "DimensionMetadata"))},
    "DimensionMetadata": {0: ("format", "i8"), 1: ("dense_size", "i32"), 2: ("array_segments_type", "u8"),
                          3: ("array_segments", ("union", 2, _enum(schema.SparseIndexVector))),
                          4: ("array_indices_type", "u8"),
                          5: ("array_indices", ("union", 4, _enum(schema.SparseIndexVector)))},
    "Int32Vector": {0: ("values", ("vector", "i32"))},
    "Uint16Vector": {0: ("values", ("vector", "u16"))},
    "Uint8Vector": {0: ("values", ("vector", "u8"))},
    "VariantSubType": {0: ("shape", ("vector", "i32")), 1: ("type", "i8"), 2: ("has_rank", "bool", False)},
    "Buffer": {0: ("data", ("vector", "u8")), 1: ("offset", "u64"), 2: ("size", "u64")},
    "Metadata": {0: ("name", "string"), 1: ("buffer", "u32")},
    "TensorMap": {0: ("name", "string"), 1: ("tensor_index", "u32")},
    "SignatureDef": {0: ("inputs", ("vector", "TensorMap")), 1: ("outputs", ("vector", "TensorMap")),
                     2: ("signature_key", "string"), 3: ("deprecated_tag", "string"), 4: ("subgraph_index", "u32")},
    "ExternalBufferGroup": {0: ("name", "string")},
    "ExternalBuffer": {0: ("id", "u32"), 1: ("group", "u32"), 2: ("offset", "u64"), 3: ("length", "u64"),
                       4: ("packing", "string")},
    "Operator": {0: ("opcode_index", "u32"), 1: ("inputs", ("vector", "i32")), 2: ("outputs", ("vector", "i32")),
                 3: ("builtin_options_type", "u8"),
                 4: ("builtin_options", ("union", 3, _enum(schema.BuiltinOptions))),
                 5: ("custom_options", ("vector", "u8")), 6: ("custom_options_format", "i8"),
                 7: ("mutating_variable_inputs", ("vector", "bool")), 8: ("intermediates", ("vector", "i32")),
                 9: ("large_custom_options_offset", "u64"), 10: ("large_custom_options_size", "u64"),
                 11: ("builtin_options_2_type", "u8"),
                 12: ("builtin_options_2", ("union", 11, _enum(schema.BuiltinOptions2))),
                 13: ("debug_metadata_index", "i32", -1)},
    # the option tables the op checks read, and those that hold more than scalars
    "Conv2DOptions": {0: ("padding", "i8"), 1: ("stride_w", "i32"), 2: ("stride_h", "i32"),
                      3: ("fused_activation_function", "i8"), 4: ("dilation_w_factor", "i32", 1),
                      5: ("dilation_h_factor", "i32", 1), 6: ("quantized_bias_type", "i8")},
    "DepthwiseConv2DOptions": {0: ("padding", "i8"), 1: ("stride_w", "i32"), 2: ("stride_h", "i32"),
                               3: ("depth_multiplier", "i32"), 4: ("fused_activation_function", "i8"),
                               5: ("dilation_w_factor", "i32", 1), 6: ("dilation_h_factor", "i32", 1)},
    "Pool2DOptions": {0: ("padding", "i8"), 1: ("stride_w", "i32"), 2: ("stride_h", "i32"),
                      3: ("filter_width", "i32"), 4: ("filter_height", "i32"), 5: ("fused_activation_function", "i8")},
    "FullyConnectedOptions": {0: ("fused_activation_function", "i8"), 1: ("weights_format", "i8"),
                              2: ("keep_num_dims", "bool", False), 3: ("asymmetric_quantize_inputs", "bool", False),
                              4: ("quantized_bias_type", "i8"), 5: ("quant_spec", ("vector", "u8"))},
    "AddOptions": {0: ("fused_activation_function", "i8"), 1: ("pot_scale_int16", "bool", True)},
    "SubOptions": {0: ("fused_activation_function", "i8"), 1: ("pot_scale_int16", "bool", True)},
    "MulOptions": {0: ("fused_activation_function", "i8")},
    "SoftmaxOptions": {0: ("beta", "f32", 0.0)},
    "ConcatenationOptions": {0: ("axis", "i32"), 1: ("fused_activation_function", "i8")},
    "ReducerOptions": {0: ("keep_dims", "bool", False)},
    "ReshapeOptions": {0: ("new_shape", ("vector", "i32"))},
    "SqueezeOptions": {0: ("squeeze_dims", ("vector", "i32"))},
    "ConcatEmbeddingsOptions": {1: ("num_columns_per_channel", ("vector", "i32")),
                                2: ("embedding_dim_per_channel", ("vector", "i32"))},
    "VarHandleOptions": {0: ("container", "string"), 1: ("shared_name", "string")},
    "BucketizeOptions": {0: ("boundaries", ("vector", "f32"))},
    "StableHLOCompositeOptions": {0: ("name", "string"), 2: ("composite_attributes", ("vector", "u8"))},
}


# Per table: slot -> (field, its name in the generated classes, kind), and the defaults.
_FIELDS = {kind: {slot: (f[0], _camel(f[0]), f[1]) for slot, f in spec.items()} for kind, spec in _TABLES.items()}
_DEFAULTS = {kind: {_camel(f[0]): f[2] if len(f) > 2 else (0 if isinstance(f[1], str) and f[1] in _SCALAR else None)
                    for f in spec.values()} for kind, spec in _TABLES.items()}


class _View:
    """A table as the walk read it: its fields under the generated classes' names, with the
    schema's defaults for absent ones (only what the walk has verified is in it)."""

    def __init__(self, kind: str):
        self.__dict__.update(_DEFAULTS.get(kind, {}))


class _Structure:
    """A bounds-checking walk of every table the schema code reads, as flatbuffers' C++
    Verifier does it (offsets, vtables, vector lengths and strings inside the file and
    aligned), reading the fields into _Views on the way."""

    def __init__(self, data: bytes, name: str):
        self.d = memoryview(data)
        self.n = len(data)
        self.name = name
        # Bytes of tables, vectors and strings the walk may visit: a file whose tables point
        # at each other over and over (to make readers loop) runs out long before a real one.
        self.budget = 2 * self.n + (1 << 16)

    def fail(self, path: str, problem: str):
        raise VerifyError(f"{self.name} is corrupt or truncated: {path} {problem}.")

    def need(self, pos: int, size: int, align: int, path: str) -> None:
        if pos < 0 or pos + size > self.n:
            self.fail(path, f"lies outside the file (bytes {pos} to {pos + size} of {self.n})")
        if pos % align:
            self.fail(path, f"is misaligned (byte {pos} is not a multiple of {align})")

    def spend(self, size: int, path: str) -> None:
        self.budget -= size
        if self.budget < 0:
            self.fail(path, "is one of many tables that point at the same bytes, far more than any TensorFlow "
                            "Lite writer produces")

    def u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.d, pos)[0]

    def walk(self) -> _View:
        self.need(0, 4, 4, "the root offset")
        return self.table(self.u32(0), "Model", "model")

    def table(self, pos: int, kind: str, path: str) -> _View:
        self.need(pos, 4, 4, path)
        vt = pos - struct.unpack_from("<i", self.d, pos)[0]
        self.need(vt, 4, 2, f"the vtable of {path}")
        vsize, osize = struct.unpack_from("<HH", self.d, vt)
        if vsize < 4 or vsize % 2 or osize < 4:
            self.fail(f"the vtable of {path}", f"has impossible sizes ({vsize}, {osize})")
        self.need(vt, vsize, 2, f"the vtable of {path}")
        self.need(pos, osize, 1, path)
        self.spend(osize, path)
        view = _View(kind)
        fields = _FIELDS.get(kind, {})
        slots = struct.unpack_from(f"<{(vsize - 4) // 2}H", self.d, vt + 4)
        for slot, off in enumerate(slots):
            if not off:
                continue
            fname, attr, ftype = fields.get(slot, (f"field {slot}", None, None))
            scalar = ftype is None or (isinstance(ftype, str) and ftype in _SCALAR)
            size = (_SCALAR[ftype][1] if ftype else 1) if scalar else 4    # else: an offset
            at = pos + off
            if off + size > osize or at % size:
                self.need(at, size, size, f"{path}.{fname}")
                self.fail(f"{path}.{fname}", "lies outside its table")
            if ftype is None:
                continue
            if scalar:
                value = struct.unpack_from(_SCALAR[ftype][0], self.d, at)[0]
            else:
                value = self.offset(at + self.u32(at), ftype, vt, vsize, pos, f"{path}.{fname}")
            view.__dict__[attr] = value
        return view

    def offset(self, target: int, ftype, vt: int, vsize: int, pos: int, path: str):
        """What an offset field points at: a string, a vector, a table or a union's table."""
        if ftype == "string":
            count = self.vector(target, 1, path, string=True)
            return bytes(self.d[target + 4:target + 4 + count])
        if ftype[0] == "vector":
            element = ftype[1]
            if element in _SCALAR:
                count = self.vector(target, _SCALAR[element][1], path)
                return np.frombuffer(self.d, _NUMPY[element], count, target + 4)
            count = self.vector(target, 4, path)
            return [self.table(at + self.u32(at), element, f"{path}[{i}]")
                    for i, at in enumerate(range(target + 4, target + 4 + 4 * count, 4))]
        if ftype[0] == "table":
            return self.table(target, ftype[1], path)
        _, type_slot, names = ftype   # a union: its type field says which table
        toff = struct.unpack_from("<H", self.d, vt + 4 + 2 * type_slot)[0] if 4 + 2 * type_slot < vsize else 0
        utype = self.d[pos + toff] if toff else 0
        return self.table(target, names[utype], f"{path} ({names[utype]})") if utype in names and utype else None

    def vector(self, pos: int, element: int, path: str, string: bool = False) -> int:
        self.need(pos, 4, 4, path)
        count = self.u32(pos)
        size = count * element + (1 if string else 0)
        if pos + 4 + size > self.n:
            self.fail(path, f"claims {count} elements, more than the file holds")
        if string and self.d[pos + 4 + count] != 0:
            self.fail(path, "is a string without its terminating zero")
        self.spend(4 + size, path)
        return count


# --- 2. the graph -----------------------------------------------------------------------

TYPE_NAMES = _enum(schema.TensorType)
OP_NAMES = _enum(schema.BuiltinOperator)
OPTION_NAMES = _enum(schema.BuiltinOptions)
# bits per element; the sub-byte types are stored packed
TYPE_BITS = {
    "FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "BOOL": 8, "INT16": 16, "COMPLEX64": 64,
    "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128, "UINT64": 64, "UINT32": 32, "UINT16": 16, "INT4": 4,
    "BFLOAT16": 16, "INT2": 2, "UINT4": 4, "FLOAT8_E4M3FN": 8, "FLOAT8_E5M2": 8,
}
_ZERO_POINT_RANGE = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767), "INT4": (-8, 7),
                     "UINT4": (0, 15), "INT2": (-2, 1)}
_INT32 = (-(2**31), 2**31 - 1)
# RuntimeShape, which every kernel builds from a tensor's dims, holds six (runtime_shape.h).
MAX_RANK = 6
_ACTIVATIONS = _enum(schema.ActivationFunctionType)
# The option table each op's parser reads (flatbuffer_conversions.cc); "required" where the
# defaults an absent table gives (strides and filter sizes of 0) are not a valid layer.
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", True), "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", True),
    "AVERAGE_POOL_2D": ("Pool2DOptions", True), "MAX_POOL_2D": ("Pool2DOptions", True),
    "L2_POOL_2D": ("Pool2DOptions", True), "FULLY_CONNECTED": ("FullyConnectedOptions", False),
    "ADD": ("AddOptions", False), "SUB": ("SubOptions", False), "MUL": ("MulOptions", False),
    "SOFTMAX": ("SoftmaxOptions", False), "CONCATENATION": ("ConcatenationOptions", False),
    "RESHAPE": ("ReshapeOptions", False), "MEAN": ("ReducerOptions", False), "SUM": ("ReducerOptions", False),
    "REDUCE_MAX": ("ReducerOptions", False), "PAD": ("PadOptions", False), "PADV2": ("PadV2Options", False),
    "SQUEEZE": ("SqueezeOptions", False), "EXPAND_DIMS": ("ExpandDimsOptions", False),
    "QUANTIZE": ("QuantizeOptions", False), "DEQUANTIZE": ("DequantizeOptions", False),
}


def verify(model_bytes: bytes, name: str = "model") -> None:
    """Raise ModelError, one sentence naming the tensor or op at fault, unless `model_bytes`
    is a .tflite that TFLite Micro and tinygen can read without reading outside it, aborting
    or dividing by zero."""
    if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
        raise ModelError(f"{name} is not a TensorFlow Lite model (no TFL3 identifier).")
    if len(model_bytes) >= 2**31:
        raise ModelError(f"{name} is {len(model_bytes):,} bytes; a flatbuffer holds less than 2 GiB.")
    _Graph(_Structure(model_bytes, name).walk(), name).check()


def verified_model(model_bytes: bytes, name: str = "model") -> schema.ModelT:
    """verify(), then the model as the generated schema code reads it (graph.parse's input)."""
    verify(model_bytes, name)
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    except Exception as e:  # the walk covers what the schema code reads: this is only a backstop
        raise ModelError(f"{name} is corrupt: its flatbuffer cannot be read ({type(e).__name__}).") from None


def _fmt(x: float) -> str:
    return f"{x:.6g}"


class _T:
    """One tensor as the checks see it."""

    def __init__(self, index: int, t, buffers: list):
        self.index = index
        raw = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
        self.label = f"tensor {index}" + (f" ('{raw[:60]}{'...' if len(raw) > 60 else ''}')" if raw else "")
        self.type = TYPE_NAMES.get(t.type, f"type {t.type}")
        self.shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        # a -1 past the batch in the signature: the static shape is a placeholder the graph
        # computes at run time (SHAPE, PACK...), not something to check sizes against
        self.dynamic = t.shapeSignature is not None and any(int(d) < 0 for d in t.shapeSignature[1:])
        self.buffer = int(t.buffer)
        data = buffers[self.buffer].data if 0 <= self.buffer < len(buffers) else None
        self.data_bytes = 0 if data is None else len(data)
        self.const = self.data_bytes > 0
        q = t.quantization
        has = q is not None
        self.scale = np.asarray(q.scale if has and q.scale is not None else [], np.float32)
        self.zero_point = np.asarray(q.zeroPoint if has and q.zeroPoint is not None else [], np.int64)
        self.axis = int(q.quantizedDimension) if q is not None else 0
        self.quantized = len(self.scale) > 0 and len(self.zero_point) > 0

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def s(self) -> float:
        """The per-tensor scale, as TFLM's params.scale holds it (0 without quantization)."""
        return float(self.scale[0]) if self.quantized else 0.0

    @property
    def zp(self) -> int:
        return int(self.zero_point[0]) if self.quantized else 0


class _Graph:
    def __init__(self, model, name: str):
        self.m = model
        self.name = name

    def fail(self, what: str, tflm: str = "undefined") -> None:
        raise VerifyError(f"{self.name}: {what}.", tflm)

    def check(self) -> None:
        m = self.m
        if not m.subgraphs:
            self.fail("the model has no subgraphs")
        buffers = m.buffers or []
        for b_index, b in enumerate(buffers):
            if b.offset > 1 and (b.data is None or not len(b.data)):
                self.fail(f"buffer {b_index} keeps its data outside the flatbuffer (offset {b.offset}), "
                          "which TensorFlow Lite Micro does not read; convert the model without external buffers")
        for sg_index, sg in enumerate(m.subgraphs):
            self.where = f" in subgraph {sg_index}" if sg_index else ""
            tensors = [self.tensor(i, t, buffers) for i, t in enumerate(sg.tensors or [])]
            self.tensors = tensors
            for kind, vec in (("input", sg.inputs), ("output", sg.outputs)):
                for i in (vec if vec is not None else []):
                    if not 0 <= int(i) < len(tensors):
                        self.fail(f"model {kind} {int(i)}{self.where} names a tensor that does not exist "
                                  f"(there are {len(tensors)})")
            for k, o in enumerate(sg.operators or []):
                self.operator(k, o, tensors)
        self.metadata(buffers)

    # -- tensors
    def tensor(self, i: int, t, buffers: list) -> _T:
        if not 0 <= int(t.buffer) < len(buffers):
            self.fail(f"tensor {i}{self.where} names buffer {int(t.buffer)}, and the model has {len(buffers)} buffers")
        tt = _T(i, t, buffers)
        where = tt.label + self.where
        if tt.type not in TYPE_BITS:
            self.fail(f"{where} has type {t.type}, which is not a TensorFlow Lite tensor type", "refuses")
        if len(tt.shape) > MAX_RANK:
            self.fail(f"{where} has {len(tt.shape)} dimensions; TensorFlow Lite Micro's kernels take at most "
                      f"{MAX_RANK}")
        if any(d <= 0 for d in tt.shape):
            self.fail(f"{where} has the shape {list(tt.shape)}: every dimension must be at least 1")
        bits = TYPE_BITS[tt.type]
        if tt.elements > _INT32[1] or tt.elements * bits // 8 > _INT32[1]:
            self.fail(f"{where} has the shape {list(tt.shape)}: {tt.elements:,} elements, more than the 32-bit "
                      "sizes TensorFlow Lite Micro counts in")
        if tt.const:
            expected = (tt.elements * bits + 7) // 8
            if tt.type in ("STRING", "RESOURCE", "VARIANT"):
                expected = tt.data_bytes
            if tt.data_bytes != expected:
                self.fail(f"{where} is {tt.type} {list(tt.shape)}, {expected:,} bytes, but its buffer {tt.buffer} "
                          f"holds {tt.data_bytes:,}")
        self.quantization(tt, where)
        return tt

    def quantization(self, tt: _T, where: str) -> None:
        n_s, n_z = len(tt.scale), len(tt.zero_point)
        if n_s == 0:
            return
        if n_z not in (1, n_s):
            self.fail(f"{where} has {n_s} quantization scales and {n_z} zero points; it needs one zero point "
                      "or one per scale")
        bad = [float(v) for v in tt.scale if not math.isfinite(float(v)) or v < 0 or (v == 0 and not tt.const)]
        if bad:
            kind = "a weight" if tt.const else "an activation"
            self.fail(f"{where} has the quantization scale {_fmt(bad[0])}; {kind} scale must be finite and "
                      f"{'not negative' if tt.const else 'above 0'}")
        lo, hi = _ZERO_POINT_RANGE.get(tt.type, _INT32)
        outside = [int(z) for z in tt.zero_point if not lo <= int(z) <= hi]
        if outside:
            self.fail(f"{where} has the zero point {outside[0]}, outside {tt.type}'s range {lo} to {hi}")
        if n_s > 1:
            if not 0 <= tt.axis < len(tt.shape):
                self.fail(f"{where} has {n_s} per-channel scales along dimension {tt.axis}, and its shape "
                          f"{list(tt.shape)} has no such dimension")
            if tt.shape[tt.axis] != n_s:
                self.fail(f"{where} has {n_s} per-channel scales along dimension {tt.axis}, which has "
                          f"{tt.shape[tt.axis]} channels")

    def metadata(self, buffers: list) -> None:
        for md in self.m.metadata or []:
            if not 0 <= int(md.buffer) < len(buffers):
                self.fail(f"metadata '{_name(md.name)}' names buffer {int(md.buffer)}, and the model has "
                          f"{len(buffers)} buffers")
            if _name(md.name) == "OfflineMemoryAllocation":
                # TFLM reads [version, subgraph, tensor count, offsets...] from it unchecked
                data = buffers[int(md.buffer)].data
                count = int(np.frombuffer(np.asarray(data, np.uint8).tobytes()[8:12], "<u4")[0]) \
                    if data is not None and len(data) >= 12 else None
                if count is None or len(data) < 12 + 4 * count:
                    self.fail("the OfflineMemoryAllocation metadata is shorter than the offsets it declares")

    # -- operators
    def operator(self, k: int, o, tensors: list[_T]) -> None:
        codes = self.m.operatorCodes or []
        if not 0 <= int(o.opcodeIndex) < len(codes):
            self.fail(f"operator {k}{self.where} has opcode index {int(o.opcodeIndex)}, and the model has "
                      f"{len(codes)} operator codes", "refuses")
        code = codes[o.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        op = OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if op == "CUSTOM":
            op = f"CUSTOM:{_name(code.customCode)}"
        label = f"{op} (operator {k}{self.where})"
        ins = [int(i) for i in (o.inputs if o.inputs is not None else [])]
        outs = [int(i) for i in (o.outputs if o.outputs is not None else [])]
        mids = [int(i) for i in (o.intermediates if o.intermediates is not None else [])]
        for kind, vec, optional in (("input", ins, True), ("output", outs, False), ("intermediate", mids, True)):
            for i in vec:
                if not (0 <= i < len(tensors) or (optional and i == -1)):
                    self.fail(f"{label} names {kind} tensor {i}, and the subgraph has {len(tensors)} tensors")
        for i in outs:
            if tensors[i].const:
                self.fail(f"{label} writes {tensors[i].label}, a constant in the model's flash")
        expected = _OPTIONS.get(op)
        got = OPTION_NAMES.get(int(o.builtinOptionsType), str(o.builtinOptionsType))
        if expected is not None:
            table, required = expected
            if o.builtinOptions is not None and got != table:
                self.fail(f"{label} carries {got}, not the {table} its kernel reads")
            if o.builtinOptions is None and required:
                self.fail(f"{label} has no {table} (strides, padding and filter size)")
        check = _CHECKS.get(op)
        if check is not None:
            check(_OpCheck(self, label, [tensors[i] if i >= 0 else None for i in ins], [tensors[i] for i in outs],
                           o.builtinOptions))


def _name(raw) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")


def _quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier (double rounding): real = q / 2^31 * 2^shift, for a finite real."""
    if real == 0.0:
        return 0, 0
    m, shift = math.frexp(real)
    q = int(math.floor(abs(m) * (1 << 31) + 0.5)) * (1 if m >= 0 else -1)   # std::round
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


# The largest multiplier TFLM's integer kernels apply: MultiplyByQuantizedMultiplier shifts
# left by the multiplier's exponent as `1 << shift` in 32-bit int (common.h), defined up to 30.
MAX_MULTIPLIER = 2.0**30
# PreprocessSoftmaxScaling: beta x input scale x 2^(31 - 5) goes to QuantizeMultiplierGreaterThanOne,
# which aborts (TFLITE_CHECK_GT) unless it is above 1.
SOFTMAX_INTEGER_BITS = 5
# Logistic's input multiplier, scale x 2^(31 - 4), is split with frexp and its exponent used as
# `1LL << shift` (CalculateInputRadius): defined for exponents 0 to 62.
LOGISTIC_INTEGER_BITS = 4


class _OpCheck:
    """The checks of one operator: counts, ranks, shapes, types, options, multipliers."""

    def __init__(self, graph: _Graph, label: str, ins: list, outs: list, options):
        self.g = graph
        self.label = label
        self.ins = ins
        self.outs = outs
        self.opts = options
        # sizes decided at run time: TFLM checks them then (or refuses the dynamic tensor)
        self.dynamic = any(t is not None and t.dynamic for t in ins + outs)

    def fail(self, what: str, tflm: str = "undefined") -> None:
        self.g.fail(f"{self.label} {what}", tflm)

    def count(self, n_in: tuple[int, ...], n_out: int = 1) -> None:
        if len(self.ins) not in n_in:
            self.fail(f"has {len(self.ins)} inputs; it takes {' or '.join(str(n) for n in n_in)}")
        if len(self.outs) != n_out:
            self.fail(f"has {len(self.outs)} outputs; it makes {n_out}")

    def need(self, k: int, what: str) -> _T:
        t = self.ins[k] if k < len(self.ins) else None
        if t is None:
            self.fail(f"has no {what} (input {k})")
        return t

    def rank(self, t: _T, rank: int, what: str) -> None:
        if len(t.shape) != rank:
            self.fail(f"needs a {rank}-dimensional {what}, and {t.label} is {list(t.shape)}")

    def same_type(self, *ts: _T) -> None:
        types = {t.type for t in ts}
        if len(types) > 1:
            self.fail(f"mixes {', '.join(sorted(types))} tensors ({', '.join(t.label for t in ts)})")

    def quantized(self, *ts: _T) -> None:
        for t in ts:
            if t.type in ("INT8", "INT16", "UINT8") and not t.quantized:
                self.fail(f"reads the scale of {t.label}, which has no quantization parameters")

    def multiplier(self, real: float, what: str, limit: float = MAX_MULTIPLIER) -> None:
        if not math.isfinite(real) or real < 0:
            self.fail(f"has {what} {_fmt(real)}; TensorFlow Lite Micro needs it finite and not negative")
        if real >= limit:
            self.fail(f"has {what} {_fmt(real)}; TensorFlow Lite Micro's integer kernels take less than 2^30")

    def activation(self, tflm: str = "refuses") -> int:
        """The fused activation, checked; `tflm`: whether TFLM refuses an output scale that cannot
        express its bounds (most kernels) or ignores the failure (pools)."""
        code = int(getattr(self.opts, "fusedActivationFunction", 0) or 0) if self.opts is not None else 0
        if code not in _ACTIVATIONS:
            self.fail(f"has fused activation {code}, which is not a TensorFlow Lite activation")
        out = self.outs[0]
        if out.type in ("INT8", "INT16", "UINT8") and code in (1, 2, 3):
            # CalculateActivationRangeQuantized: round(bound / scale) in float must fit int32
            if not out.s:
                self.fail(f"clamps to {_ACTIVATIONS[code]} in the scale of {out.label}, which has none", tflm)
            for bound in {1: (0.0,), 2: (-1.0, 1.0), 3: (0.0, 6.0)}[code]:
                with np.errstate(all="ignore"):
                    q = np.round(np.float32(bound) / np.float32(out.s))
                if not (np.float32(-(2**31)) <= q <= np.float32(2**31 - 1)):
                    self.fail(f"clamps to {_ACTIVATIONS[code]}, and its output scale {_fmt(out.s)} cannot express "
                              f"{bound:g} in 32 bits", tflm)
        return code

    def option(self, field: str, default: int = 0) -> int:
        return int(getattr(self.opts, field, default)) if self.opts is not None else default

    def broadcast(self, a: _T, b: _T, out: _T) -> None:
        ra, rb = len(a.shape), len(b.shape)
        rank = max(ra, rb)
        da = (1,) * (rank - ra) + a.shape
        db = (1,) * (rank - rb) + b.shape
        want = []
        for x, y in zip(da, db):
            if x != y and 1 not in (x, y):
                self.fail(f"cannot broadcast {list(a.shape)} with {list(b.shape)}")
            want.append(max(x, y))
        if _squeezed(want) != _squeezed(out.shape):
            self.fail(f"makes {list(want)} from {list(a.shape)} and {list(b.shape)}, and its output "
                      f"{out.label} is {list(out.shape)}")


def _squeezed(shape) -> tuple[int, ...]:
    """A shape without its leading ones: [1, 1, 4] and [4] broadcast the same."""
    shape = tuple(shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def _spatial(c: _OpCheck, inp: _T, out: _T, kh: int, kw: int) -> None:
    """Strides, dilations, padding and the output size they give (padding.h)."""
    sh, sw = c.option("strideH"), c.option("strideW")
    dh, dw = c.option("dilationHFactor", 1), c.option("dilationWFactor", 1)
    padding = c.option("padding")
    if sh < 1 or sw < 1:
        c.fail(f"has strides {sh}x{sw}; they must be at least 1")
    if dh < 1 or dw < 1:
        c.fail(f"has dilation {dh}x{dw}; it must be at least 1")
    if kh < 1 or kw < 1:
        c.fail(f"has a {kh}x{kw} window; it must be at least 1x1")
    if padding not in (0, 1):
        c.fail(f"has padding {padding}, neither SAME (0) nor VALID (1)")
    if c.dynamic:
        return
    for axis, size, k, s, d in (("height", inp.shape[1], kh, sh, dh), ("width", inp.shape[2], kw, sw, dw)):
        effective = (k - 1) * d + 1
        expected = (size + s - 1) // s if padding == 0 else (size - effective + s) // s
        got = out.shape[1 if axis == "height" else 2]
        if expected < 1 or got != expected:
            c.fail(f"maps an input {axis} of {size} to {expected} (a {k} window, stride {s}, dilation {d}, "
                   f"{'SAME' if padding == 0 else 'VALID'}), and its output {out.label} has {got}")


def _convolution(c: _OpCheck, depthwise: bool) -> None:
    c.count((2, 3))
    x, w = c.need(0, "input"), c.need(1, "filter")
    b = c.ins[2] if len(c.ins) > 2 else None
    y = c.outs[0]
    for t, what in ((x, "input"), (w, "filter"), (y, "output")):
        c.rank(t, 4, what)
    c.same_type(x, y)
    allowed = {"FLOAT32": ("FLOAT32",), "INT8": ("INT8", "INT4"), "INT16": ("INT8",)}
    if x.type not in allowed or w.type not in allowed[x.type]:
        c.fail(f"has a {x.type} input and {w.type} filter, a pair TensorFlow Lite Micro has no kernel for", "refuses")
    n, ih, iw, ic = x.shape
    oc, kh, kw = (w.shape[3], w.shape[1], w.shape[2]) if depthwise else w.shape[:3]
    if not c.dynamic:
        if depthwise:
            mult = c.option("depthMultiplier", 1)
            if w.shape[0] != 1:
                c.fail(f"needs a filter of shape [1, h, w, channels], and {w.label} is {list(w.shape)}")
            if mult < 1 or (oc != ic * mult and not (mult == 1 and oc % ic == 0)):
                c.fail(f"has depth multiplier {mult} for {ic} input and {oc} output channels")
        elif ic % w.shape[3] or oc % (ic // w.shape[3]):
            c.fail(f"has {ic} input channels and a filter over {w.shape[3]}, with {oc} outputs: not whole groups")
        if y.shape[0] != n or y.shape[3] != oc:
            c.fail(f"makes {y.label} {list(y.shape)} from a batch of {n} and {oc} filters")
    _spatial(c, x, y, kh, kw)
    _bias(c, x, b, oc, "output channels")
    c.activation()
    if x.type == "FLOAT32":
        return
    c.quantized(x, w, y)
    axis = 3 if depthwise else 0
    if len(w.scale) not in (1, oc):
        c.fail(f"has {len(w.scale)} filter scales for {oc} output channels")
    if len(w.scale) > 1 and w.axis != axis:
        c.fail(f"has per-channel filter scales along dimension {w.axis}; its kernel reads them along {axis}")
    for fs in w.scale:
        c.multiplier(float(np.float64(x.s) * np.float64(fs) / np.float64(y.s)) if y.s else math.inf,
                     "the effective output scale (input x filter / output scale)")


def _bias(c: _OpCheck, x, b, count: int, what: str) -> None:
    """A convolution's or dense layer's bias: the type its kernel reads for x's type, one per output."""
    if b is None:
        return
    want = {"FLOAT32": ("FLOAT32",), "INT8": ("INT32",), "INT16": ("INT64", "INT32")}[x.type]
    if b.type not in want:
        c.fail(f"has a {b.type} bias ({b.label}); with {x.type} input it is {' or '.join(want)}")
    if b.elements != count:
        c.fail(f"has {count} {what} and {b.elements} biases ({b.label})")


def _check_conv_2d(c: _OpCheck) -> None:
    _convolution(c, False)


def _check_depthwise_conv_2d(c: _OpCheck) -> None:
    _convolution(c, True)


def _check_fully_connected(c: _OpCheck) -> None:
    c.count((2, 3))
    x, w = c.need(0, "input"), c.need(1, "weights")
    b = c.ins[2] if len(c.ins) > 2 else None
    y = c.outs[0]
    c.same_type(x, y)
    allowed = {"FLOAT32": ("FLOAT32",), "INT8": ("INT8", "INT4"), "INT16": ("INT8",)}
    if x.type not in allowed or w.type not in allowed[x.type]:
        c.fail(f"has a {x.type} input and {w.type} weights, a pair TensorFlow Lite Micro has no kernel for")
    c.rank(w, 2, "weight matrix")
    if c.option("weightsFormat") != 0:
        c.fail(f"has weights format {c.option('weightsFormat')}; TensorFlow Lite Micro reads only the default layout")
    units, depth = w.shape
    if not c.dynamic:
        rows = x.elements // depth
        if x.elements % depth:
            c.fail(f"reads rows of {depth} from {x.label} {list(x.shape)}, which has {x.elements} elements")
        if not y.shape or y.shape[-1] != units or y.elements != rows * units:
            c.fail(f"makes {rows} rows of {units} from {x.label}, and its output {y.label} is {list(y.shape)}")
    _bias(c, x, b, units, "units")
    c.activation()
    if x.type == "FLOAT32":
        return
    c.quantized(x, w, y)
    if len(w.scale) > 1:
        if w.axis != 0:
            c.fail(f"has per-channel weight scales along dimension {w.axis}; its kernel reads them per unit")
        for fs in w.scale:
            c.multiplier(float(np.float64(x.s) * np.float64(fs) / np.float64(y.s)) if y.s else math.inf,
                         "the effective output scale (input x weight / output scale)")
        return
    # GetQuantizedConvolutionMultipler: the product of input and weight scales, in float
    product = float(np.float32(x.s) * np.float32(w.s))
    c.multiplier(product / y.s if y.s else math.inf, "the effective output scale (input x weight / output scale)")


def _pool(c: _OpCheck) -> None:
    c.count((1,))
    x, y = c.need(0, "input"), c.outs[0]
    c.rank(x, 4, "input")
    c.rank(y, 4, "output")
    c.same_type(x, y)
    if not c.dynamic and (y.shape[0] != x.shape[0] or y.shape[3] != x.shape[3]):
        c.fail(f"pools {list(x.shape)} into {list(y.shape)}: batch and channels must stay")
    _spatial(c, x, y, c.option("filterHeight"), c.option("filterWidth"))
    c.activation("undefined")    # pooling_common.cc ignores the status of the activation range


def _elementwise(c: _OpCheck, kind: str) -> None:
    c.count((2,))
    a, b = c.need(0, "first input"), c.need(1, "second input")
    y = c.outs[0]
    c.same_type(a, b, y)
    if not c.dynamic:
        c.broadcast(a, b, y)
    c.activation()
    if y.type not in ("INT8", "INT16"):
        return
    c.quantized(a, b, y)
    if kind == "MUL":
        real = float(np.float64(a.s) * np.float64(b.s) / np.float64(y.s)) if y.s else math.inf
        c.multiplier(real, "the output multiplier (input scales / output scale)")
        return
    # CalculateOpDataAdd / Sub: three multipliers through QuantizeMultiplierSmallerThanOneExp,
    # which aborts unless each is in (0, 1) and its exponent is not above 0
    left_shift = 15 if y.type == "INT16" else 20
    twice_max = 2 * float(max(np.float32(a.s), np.float32(b.s)))
    reals = [("the first input's rescale", a.s / twice_max if twice_max else 0.0),
             ("the second input's rescale", b.s / twice_max if twice_max else 0.0),
             (f"the output rescale (2 x the larger input scale / (2^{left_shift} x output scale))",
              twice_max / ((1 << left_shift) * y.s) if y.s else math.inf)]
    for what, real in reals:
        if not (0.0 < real < 1.0) or _quantize_multiplier(real)[1] > 0:
            c.fail(f"has {what} {_fmt(real)}; TensorFlow Lite Micro aborts unless it is above 0 and below 1 "
                   f"(scales {_fmt(a.s)} and {_fmt(b.s)} in, {_fmt(y.s)} out)", "aborts")


def _check_add(c: _OpCheck) -> None:
    _elementwise(c, "ADD")


def _check_sub(c: _OpCheck) -> None:
    _elementwise(c, "SUB")


def _check_mul(c: _OpCheck) -> None:
    _elementwise(c, "MUL")


def _same_size(c: _OpCheck, x: _T, y: _T) -> None:
    if not c.dynamic and x.elements != y.elements:
        c.fail(f"maps {x.label} {list(x.shape)} to {y.label} {list(y.shape)}")


def _check_softmax(c: _OpCheck) -> None:
    c.count((1,))
    x, y = c.need(0, "input"), c.outs[0]
    if not x.shape:
        c.fail(f"needs an input with at least one dimension, and {x.label} is a scalar")
    _same_size(c, x, y)
    if x.type != "INT8":
        return
    c.quantized(x)
    beta = float(np.float32(getattr(c.opts, "beta", 0.0))) if c.opts is not None else 0.0
    real = beta * x.s * (1 << (31 - SOFTMAX_INTEGER_BITS))
    if not real > 1.0:
        c.fail(f"has the input scale {_fmt(x.s)} ({x.label}) and beta {_fmt(beta)}: their product x 2^26 is "
               f"{_fmt(real)}, and TensorFlow Lite Micro's softmax aborts unless it is above 1 (input scale x beta "
               f"above 2^-26 = {_fmt(2.0**-26)}); the layer before it has a degenerate output range, as an "
               "untrained or collapsed model does", "aborts")


def _check_logistic(c: _OpCheck) -> None:
    c.count((1,))
    x, y = c.need(0, "input"), c.outs[0]
    c.same_type(x, y)
    _same_size(c, x, y)
    if x.type != "INT8":
        return
    c.quantized(x, y)
    _, shift = math.frexp(x.s * (1 << (31 - LOGISTIC_INTEGER_BITS)))
    if not 0 <= shift <= 62:
        c.fail(f"has the input scale {_fmt(x.s)} ({x.label}); TensorFlow Lite Micro's int8 logistic takes "
               f"{_fmt(2.0**-28)} (2^-28) to 2^35")


def _check_quantize(c: _OpCheck) -> None:
    c.count((1,))
    x, y = c.need(0, "input"), c.outs[0]
    _same_size(c, x, y)
    c.quantized(y)
    if x.type in ("INT8", "INT16", "UINT8") and y.type in ("INT8", "INT16", "UINT8"):
        c.quantized(x)
        c.multiplier(x.s / y.s if y.s else math.inf, "the requantization multiplier (input / output scale)")


def _check_dequantize(c: _OpCheck) -> None:
    c.count((1,))
    x, y = c.need(0, "input"), c.outs[0]
    _same_size(c, x, y)
    c.quantized(x)


def _check_mean(c: _OpCheck) -> None:
    c.count((2,))
    x, axes, y = c.need(0, "input"), c.need(1, "axes"), c.outs[0]
    if axes.type not in ("INT32", "INT64"):
        c.fail(f"takes its axes as {axes.type} ({axes.label}); they are INT32")
    if not axes.const:
        c.fail(f"takes its axes from {axes.label}, which is not a constant")
    values = _values(c.g, axes)
    rank = len(x.shape)
    if any(not -rank <= int(v) < rank for v in values) or not len(values):
        c.fail(f"reduces over axes {[int(v) for v in values]} of a {rank}-dimensional input")
    reduced = {int(v) % rank for v in values}
    keep = [1 if i in reduced else d for i, d in enumerate(x.shape)]
    drop = [d for i, d in enumerate(x.shape) if i not in reduced]
    if not c.dynamic and list(y.shape) not in (keep, drop) and y.elements != math.prod(drop):
        c.fail(f"reduces {list(x.shape)} over axes {sorted(reduced)}, and its output {y.label} is {list(y.shape)}")
    if x.type in ("INT8", "INT16"):
        c.quantized(x, y)
        c.multiplier(x.s / y.s if y.s else math.inf, "the output multiplier (input / output scale)")


def _check_pad(c: _OpCheck) -> None:
    c.count((2, 3))
    x, pads, y = c.need(0, "input"), c.need(1, "paddings"), c.outs[0]
    c.same_type(x, y)
    rank = len(x.shape)
    if pads.type not in ("INT32", "INT64") or pads.shape != (rank, 2):
        c.fail(f"needs [{rank}, 2] INT32 paddings, and {pads.label} is {pads.type} {list(pads.shape)}")
    if not pads.const or c.dynamic:
        return   # TFLM itself refuses non-constant paddings, with its own message
    values = np.asarray(_values(c.g, pads)).reshape(rank, 2)
    want = [d + int(a) + int(b) for d, (a, b) in zip(x.shape, values)]
    if (values < 0).any() or want != list(y.shape):
        c.fail(f"pads {list(x.shape)} by {values.tolist()}, and its output {y.label} is {list(y.shape)}")


_check_padv2 = _check_pad


def _check_concatenation(c: _OpCheck) -> None:
    if not c.ins or len(c.outs) != 1:
        c.fail(f"has {len(c.ins)} inputs and {len(c.outs)} outputs")
    ins = [t for t in c.ins if t is not None]
    y = c.outs[0]
    rank = len(y.shape)
    axis = c.option("axis")
    if not -rank <= axis < max(rank, 1):
        c.fail(f"concatenates along axis {axis} of a {rank}-dimensional output")
    axis %= max(rank, 1)
    total = 0
    for t in ins:
        if len(t.shape) != rank or (not c.dynamic and any(d != e for i, (d, e) in enumerate(zip(t.shape, y.shape))
                                                          if i != axis)):
            c.fail(f"concatenates {t.label} {list(t.shape)} into {y.label} {list(y.shape)} along axis {axis}")
        total += t.shape[axis] if rank else 1
    if rank and not c.dynamic and total != y.shape[axis]:
        c.fail(f"concatenates {total} along axis {axis} into {y.label}, which has {y.shape[axis]}")
    c.same_type(*ins, y)
    c.activation()


_CHECKS = {
    "CONV_2D": _check_conv_2d, "DEPTHWISE_CONV_2D": _check_depthwise_conv_2d,
    "FULLY_CONNECTED": _check_fully_connected, "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool,
    "ADD": _check_add, "SUB": _check_sub, "MUL": _check_mul, "SOFTMAX": _check_softmax,
    "LOGISTIC": _check_logistic, "QUANTIZE": _check_quantize, "DEQUANTIZE": _check_dequantize,
    "MEAN": _check_mean, "PAD": _check_pad, "PADV2": _check_padv2, "CONCATENATION": _check_concatenation,
}   # RESHAPE, SQUEEZE and EXPAND_DIMS: TFLM checks their element counts itself (the probe's verdict)


def _values(g: _Graph, t: _T) -> np.ndarray:
    data = g.m.buffers[t.buffer].data
    dtype = {"INT32": "<i4", "INT64": "<i8"}[t.type]
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype)
