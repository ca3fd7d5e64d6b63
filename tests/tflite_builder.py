"""Single-op int8 .tflite models written directly with the TFLite schema, with quantization
parameters no converter would choose (multipliers above one, tiny and huge scales, odd zero
points): the AOT kernels' edge cases, checked against the interpreters."""

from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

_OPTIONS = {
    "CONV_2D": (s.BuiltinOptions.Conv2DOptions, s.Conv2DOptionsT),
    "DEPTHWISE_CONV_2D": (s.BuiltinOptions.DepthwiseConv2DOptions, s.DepthwiseConv2DOptionsT),
    "FULLY_CONNECTED": (s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT),
    "AVERAGE_POOL_2D": (s.BuiltinOptions.Pool2DOptions, s.Pool2DOptionsT),
    "MAX_POOL_2D": (s.BuiltinOptions.Pool2DOptions, s.Pool2DOptionsT),
    "ADD": (s.BuiltinOptions.AddOptions, s.AddOptionsT),
    "MUL": (s.BuiltinOptions.MulOptions, s.MulOptionsT),
    "SUB": (s.BuiltinOptions.SubOptions, s.SubOptionsT),
    "SOFTMAX": (s.BuiltinOptions.SoftmaxOptions, s.SoftmaxOptionsT),
    "MEAN": (s.BuiltinOptions.ReducerOptions, s.ReducerOptionsT),
    "PAD": (s.BuiltinOptions.PadOptions, s.PadOptionsT),
    "CONCATENATION": (s.BuiltinOptions.ConcatenationOptions, s.ConcatenationOptionsT),
    "QUANTIZE": (s.BuiltinOptions.QuantizeOptions, s.QuantizeOptionsT),
    "LOGISTIC": (None, None),
}


class OneOp:
    """Tensors and buffers of a one-operator graph."""

    def __init__(self):
        self.tensors: list = []
        self.buffers: list = [s.BufferT()]   # buffer 0: empty, by convention

    def tensor(self, shape, dtype=s.TensorType.INT8, scale=None, zero_point=None, data=None, axis=0) -> int:
        t = s.TensorT()
        t.shape = list(shape)
        t.type = dtype
        t.name = f"t{len(self.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8).tolist()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zero_point if zero_point is not None else 0)]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def model(self, op: str, inputs: list[int], outputs: list[int], **options) -> bytes:
        code = s.OperatorCodeT()
        code.builtinCode = getattr(s.BuiltinOperator, op)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        code.version = 1
        o = s.OperatorT()
        o.opcodeIndex = 0
        o.inputs, o.outputs = inputs, outputs
        kind, cls = _OPTIONS[op]
        if cls is not None:
            opts = cls()
            for k, v in options.items():
                setattr(opts, k, v)
            o.builtinOptionsType, o.builtinOptions = kind, opts
        g = s.SubGraphT()
        g.tensors = self.tensors
        g.inputs = [i for i in inputs if self.tensors[i].buffer == 0]
        g.outputs = outputs
        g.operators = [o]
        m = s.ModelT()
        m.version = 3
        m.operatorCodes = [code]
        m.subgraphs = [g]
        m.buffers = self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _scale(rng, lo=-9.0, hi=1.0) -> float:
    return float(np.float32(2.0 ** rng.uniform(lo, hi)))


def _zp(rng) -> int:
    return int(rng.integers(-128, 128))


def random_model(op: str, rng: np.random.Generator) -> bytes:
    """One random instance of `op` with int8 input(s) and output."""
    m = OneOp()
    act = int(rng.choice([0, 1, 2, 3]))
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
        # now and then a wide input: long filter rows, depthwise windows larger than the
        # kernels' stack buffer (gathered in slices), channels left over after blocks of four
        cin = int(rng.integers(1, 9)) if rng.random() < 0.75 else int(rng.integers(60, 80))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        dh, dw = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if sh == sw == 1 else (1, 1)
        same = bool(rng.integers(0, 2))
        eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        if not same and (eh > h or ew > w):
            same = True
        oh = (h + sh - 1) // sh if same else (h - eh + sh) // sh
        ow = (w + sw - 1) // sw if same else (w - ew + sw) // sw
        depthwise = op == "DEPTHWISE_CONV_2D"
        mult = int(rng.integers(1, 3)) if depthwise else 1
        cout = cin * mult if depthwise else int(rng.integers(1, 9))
        per_channel = bool(rng.integers(0, 2))
        s_in, s_out = _scale(rng), _scale(rng)
        fscales = np.array([_scale(rng, -10, -3) for _ in range(cout if per_channel else 1)], np.float32)
        fshape = [1, kh, kw, cout] if depthwise else [cout, kh, kw, cin]
        filt = rng.integers(-127, 128, size=fshape, dtype=np.int8)
        bias = rng.integers(-5000, 5000, size=cout).astype(np.int32)
        x = m.tensor([1, h, w, cin], scale=s_in, zero_point=_zp(rng))
        f = m.tensor(fshape, scale=fscales, zero_point=np.zeros(len(fscales), int), data=filt, axis=3 if depthwise else 0)
        b = m.tensor([cout], s.TensorType.INT32, scale=s_in * fscales, zero_point=np.zeros(len(fscales), int), data=bias)
        y = m.tensor([1, oh, ow, cout], scale=s_out, zero_point=_zp(rng))
        opts = dict(padding=0 if same else 1, strideH=sh, strideW=sw, dilationHFactor=dh, dilationWFactor=dw,
                    fusedActivationFunction=act)
        if depthwise:
            opts["depthMultiplier"] = mult
        return m.model(op, [x, f, b], [y], **opts)
    if op == "FULLY_CONNECTED":
        n_in, n_out = int(rng.integers(1, 40)), int(rng.integers(1, 20))
        s_in = _scale(rng)
        fs = _scale(rng, -10, -3)
        x = m.tensor([1, n_in], scale=s_in, zero_point=_zp(rng))
        f = m.tensor([n_out, n_in], scale=fs, zero_point=0, data=rng.integers(-127, 128, size=(n_out, n_in), dtype=np.int8))
        b = m.tensor([n_out], s.TensorType.INT32, scale=s_in * fs, zero_point=0,
                     data=rng.integers(-3000, 3000, size=n_out).astype(np.int32))
        y = m.tensor([1, n_out], scale=_scale(rng), zero_point=_zp(rng))
        return m.model(op, [x, f, b], [y], fusedActivationFunction=act)
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        h, w, c = int(rng.integers(2, 10)), int(rng.integers(2, 10)), int(rng.integers(1, 6))
        fh, fw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        same = bool(rng.integers(0, 2))
        oh = (h + sh - 1) // sh if same else (h - fh + sh) // sh
        ow = (w + sw - 1) // sw if same else (w - fw + sw) // sw
        sc, zp = _scale(rng), _zp(rng)
        x = m.tensor([1, h, w, c], scale=sc, zero_point=zp)
        y = m.tensor([1, oh, ow, c], scale=sc, zero_point=zp)
        return m.model(op, [x], [y], padding=0 if same else 1, strideH=sh, strideW=sw, filterHeight=fh,
                       filterWidth=fw, fusedActivationFunction=act)
    if op in ("ADD", "SUB", "MUL"):
        # now and then enough elements for the kernels' table path (ADD, without broadcast)
        depth = int(rng.integers(1, 6)) if rng.random() < 0.7 else int(rng.integers(100, 200))
        shape = [1, int(rng.integers(1, 5)), int(rng.integers(1, 5)), depth]
        other = [d if rng.integers(0, 3) else 1 for d in shape]
        if rng.integers(0, 2):
            shape, other = other, shape
        out = [max(a, b) for a, b in zip(shape, other)]
        a = m.tensor(shape, scale=_scale(rng), zero_point=_zp(rng))
        const = rng.integers(0, 3) == 0    # a constant operand, in flash
        b = m.tensor(other, scale=_scale(rng), zero_point=_zp(rng),
                     data=rng.integers(-128, 128, size=other, dtype=np.int8) if const else None)
        y = m.tensor(out, scale=_scale(rng), zero_point=_zp(rng))
        return m.model(op, [a, b] if rng.integers(0, 2) else [b, a], [y], fusedActivationFunction=act)
    if op in ("SOFTMAX", "LOGISTIC"):
        shape = [1, int(rng.integers(1, 4)), int(rng.integers(1, 30))]
        x = m.tensor(shape, scale=_scale(rng, -7, 0), zero_point=_zp(rng))
        y = m.tensor(shape, scale=1 / 256, zero_point=-128)
        if op == "SOFTMAX":
            return m.model(op, [x], [y], beta=float(rng.choice([1.0, 0.5, 2.0])))
        return m.model(op, [x], [y])
    if op == "MEAN":
        shape = [1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 6))]
        axes = sorted(set(int(a) for a in rng.choice([1, 2, 3], size=int(rng.integers(1, 3)))))
        keep = bool(rng.integers(0, 2))
        out = [1 if i in axes else d for i, d in enumerate(shape)] if keep else [d for i, d in enumerate(shape) if i not in axes]
        x = m.tensor(shape, scale=_scale(rng), zero_point=_zp(rng))
        ax = m.tensor([len(axes)], s.TensorType.INT32, data=np.array(axes, np.int32))
        y = m.tensor(out, scale=_scale(rng), zero_point=_zp(rng))
        return m.model(op, [x, ax], [y], keepDims=keep)
    if op == "PAD":
        shape = [1, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4))]
        pads = np.array([[0, 0]] + [[int(rng.integers(0, 3)), int(rng.integers(0, 3))] for _ in range(3)], np.int32)
        sc, zp = _scale(rng), _zp(rng)
        x = m.tensor(shape, scale=sc, zero_point=zp)
        p = m.tensor([4, 2], s.TensorType.INT32, data=pads)
        y = m.tensor([d + a + b for d, (a, b) in zip(shape, pads)], scale=sc, zero_point=zp)
        return m.model(op, [x, p], [y])
    if op == "CONCATENATION":
        axis = int(rng.integers(1, 4))
        base = [1, int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        shapes = []
        for _ in range(int(rng.integers(2, 4))):
            sh = list(base)
            sh[axis] = int(rng.integers(1, 4))
            shapes.append(sh)
        sc, zp = _scale(rng), _zp(rng)
        ins = [m.tensor(sh, scale=sc, zero_point=zp,
                        data=rng.integers(-128, 128, size=sh, dtype=np.int8) if k == 1 and rng.integers(0, 3) == 0 else None)
               for k, sh in enumerate(shapes)]
        out = list(base)
        out[axis] = sum(sh[axis] for sh in shapes)
        y = m.tensor(out, scale=sc, zero_point=zp)
        return m.model(op, ins, [y], axis=axis, fusedActivationFunction=0)
    if op == "QUANTIZE":
        shape = [1, int(rng.integers(1, 40))]
        x = m.tensor(shape, scale=_scale(rng), zero_point=_zp(rng))
        y = m.tensor(shape, scale=_scale(rng), zero_point=_zp(rng))
        return m.model(op, [x], [y])
    raise ValueError(op)


OPS = list(_OPTIONS)
