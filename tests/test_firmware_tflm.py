"""Whole firmware builds with real TFLM (TFLM_ROOT), booted in QEMU: the outputs the firmware
computes must equal the host tflite-micro interpreter's, and its arena tinygen's figure.
The SparkFun Edge image is also linked where AMBIQ_ROOT is set."""

import os
import shutil
from pathlib import Path

import pytest

from tinygen.boards import load_board
from tinygen.build import build, compile_and_run

TFLM_ROOT = os.environ.get("TFLM_ROOT")
AMBIQ_ROOT = os.environ.get("AMBIQ_ROOT")
pytestmark = [
    pytest.mark.tflm,
    pytest.mark.skipif(not TFLM_ROOT, reason="TFLM_ROOT is not set: point it at a tflite-micro checkout to build whole firmware"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed"),
]


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
@pytest.mark.parametrize("name", ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "kws_ref_model.tflite", "ad01_int8.tflite"])
def test_mps2_firmware_matches_the_host_interpreter(shared_models, tmp_path, name):
    result = build(load_board("mps2-an386"), shared_models / name, None, tmp_path / "fw", vector_count=3)
    compile_and_run(result, Path(TFLM_ROOT), {}, run=True)
    assert result.run.vectors == 3
    assert result.run.mismatches == 0
    assert result.run.arena_used_bytes == result.report.arena_bytes
    assert result.size.text + result.size.data <= result.report.flash.total_bytes


@pytest.mark.skipif(not AMBIQ_ROOT, reason="AMBIQ_ROOT is not set: point it at the AmbiqSuite SDK with boards_sfe")
def test_sparkfun_edge_firmware_links(shared_models, tmp_path):
    result = build(load_board("sparkfun-edge"), shared_models / "kws_ref_model.tflite", None, tmp_path / "fw", vector_count=2)
    compile_and_run(result, Path(TFLM_ROOT), {"AMBIQ_ROOT": Path(AMBIQ_ROOT)})
    assert result.size.text + result.size.data <= result.report.flash.total_bytes
    assert (tmp_path / "fw" / "build" / "firmware.bin").exists()


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_monitor_reads_the_real_firmware_over_a_socket(shared_models, tmp_path):
    """The firmware's UART served by QEMU on a local TCP port, read by `tinygen monitor` via socket://."""
    import socket
    import subprocess

    import time

    from tinygen.monitor import Monitor, MonitorError

    result = build(load_board("mps2-an386"), shared_models / "kws_ref_model.tflite", None, tmp_path / "fw", vector_count=5)
    compile_and_run(result, Path(TFLM_ROOT), {})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qemu = subprocess.Popen(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                             "-semihosting", "-icount", "shift=0", "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
                             "-kernel", tmp_path / "fw" / "build" / "firmware.elf"])
    try:
        # QEMU listens a moment after it starts; the first connection starts the guest
        for attempt in range(100):
            try:
                stats = Monitor(f"socket://127.0.0.1:{port}", 115200, load_board("mps2-an386")).run(duration=60)
                break
            except MonitorError:
                time.sleep(0.05)
    finally:
        qemu.wait(timeout=30)
    assert stats.boot is not None and stats.boot.int("arena_used_bytes") == result.report.arena_bytes
    assert stats.inferences == 5 and stats.mismatches == 0 and stats.bad_lines == 0
    assert len(set(stats.cycles)) >= 1 and min(stats.cycles) > 0  # noqa


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_serial_input_firmware_answers_like_the_host(shared_models, tmp_path):
    """--input serial: send two inputs over QEMU's UART socket, compare the firmware's outputs
    with the host tflite-micro interpreter's."""
    import socket
    import subprocess
    import time

    import numpy as np

    from tinygen import analyze
    from tinygen.evaluate import int8_predict
    from tinygen.protocol import parse_line

    model = (shared_models / "kws_ref_model.tflite").read_bytes()
    g = analyze.parse(model)
    # raw outputs on every line, to compare them whole
    result = build(load_board("mps2-an386"), shared_models / "kws_ref_model.tflite", None, tmp_path / "fw",
                   input_source="serial", raw_output=True)
    compile_and_run(result, Path(TFLM_ROOT), {})
    inputs = np.random.default_rng(3).integers(-128, 128, size=(2, 490), dtype=np.int8)
    expected = int8_predict(model, g, inputs.reshape((2,) + g.tensors[g.inputs[0]].shape[1:]))
    from tinygen.monitor import Log, Monitor, MonitorError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qemu = subprocess.Popen(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                             "-semihosting", "-icount", "shift=0", "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
                             "-kernel", tmp_path / "fw" / "build" / "firmware.elf"])
    try:
        for _ in range(100):
            try:
                mon = Monitor(f"socket://127.0.0.1:{port}", 115200, inputs=[x.tobytes() for x in inputs],
                              log=Log(tmp_path / "run.jsonl", None))
                stats = mon.run(duration=60)
                break
            except MonitorError:
                time.sleep(0.05)
    finally:
        qemu.kill()
        qemu.wait()
    assert stats.inferences == 2
    import json as _json
    events = [parse_line(r["raw"]) for r in map(_json.loads, (tmp_path / "run.jsonl").read_text().splitlines())
              if r["kind"] == "inf"]
    assert len(events) == 2
    for ev, want in zip(events, expected):
        assert np.frombuffer(ev.hex_bytes("out"), dtype=np.int8).tolist() == want.reshape(-1).tolist()


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_mlperf_harness_firmware_in_qemu(shared_models, tmp_path):
    """--harness mlperf: tinygen's MLPerf client drives the firmware; its results equal the
    host interpreter's, dequantized, including over repeated timed inferences."""
    import socket
    import subprocess
    import time

    import numpy as np

    from tinygen import analyze
    from tinygen.evaluate import int8_predict
    from tinygen.mlperf import MlperfDut
    from tinygen.monitor import MonitorError, open_port

    path = shared_models / "kws_ref_model.tflite"
    g = analyze.parse(path.read_bytes())
    result = build(load_board("mps2-an386"), path, None, tmp_path / "fw", harness="mlperf")
    compile_and_run(result, Path(TFLM_ROOT), {})
    x = np.random.default_rng(5).integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    q = int8_predict(path.read_bytes(), g, x)[0].reshape(-1).astype(float)
    out = g.tensors[g.outputs[0]]
    want = (q - out.zero_point[0]) * out.scale[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qemu = subprocess.Popen(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                             "-semihosting", "-icount", "shift=0", "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
                             "-kernel", tmp_path / "fw" / "build" / "firmware.elf"])
    try:
        for _ in range(100):
            try:
                ser = open_port(f"socket://127.0.0.1:{port}", 115200)
                break
            except MonitorError:
                time.sleep(0.05)
        dut = MlperfDut(ser, timeout=60)
        assert dut.sync() == "dut [tinygen]"
        dut.load(x.tobytes())
        for n, w in ((1, 0), (5, 2)):
            r = dut.infer(n, w)
            assert r.results == pytest.approx(list(want), abs=0.0015)
            assert r.latency_us > 0
        ser.close()
    finally:
        qemu.kill()
        qemu.wait()


@pytest.mark.skipif(not AMBIQ_ROOT, reason="AMBIQ_ROOT is not set: point it at the AmbiqSuite SDK with boards_sfe")
def test_sparkfun_edge_camera_firmware_links(shared_models, tmp_path):
    result = build(load_board("sparkfun-edge"), shared_models / "vww_96_int8.tflite", None, tmp_path / "fw",
                   input_source="camera")
    compile_and_run(result, Path(TFLM_ROOT), {"AMBIQ_ROOT": Path(AMBIQ_ROOT)})
    assert result.size.text + result.size.data <= result.report.flash.total_bytes
    assert result.size.data + result.size.bss <= result.report.sram.total_bytes - result.report.stack_bytes
