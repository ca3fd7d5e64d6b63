"""Read a .tflite flatbuffer directly (not through TensorFlow's interpreter, which rejects
some models TFLM runs): tensors, operators, and per layer parameters, MACs and activations."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import ModelError
from .verify import verified_model

_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_BYTES = {
    "FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2,
    "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8, "UINT32": 4,
    "UINT16": 2, "BFLOAT16": 2, "RESOURCE": 0, "VARIANT": 0, "STRING": 0,
}
# Sub-byte types are stored packed in TFLM's arena: bits per element.
_TYPE_BITS = {"INT4": 4, "UINT4": 4, "INT2": 2}


def padding_before(in_size: int, filt: int, stride: int, dilation: int, out_size: int, same: bool) -> int:
    """TFLite's ComputePaddingHeightWidth: the padding before (top or left); SAME is centred, floor."""
    if not same:
        return 0
    effective = (filt - 1) * dilation + 1
    return max(0, (out_size - 1) * stride + effective - in_size) // 2


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    is_const: bool
    is_variable: bool
    scale: np.ndarray | None
    zero_point: np.ndarray | None
    quantized_dimension: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def first_scale(self) -> float:
        """The (first) quantization scale; 1.0 for an unquantized tensor."""
        return float(self.scale[0]) if self.scale is not None and len(self.scale) else 1.0

    @property
    def first_zero_point(self) -> int:
        """The (first) zero point; 0 for an unquantized tensor."""
        return int(self.zero_point[0]) if self.zero_point is not None and len(self.zero_point) else 0

    @property
    def nbytes(self) -> int:
        if self.dtype in _TYPE_BITS:
            return (self.elements * _TYPE_BITS[self.dtype] + 7) // 8
        return self.elements * _TYPE_BYTES.get(self.dtype, 0)


@dataclass
class Operator:
    index: int
    op: str                      # builtin name, e.g. CONV_2D, or CUSTOM:<code>
    inputs: list[int]            # tensor indices; -1 for an absent optional input
    outputs: list[int]
    intermediates: list[int]
    options: object | None       # the schema's *OptionsT object
    options_type: int


@dataclass
class Layer:
    """What the fit report shows per operator."""

    index: int
    op: str
    output_shape: tuple[int, ...]
    params: int
    weight_bytes: int            # constant inputs as stored (int8 weights, int32 biases)
    macs: int
    activation_bytes: int        # non-constant inputs plus outputs


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    subgraph_count: int
    model_bytes: int
    sha256: str
    has_offline_plan: bool
    layers: list[Layer] = field(default_factory=list)

    @property
    def ops(self) -> list[str]:
        """Distinct ops, in first-use order."""
        return list(dict.fromkeys(o.op for o in self.operators))

    @property
    def params(self) -> int:
        return sum(l.params for l in self.layers)

    @property
    def macs(self) -> int:
        return sum(l.macs for l in self.layers)

    def tensor(self, i: int) -> Tensor | None:
        return self.tensors[i] if i >= 0 else None

    def is_full_int8(self) -> tuple[bool, str | None]:
        """Full-integer int8 means int8 activations everywhere (int32 biases and shapes allowed).
        Returns (ok, first offending op)."""
        for o in self.operators:
            for t in o.inputs + o.outputs:
                if t < 0:
                    continue
                tt = self.tensors[t]
                # constants a DEQUANTIZE or a TFLM_DECODE (compressed weights: uint8 indices and tables) expands
                if tt.dtype in ("FLOAT32", "FLOAT16", "FLOAT64", "UINT8") and not (
                        tt.is_const and o.op in ("DEQUANTIZE", "CUSTOM:TFLM_DECODE")):
                    return False, o.op
        return True, None


def _op_name(model, opcode_index: int) -> str:
    oc = model.operatorCodes[opcode_index]
    code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
    if code == schema.BuiltinOperator.CUSTOM:
        name = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
        return f"CUSTOM:{name}"
    return _OP_NAMES.get(code, f"BUILTIN_{code}")


def parse(model_bytes: bytes, name: str = "model") -> Graph:
    """Verify (verify.py: nothing is read before the flatbuffer and the graph are checked) and
    read a .tflite. A ModelError says what is wrong with it."""
    model = verified_model(model_bytes, name)
    g = _build(model, model_bytes)
    if not g.inputs or not g.outputs:
        raise ModelError(f"{name} has no {'inputs' if not g.inputs else 'outputs'}; tinygen needs a model that "
                         "takes an input and gives an output.")
    return g


def _build(model, model_bytes: bytes) -> Graph:
    sg = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        data = buffers[t.buffer].data
        q = t.quantization
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        tensors.append(Tensor(
            index=i,
            name=t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or ""),
            shape=shape,
            dtype=_TYPE_NAMES.get(t.type, f"TYPE_{t.type}"),
            buffer=t.buffer,
            # as TFLM decides it: a tensor is constant when its buffer holds data
            is_const=data is not None and len(data) > 0,
            is_variable=bool(t.isVariable),
            scale=None if q is None or q.scale is None else np.asarray(q.scale, dtype=np.float32),
            zero_point=None if q is None or q.zeroPoint is None else np.asarray(q.zeroPoint, dtype=np.int64),
            quantized_dimension=0 if q is None else int(q.quantizedDimension),
        ))
    operators = []
    for i, o in enumerate(sg.operators or []):
        operators.append(Operator(
            index=i,
            op=_op_name(model, o.opcodeIndex),
            inputs=[int(x) for x in (o.inputs if o.inputs is not None else [])],
            outputs=[int(x) for x in (o.outputs if o.outputs is not None else [])],
            intermediates=[int(x) for x in (o.intermediates if o.intermediates is not None else [])],
            options=o.builtinOptions,
            options_type=int(o.builtinOptionsType),
        ))
    has_offline = any(
        (m.name.decode(errors="replace") if isinstance(m.name, bytes) else m.name) == "OfflineMemoryAllocation"
        for m in (model.metadata or [])
    )
    g = Graph(
        tensors=tensors, operators=operators,
        inputs=[int(x) for x in (sg.inputs if sg.inputs is not None else [])],
        outputs=[int(x) for x in (sg.outputs if sg.outputs is not None else [])],
        subgraph_count=len(model.subgraphs), model_bytes=len(model_bytes),
        sha256=hashlib.sha256(model_bytes).hexdigest(), has_offline_plan=has_offline,
    )
    g.layers = [_layer(g, o) for o in operators]
    return g


_BIASED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


def _layer(g: Graph, o: Operator) -> Layer:
    ins = [g.tensors[i] for i in o.inputs if i >= 0]
    outs = [g.tensors[i] for i in o.outputs if i >= 0]
    # Parameters are weights and biases; an integer constant anywhere else is a shape, an axis or
    # paddings (RESHAPE, MEAN, PAD...), not something the network learnt.
    params = sum(t.elements for t in ins if t.is_const
                 and (t.dtype not in ("INT32", "INT64") or o.op in _BIASED_OPS))
    out = outs[0] if outs else None
    out_elems = out.elements if out else 0
    macs = 0
    if o.op == "CONV_2D" and len(ins) > 1:
        _, kh, kw, cin = ins[1].shape
        macs = out_elems * kh * kw * cin
    elif o.op == "DEPTHWISE_CONV_2D" and len(ins) > 1:
        _, kh, kw, _ = ins[1].shape
        macs = out_elems * kh * kw
    elif o.op == "FULLY_CONNECTED" and len(ins) > 1:
        macs = out_elems * ins[1].shape[-1]
    elif o.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and o.options is not None:
        macs = out_elems * o.options.filterHeight * o.options.filterWidth
    elif o.op in ("ADD", "MUL", "SUB", "SOFTMAX", "LOGISTIC", "TANH", "MEAN"):
        macs = max(out_elems, sum(t.elements for t in ins if not t.is_const))
    act = sum(t.nbytes for t in ins if not t.is_const) + sum(t.nbytes for t in outs)
    weights = sum(t.nbytes for t in ins if t.is_const)
    return Layer(o.index, o.op, out.shape if out else (), params, weights, macs, act)
