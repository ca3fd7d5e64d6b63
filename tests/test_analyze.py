import struct

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tflite_builder import OPS, OneOp, random_model
from tinygen.errors import ModelError
from tinygen.model import graph as analyze
from tinygen.model.verify import VerifyError, verify

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


# --- verify(): what is checked before anything reads a model ----------------------------------

def _pack(m) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _mutated(data: bytes, change) -> bytes:
    m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    change(m)
    return _pack(m)


def _conv() -> bytes:
    return random_model("CONV_2D", np.random.default_rng(3))


def _refused(data: bytes, *words: str, tflm: str | None = None) -> VerifyError:
    with pytest.raises(VerifyError) as e:
        verify(data, "m.tflite")
    text = str(e.value)
    assert text.startswith("m.tflite") and text.endswith(".") and "\n" not in text, text
    for w in words:
        assert w in text, text
    if tflm is not None:
        assert e.value.tflm == tflm, text
    return e.value


@pytest.mark.parametrize("op", OPS)
def test_verify_accepts_well_formed_models_of_every_op(op):
    rng = np.random.default_rng(11)
    for _ in range(5):
        verify(random_model(op, rng), op)


@pytest.mark.parametrize("name", SHARED_INT8)
def test_verify_accepts_the_shared_models(shared_models, name):
    verify((shared_models / name).read_bytes(), name)


def test_an_offset_past_the_end_is_named():
    data = bytearray(_conv())
    struct.pack_into("<I", data, 0, len(data) + 64)
    _refused(bytes(data), "corrupt or truncated", "model", "lies outside the file")


def test_a_misaligned_table_is_named():
    data = bytearray(_conv())
    root = struct.unpack_from("<I", data, 0)[0]
    struct.pack_into("<I", data, 0, root + 1)
    _refused(bytes(data), "misaligned")


def test_a_vector_longer_than_the_file_is_named():
    data = bytearray(_conv())
    tensors = schema.Model.GetRootAs(data, 0).Subgraphs(0).Tensors(0)._tab
    shape_at = tensors.Vector(tensors.Offset(4))     # the shape vector's first element
    struct.pack_into("<I", data, shape_at - 4, 0x10000000)
    _refused(bytes(data), "subgraphs[0].tensors[0].shape", "claims 268435456 elements")


def test_tables_pointing_at_each_other_over_and_over_are_refused():
    """One subgraph listed 20,000 times: 80 KB of offsets that would make a reader (the schema
    code, TFLM) build 20,000 copies of it."""
    m = schema.ModelT.InitFromPackedBuf(bytearray(_conv()), 0)
    b = flatbuffers.Builder(1024)
    sg = m.subgraphs[0].Pack(b)
    codes = [c.Pack(b) for c in m.operatorCodes]
    bufs = [x.Pack(b) for x in m.buffers]

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    subgraphs, code_vec, buf_vec = vector([sg] * 20000), vector(codes), vector(bufs)
    schema.ModelStart(b)
    schema.ModelAddVersion(b, 3)
    schema.ModelAddOperatorCodes(b, code_vec)
    schema.ModelAddSubgraphs(b, subgraphs)
    schema.ModelAddBuffers(b, buf_vec)
    b.Finish(schema.ModelEnd(b), file_identifier=b"TFL3")
    _refused(bytes(b.Output()), "point at the same bytes")


def test_a_dangling_buffer_index_names_the_tensor_and_the_count():
    data = _mutated(_conv(), lambda m: setattr(m.subgraphs[0].tensors[1], "buffer", 4000000))
    _refused(data, "tensor 1", "buffer 4000000", "3 buffers")


def test_weights_shorter_than_their_shape_are_refused():
    def cut(m):
        b = m.buffers[m.subgraphs[0].tensors[1].buffer]
        b.data = b.data[:-3]
    _refused(_mutated(_conv(), cut), "tensor 1", "bytes, but its buffer", "holds")


def test_dangling_tensor_and_opcode_indices_are_refused():
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].operators[0], "inputs", [0, 99, 2])),
             "CONV_2D (operator 0)", "input tensor 99")
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 7)),
             "opcode index 7", tflm="refuses")
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0], "outputs", [-5])), "model output -5")


def test_types_shapes_and_quantization_are_checked():
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].tensors[0], "type", 99)), "type 99", tflm="refuses")
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].tensors[3], "shape", [1, 0, 4, 2])),
             "every dimension must be at least 1")
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].tensors[0], "shape", [65536, 65536, 4, 2])),
             "more than the 32-bit sizes")
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].tensors[0].quantization, "scale", [float("nan")])),
             "scale nan", "finite and above 0")
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].tensors[0].quantization, "zeroPoint", [300])),
             "zero point 300", "-128 to 127")

    def channels(m):   # one scale more than the filter has output channels
        t = m.subgraphs[0].tensors[1]
        n = int(t.shape[0]) + 1
        t.quantization.scale, t.quantization.zeroPoint, t.quantization.quantizedDimension = [0.01] * n, [0] * n, 0
    _refused(_mutated(_conv(), channels), "per-channel scales along dimension 0")


def test_options_of_another_op_and_zero_strides_are_refused():
    def pool_options(m):
        o = m.subgraphs[0].operators[0]
        o.builtinOptionsType, o.builtinOptions = schema.BuiltinOptions.Pool2DOptions, schema.Pool2DOptionsT()
    _refused(_mutated(_conv(), pool_options), "carries Pool2DOptions, not the Conv2DOptions")
    _refused(_mutated(_conv(), lambda m: setattr(m.subgraphs[0].operators[0].builtinOptions, "strideW", 0)),
             "strides", "must be at least 1")


def test_a_degenerate_softmax_input_scale_names_the_op_the_scale_and_the_limit():
    m = OneOp()
    x = m.tensor([1, 10], scale=7.84314e-09, zero_point=0)
    y = m.tensor([1, 10], scale=1 / 256, zero_point=-128)
    e = _refused(m.model("SOFTMAX", [x], [y], beta=1.0), "SOFTMAX (operator 0)", "7.84314e-09", "2^-26", tflm="aborts")
    assert "tensor 0" in str(e)


def test_an_add_whose_output_scale_tflm_cannot_rescale_to_is_refused():
    m = OneOp()
    a, b = m.tensor([1, 4], scale=0.5, zero_point=0), m.tensor([1, 4], scale=0.5, zero_point=0)
    y = m.tensor([1, 4], scale=2.0**-21, zero_point=0)
    _refused(m.model("ADD", [a, b], [y]), "ADD (operator 0)", "output rescale", "below 1", tflm="aborts")


def test_parse_refuses_what_verify_refuses_and_reads_what_it_accepts():
    bad = _mutated(_conv(), lambda m: setattr(m.subgraphs[0].tensors[1], "buffer", 77))
    with pytest.raises(ModelError, match="buffer 77"):
        analyze.parse(bad, "m.tflite")
    g = analyze.parse(_conv(), "m.tflite")
    assert g.ops == ["CONV_2D"] and g.tensors[1].is_const and not g.tensors[0].is_const


def test_the_walk_follows_every_offset_the_schema_code_reads():
    """Every field the installed schema code reads through an offset (a vector, a string, a
    table, a union) is one the structural walk checks: a newer tflite-micro wheel whose schema
    adds one fails here, not in a user's model."""
    import inspect
    import re

    from tinygen.model.verify import _TABLES

    missed = []
    for kind, fields in _TABLES.items():
        cls = getattr(schema, kind, None)
        if cls is None:
            continue
        for name, fn in vars(cls).items():
            if not callable(fn) or name.startswith(("_", "GetRoot", "Init")):
                continue
            src = inspect.getsource(fn)
            slot = re.search(r"Offset\((\d+)\)", src)
            if slot and re.search(r"\.(Vector|String|Indirect|Union)\(", src):
                field = fields.get((int(slot.group(1)) - 4) // 2)
                if field is None or not (field[1] == "string" or isinstance(field[1], tuple)):
                    missed.append(f"{kind}.{name}")
    assert not missed, f"offset fields the walk does not follow: {sorted(set(missed))}"
