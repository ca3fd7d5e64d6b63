"""Per-tensor dense layers: the converter's switch, what it saves in TFLM's arena, and the
automatic choice (per-tensor where it scores within 0.1 point of per-channel)."""

import numpy as np
import pytest

from tinygen.model import graph as analyze
from tinygen.model import quantize
from tinygen.model.tf import keras
from tinygen.pipeline.build import quantize_and_score, resolve_inputs
from tinygen.tflm import arena


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    """A two-layer MLP trained a little on a separable problem, and its labelled samples."""
    k = keras()
    k.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.random((240, 20), dtype=np.float32)
    y = (x[:, :10].sum(1) > x[:, 10:].sum(1)).astype(np.int64)
    inp = k.layers.Input((20,), batch_size=1)
    out = k.layers.Dense(2, activation="softmax")(k.layers.Dense(64, activation="relu")(inp))
    m = k.Model(inp, out)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=20, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("dense")
    m.save(d / "mlp.h5")
    np.savez(d / "data.npz", x=x, y=y)
    return d / "mlp.h5", d / "data.npz"


def test_per_tensor_dense_layers_shrink_the_tflm_arena(dense_model):
    model, data = dense_model
    inputs = resolve_inputs(model, data)
    pc = analyze.parse(quantize.quantize(inputs.source, inputs.calibration, inputs.keras_model))
    pt = analyze.parse(quantize.quantize(inputs.source, inputs.calibration, inputs.keras_model, dense="per-tensor"))
    assert quantize.per_channel_dense(pc) and not quantize.per_channel_dense(pt)
    fc = [op for op in pt.operators if op.op == "FULLY_CONNECTED"]
    assert len(fc) == 2 and all(len(pt.tensors[op.inputs[1]].scale) == 1 for op in fc)
    m4 = arena.Target("arm", "cmsis-nn", dsp=True)
    saved = arena.plan_arena(pc, m4).tail_bytes - arena.plan_arena(pt, m4).tail_bytes
    assert saved == 2 * 4 * (64 + 2) + 16      # a multiplier and a shift per output channel, per layer (+ padding)


def test_auto_keeps_per_tensor_only_within_a_tenth_of_a_point(dense_model):
    model, data = dense_model
    q = quantize_and_score(resolve_inputs(model, data), dense="auto")
    d = q.dense
    assert d.asked == "auto" and d.measured_by == "labels" and d.samples == 240
    assert d.per_channel is not None and d.per_tensor is not None
    assert d.chosen == quantize.choose_dense(d.per_channel, d.per_tensor)
    assert quantize.per_channel_dense(q.graph) == (d.chosen == "per-channel")
    assert q.accuracy.int8_top1 == (d.per_tensor if d.chosen == "per-tensor" else d.per_channel)


def test_the_rule():
    assert quantize.choose_dense(0.9, 0.899) == "per-tensor"      # 0.1 point lower: still free
    assert quantize.choose_dense(0.9, 0.8985) == "per-channel"
    assert quantize.choose_dense(0.9, 0.95) == "per-tensor"
    assert quantize.choose_dense(None, 0.95) == "per-channel"     # nothing to compare: the converter's default
