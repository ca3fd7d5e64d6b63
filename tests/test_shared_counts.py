"""Parameters and MACs of the MLPerf Tiny models, pinned to counts made without tinygen: the
Keras models they were converted from (their layers' shapes and Keras's own count_params()),
and by hand for the keyword-spotting DS-CNN.

tinygen reads the int8 .tflite, where the converter has folded each BatchNormalization into
the convolution before it (its scale into the kernel, its shift into the bias); so the Keras
count less the BatchNormalization parameters, plus a bias for any layer without one, is what
the .tflite holds.
"""

from __future__ import annotations

import math

import pytest

from tinygen.model import graph as analyze

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")

# model: (parameters after folding, MACs of the convolutions and dense layers, MACs by tinygen's
# convention, which also counts a pooling window's reads, both inputs of an ADD and one per
# SOFTMAX output). KWS by hand: a 10x4 convolution over 49x10x1, stride 2, to 25x5x64:
# 25*5*64*40 = 320,000; four 3x3 depthwise (25*5*64*9 = 72,000) and 64->64 pointwise
# (25*5*64*64 = 512,000) pairs; 25x5 average pooling (64*125 = 8,000); a 64->12 dense layer (768)
# and its softmax (12). Parameters: 2,624 + 4 * (640 + 4,160) + 780 = 22,604.
PINNED = {
    "vww_96": (210_850, 7_489_664, 7_491_970),
    "pretrainedResnet": (77_706, 12_501_632, 12_563_082),
    "ad01": (265_864, 264_192, 264_192),
    "kws_ref_model": (22_604, 2_656_768, 2_664_780),
}
CASES = [("vww_96_int8.tflite", "vww_96.h5"), ("pretrainedResnet_quant.tflite", "pretrainedResnet.h5"),
         ("ad01_int8.tflite", "ad01.h5"), ("kws_ref_model.tflite", "kws_ref_model")]
# Layers with no parameters and no MACs of their own (ReLU is fused into the layer before it)
PASSIVE = {"InputLayer", "BatchNormalization", "Activation", "Dropout", "Flatten"}


def keras_counts(path) -> tuple[int, int, int]:
    """(folded parameters, convolution and dense MACs, MACs by tinygen's convention) from the
    Keras model's layers and output shapes."""
    from tinygen.model.tf import keras

    k = keras()
    L = k.layers
    model = k.models.load_model(path, compile=False)
    batch_norm = sum(layer.count_params() for layer in model.layers if isinstance(layer, L.BatchNormalization))
    params = model.count_params() - batch_norm
    weighted = other = 0
    for layer in model.layers:
        out = math.prod(layer.output_shape[1:])
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense)) and not layer.use_bias:
            params += layer.output_shape[-1]   # folding gives it one
        if isinstance(layer, L.DepthwiseConv2D):    # before Conv2D: it is one
            weighted += out * math.prod(layer.kernel_size)
        elif isinstance(layer, L.Conv2D):
            weighted += out * math.prod(layer.kernel_size) * layer.input_shape[-1] // layer.groups
        elif isinstance(layer, L.Dense):
            weighted += layer.units * layer.input_shape[-1]
        elif isinstance(layer, L.AveragePooling2D):
            other += out * math.prod(layer.pool_size)
        elif isinstance(layer, L.Add):
            other += sum(math.prod(s[1:]) for s in layer.input_shape)
        else:
            assert type(layer).__name__ in PASSIVE, f"{type(layer).__name__}: not counted here"
        if getattr(getattr(layer, "activation", None), "__name__", "") == "softmax":
            other += out
    return params, weighted, weighted + other


@pytest.mark.parametrize("tflite, source", CASES, ids=[c[1].split(".")[0] for c in CASES])
def test_params_and_macs_match_the_keras_models(shared_models, tflite, source):
    pinned = PINNED[source.split(".")[0]]
    assert keras_counts(shared_models / source) == pinned
    params, weighted_macs, macs = pinned
    g = analyze.parse((shared_models / tflite).read_bytes(), tflite)
    weighted = [layer for layer in g.layers if layer.op in WEIGHTED_OPS]
    assert sum(layer.params for layer in weighted) == params
    assert sum(layer.macs for layer in weighted) == weighted_macs
    assert g.macs == macs
    # RESHAPE's target shape is two int32 constants, not parameters
    assert any(o.op == "RESHAPE" for o in g.operators) == (source != "ad01.h5")
    assert g.params == params
