"""Lowering: each operator of an int8 .tflite graph becomes a call of one of tinygen's
hand-written kernels (firmware/aot/) with a constant parameter block, working out on the host
what TFLite's kernels work out at run time: quantized multipliers and shifts, padding,
activation ranges, each with TFLite's own formulas and rounding."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import TinygenError
from ..model.graph import Graph, padding_before
from ..model.verify import verify

KERNEL_DIR = "aot"   # under firmware/

# op -> (kernel function, the source file in firmware/aot/ that holds it)
KERNELS = {
    "CONV_2D": ("tg_conv2d", "tg_conv.c"),
    "DEPTHWISE_CONV_2D": ("tg_depthwise_conv2d", "tg_conv.c"),
    "FULLY_CONNECTED": ("tg_fully_connected", "tg_fully_connected.c"),
    "AVERAGE_POOL_2D": ("tg_average_pool2d", "tg_pool.c"),
    "MAX_POOL_2D": ("tg_max_pool2d", "tg_pool.c"),
    "MEAN": ("tg_mean", "tg_pool.c"),
    "ADD": ("tg_add", "tg_elementwise.c"),
    "SUB": ("tg_sub", "tg_elementwise.c"),
    "MUL": ("tg_mul", "tg_elementwise.c"),
    "LOGISTIC": ("tg_logistic", "tg_elementwise.c"),
    "QUANTIZE": ("tg_quantize_f32", "tg_elementwise.c"),        # or tg_requantize, int8 -> int8
    "DEQUANTIZE": ("tg_dequantize", "tg_elementwise.c"),
    "SOFTMAX": ("tg_softmax", "tg_softmax.c"),
    "PAD": ("tg_pad", "tg_shape.c"),
    "PADV2": ("tg_pad", "tg_shape.c"),
    "CONCATENATION": ("tg_concatenation", "tg_shape.c"),
    "RESHAPE": (None, None),   # no code: the output is the input's bytes
    "SQUEEZE": (None, None),
    "EXPAND_DIMS": (None, None),
}
ALIAS_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
_NEEDS_OPTIONS = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"}
# Whose arithmetic to reproduce where the interpreters differ: TFLite 2.21 requantizes
# FULLY_CONNECTED with one rounding, TFLite Micro (and TFLite's other int8 kernels) with two;
# TFLite works MUL's multiplier out from float32 scales, TFLite Micro in double.
MATCHES = ("tflm", "tflite")


class AotError(TinygenError):
    """The model cannot be compiled ahead of time."""


# --- TFLite's host-side arithmetic, reproduced exactly ---------------------------------

def _round_away(x: float) -> int:
    """std::round: halves away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier (double rounding build): real = q / 2^31 * 2^shift."""
    if not math.isfinite(real):
        raise AotError(f"A quantization multiplier is {real}: the model's scales make no finite rescale.")
    if real == 0.0:
        return 0, 0
    m, shift = math.frexp(real)
    q = _round_away(m * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if q > 2**31 - 1:
        raise AotError(f"A quantization multiplier ({real:g}) does not fit in 32 bits.")
    return q, shift


def _f32(x) -> float:
    return float(np.float32(x))


def _quantize_value(real: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize() for activation bounds: round(f / scale) in float32, plus the zero point."""
    return zero_point + _round_away(float(np.float32(real) / np.float32(scale)))


def activation_range(code: int, scale: float, zero_point: int) -> tuple[int, int]:
    lo, hi = -128, 127
    if code == 0:
        return lo, hi
    if code == 1:       # RELU
        return max(lo, _quantize_value(0.0, scale, zero_point)), hi
    if code == 3:       # RELU6
        return (max(lo, _quantize_value(0.0, scale, zero_point)), min(hi, _quantize_value(6.0, scale, zero_point)))
    if code == 2:       # RELU_N1_TO_1
        return (max(lo, _quantize_value(-1.0, scale, zero_point)), min(hi, _quantize_value(1.0, scale, zero_point)))
    raise AotError(f"The fused activation {_ACT_NAMES.get(code, code)} has no int8 kernel in tinygen's AOT runtime; "
                   "use --runtime tflm.")


_ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _input_radius(integer_bits: int, left_shift: int) -> int:
    return int(math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift)))


# --- the lowered program --------------------------------------------------------------

@dataclass
class Buffer:
    """One activation tensor as the generated code sees it."""
    tensor: int
    nbytes: int
    ctype: str          # int8_t or float
    first: int          # index of the step that writes it (-1: a model input)
    last: int           # index of the last step that reads it (len(steps): a model output)


@dataclass
class Step:
    op_index: int
    op: str
    kernel: str | None           # None: an alias (RESHAPE): no code
    source: str | None
    params_type: str
    params: dict                 # C initializer fields, in order
    arrays: list[tuple[str, str, np.ndarray]]   # (name, C type, values): const data in flash
    inputs: list[int]            # activation tensors read
    output: int
    in_place_ok: bool = False    # output may share its first input's bytes
    comment: str = ""
    const_operands: dict[int, str] = field(default_factory=dict)   # operand position -> const array in flash
    needs: tuple[str, ...] = ()  # further kernel files the kernel calls into (a LUT kernel: the dense one's)


@dataclass
class Program:
    graph: Graph
    steps: list[Step]
    buffers: dict[int, Buffer]
    inputs: list[int]
    outputs: list[int]
    aliases: dict[int, int] = field(default_factory=dict)   # tensor -> tensor whose bytes it is
    match: str = "tflm"

    @property
    def sources(self) -> list[str]:
        return sorted({s.source for s in self.steps if s.source} | {n for s in self.steps for n in s.needs})

    @property
    def kernels(self) -> list[str]:
        return sorted({s.kernel for s in self.steps if s.kernel})

    @property
    def weight_bytes(self) -> int:
        """Flash the const arrays take as C: int8_t one byte an element, uint16_t two, int32_t and float four."""
        return sum(a[2].size * {"int8_t": 1, "uint8_t": 1, "uint16_t": 2}.get(a[1], 4) for s in self.steps for a in s.arrays)


def _buffers_data(model_bytes: bytes) -> list[bytes]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    out = []
    for b in model.buffers or []:
        if b.offset > 1:
            out.append(model_bytes[b.offset:b.offset + b.size])
        elif b.data is not None:
            out.append(np.asarray(b.data, dtype=np.uint8).tobytes())
        else:
            out.append(b"")
    return out


_NP = {"INT8": np.int8, "INT32": np.int32, "FLOAT32": np.float32, "INT64": np.int64}


class _Lowering:
    def __init__(self, graph: Graph, model_bytes: bytes, match: str = "tflm"):
        self.g = graph
        self.match = match
        self.data = _buffers_data(model_bytes)
        self.steps: list[Step] = []
        self.aliases: dict[int, int] = {}

    def const(self, t: int) -> np.ndarray:
        tt = self.g.tensors[t]
        if tt.dtype not in _NP:
            raise AotError(f"A constant {tt.dtype} tensor ('{tt.name}') has no place in tinygen's AOT runtime; "
                           "use --runtime tflm.")
        data = self.data[tt.buffer] if 0 <= tt.buffer < len(self.data) else b""
        if not tt.is_const or len(data) != tt.elements * np.dtype(_NP[tt.dtype]).itemsize:
            raise AotError(f"Tensor '{tt.name}' (tensor {t}) is read as a constant {tt.dtype} {list(tt.shape)}, and "
                           f"the model holds {len(data)} bytes for it; tinygen's AOT runtime needs its values in the "
                           "model.")
        return np.frombuffer(data, dtype=_NP[tt.dtype]).reshape(tt.shape)

    def q(self, t: int) -> tuple[float, int]:
        tt = self.g.tensors[t]
        if tt.scale is None or not len(tt.scale):
            raise AotError(f"Tensor '{tt.name}' has no quantization parameters: tinygen's AOT runtime runs "
                           "full-integer int8 models.")
        return _f32(tt.scale[0]), int(tt.zero_point[0]) if tt.zero_point is not None and len(tt.zero_point) else 0

    def expect(self, t: int, dtype: str, op: str) -> None:
        tt = self.g.tensors[t]
        if tt.dtype != dtype:
            raise AotError(f"{op} on {tt.dtype} tensors has no kernel in tinygen's AOT runtime (it runs int8 "
                           "graphs); use --runtime tflm.")

    def dims4(self, t: int) -> list[int]:
        shape = list(self.g.tensors[t].shape)
        if len(shape) > 4:
            raise AotError(f"Tensor '{self.g.tensors[t].name}' has {len(shape)} dimensions; tinygen's AOT kernels take at most 4.")
        return [1] * (4 - len(shape)) + shape

    def lower(self) -> None:
        for o in self.g.operators:
            if o.op not in KERNELS:
                raise AotError(f"{o.op} is not one of the ops tinygen's AOT runtime has kernels for "
                               f"({', '.join(sorted(KERNELS))}); build with --runtime tflm instead.")
            if o.op in _NEEDS_OPTIONS and o.options is None:
                raise AotError(f"{o.op} (operator {o.index}) has no options table; tinygen's AOT runtime needs its "
                               "strides, padding and activation.")
            try:
                getattr(self, "_" + o.op.lower())(o)
            except (IndexError, ValueError, ZeroDivisionError, OverflowError, AttributeError, TypeError) as e:
                # shapes, ranks or options a verified model may still hold and a kernel cannot take
                raise AotError(f"tinygen's AOT runtime cannot lower {o.op} (operator {o.index}): its shapes or options "
                               f"do not fit the kernel ({type(e).__name__}: {e}); use --runtime tflm.") from None

    def _step(self, o, params_type: str, params: dict, arrays, inputs, output, in_place=False, comment="",
              kernel: str | None = None, const_operands: dict[int, str] | None = None) -> None:
        name, source = KERNELS[o.op]
        self.steps.append(Step(o.index, o.op, kernel or name, source, params_type, params, arrays, inputs, output,
                               in_place, comment, const_operands or {}))

    def operands(self, o, tensors: list[int]) -> tuple[list[int], list, dict[int, str]]:
        """Activation inputs, const arrays and their positions: a constant operand (ADD, MUL,
        CONCATENATION) is an int8 array in flash instead of arena bytes."""
        inputs, arrays, consts = [], [], {}
        for k, t in enumerate(tensors):
            if self.g.tensors[t].is_const:
                name = f"op{o.index}_operand{k}"
                arrays.append((name, "int8_t", self.const(t).reshape(-1)))
                consts[k] = name
            else:
                inputs.append(t)
        if not inputs:
            raise AotError(f"{o.op} with only constant inputs: convert the model with constant folding.")
        return inputs, arrays, consts

    def weight_arrays(self, k: str, filt: np.ndarray, b: int, filter_scales: list[float], s_in: float,
                      s_out: float, zp_in: int, tap_sums: np.ndarray | None) -> list:
        """The const arrays of a convolution or fully connected layer: filter, bias, one
        multiplier and shift per filter scale (TFLite's effective scale in double), and the
        bias with the input offset's share folded in (bias - zero_point * sum of taps)."""
        bias = self.const(b).astype(np.int64).reshape(-1) if b >= 0 else None
        mults, shifts = zip(*(quantize_multiplier(float(np.float64(s_in) * np.float64(_f32(fs)) / np.float64(s_out)))
                              for fs in filter_scales))
        arrays = [(f"{k}_filter", "int8_t", filt.reshape(-1))]
        if bias is not None:
            arrays.append((f"{k}_bias", "int32_t", bias))
        arrays += [(f"{k}_multiplier", "int32_t", np.array(mults, np.int64)),
                   (f"{k}_shift", "int32_t", np.array(shifts, np.int64))]
        if tap_sums is not None:
            base = bias if bias is not None else np.zeros(len(tap_sums), np.int64)
            arrays.append((f"{k}_folded_bias", "int32_t", _wrap32(base - zp_in * tap_sums)))
        return arrays

    # -- convolutions
    def _conv(self, o, depthwise: bool) -> None:
        g = self.g
        x, w = o.inputs[0], o.inputs[1]
        b = o.inputs[2] if len(o.inputs) > 2 else -1
        y = o.outputs[0]
        for t in (x, y):
            self.expect(t, "INT8", o.op)
        if g.tensors[w].dtype != "INT8":
            raise AotError(f"{o.op} with {g.tensors[w].dtype} weights has no kernel in tinygen's AOT runtime; "
                           "use --runtime tflm.")
        n, ih, iw, ic = g.tensors[x].shape
        _, oh, ow, oc = g.tensors[y].shape
        if n != 1:
            raise AotError(f"{o.op} with a batch of {n}: tinygen's AOT runtime runs a batch of 1.")
        filt = self.const(w)
        _, kh, kw, fc = filt.shape
        opts = o.options
        same = opts.padding == 0
        sx, sy = opts.strideW, opts.strideH
        dx, dy = max(1, opts.dilationWFactor), max(1, opts.dilationHFactor)
        s_in, zp_in = self.q(x)
        s_out, zp_out = self.q(y)
        wt = g.tensors[w]
        scales = [float(s) for s in wt.scale] if wt.scale is not None else []
        if len(scales) not in (1, oc):
            raise AotError(f"{o.op} '{g.tensors[y].name}' has {len(scales)} filter scales for {oc} channels.")
        lo, hi = activation_range(opts.fusedActivationFunction, s_out, zp_out)
        k = f"op{o.index}"
        kernel, how = None, ""
        if depthwise and ic == 1:
            # One input channel: each output channel is its own filter over the same taps, which
            # is an ordinary convolution with out_c filters of k_h x k_w x 1 (CMSIS-NN runs it so
            # too). The depthwise kernel would walk it a channel at a time, one tap per multiply;
            # the convolution's dot products take four taps per pair of instructions and serve
            # two filters and two pixels with each load. Same sums, so the same bytes out.
            filt = np.ascontiguousarray(filt.transpose(3, 1, 2, 0))     # [1, kh, kw, oc] -> [oc, kh, kw, 1]
            depthwise, fc = False, 1
            kernel, how = KERNELS["CONV_2D"][0], "; one input channel: run as a convolution of its filters"
        elif (not depthwise and kh == kw == 1 and sx == sy == 1 and fc == ic and (ih, iw) == (oh, ow)
              and max(dx, dy) == 1):
            kernel, how = "tg_conv2d_1x1", "; pointwise: pixels paired across rows"
        tap_sums = (filt.astype(np.int64).reshape(-1, oc).sum(axis=0) if depthwise
                    else filt.astype(np.int64).reshape(oc, -1).sum(axis=1))
        arrays = self.weight_arrays(k, filt, b, scales * oc if len(scales) == 1 else scales, s_in, s_out,
                                    zp_in, tap_sums)
        abs_sums = (np.abs(filt.astype(np.int64)).reshape(-1, oc).sum(axis=0) if depthwise
                    else np.abs(filt.astype(np.int64)).reshape(oc, -1).sum(axis=1))
        true_folded = (self.const(b).astype(np.int64).reshape(-1) if b >= 0 else 0) - zp_in * tap_sums
        named = {n: v for n, _, v in arrays}
        mult, shift = named[f"{k}_multiplier"].copy(), named[f"{k}_shift"]
        # a dead channel (all-zero taps, often with a bias of +-2^30) sums to its bias whatever the
        # input: its output is a constant, worked out here with TFLite's formula, which the stage
        # returns with multiplier 0 and the word (1 + 2 * output) * 256 + 1
        dead = abs_sums == 0
        constant = {}
        for c in np.flatnonzero(dead):
            v = _mbqm(int(np.asarray(true_folded).reshape(-1)[c] if np.ndim(true_folded) else true_folded), int(mult[c]),
                      int(shift[c])) + zp_out
            constant[c] = max(-256, min(256, v))    # the clamp to int8 comes after: the same byte
        rounding = fast_rounding(np.where(dead, 0, true_folded), abs_sums, np.where(dead, -1, shift), zp_out)
        if rounding is not None and constant:
            for c, v in constant.items():
                mult[c], rounding[c] = 0, (1 + 2 * v) * 256 + 1
            arrays = [(n, t, mult if n == f"{k}_multiplier" else v) for n, t, v in arrays]
        if rounding is not None:
            # the one-multiply stage's word holds the shift too: no shift array in flash
            arrays = [a for a in arrays if a[0] != f"{k}_shift"] + [(f"{k}_rounding", "int32_t", rounding)]
        # the kernels start every sum from the folded bias, the border's too: no bias array in flash
        arrays = [a for a in arrays if a[0] != f"{k}_bias"]
        params = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
                      stride_h=sy, stride_w=sx, dilation_h=dy, dilation_w=dx,
                      pad_h=padding_before(ih, kh, sy, dy, oh, same), pad_w=padding_before(iw, kw, sx, dx, ow, same),
                      depth_multiplier=opts.depthMultiplier if depthwise else 1,
                      filter_c=1 if depthwise else fc,
                      in_offset=-zp_in, out_offset=zp_out, act_min=lo, act_max=hi,
                      filter=f"{k}_filter", bias="NULL",
                      multiplier=f"{k}_multiplier", shift=f"{k}_shift", folded_bias=f"{k}_folded_bias")
        if rounding is not None:
            params["rounding"], params["shift"] = f"{k}_rounding", "NULL"
        if depthwise and oc != ic * params["depth_multiplier"]:
            params["depth_multiplier"] = oc // ic     # older converters leave the option at 1
        comment = (f"{ih}x{iw}x{ic} -> {oh}x{ow}x{oc}, {kh}x{kw} filter, stride {sy}x{sx}, "
                   f"{'SAME' if same else 'VALID'}, {_ACT_NAMES.get(opts.fusedActivationFunction)}{how}")
        self._step(o, "tg_conv_params", params, arrays, [x], y, comment=comment, kernel=kernel)

    def _conv_2d(self, o) -> None:
        self._conv(o, False)

    def _depthwise_conv_2d(self, o) -> None:
        self._conv(o, True)

    def _fully_connected(self, o) -> None:
        g = self.g
        x, w = o.inputs[0], o.inputs[1]
        b = o.inputs[2] if len(o.inputs) > 2 else -1
        y = o.outputs[0]
        for t in (x, y):
            self.expect(t, "INT8", o.op)
        if g.tensors[w].dtype != "INT8" or not g.tensors[w].is_const:
            raise AotError("FULLY_CONNECTED needs constant int8 weights in tinygen's AOT runtime; use --runtime tflm.")
        filt = self.const(w)
        out_depth, in_depth = filt.shape[0], filt.shape[-1]
        batches = g.tensors[x].elements // in_depth
        s_in, zp_in = self.q(x)
        s_out, zp_out = self.q(y)
        wt = g.tensors[w]
        scales = [float(s) for s in wt.scale]
        per_channel = len(scales) > 1
        filter_zp = int(wt.zero_point[0]) if wt.zero_point is not None and len(wt.zero_point) and not per_channel else 0
        lo, hi = activation_range(o.options.fusedActivationFunction if o.options else 0, s_out, zp_out)
        k = f"op{o.index}"
        # with asymmetric weights the kernel takes the reference's path, without a folded bias
        tap_sums = filt.astype(np.int64).reshape(out_depth, -1).sum(axis=1) if filter_zp == 0 else None
        arrays = self.weight_arrays(k, filt, b, scales, s_in, s_out, zp_in, tap_sums)
        params = dict(batches=batches, in_depth=in_depth, out_depth=out_depth, in_offset=-zp_in,
                      filter_offset=-filter_zp, out_offset=zp_out, act_min=lo, act_max=hi,
                      per_channel=int(per_channel), single_rounding=int(self.match == "tflite"),
                      filter=f"{k}_filter", bias=f"{k}_bias" if b >= 0 else "NULL",
                      multiplier=f"{k}_multiplier", shift=f"{k}_shift",
                      folded_bias=f"{k}_folded_bias" if filter_zp == 0 else "NULL")
        self._step(o, "tg_fully_connected_params", params, arrays, [x], y,
                   comment=f"{in_depth} -> {out_depth}, {_ACT_NAMES.get(o.options.fusedActivationFunction if o.options else 0)}")

    # -- pools
    def _pool(self, o) -> None:
        x, y = o.inputs[0], o.outputs[0]
        for t in (x, y):
            self.expect(t, "INT8", o.op)
        n, ih, iw, c = self.g.tensors[x].shape
        _, oh, ow, _ = self.g.tensors[y].shape
        if n != 1:
            raise AotError(f"{o.op} with a batch of {n}: tinygen's AOT runtime runs a batch of 1.")
        opts = o.options
        same = opts.padding == 0
        s_out, zp_out = self.q(y)
        lo, hi = activation_range(opts.fusedActivationFunction, s_out, zp_out)
        params = dict(in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow, k_h=opts.filterHeight, k_w=opts.filterWidth,
                      stride_h=opts.strideH, stride_w=opts.strideW,
                      pad_h=padding_before(ih, opts.filterHeight, opts.strideH, 1, oh, same),
                      pad_w=padding_before(iw, opts.filterWidth, opts.strideW, 1, ow, same), act_min=lo, act_max=hi)
        comment = f"{ih}x{iw}x{c} -> {oh}x{ow}x{c}, {opts.filterHeight}x{opts.filterWidth} window"
        self._step(o, "tg_pool_params", params, [], [x], y, comment=comment)

    _average_pool_2d = _pool
    _max_pool_2d = _pool

    def _mean(self, o) -> None:
        x, axis_t, y = o.inputs[0], o.inputs[1], o.outputs[0]
        for t in (x, y):
            self.expect(t, "INT8", o.op)
        dims = self.dims4(x)
        rank = len(self.g.tensors[x].shape)
        axes = {int(a) % rank + (4 - rank) for a in np.asarray(self.const(axis_t)).reshape(-1)}
        count = math.prod(dims[a] for a in axes)
        s_in, zp_in = self.q(x)
        s_out, zp_out = self.q(y)
        m, shift = quantize_multiplier(float(np.float64(s_in) / np.float64(s_out)))
        # TFLite's reference folds 1/count into the multiplier before its loop, in integers.
        sh = min(count.bit_length() - 1, 32)      # 63 - clz64(count)
        sh = min(sh, 31 + shift)
        m = (m << sh) // count
        shift -= sh
        params = dict(dims="{" + ", ".join(str(d) for d in dims) + "}",
                      reduce="{" + ", ".join("1" if d in axes else "0" for d in range(4)) + "}",
                      count=count, in_zero_point=zp_in, out_zero_point=zp_out, multiplier=m, shift=shift)
        self._step(o, "tg_mean_params", params, [], [x], y, comment=f"over axes {sorted(a - (4 - rank) for a in axes)}")

    # -- element-wise
    def _binary(self, o, kind: str) -> None:
        a, b, y = o.inputs[0], o.inputs[1], o.outputs[0]
        for t in (a, b, y):
            self.expect(t, "INT8", o.op)
        sa, za = self.q(a)
        sb, zb = self.q(b)
        so, zo = self.q(y)
        lo, hi = activation_range(o.options.fusedActivationFunction if o.options else 0, so, zo)
        out_dims = self.dims4(y)
        def strides(t):
            d = self.dims4(t)
            st, acc = [0] * 4, 1
            for k in range(3, -1, -1):
                st[k] = 0 if d[k] == 1 and out_dims[k] != 1 else acc
                if d[k] not in (1, out_dims[k]):
                    raise AotError(f"{o.op} cannot broadcast {list(self.g.tensors[t].shape)} to {out_dims}.")
                acc *= d[k]
            return st
        broadcast = int(self.dims4(a) != out_dims or self.dims4(b) != out_dims)
        p = dict(out_dims=_c_list(out_dims), in1_strides=_c_list(strides(a)), in2_strides=_c_list(strides(b)),
                 broadcast=broadcast, in1_offset=-za, in2_offset=-zb, out_offset=zo, act_min=lo, act_max=hi)
        if kind in ("add", "sub"):
            twice_max = 2 * np.float64(max(np.float32(sa), np.float32(sb)))
            m1, s1 = quantize_multiplier(float(np.float64(sa) / twice_max))
            m2, s2 = quantize_multiplier(float(np.float64(sb) / twice_max))
            mo, so_ = quantize_multiplier(float(twice_max / ((1 << 20) * np.float64(so))))
            p.update(left_shift=20, in1_multiplier=m1, in1_shift=s1, in2_multiplier=m2, in2_shift=s2,
                     out_multiplier=mo, out_shift=so_)
        else:
            # TFLM works the multiplier out in double; TFLite 2.21 multiplies the scales in float
            real = (np.float32(sa) * np.float32(sb) / np.float32(so) if self.match == "tflite"
                    else np.float64(sa) * np.float64(sb) / np.float64(so))
            mo, so_ = quantize_multiplier(float(real))
            p.update(left_shift=0, in1_multiplier=0, in1_shift=0, in2_multiplier=0, in2_shift=0,
                     out_multiplier=mo, out_shift=so_)
        inputs, arrays, consts = self.operands(o, [a, b])
        self._step(o, "tg_binary_params", p, arrays, inputs, y, in_place=not broadcast and 0 not in consts,
                   comment=f"{'x'.join(str(d) for d in self.g.tensors[y].shape)}", const_operands=consts)

    def _add(self, o) -> None:
        self._binary(o, "add")

    def _sub(self, o) -> None:
        self._binary(o, "sub")

    def _mul(self, o) -> None:
        self._binary(o, "mul")

    def _softmax(self, o) -> None:
        x, y = o.inputs[0], o.outputs[0]
        for t in (x, y):
            self.expect(t, "INT8", o.op)
        s_in, _ = self.q(x)
        s_out, zp_out = self.q(y)
        if zp_out != -128 or abs(s_out - 1 / 256) > 1e-9:
            raise AotError("SOFTMAX's int8 output must have zero point -128 and scale 1/256, as TFLite requires.")
        beta = float(np.float64(_f32(o.options.beta))) if o.options else 1.0
        real = min(beta * float(np.float64(s_in)) * (1 << (31 - 5)), float((1 << 31) - 1))
        m, shift = quantize_multiplier(real)
        depth = self.g.tensors[x].shape[-1]
        params = dict(rows=self.g.tensors[x].elements // depth, depth=depth, input_multiplier=m,
                      input_left_shift=shift, diff_min=-_input_radius(5, shift))
        self._step(o, "tg_softmax_params", params, [], [x], y, in_place=True, comment=f"over {depth}")

    def _logistic(self, o) -> None:
        x, y = o.inputs[0], o.outputs[0]
        for t in (x, y):
            self.expect(t, "INT8", o.op)
        s_in, zp_in = self.q(x)
        _, zp_out = self.q(y)
        if zp_out != -128:
            raise AotError("LOGISTIC's int8 output must have zero point -128, as TFLite requires.")
        mant, shift = math.frexp(float(np.float64(s_in)) * (1 << (31 - 4)))
        if not 0 <= shift <= 62:
            raise AotError(f"LOGISTIC (operator {o.index}) has the input scale {s_in:g}; the int8 logistic takes "
                           "2^-28 to 2^35.")
        m = _round_away(mant * (1 << 31))
        params = dict(size=self.g.tensors[x].elements, in_zero_point=zp_in,
                      input_range_radius=_input_radius(4, shift), input_multiplier=m, input_left_shift=shift)
        self._step(o, "tg_logistic_params", params, [], [x], y, in_place=True)

    def _quantize(self, o) -> None:
        x, y = o.inputs[0], o.outputs[0]
        self.expect(y, "INT8", o.op)
        dt = self.g.tensors[x].dtype
        s_out, zp_out = self.q(y)
        n = self.g.tensors[y].elements
        if dt == "FLOAT32":
            p = dict(size=n, scale=_c_float(s_out), dequant_scale="0.0", in_zero_point=0, out_zero_point=zp_out,
                     multiplier=0, shift=0)
            self._step(o, "tg_quantize_params", p, [], [x], y, comment="float -> int8")
        elif dt == "INT8":
            s_in, zp_in = self.q(x)
            m, s = quantize_multiplier(float(np.float64(s_in) / np.float64(s_out)))
            p = dict(size=n, scale="0.0f", dequant_scale="0.0", in_zero_point=zp_in, out_zero_point=zp_out,
                     multiplier=m, shift=s)
            self._step(o, "tg_quantize_params", p, [], [x], y, in_place=True, comment="int8 -> int8",
                       kernel="tg_requantize")
        else:
            self.expect(x, "FLOAT32", o.op)

    def _dequantize(self, o) -> None:
        x, y = o.inputs[0], o.outputs[0]
        self.expect(x, "INT8", o.op)
        self.expect(y, "FLOAT32", o.op)
        s_in, zp_in = self.q(x)
        p = dict(size=self.g.tensors[x].elements, scale="0.0f", dequant_scale=repr(float(np.float64(s_in))),
                 in_zero_point=zp_in, out_zero_point=0, multiplier=0, shift=0)
        self._step(o, "tg_quantize_params", p, [], [x], y, comment="int8 -> float")

    def _pad(self, o) -> None:
        x, pads, y = o.inputs[0], o.inputs[1], o.outputs[0]
        tt = self.g.tensors[x]
        if tt.dtype not in ("INT8", "FLOAT32"):
            self.expect(x, "INT8", o.op)
        rank = len(tt.shape)
        pv = np.asarray(self.const(pads)).reshape(rank, 2)
        before = [0] * (4 - rank) + [int(v) for v in pv[:, 0]]
        after = [0] * (4 - rank) + [int(v) for v in pv[:, 1]]
        if tt.dtype == "INT8":
            _, zp_out = self.q(y)
            value = zp_out
            if o.op == "PADV2" and len(o.inputs) > 2 and o.inputs[2] >= 0:
                value = int(np.asarray(self.const(o.inputs[2])).reshape(-1)[0])
        else:
            value = 0
            if o.op == "PADV2" and len(o.inputs) > 2 and o.inputs[2] >= 0 and float(np.asarray(self.const(o.inputs[2])).reshape(-1)[0]) != 0.0:
                raise AotError("PADV2 of a float tensor with a value other than 0 is not supported by tinygen's AOT runtime.")
        p = dict(in_dims=_c_list(self.dims4(x)), before=_c_list(before), after=_c_list(after),
                 element_bytes=1 if tt.dtype == "INT8" else 4, pad_value=value)
        self._step(o, "tg_pad_params", p, [], [x], y)

    _padv2 = _pad

    def _concatenation(self, o) -> None:
        y = o.outputs[0]
        ins = [t for t in o.inputs if t >= 0]
        self.expect(y, "INT8", o.op)
        s_out, zp_out = self.q(y)
        for t in ins:
            self.expect(t, "INT8", o.op)
            s, z = self.q(t)
            if s != s_out or z != zp_out:
                raise AotError("CONCATENATION of int8 tensors with different scales or zero points: TFLite "
                               "requires them equal, and so does tinygen's AOT runtime.")
        if o.options and o.options.fusedActivationFunction:
            raise AotError("CONCATENATION with a fused activation is not supported by tinygen's AOT runtime.")
        shape = self.g.tensors[y].shape
        axis = o.options.axis % len(shape) if o.options else 0
        outer = math.prod(shape[:axis])
        k = f"op{o.index}"
        chunks = np.array([math.prod(self.g.tensors[t].shape[axis:]) for t in ins], np.int64)
        p = dict(outer=outer, count=len(ins), chunk_bytes=f"{k}_chunk_bytes")
        inputs, arrays, consts = self.operands(o, ins)
        self._step(o, "tg_concat_params", p, [(f"{k}_chunk_bytes", "int32_t", chunks)] + arrays, inputs, y,
                   comment=f"{len(ins)} inputs along axis {axis}", const_operands=consts)

    def _alias(self, o) -> None:
        x, y = o.inputs[0], o.outputs[0]
        if self.g.tensors[x].nbytes != self.g.tensors[y].nbytes:
            raise AotError(f"{o.op} (operator {o.index}) makes {list(self.g.tensors[y].shape)} of "
                           f"{list(self.g.tensors[x].shape)}: not the same bytes.")
        self.aliases[y] = self.aliases.get(x, x)

    _reshape = _alias
    _squeeze = _alias
    _expand_dims = _alias


def fast_rounding(folded_bias: np.ndarray, abs_tap_sums: np.ndarray, shifts, out_offset: int) -> np.ndarray | None:
    """Per output channel (2^(e-1) + out_offset * 2^e) * 256 + e (e = -shift): the one word of
    constants of the convolution kernels' one-multiply output stage (firmware/aot/tg_conv.c,
    requant_rounded), which adds the word >> 8 and shifts right by its low byte. Given where
    that stage is provably TFLite's two roundings for every accumulator the layer can make:
    |acc| <= |folded bias| + 128 * sum |taps| (inputs are int8; taps over the border add the
    zero point, an int8 too) below 2^30, so that 2 * acc fits SMMULR; every shift a right shift
    (e >= 1); the word (so e <= 16 or so) and every sum on the way inside int32. None where any
    channel fails."""
    e = -np.asarray(shifts, np.int64)
    bound = np.abs(np.asarray(folded_bias, np.int64)) + 128 * np.asarray(abs_tap_sums, np.int64)
    if len(e) == 0 or (e < 1).any() or (e > 31).any() or (bound >= 1 << 30).any():
        return None
    k = (np.int64(1) << (e - 1)) + np.int64(out_offset) * (np.int64(1) << e)
    # y = SMMULR(2 acc, m) has |y| <= |acc| + 1; then y - 1 + k must stay inside int32
    if (np.abs(k) >= 1 << 23).any() or (bound + 2 + np.abs(k) >= 1 << 31).any():
        return None
    return k * 256 + e


def _mbqm(x: int, m: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), on the host."""
    left, right = max(shift, 0), max(-shift, 0)
    x = ((x << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    y = (2**31 - 1) if x == m == -(1 << 31) else (x * m + (1 << 30)) >> 31
    mask = (1 << right) - 1
    return (y >> right) + ((y & mask) > (mask >> 1) + (y < 0))


def _wrap32(values: np.ndarray) -> np.ndarray:
    """int64 to int32 with two's-complement wrap-around, as the device's int32 sums wrap."""
    return np.asarray(values, np.int64).astype(np.uint64).astype(np.uint32).view(np.int32).astype(np.int64)


def _c_list(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _c_float(v: float) -> str:
    return f"{float(np.float32(v)):.9e}f"


def lower(graph: Graph, model_bytes: bytes, match: str = "tflm") -> Program:
    """The graph as kernel calls, bit-exact with TFLite Micro (match "tflm") or with TFLite's
    reference kernels ("tflite"). An AotError names the first thing the AOT runtime cannot run."""
    if match not in MATCHES:
        raise AotError(f"--match must be one of {', '.join(MATCHES)}, not '{match}'.")
    if graph.subgraph_count != 1:
        raise AotError(f"The model has {graph.subgraph_count} subgraphs; tinygen's AOT runtime compiles one.")
    if hashlib.sha256(model_bytes).hexdigest() != graph.sha256:
        verify(model_bytes)   # not the bytes the graph was parsed (and verified) from: the weights come from them
    low = _Lowering(graph, model_bytes, match)
    low.lower()
    steps = low.steps
    root = lambda t: low.aliases.get(t, t)  # noqa: E731
    buffers: dict[int, Buffer] = {}
    end = len(steps)

    def buffer(t: int, first: int) -> Buffer:
        tt = graph.tensors[t]
        if t not in buffers:
            buffers[t] = Buffer(t, tt.nbytes, "float" if tt.dtype == "FLOAT32" else "int8_t", first, first)
        return buffers[t]

    for t in graph.inputs:
        buffer(root(t), -1)
    for i, s in enumerate(steps):
        s.inputs = [root(t) for t in s.inputs]
        s.output = root(s.output)
        for t in s.inputs:
            if t not in buffers:
                raise AotError(f"Tensor '{graph.tensors[t].name}' is read before anything writes it.")
            buffers[t].last = max(buffers[t].last, i)
        buffer(s.output, i)
    for t in graph.outputs:
        r = root(t)
        if r not in buffers:
            raise AotError("A model output is a constant; tinygen's AOT runtime does not handle that.")
        buffers[r].last = end
    return Program(graph, steps, buffers, [root(t) for t in graph.inputs], [root(t) for t in graph.outputs],
                   low.aliases, match)
