"""Whole firmware builds with real TFLM (TFLM_ROOT), booted in QEMU: the outputs the firmware
computes must equal the host tflite-micro interpreter's, and its arena tinygen's figure.
The SparkFun Edge image is also linked where AMBIQ_ROOT is set."""

import os
import shutil
from pathlib import Path

import pytest

from tinygen.boards import load_board
from tinygen.pipeline.build import BuildOptions, build, compile_and_run

TFLM_ROOT = os.environ.get("TFLM_ROOT")
AMBIQ_ROOT = os.environ.get("AMBIQ_ROOT")
pytestmark = [
    pytest.mark.tflm,
    pytest.mark.skipif(not TFLM_ROOT, reason="TFLM_ROOT is not set: point it at a tflite-micro checkout to build whole firmware"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed"),
]


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
@pytest.mark.parametrize("plan", ["offline", "greedy"])
@pytest.mark.parametrize("name", ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "kws_ref_model.tflite", "ad01_int8.tflite"])
def test_mps2_firmware_matches_the_host_interpreter(shared_models, tmp_path, name, plan):
    """With TFLM's greedy memory plan and with tinygen's offline plan in the model's metadata:
    the same outputs, and the arena tinygen predicts for each."""
    result = build(load_board("mps2-an386"), shared_models / name, None, tmp_path / "fw",
                   opts=BuildOptions(vector_count=3, tflm_plan=plan))
    compile_and_run(result, Path(TFLM_ROOT), {}, run=True)
    assert result.run.vectors == 3
    assert result.run.mismatches == 0
    assert result.report.memory_plan.used == plan
    assert result.run.arena_used_bytes == result.report.arena_bytes
    assert result.size.text + result.size.data <= result.report.flash.total_bytes
    if plan == "offline":   # never worse than TFLM's own plan; VWW's head comes down to its live-set bound
        assert result.report.arena_bytes <= result.report.memory_plan.greedy_arena_bytes
        assert result.report.plan.head_bytes == result.report.memory_plan.bound_head_bytes


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_ad01_keras_model_with_per_tensor_dense_layers(shared_models, tmp_path):
    """ad01.h5 quantized by tinygen with per-tensor dense layers: TFLM's arena comes down to the
    published int8 model's (per-channel weights cost a multiplier and a shift per output channel)."""
    dense = "per-tensor"
    result = build(load_board("mps2-an386"), shared_models / "ad01.h5", None, tmp_path / "fw",
                   opts=BuildOptions(vector_count=2, dense=dense, eval_limit=50))
    compile_and_run(result, Path(TFLM_ROOT), {}, run=True)
    assert result.dense.chosen == dense
    assert result.run.vectors == 2 and result.run.mismatches == 0
    assert result.run.arena_used_bytes == result.report.arena_bytes
    published = build(load_board("mps2-an386"), shared_models / "ad01_int8.tflite", None, None).report.arena_bytes
    assert (result.report.arena_bytes == published) == (dense == "per-tensor")


@pytest.mark.skipif(not AMBIQ_ROOT, reason="AMBIQ_ROOT is not set: point it at the AmbiqSuite SDK with boards_sfe")
def test_sparkfun_edge_firmware_links(shared_models, tmp_path):
    result = build(load_board("sparkfun-edge"), shared_models / "kws_ref_model.tflite", None, tmp_path / "fw", opts=BuildOptions(vector_count=2))
    compile_and_run(result, Path(TFLM_ROOT), {"AMBIQ_ROOT": Path(AMBIQ_ROOT)})
    assert result.size.text + result.size.data <= result.report.flash.total_bytes
    assert (tmp_path / "fw" / "build" / "firmware.bin").exists()


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_monitor_reads_the_real_firmware_over_a_socket(shared_models, tmp_path):
    """The firmware's UART served by QEMU on a local TCP port, read by `tinygen monitor` via socket://."""
    from qemu_serial import qemu_uart
    from tinygen.device.monitor import Monitor

    result = build(load_board("mps2-an386"), shared_models / "kws_ref_model.tflite", None, tmp_path / "fw", opts=BuildOptions(vector_count=5))
    compile_and_run(result, Path(TFLM_ROOT), {})
    with qemu_uart(tmp_path / "fw" / "build" / "firmware.elf") as url:
        stats = Monitor(url, 115200, load_board("mps2-an386")).run(duration=60)
    assert stats.boot is not None and stats.boot.int("arena_used_bytes") == result.report.arena_bytes
    assert stats.inferences == 5 and stats.mismatches == 0 and stats.bad_lines == 0
    assert min(stats.cycles) > 0


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_serial_input_firmware_answers_like_the_host(shared_models, tmp_path):
    """--input serial: monitor --send feeds two inputs over QEMU's UART socket; the firmware's
    raw outputs equal the host tflite-micro interpreter's."""
    import numpy as np

    from qemu_serial import send_inputs
    from tinygen.model import graph as analyze
    from tinygen.tflm.interpreter import int8_predict

    path = shared_models / "kws_ref_model.tflite"
    g = analyze.parse(path.read_bytes())
    result = build(load_board("mps2-an386"), path, None, tmp_path / "fw", opts=BuildOptions(input_source="serial", raw_output=True))
    compile_and_run(result, Path(TFLM_ROOT), {})
    inputs = np.random.default_rng(3).integers(-128, 128, size=(2, 490), dtype=np.int8)
    expected = int8_predict(path.read_bytes(), g, inputs.reshape((2,) + g.tensors[g.inputs[0]].shape[1:]))
    stats, outputs = send_inputs(tmp_path / "fw" / "build" / "firmware.elf", [x.tobytes() for x in inputs],
                                 tmp_path / "run.jsonl")
    assert stats.inferences == 2
    assert len(outputs) == 2
    for out, want in zip(outputs, expected):
        assert np.frombuffer(out, dtype=np.int8).tolist() == want.reshape(-1).tolist()


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_mlperf_harness_firmware_in_qemu(shared_models, tmp_path):
    """--harness mlperf: tinygen's MLPerf client drives the firmware; its results equal the
    host interpreter's, dequantized, including over repeated timed inferences."""
    import numpy as np

    from qemu_serial import qemu_uart
    from tinygen.device.mlperf import MlperfDut
    from tinygen.device.monitor import open_port
    from tinygen.model import graph as analyze
    from tinygen.tflm.interpreter import int8_predict

    path = shared_models / "kws_ref_model.tflite"
    g = analyze.parse(path.read_bytes())
    result = build(load_board("mps2-an386"), path, None, tmp_path / "fw", opts=BuildOptions(harness="mlperf"))
    compile_and_run(result, Path(TFLM_ROOT), {})
    x = np.random.default_rng(5).integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    q = int8_predict(path.read_bytes(), g, x)[0].reshape(-1).astype(float)
    out = g.tensors[g.outputs[0]]
    want = (q - out.zero_point[0]) * out.scale[0]
    with qemu_uart(tmp_path / "fw" / "build" / "firmware.elf") as url:
        ser = open_port(url, 115200)
        dut = MlperfDut(ser, timeout=60)
        assert dut.sync() == "dut [tinygen]"
        dut.load(x.tobytes())
        for n, w in ((1, 0), (5, 2)):
            r = dut.infer(n, w)
            assert r.results == pytest.approx(list(want), abs=0.0015)
            assert r.latency_us > 0
        ser.close()


@pytest.mark.skipif(not AMBIQ_ROOT, reason="AMBIQ_ROOT is not set: point it at the AmbiqSuite SDK with boards_sfe")
def test_sparkfun_edge_camera_firmware_links(shared_models, tmp_path):
    result = build(load_board("sparkfun-edge"), shared_models / "vww_96_int8.tflite", None, tmp_path / "fw",
                   opts=BuildOptions(input_source="camera"))
    compile_and_run(result, Path(TFLM_ROOT), {"AMBIQ_ROOT": Path(AMBIQ_ROOT)})
    assert result.size.text + result.size.data <= result.report.flash.total_bytes
    assert result.size.data + result.size.bss <= result.report.sram.total_bytes - result.report.stack_bytes
