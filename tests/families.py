"""Whole int8 models shaped like the ones users bring (MobileNet v1, MobileNet v2, DS-CNN, ResNet),
written directly with the TFLite schema so that a test can build dozens in a second: random int8
weights, per-channel filter scales and output scales chosen so that activations spread over the int8
range (a saturated model would hide a wrong kernel). Each family varies input resolution, width,
depth and head; every model ends in a classifier (pooling, FULLY_CONNECTED, SOFTMAX), as a user's does."""

from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

RELU, RELU6 = 1, 3
ACT = RELU   # the convolutions' activation (RELU6 would clamp these models' growing real values)


class Net:
    """An int8 graph under construction: tensors, const buffers and operators in execution order."""

    def __init__(self, shape, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.tensors: list = []
        self.buffers: list = [s.BufferT()]
        self.ops: list = []
        self.codes: list[int] = []
        self.shape: dict[int, list[int]] = {}     # activation tensor -> its shape
        self.rms: dict[int, float] = {}           # activation tensor -> its expected rms, in int8 steps
        self.input = self._tensor(list(shape), 0.02, -3)
        self.rms[self.input] = 74.0               # uniform int8

    def _tensor(self, shape, scale, zero_point, data=None, dtype=s.TensorType.INT8, axis=0) -> int:
        t = s.TensorT()
        t.shape, t.type, t.name, t.buffer = list(shape), dtype, f"t{len(self.tensors)}".encode(), 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zero_point)]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        if data is None:
            self.shape[len(self.tensors) - 1] = list(shape)
        return len(self.tensors) - 1

    def _op(self, name: str, inputs, outputs, options=None):
        code = getattr(s.BuiltinOperator, name)
        if code not in self.codes:
            self.codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options
        self.ops.append(o)

    def _scale(self, x: int) -> float:
        return self.tensors[x].quantization.scale[0]

    def _out(self, shape, fan_in: int, x: int, act: int = 0) -> int:
        # a sum of fan_in products with weights of spread 0.58: 40 steps a sigma; after a ReLU, an
        # rms of 28 steps (RELU6 clamps real values at 6: the test models keep them far below)
        y = self._tensor(shape, self._scale(x) * self.rms[x] * np.sqrt(fan_in) * 0.58 / 40,
                         -100 if act else int(self.rng.integers(-20, 20)))
        self.rms[y] = 28.0 if act else 40.0
        return y

    def conv(self, x: int, cout: int, k=(1, 1), stride: int = 1, act: int = ACT, same: bool = True,
             depthwise: bool = False, mult: int = 1) -> int:
        _, h, w, cin = self.shape[x]
        k_h, k_w = (k, k) if isinstance(k, int) else k
        if same:
            oh, ow = -(-h // stride), -(-w // stride)
        else:
            oh, ow = (h - k_h) // stride + 1, (w - k_w) // stride + 1
        cout = cin * mult if depthwise else cout
        fshape = [1, k_h, k_w, cout] if depthwise else [cout, k_h, k_w, cin]
        fscale = (np.float32(1 / 127) * self.rng.uniform(0.7, 1.3, cout)).astype(np.float32)
        f = self._tensor(fshape, fscale, np.zeros(cout, int), self.rng.integers(-127, 128, fshape, dtype=np.int8),
                         axis=3 if depthwise else 0)
        b = self._tensor([cout], self._scale(x) * fscale, np.zeros(cout, int),
                         self.rng.integers(-2000, 2000, cout).astype(np.int32), dtype=s.TensorType.INT32)
        y = self._out([1, oh, ow, cout], k_h * k_w * (1 if depthwise else cin), x, act)
        opts = (s.DepthwiseConv2DOptionsT if depthwise else s.Conv2DOptionsT)()
        opts.padding, opts.strideH, opts.strideW = (0 if same else 1), stride, stride
        opts.dilationHFactor = opts.dilationWFactor = 1
        opts.fusedActivationFunction = act
        if depthwise:
            opts.depthMultiplier = mult
        kind = s.BuiltinOptions.DepthwiseConv2DOptions if depthwise else s.BuiltinOptions.Conv2DOptions
        self._op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, f, b], [y], (kind, opts))
        return y

    def dw(self, x: int, k=3, stride: int = 1, act: int = ACT, mult: int = 1) -> int:
        return self.conv(x, 0, k, stride, act, depthwise=True, mult=mult)

    def add(self, a: int, b: int, act: int = 0) -> int:
        spread = np.hypot(self._scale(a) * self.rms[a], self._scale(b) * self.rms[b])
        y = self._tensor(self.shape[a], spread / 40, -100 if act else int(self.rng.integers(-10, 10)))
        self.rms[y] = 28.0 if act else 40.0
        opts = s.AddOptionsT()
        opts.fusedActivationFunction = act
        self._op("ADD", [a, b], [y], (s.BuiltinOptions.AddOptions, opts))
        return y

    def head(self, x: int, classes: int, pool: str = "avg", softmax: bool = True) -> int:
        """The classifier: global pooling (AVERAGE_POOL_2D or MEAN), FULLY_CONNECTED, SOFTMAX."""
        _, h, w, c = self.shape[x]
        if pool == "avg":
            y = self._tensor([1, 1, 1, c], self._scale(x), self.tensors[x].quantization.zeroPoint[0])
            self.rms[y] = self.rms[x]
            opts = s.Pool2DOptionsT()
            opts.padding, opts.strideH, opts.strideW, opts.filterHeight, opts.filterWidth = 1, 1, 1, h, w
            self._op("AVERAGE_POOL_2D", [x], [y], (s.BuiltinOptions.Pool2DOptions, opts))
        else:
            axes = self._tensor([2], None, None, np.array([1, 2], np.int32), dtype=s.TensorType.INT32)
            y = self._tensor([1, c], self._scale(x), self.tensors[x].quantization.zeroPoint[0])
            self.rms[y] = self.rms[x]
            opts = s.ReducerOptionsT()
            opts.keepDims = False
            self._op("MEAN", [x, axes], [y], (s.BuiltinOptions.ReducerOptions, opts))
        fs = np.float32(1 / 127)
        f = self._tensor([classes, c], fs, 0, self.rng.integers(-127, 128, (classes, c), dtype=np.int8))
        b = self._tensor([classes], self._scale(y) * fs, 0, self.rng.integers(-2000, 2000, classes).astype(np.int32),
                         dtype=s.TensorType.INT32)
        z = self._out([1, classes], c, y)
        opts = s.FullyConnectedOptionsT()
        self._op("FULLY_CONNECTED", [y, f, b], [z], (s.BuiltinOptions.FullyConnectedOptions, opts))
        if softmax:
            p = self._tensor([1, classes], 1 / 256, -128)
            opts = s.SoftmaxOptionsT()
            opts.beta = 1.0
            self._op("SOFTMAX", [z], [p], (s.BuiltinOptions.SoftmaxOptions, opts))
            z = p
        return z

    def model(self, out: int) -> bytes:
        codes = []
        for c in self.codes:
            oc = s.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            codes.append(oc)
        g = s.SubGraphT()
        g.tensors, g.inputs, g.outputs, g.operators = self.tensors, [self.input], [out], self.ops
        m = s.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [g], self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _c(n: float) -> int:
    return max(8, int(round(n / 8)) * 8)


def mobilenet_v1(res: int, alpha: float, blocks: int = 13, classes: int = 2, channels: int = 3,
                 pool: str = "avg", seed: int = 0, features: bool = False) -> bytes:
    net = Net([1, res, res, channels], seed)
    x = net.conv(net.input, _c(32 * alpha), 3, 2)
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for c, stride in plan[:blocks]:
        x = net.dw(x, 3, stride)
        x = net.conv(x, _c(c * alpha))
    return net.model(x if features else net.head(x, classes, pool))


def mobilenet_v2(res: int, alpha: float, stages: int = 7, classes: int = 2, expansion: int = 6,
                 pool: str = "avg", seed: int = 0, features: bool = False) -> bytes:
    net = Net([1, res, res, 3], seed)
    x = net.conv(net.input, _c(32 * alpha), 3, 2)
    # (expansion, channels, repeats, stride) as in the paper; the first has no expansion
    plan = [(1, 16, 1, 1), (expansion, 24, 2, 2), (expansion, 32, 3, 2), (expansion, 64, 4, 2),
            (expansion, 96, 3, 1), (expansion, 160, 3, 2), (expansion, 320, 1, 1)]
    for t, c, n, stride in plan[:stages]:
        for i in range(n):
            cin = net.shape[x][3]
            y = net.conv(x, cin * t) if t != 1 else x
            y = net.dw(y, 3, stride if i == 0 else 1)
            y = net.conv(y, _c(c * alpha), act=0)
            x = net.add(x, y) if (i > 0 and cin == net.shape[y][3]) else y
    x = net.conv(x, max(_c(1280 * alpha), 64))
    return net.model(x if features else net.head(x, classes, pool))


def ds_cnn(frames: int, bins: int, width: int, blocks: int = 4, classes: int = 12, first=(10, 4),
           stride: int = 2, pool: str = "avg", seed: int = 0, features: bool = False) -> bytes:
    net = Net([1, frames, bins, 1], seed)
    x = net.conv(net.input, width, first, stride, RELU)
    for _ in range(blocks):
        x = net.dw(x, 3, 1, RELU)
        x = net.conv(x, width, act=RELU)
    return net.model(x if features else net.head(x, classes, pool))


def resnet(res: int, width: int, stages: int = 3, blocks: int = 1, classes: int = 10, channels: int = 3,
           pool: str = "avg", seed: int = 0, features: bool = False) -> bytes:
    net = Net([1, res, res, channels], seed)
    x = net.conv(net.input, width, 3, 1, RELU)
    for stage in range(stages):
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            c = width * 2 ** stage
            y = net.conv(x, c, 3, stride, RELU)
            y = net.conv(y, c, 3, 1, 0)
            skip = x if stride == 1 and net.shape[x][3] == c else net.conv(x, c, 1, stride, 0)
            x = net.add(skip, y, RELU)
    return net.model(x if features else net.head(x, classes, pool))


def families() -> dict[str, bytes]:
    """The measured set: each family over resolution, width, depth and head."""
    out = {}
    for res, alpha, blocks, classes, ch in [(96, 0.25, 13, 2, 3), (128, 0.25, 13, 2, 3), (96, 0.5, 13, 2, 3),
                                            (64, 0.25, 6, 10, 3), (160, 0.25, 13, 2, 3), (128, 0.5, 11, 100, 3),
                                            (96, 0.25, 13, 2, 1), (48, 1.0, 13, 10, 3), (224, 0.25, 13, 1000, 3)]:
        out[f"mbv1_{res}_a{alpha}_b{blocks}_c{classes}_ch{ch}"] = mobilenet_v1(res, alpha, blocks, classes, ch)
    for res, alpha, stages, classes in [(96, 0.35, 7, 2), (128, 0.35, 7, 2), (96, 0.5, 6, 10), (64, 0.35, 4, 10),
                                        (144, 0.35, 7, 2), (96, 1.0, 5, 2)]:
        out[f"mbv2_{res}_a{alpha}_s{stages}_c{classes}"] = mobilenet_v2(res, alpha, stages, classes)
    for frames, bins, width, blocks, first, stride, pool in [(49, 10, 64, 4, (10, 4), 2, "avg"),
                                                             (49, 10, 172, 4, (10, 4), 2, "avg"),
                                                             (49, 40, 64, 5, (10, 4), 2, "mean"),
                                                             (99, 40, 96, 3, (10, 8), 2, "avg"),
                                                             (49, 10, 276, 5, (10, 4), 1, "avg"),
                                                             (32, 32, 32, 2, (3, 3), 1, "mean")]:
        out[f"dscnn_{frames}x{bins}_w{width}_b{blocks}_s{stride}"] = ds_cnn(frames, bins, width, blocks, first=first,
                                                                           stride=stride, pool=pool)
    for res, width, stages, blocks, ch in [(32, 16, 3, 1, 3), (32, 16, 3, 2, 3), (64, 16, 3, 1, 3),
                                           (32, 32, 3, 1, 3), (48, 8, 4, 1, 1), (96, 16, 3, 1, 3)]:
        out[f"resnet_{res}_w{width}_s{stages}_b{blocks}_ch{ch}"] = resnet(res, width, stages, blocks, channels=ch)
    return out
