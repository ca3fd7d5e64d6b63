"""Look-up-table weights in the AOT runtime (tinygen/aot/lut.py, firmware/aot/tg_lut*.c): a
clustered int8 model, and the same model in TFLM's compressed-tensor format, compiled with each
weight tensor stored as packed b-bit indices into per-tensor or per-channel tables, every kernel
form run and compared byte for byte with the tflite-micro interpreter and TFLite; in QEMU the
Cortex-M4 build (its DSP paths, the assembly included) and the fit check's flash against the
linked image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import needs
from test_aot import _differ, _inputs, _tflm
from test_cli import run as cli

from tinygen import aot
from tinygen.aot import host as hostrun
from tinygen.aot import lut
from tinygen.aot.size import PARAM_BYTES
from tinygen.model.graph import parse
from tinygen.shrink.cluster import cluster_tensor

# op index -> (kernel, index bits, per-channel tables)
FORMS = {
    0: ("tg_lut_conv2d", 6, False),               # 3x3 convolution, decoded whole
    1: ("tg_lut_pointwise", 1, True),             # 1x1, 48 -> 128: two filters at a time
    2: ("tg_lut_depthwise_conv2d", 2, True),      # per-channel tables along the innermost axis
    3: ("tg_lut_conv2d_1x1", 7, False),
    6: ("tg_lut_fully_connected_4", 4, False),    # 720 -> 42: index pairs, four rows and two more
    7: ("tg_lut_fully_connected", 3, True),       # 42 -> 300
    8: ("tg_lut_fully_connected", 5, False),      # 300 -> 10: two chunks of columns, two rows left over
}
# what compile() stores as LUT indices without being asked (up to lut.AUTO_BITS bits)
AUTO_FORMS = {i: f for i, f in FORMS.items() if f[1] <= lut.AUTO_BITS}
CLUSTERS = {0: (50, None), 1: (2, 0), 2: (3, 3), 3: (100, None), 6: (16, None), 7: (6, 0), 8: (20, None)}


@pytest.fixture(scope="module")
def lut_model() -> bytes:
    """A small int8 network with one layer per LUT kernel form, its weights clustered to the
    distinct values of CLUSTERS (per tensor, or per output channel along the given axis)."""
    from tinymodels import _seed_weights, int8

    from tinygen.model.tf import keras

    k = keras()
    L = k.layers
    _seed_weights(31)
    inp = L.Input((12, 10, 8), batch_size=1)
    x = L.Conv2D(48, 3, padding="same", activation="relu")(inp)
    x = L.Conv2D(128, 1, activation="relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.Conv2D(24, 1)(x)
    x = L.AveragePooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(42, activation="relu")(x)
    x = L.Dense(300, activation="relu")(x)
    model = int8(k.Model(inp, L.Dense(10)(x)))
    return _clustered(model, CLUSTERS)


def _clustered(model: bytes, clusters: dict[int, tuple[int, int | None]]) -> bytes:
    """`model` with the weights of the ops in `clusters` clustered in place (the same bytes
    otherwise: the flatbuffer's weight buffers are overwritten through a NumPy view)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    g = parse(model)
    buf = bytearray(model)
    fb = schema.Model.GetRootAs(buf, 0)
    for o in g.operators:
        if o.index in clusters:
            n, axis = clusters[o.index]
            t = g.tensors[o.inputs[1]]
            data = fb.Buffers(t.buffer).DataAsNumpy()
            w = data.view(np.int8).reshape(t.shape)
            data[:] = cluster_tensor(w, n, axis, keep_zero=False).reshape(-1).view(np.uint8)
    return bytes(buf)


def _chosen(compiled) -> dict[int, tuple[str, int, bool]]:
    return {s.op_index: (s.kernel, s.params["w.bits"], bool(s.params["w.per_channel"]))
            for s in compiled.program.steps if s.kernel and s.kernel.startswith("tg_lut_")}


@needs("cc")
@pytest.mark.parametrize("dsp", [False, True], ids=["plain-c", "dsp-emulated"])
def test_every_lut_form_is_bit_exact_with_tflite_micro_and_tflite(lut_model, dsp, tmp_path):
    from tinygen.model.evaluate import tflite_reference

    hm, compiled = hostrun.compile_model(lut_model, "lut", tmp_path, emulate_dsp=dsp, lut_bits=lut.MAX_BITS)
    assert _chosen(compiled) == FORMS
    source = compiled.files["tg_model.c"]
    assert source.count("; weights: ") == len(FORMS)
    assert "4-bit index pairs into one table of 16" in source and "1-bit indices into one table per output channel" in source
    # flash holds exactly the packed indices and tables where the dense filters were
    dense = aot.lower(parse(lut_model), lut_model)
    filters = sum(v.size for s in dense.steps if s.op_index in FORMS for n, _, v in s.arrays if n.endswith("_filter"))
    packed = sum(v.size for s in compiled.program.steps for n, _, v in s.arrays if n.endswith(("_indices", "_table")))
    # kernels that read only the folded bias drop the plain one (the dense ones keep none either)
    biases = sum(v.size * 4 for s in dense.steps if FORMS.get(s.op_index, ("",))[0] in lut.FOLDED_ONLY
                 for n, _, v in s.arrays if n == f"op{s.op_index}_bias")
    assert compiled.weight_bytes == dense.weight_bytes - filters - biases + packed < dense.weight_bytes
    xs = _inputs(hm, 40, seed=5)
    out, _ = hm.run(xs)
    assert _differ(out, _tflm(lut_model, xs)) == 0
    # TFLite requantizes FULLY_CONNECTED with one rounding: the runtime matches it when asked to
    hm2, _ = hostrun.compile_model(lut_model, "lut", tmp_path / "tflite", match="tflite", emulate_dsp=dsp,
                                   lut_bits=lut.MAX_BITS)
    out2, _ = hm2.run(xs)
    assert _differ(out2, tflite_reference(lut_model, xs)) == 0


@needs("cc")
def test_a_tflm_compressed_model_is_folded_and_packed_the_same(lut_model, tmp_path):
    """TFLM's compressed tensors (TFLM_DECODE ops, MSB-first indices, tables as the weight is
    quantized) decode to the clustered weights, the interpreter agrees, and the AOT runtime
    stores and runs them as it does the clustered .tflite."""
    from tinygen.tflm import compress

    g = parse(lut_model)
    c = compress.compress(lut_model, g)
    assert any(o.op == lut.DECODE_OP for o in parse(c.model).operators)
    folded = parse(lut.fold_decode(c.model))
    assert not any(o.op == lut.DECODE_OP for o in folded.operators)
    low = aot.lower(g, lut_model)
    low_folded = aot.lower(folded, lut.fold_decode(c.model))
    for a, b in zip(low.steps, low_folded.steps):
        for (na, _, va), (nb, _, vb) in zip(a.arrays, b.arrays):
            assert na == nb and np.array_equal(va, vb)
    # a model in TFLM's compressed format was compressed on purpose: every width is stored as LUT
    hm, compiled = hostrun.compile_model(c.model, "lut_compressed", tmp_path, emulate_dsp=True)
    assert _chosen(compiled) == FORMS
    xs = _inputs(hm, 20, seed=9)
    out, _ = hm.run(xs)
    assert _differ(out, _tflm(c.model, xs)) == 0
    assert _differ(out, _tflm(lut_model, xs)) == 0


def test_packing_round_trips_for_every_width():
    rng = np.random.default_rng(0)
    for bits in range(1, 8):
        idx = rng.integers(0, 1 << bits, size=1001)
        assert np.array_equal(lut.decode_stream(lut.pack_stream(idx, bits), bits, idx.size), idx)
        assert lut.pack_stream(idx, bits).size == (idx.size * bits + 7) // 8
    # the paired 4-bit form: four rows interleaved by blocks of four columns, the rest row after row
    for rows in (1, 4, 9, 42):
        idx = rng.integers(0, 16, size=(rows, 20))
        packed = lut.pack_pairs4(idx, rows)
        assert packed.size == idx.size // 2 and np.array_equal(lut.unpack_pairs4(packed, rows), idx.reshape(-1))
        if rows >= 4:   # block 1 of the first four rows: row 2's bytes (i | i+2 << 4, i+1 | i+3 << 4)
            assert list(packed[12:14]) == [idx[2, 4] | idx[2, 6] << 4, idx[2, 5] | idx[2, 7] << 4]


def test_a_layer_that_saves_less_than_the_kernel_code_stays_dense(lut_model, monkeypatch):
    """The rule counts code: a clustered layer too small to pay for its LUT kernel is dense,
    and would not be if the code were free."""
    from tinymodels import _seed_weights, int8

    from tinygen.model.tf import keras

    k = keras()
    _seed_weights(32)
    inp = k.layers.Input((6, 6, 3), batch_size=1)
    model = int8(k.Model(inp, k.layers.Conv2D(4, 3)(inp)), per_channel=False)
    small = _clustered(model, {0: (4, None)})
    assert not _chosen(aot.compile(parse(small), small))
    monkeypatch.setattr(lut, "_code_bytes", lambda kernels: 0)
    assert _chosen(aot.compile(parse(small), small))


def test_lut_kernels_add_their_stack_to_the_fit(lut_model):
    compiled = aot.compile(parse(lut_model), lut_model, lut_bits=lut.MAX_BITS)
    # the largest: the 3x3 filter decoded whole (3456 bytes) and its copy of the parameters
    assert compiled.arena.stack_bytes == 3456 + PARAM_BYTES["tg_conv_params"]


@needs("arm-none-eabi-gcc")
@needs("qemu-system-arm")
def test_qemu_runs_every_lut_form_and_the_flash_is_the_linked_image(lut_model, tmp_path):
    """Cross-compiled for the Cortex-M4 (DSP paths, tg_dot2x2_step_s8's assembly), run in QEMU,
    every output equal to the host interpreter's; the fit check's flash against arm-none-eabi-size,
    with the tolerance of the dense AOT firmware (tests/test_aot.py::test_qemu_end_to_end)."""
    model = tmp_path / "lut.tflite"
    model.write_bytes(lut_model)
    r = cli("run", "--board", "mps2-an386", "--model", model, "--runtime", "aot", "--vectors", "10",
            "--out", tmp_path / "fw", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["vectors"] == 10 and j["mismatches"] == 0
    assert j["flash_bytes"] <= j["estimate"]["flash_bytes"] <= j["flash_bytes"] + 1536
    # unasked, the layers of up to lut.AUTO_BITS bits (wider ones stay dense: faster)
    assert (tmp_path / "fw" / "aot" / "tg_model.c").read_text().count("; weights: ") == len(AUTO_FORMS)


def test_unasked_only_clustered_layers_are_packed(lut_model):
    """compile() stores up to lut.AUTO_BITS-bit indices by itself; wider ones only when asked."""
    assert _chosen(aot.compile(parse(lut_model), lut_model)) == AUTO_FORMS
    assert _chosen(aot.compile(parse(lut_model), lut_model, lut_bits=lut.MAX_BITS)) == FORMS


@pytest.fixture(scope="module")
def fc4_model() -> bytes:
    """Two clustered fully connected layers for the paired 4-bit kernel's four-row loop: 644
    inputs (161 blocks of four columns, an odd count) -> 64 rows, then 64 inputs (16 blocks)
    -> 9 rows (two passes of four rows and one row left over)."""
    from tinymodels import _seed_weights, int8

    from tinygen.model.tf import keras

    k = keras()
    L = k.layers
    _seed_weights(33)
    inp = L.Input((644,), batch_size=1)
    x = L.Dense(64, activation="relu")(inp)
    model = int8(k.Model(inp, L.Dense(9)(x)), per_channel=False)
    return _clustered(model, {0: (16, None), 1: (16, None)})


@needs("cc")
@needs("arm-none-eabi-gcc")
@needs("qemu-system-arm")
def test_paired_4bit_rows_odd_and_even_blocks_on_the_host_and_in_qemu(fc4_model, tmp_path):
    """tg_lut_fully_connected_4 over an odd and an even count of column blocks and a leftover
    row: plain C and DSP-emulated on the host, the Cortex-M4 assembly in QEMU, every output
    equal to the tflite-micro interpreter's."""
    for dsp in (False, True):
        hm, compiled = hostrun.compile_model(fc4_model, "fc4", tmp_path / str(dsp), emulate_dsp=dsp)
        assert _chosen(compiled) == {0: ("tg_lut_fully_connected_4", 4, False), 1: ("tg_lut_fully_connected_4", 4, False)}
        xs = _inputs(hm, 20, seed=11)
        out, _ = hm.run(xs)
        assert _differ(out, _tflm(fc4_model, xs)) == 0
    model = tmp_path / "fc4.tflite"
    model.write_bytes(fc4_model)
    r = cli("run", "--board", "mps2-an386", "--model", model, "--runtime", "aot", "--vectors", "10",
            "--out", tmp_path / "fw", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["vectors"] == 10 and j["mismatches"] == 0
