"""Tiny Keras models built in code, one or two layers each, for tests that need many ops.

Their weights are random but seeded: TINYGEN_SEED picks the seed (DEFAULT_SEED otherwise), and
a failing test that used them names it, so a rare failure can be run again with the same weights."""

from __future__ import annotations

import os

import numpy as np

from tinygen.model.tf import keras, quiet, tf

DEFAULT_SEED = 1


def seed() -> int:
    value = os.environ.get("TINYGEN_SEED", str(DEFAULT_SEED))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"TINYGEN_SEED must be an integer, not {value!r}.") from None


def _seed_weights(offset: int) -> None:
    """Seed Python's, NumPy's and TensorFlow's generators, which the initializers draw from, and
    reset Keras's layer-name counters, which the converter writes into the model: the same bytes
    whatever the session built before (each catalogue has its own offset)."""
    keras().backend.clear_session()
    keras().utils.set_random_seed(seed() + offset)


def _model(input_shape, *layers):
    k = keras()
    # a fixed batch of 1 keeps the converter from adding SHAPE/PACK ops for dynamic shapes
    inp = k.layers.Input(input_shape, batch_size=1)
    x = inp
    for layer in layers:
        x = layer(x)
    return k.Model(inp, x)


def int8(model, samples: int = 32, seed: int = 0, int8_io: bool = True, per_channel: bool = True) -> bytes:
    """Full-integer int8, calibrated on uniform [0, 1) samples. int8_io=False keeps float input
    and output (QUANTIZE first, DEQUANTIZE last); per_channel=False gives one weight scale per tensor."""
    tf_ = tf()
    rng = np.random.default_rng(seed)
    shape = (samples,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    data = rng.random(shape, dtype=np.float32)
    conv = tf_.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf_.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([d[None]] for d in data)
    conv.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf_.int8
        conv.inference_output_type = tf_.int8
    if not per_channel:
        conv._experimental_disable_per_channel = True
    with quiet():
        return conv.convert()


def catalogue() -> dict[str, object]:
    """name -> Keras model; covers every op the arena model knows, with strides and paddings."""
    k = keras()
    L = k.layers
    tf()
    _seed_weights(0)
    models = {
        "conv_same": _model((12, 12, 3), L.Conv2D(8, 3, padding="same")),
        "conv_valid_stride2": _model((13, 11, 4), L.Conv2D(6, 3, strides=2, padding="valid", activation="relu")),
        "conv_1x1": _model((6, 6, 8), L.Conv2D(16, 1)),
        "conv_1xn": _model((1, 16, 4), L.Conv2D(8, (1, 3), padding="same")),
        "conv_dilated": _model((12, 12, 2), L.Conv2D(4, 3, dilation_rate=2, padding="same")),
        "dwconv_3x3": _model((10, 10, 8), L.DepthwiseConv2D(3, padding="same")),
        "dwconv_5x5": _model((10, 10, 8), L.DepthwiseConv2D(5, padding="same", activation="relu6")),
        "dwconv_mult2": _model((9, 9, 4), L.DepthwiseConv2D(3, depth_multiplier=2, strides=2)),
        "dense": _model((20,), L.Dense(7)),
        "avgpool": _model((8, 8, 6), L.AveragePooling2D(2)),
        "maxpool": _model((9, 9, 5), L.MaxPooling2D(3, strides=2, padding="same")),
        "gap_mean": _model((6, 6, 10), L.GlobalAveragePooling2D()),
        "softmax": _model((12,), L.Dense(10), L.Softmax()),
        "logistic": _model((12,), L.Dense(3, activation="sigmoid")),
        "reshape": _model((4, 6), L.Reshape((24,)), L.Dense(5)),
        "tanh": _model((12,), L.Dense(4, activation="tanh")),  # TANH: not modelled by the arena replay
        "pad": _model((6, 6, 3), L.ZeroPadding2D(2), L.Conv2D(4, 3)),
    }
    inp = L.Input((8, 8, 4), batch_size=1)
    a = L.Conv2D(4, 3, padding="same")(inp)
    models["add"] = k.Model(inp, L.Add()([a, inp]))
    inp = L.Input((8, 8, 4), batch_size=1)
    a = L.Conv2D(4, 1)(inp)
    models["mul"] = k.Model(inp, L.Multiply()([a, inp]))
    inp = L.Input((8, 8, 4), batch_size=1)
    a = L.Conv2D(3, 1)(inp)
    models["concat"] = k.Model(inp, L.Concatenate()([a, inp]))
    return models


def aot_catalogue() -> dict[str, bytes]:
    """Int8 models for the AOT kernels' edge cases, beyond catalogue(): per-tensor weights,
    asymmetric SAME padding, grouped and dilated convolutions, broadcasting, MEAN, PAD,
    CONCATENATION on inner axes, float I/O and int8 -> int8 QUANTIZE."""
    k = keras()
    L = k.layers
    tf_ = tf()
    _seed_weights(1)
    out: dict[str, bytes] = {}
    out["conv_per_tensor"] = int8(_model((9, 9, 3), L.Conv2D(5, 3, strides=2, padding="same", activation="relu")),
                                   per_channel=False)
    out["dense_per_tensor"] = int8(_model((17,), L.Dense(6, activation="relu6")), per_channel=False)
    out["conv_even_same_stride2"] = int8(_model((10, 12, 3), L.Conv2D(4, 4, strides=2, padding="same")))
    out["conv_groups"] = int8(_model((6, 6, 8), L.Conv2D(8, 3, groups=2, padding="same")))
    out["dwconv_dilated"] = int8(_model((11, 11, 4), L.DepthwiseConv2D(3, dilation_rate=2, padding="same")))
    out["dwconv_stride2_valid_relu"] = int8(_model((12, 9, 6), L.DepthwiseConv2D(3, strides=2, activation="relu")))
    out["avgpool_same_stride"] = int8(_model((7, 7, 3), L.AveragePooling2D(3, strides=2, padding="same")))
    out["mean_keepdims"] = int8(_model((5, 7, 6), L.Lambda(lambda t: tf_.reduce_mean(t, axis=[1, 2], keepdims=True))))
    out["mean_channels"] = int8(_model((5, 7, 6), L.Lambda(lambda t: tf_.reduce_mean(t, axis=-1))))
    out["pad_asymmetric"] = int8(_model((5, 5, 2), L.ZeroPadding2D(((1, 2), (0, 3))), L.Conv2D(3, 2)))
    inp = L.Input((6, 6, 4), batch_size=1)
    gap = L.GlobalAveragePooling2D(keepdims=True)(inp)
    out["add_broadcast"] = int8(k.Model(inp, L.Add()([inp, L.Conv2D(4, 1)(gap)])))
    inp = L.Input((6, 6, 4), batch_size=1)
    gap = L.GlobalAveragePooling2D(keepdims=True)(inp)
    out["mul_broadcast_sigmoid"] = int8(k.Model(inp, L.Multiply()([inp, L.Conv2D(4, 1, activation="sigmoid")(gap)])))
    inp = L.Input((6, 6, 4), batch_size=1)   # x - mean(x): a normalisation, and 144 elements
    out["sub_mean"] = int8(k.Model(inp, L.Subtract()([inp, L.GlobalAveragePooling2D(keepdims=True)(inp)])))
    inp = L.Input((4, 5, 3), batch_size=1)
    out["concat_axis_w"] = int8(k.Model(inp, L.Concatenate(axis=2)([inp, L.Conv2D(3, 1)(inp)])))
    out["float_io"] = int8(_model((8, 8, 3), L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(5), L.Softmax()),
                           int8_io=False)
    out["softmax_wide"] = int8(_model((40,), L.Dense(300), L.Softmax()))
    out["logistic_wide"] = int8(_model((16,), L.Dense(64, activation="sigmoid")))
    # kernel choices made at generation time: a depthwise convolution over one input channel run
    # as a convolution (an audio front end's), border windows in pairs, a pointwise convolution
    # over an odd number of pixels, a 1xN convolution
    out["audio_front_pointwise"] = int8(_model((13, 10, 1),
                                               L.DepthwiseConv2D((5, 4), strides=2, depth_multiplier=4, padding="same",
                                                                 activation="relu"),
                                               L.Conv2D(6, 1, activation="relu"), L.Conv2D(8, (1, 3), padding="same")))
    return out
