"""TFLM firmware for a model in TFLM's compressed-tensor format (TFLM_DECODE ops, written by
tinygen/tflm/compress.py), booted in QEMU: its outputs equal the tflite-micro interpreter's on the
same compressed model, its arena the fit check's replay (decoded weights and DECODE's own state
included), and its linked size the fit check's flash (DECODE's code included).

The prebuilt TFLM library needs no rebuild for this: DECODE and its decoders are compiled into
every TFLM build (USE_TFLM_COMPRESSION is another format, COMPRESSION_METADATA, and TFLM's
Makefile only honours it for linux and xtensa); the firmware registers DECODE when the model has it."""

import os
import shutil
from pathlib import Path

import pytest

from tinygen.boards import load_board
from tinygen.model.graph import parse
from tinygen.pipeline.build import BuildOptions, build, compile_and_run
from tinygen.shrink.cluster import cluster_int8
from tinygen.tflm import compress as C

TFLM_ROOT = os.environ.get("TFLM_ROOT")
pytestmark = [
    pytest.mark.tflm,
    pytest.mark.skipif(not TFLM_ROOT, reason="TFLM_ROOT is not set: point it at a tflite-micro checkout to build whole firmware"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed"),
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed"),
]
# The fit check's TFLM code is the union of measured symbols plus 1% (tflm/flash.py): at or above
# the linked image, and not far above it.
FLASH_TOLERANCE = 0.05


def _compressed(model: bytes, clusters: int, per_channel: bool = False) -> tuple[bytes, bytes]:
    """(clustered int8 model, the same in TFLM's compressed-tensor format)."""
    clustered = cluster_int8(model, parse(model), clusters, per_channel)
    return clustered, C.compress(clustered, parse(clustered)).model


def _run(model: bytes, tmp_path: Path, vectors: int, plan: str = "auto"):
    path = tmp_path / "model.compressed.tflite"
    path.write_bytes(model)
    result = build(load_board("mps2-an386"), path, None, tmp_path / "fw",
                   opts=BuildOptions(vector_count=vectors, tflm_plan=plan))
    return compile_and_run(result, Path(TFLM_ROOT), {}, run=True)


def _check(result, vectors: int) -> None:
    report = result.report
    assert C.DECODE_OP in report.graph.ops
    assert "resolver.AddDecode()" in (result.out_dir / "src" / "main.cc").read_text()
    # every output equal to the tflite-micro interpreter's on the compressed model
    assert result.run.vectors == vectors and result.run.mismatches == 0
    # the arena TFLM keeps in use, decoded weights and DECODE's state included, as replayed
    assert report.plan.exact
    assert result.run.arena_used_bytes == report.arena_bytes
    linked = result.size.text + result.size.data
    assert linked <= report.flash.total_bytes <= linked * (1 + FLASH_TOLERANCE)


@pytest.fixture(scope="module")
def tiny_model():
    """A CONV_2D and a FULLY_CONNECTED, int8, per-channel weights."""
    from tinymodels import _model, _seed_weights, int8
    from tinygen.model.tf import keras

    L = keras().layers
    _seed_weights(11)
    return int8(_model((8, 8, 16), L.Conv2D(16, 3, activation="relu"), L.Flatten(), L.Dense(32)))


@pytest.mark.parametrize("plan", ["offline", "greedy"])
def test_tiny_compressed_model_in_qemu(tiny_model, tmp_path, plan):
    clustered, compressed = _compressed(tiny_model, 16, per_channel=True)
    assert [op.op for op in parse(compressed).operators].count(C.DECODE_OP) == 2
    result = _run(compressed, tmp_path, 4, plan)
    _check(result, 4)
    assert result.report.memory_plan.used == plan
    # what the firmware was checked against is the compressed model's output, which is the clustered one's
    x = C.synthetic_inputs(parse(compressed), 8)
    assert C.check_bit_exact(clustered, compressed, x).identical
    # flash counts DECODE's code: the same model uncompressed needs less runtime, more model bytes
    dense = build(load_board("mps2-an386"), _write(tmp_path / "dense.tflite", clustered), None, None).report
    assert result.report.runtime_bytes > dense.runtime_bytes
    assert result.report.model_bytes < dense.model_bytes


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_ad01_clustered_16_in_qemu(shared_models, tmp_path):
    """The MLPerf anomaly-detection autoencoder, 16 centroids per tensor (its weights are quantized
    per tensor): ten FULLY_CONNECTED weights decoded into the arena, one at a time."""
    model = (shared_models / "ad01_int8.tflite").read_bytes()
    _, compressed = _compressed(model, 16)
    g = parse(compressed)
    assert [op.op for op in g.operators].count(C.DECODE_OP) == 10
    result = _run(compressed, tmp_path, 3)
    _check(result, 3)
    # the largest decoded weight (640 x 128) is in the head while its layer runs
    decoded = max(g.tensors[o].nbytes for op in g.operators if op.op == C.DECODE_OP for o in op.outputs)
    assert decoded == 640 * 128 and result.report.plan.head_bytes >= decoded
