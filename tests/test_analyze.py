import pytest

from tinygen.model import graph as analyze
from tinygen.errors import ModelError

SHARED_INT8 = ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite", "kws_ref_model.tflite"]


@pytest.mark.parametrize("name", SHARED_INT8)
def test_shared_models_parse(shared_models, name):
    g = analyze.parse((shared_models / name).read_bytes(), name)
    assert g.is_full_int8() == (True, None)
    assert g.ops and g.params > 0 and g.macs > 0
    assert len(g.layers) == len(g.operators)


def test_kws_layers(shared_models):
    g = analyze.parse((shared_models / "kws_ref_model.tflite").read_bytes())
    assert g.ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    first = g.layers[0]
    # DS-CNN's first conv: 10x4 kernel, 64 filters over a 49x10x1 input, stride 2 -> 25x5x64
    assert first.output_shape == (1, 25, 5, 64)
    assert first.macs == 25 * 5 * 64 * 10 * 4 * 1
    assert first.params == 64 * 10 * 4 * 1 + 64


@pytest.mark.parametrize("cut", [0, 7, 100, 5000, -100])
def test_truncated_model_is_a_clear_error(shared_models, cut):
    data = (shared_models / "kws_ref_model.tflite").read_bytes()
    with pytest.raises(ModelError, match="truncated|not a TensorFlow Lite"):
        analyze.parse(data[:cut] if cut else b"", "kws.tflite")


def test_corrupt_model_is_a_clear_error(shared_models):
    data = bytearray((shared_models / "kws_ref_model.tflite").read_bytes())
    data[8:40] = b"\xff" * 32  # the root table's offsets
    with pytest.raises(ModelError):
        analyze.parse(bytes(data), "kws.tflite")
