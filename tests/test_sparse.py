"""Sparse weights in the AOT runtime (tinygen/aot/sparse.py, firmware/aot/tg_sparse.c): an int8
model pruned without structure (the smallest |w| of each layer set to zero), some layers also
clustered, compiled with the pruned FULLY_CONNECTED and pointwise CONV_2D layers stored without
their zeros, every sparse form (bitmask or byte steps; int8 weights or LUT indices) run and
compared byte for byte with the tflite-micro interpreter and TFLite; in QEMU the Cortex-M4
build and the fit check's flash against the linked image; an unpruned model stays dense."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import needs
from test_aot import _differ, _inputs, _tflm
from test_cli import run as cli

from tinygen import aot
from tinygen.aot import host as hostrun
from tinygen.aot import lut, sparse
from tinygen.model.graph import parse
from tinygen.shrink.cluster import cluster_tensor

# op index -> (kernel, position form, index bits of the weights kept: 0 for int8)
FORMS = {
    0: ("tg_sparse_conv2d_1x1", "mask", 0),        # 8 -> 64, 80% zeros: rows of one mask byte
    1: ("tg_sparse_conv2d_1x1", "mask", 3),        # 64 -> 96, 80% zeros, the rest 7 values
    2: ("tg_sparse_conv2d_1x1", "steps", 0),       # 96 -> 128, 95% zeros: one byte per kept weight
    4: ("tg_sparse_fully_connected", "steps", 0),  # 4480 -> 32, 90% zeros and a band of gaps > 255
    5: ("tg_sparse_fully_connected", "mask", 2),   # 32 -> 48, 80% zeros, the rest 3 values
    6: ("tg_sparse_fully_connected", "mask", 3),   # 48 -> 300, 80% zeros, the rest 7 values
    7: ("tg_sparse_fully_connected", "steps", 2),  # 300 -> 10, 95% zeros, the rest 3 values
}
# op index -> (fraction of the weights zeroed, clusters or None)
# (sparse + LUT is taken where it stores at most 2/3 of sparse int8's bytes: few values, or a mask)
PRUNE = {0: (0.8, None), 1: (0.8, 8), 2: (0.95, None), 4: (0.9, None), 5: (0.8, 4), 6: (0.8, 8), 7: (0.95, 4)}
BAND = slice(1000, 1700)    # op 4's columns zeroed in every row: gaps that take filler entries


def prune(model: bytes, plan: dict[int, tuple[float, int | None]], band: dict[int, slice] | None = None) -> bytes:
    """`model` with the weights of the ops in `plan` pruned at the int8 level (the smallest |w|
    of the layer zeroed), then clustered to n values with zero kept; the same bytes otherwise."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    g = parse(model)
    buf = bytearray(model)
    fb = schema.Model.GetRootAs(buf, 0)
    for o in g.operators:
        if o.index not in plan:
            continue
        fraction, clusters = plan[o.index]
        t = g.tensors[o.inputs[1]]
        data = fb.Buffers(t.buffer).DataAsNumpy()
        w = data.view(np.int8).reshape(t.shape[0], -1).copy()
        if band and o.index in band:
            w[:, band[o.index]] = 0
        order = np.argsort(np.abs(w.reshape(-1).astype(np.int16)), kind="stable")
        w.reshape(-1)[order[:int(round(fraction * w.size))]] = 0
        if clusters:
            w = cluster_tensor(w, clusters, None, keep_zero=True)
        data[:] = w.reshape(-1).view(np.uint8)
    return bytes(buf)


@pytest.fixture(scope="module")
def dense_model() -> bytes:
    from tinymodels import _seed_weights, int8

    from tinygen.model.tf import keras

    k = keras()
    L = k.layers
    _seed_weights(41)
    inp = L.Input((7, 5, 8), batch_size=1)
    x = L.Conv2D(64, 1, activation="relu")(inp)
    x = L.Conv2D(96, 1, activation="relu")(x)
    x = L.Conv2D(128, 1, activation="relu6")(x)
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu")(x)
    x = L.Dense(48, activation="relu")(x)
    x = L.Dense(300, activation="relu")(x)
    return int8(k.Model(inp, L.Dense(10)(x)))


@pytest.fixture(scope="module")
def sparse_model(dense_model) -> bytes:
    return prune(dense_model, PRUNE, {4: BAND})


def _chosen(compiled) -> dict[int, tuple[str, str, int]]:
    return {s.op_index: (s.kernel, "steps" if s.params["w.counts"] != "NULL" else "mask", s.params.get("w.bits", 0))
            for s in compiled.program.steps if s.kernel and s.kernel.startswith("tg_sparse_")}


def test_the_forms_are_as_planned(sparse_model):
    g = parse(sparse_model)
    assert [o.op for o in g.operators] == ["CONV_2D"] * 3 + ["RESHAPE"] + ["FULLY_CONNECTED"] * 4
    compiled = aot.compile(g, sparse_model)
    assert _chosen(compiled) == FORMS
    source = compiled.files["tg_model.c"]
    assert source.count("; weights: sparse, ") == len(FORMS)
    # op 4's band of zero columns is bridged by filler entries of weight 0
    step = next(s for s in compiled.program.steps if s.op_index == 4)
    steps = next(v for n, _, v in step.arrays if n == "op4_index")
    assert (steps == sparse.MAX_STEP).sum() >= 32 * 2
    # flash holds the positions and the weights kept where the dense filters (and plain biases) were
    dense = aot.lower(g, sparse_model)
    dropped = sum(v.size * (1 if n.endswith("_filter") else 4) for s in dense.steps if s.op_index in FORMS
                  for n, _, v in s.arrays if n.endswith(("_filter", f"op{s.op_index}_bias")))
    kept = sum(v.size * (2 if t == "uint16_t" else 1) for s in compiled.program.steps if s.op_index in FORMS
               for n, t, v in s.arrays if n.endswith(("_index", "_counts", "_values", "_indices", "_table")))
    assert compiled.weight_bytes == dense.weight_bytes - dropped + kept
    assert kept * 4 < dropped


def test_every_form_decodes_to_the_weights():
    rng = np.random.default_rng(3)
    for depth in (5, 8, 300, 1000):
        w = rng.choice(np.arange(-120, 121, 8), size=(7, depth)).astype(np.int8)   # 31 values
        w[rng.random(w.shape) < 0.9] = 0
        if depth > 600:
            w[:, depth // 3:] = 0     # gaps over 255
        for form in (sparse.mask_form(w), sparse.steps_form(w)):
            index, counts, values = form
            s = sparse.Sparse("k", "steps" if counts is not None else "mask", index, counts, values, 0)
            assert np.array_equal(sparse.decode(s, *w.shape), w)
            idx, table = lut.per_tensor_table(values)
            bits = lut.bits_for(table.size)
            s = sparse.Sparse("k", s.form, index, counts, values, bits, lut.pack_stream(idx, bits), table)
            assert np.array_equal(sparse.decode(s, *w.shape), w)


@needs("cc")
@pytest.mark.parametrize("dsp", [False, True], ids=["plain-c", "dsp-emulated"])
def test_every_sparse_form_is_bit_exact_with_tflite_micro_and_tflite(sparse_model, dsp, tmp_path):
    from tinygen.model.evaluate import tflite_reference

    hm, compiled = hostrun.compile_model(sparse_model, "sparse", tmp_path, emulate_dsp=dsp)
    assert _chosen(compiled) == FORMS
    xs = _inputs(hm, 40, seed=7)
    out, _ = hm.run(xs)
    assert _differ(out, _tflm(sparse_model, xs)) == 0
    # TFLite requantizes FULLY_CONNECTED with one rounding: the sparse kernel too, when asked
    hm2, compiled2 = hostrun.compile_model(sparse_model, "sparse", tmp_path / "tflite", match="tflite", emulate_dsp=dsp)
    assert _chosen(compiled2) == FORMS
    out2, _ = hm2.run(xs)
    assert _differ(out2, tflite_reference(sparse_model, xs)) == 0


def test_an_unpruned_model_stays_dense(dense_model, sparse_model):
    """No layer of the unpruned model has a sparse form worth its bytes: it compiles exactly as
    without sparse.py; and the pruned one's sparse layers would be dense if their kernel cost more."""
    compiled = aot.compile(parse(dense_model), dense_model)
    assert not _chosen(compiled)
    program = aot.lower(parse(dense_model), dense_model)
    assert lut.choose(program, lut.AUTO_BITS) == {}
    assert compiled.weight_bytes == program.weight_bytes
    assert all(not sparse.candidates(s, v) for s in program.steps for n, _, v in s.arrays if n.endswith("_filter"))
    # nor an all-zero one (C has no empty arrays): the dense kernel's dead channels run it
    fc = next(s for s in program.steps if s.op == "FULLY_CONNECTED")
    filt = next(v for n, _, v in fc.arrays if n.endswith("_filter"))
    assert sparse.candidates(fc, np.zeros_like(filt)) == []
    filt = filt.copy()
    filt[1:] = 0
    assert sparse.candidates(fc, filt)


def test_sparse_kernels_add_their_stack_to_the_fit(sparse_model):
    compiled = aot.compile(parse(sparse_model), sparse_model)
    # the largest: the frames and the longest row of LUT weights decoded
    rows = [s.params["w.max_row"] for s in compiled.program.steps if s.params.get("w.bits")]
    assert len(rows) == sum(1 for f in FORMS.values() if f[2]) and 0 < max(rows) <= 300
    assert compiled.arena.stack_bytes == sparse.FRAME_BYTES + (max(rows) + 7) // 8 * 8


@needs("arm-none-eabi-gcc")
@needs("qemu-system-arm")
def test_qemu_runs_every_sparse_form_and_the_flash_is_the_linked_image(sparse_model, tmp_path):
    """Cross-compiled for the Cortex-M4, run in QEMU, every output equal to the host
    interpreter's; the fit check's flash against arm-none-eabi-size, with test_lut's tolerance."""
    model = tmp_path / "sparse.tflite"
    model.write_bytes(sparse_model)
    r = cli("run", "--board", "mps2-an386", "--model", model, "--runtime", "aot", "--vectors", "10",
            "--out", tmp_path / "fw", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["vectors"] == 10 and j["mismatches"] == 0
    assert j["flash_bytes"] <= j["estimate"]["flash_bytes"] <= j["flash_bytes"] + 1536
    assert (tmp_path / "fw" / "aot" / "tg_model.c").read_text().count("; weights: sparse, ") == len(FORMS)
