"""Tiny Keras models built in code, one or two layers each, for tests that need many ops."""

from __future__ import annotations

import numpy as np

from tinygen._tf import keras, quiet, tf


def _model(input_shape, *layers):
    k = keras()
    # a fixed batch of 1 keeps the converter from adding SHAPE/PACK ops for dynamic shapes
    inp = k.layers.Input(input_shape, batch_size=1)
    x = inp
    for layer in layers:
        x = layer(x)
    return k.Model(inp, x)


def int8(model, samples: int = 32, seed: int = 0) -> bytes:
    tf_ = tf()
    rng = np.random.default_rng(seed)
    shape = (samples,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    data = rng.random(shape, dtype=np.float32)
    conv = tf_.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf_.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([d[None]] for d in data)
    conv.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf_.int8
    conv.inference_output_type = tf_.int8
    with quiet():
        return conv.convert()


def catalogue() -> dict[str, object]:
    """name -> Keras model; covers every op the arena model knows, with strides and paddings."""
    k = keras()
    L = k.layers
    tf()
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
