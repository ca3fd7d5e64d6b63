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
    assert len(set(stats.cycles)) >= 1 and min(stats.cycles) > 0
