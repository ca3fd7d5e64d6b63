"""The hand-written firmware support and the generated model source, compiled with
arm-none-eabi-gcc for every bundled board, and booted on QEMU's mps2-an386: no TFLM needed."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tinygen.project import codegen
from tinygen.boards import all_boards
from tinygen.resources import resource_dir

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                reason="arm-none-eabi-gcc is not installed (apt-get install gcc-arm-none-eabi)")

MODEL = bytes(range(256)) * 5 + b"tail"


def write_model(work):
    sha = "0" * 64
    (work / "model_data.h").write_text(codegen.model_header("g_model", "test.tflite", sha, len(MODEL)))
    (work / "model_data.cc").write_text(codegen.model_source(MODEL, "g_model", "test.tflite", sha))


@pytest.mark.parametrize("board", [b for b in all_boards() if b.cpu != "host"], ids=lambda b: b.id)
def test_model_source_compiles_for_every_board(board, tmp_path):
    write_model(tmp_path)
    obj = tmp_path / "model_data.o"
    subprocess.run(["arm-none-eabi-g++", *board.cflags, "-std=c++17", "-Os", "-Wall", "-Werror",
                    f"-I{tmp_path}", "-c", tmp_path / "model_data.cc", "-o", obj], check=True)
    syms = subprocess.run(["arm-none-eabi-nm", "-S", obj], capture_output=True, text=True, check=True).stdout
    line = next(l for l in syms.splitlines() if l.endswith(" g_model"))
    assert int(line.split()[1], 16) == len(MODEL)
    assert int(line.split()[0], 16) % 16 == 0


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_mps2_port_boots_in_qemu(tmp_path):
    write_model(tmp_path)
    fw = resource_dir("firmware")
    cpu = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    inc = [f"-I{fw / 'include'}", f"-I{tmp_path}"]
    objs = []
    for src in (fw / "boards/mps2/startup.c", fw / "boards/mps2/board.c", fw / "common/syscalls.c",
                Path(__file__).parent / "firmware" / "hello.c"):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", *cpu, "-Os", "-Wall", "-Werror", *inc, "-c", src, "-o", obj], check=True)
        objs.append(obj)
    subprocess.run(["arm-none-eabi-g++", *cpu, "-std=c++17", "-Os", *inc, "-c", tmp_path / "model_data.cc", "-o", tmp_path / "model_data.o"], check=True)
    elf = tmp_path / "hello.elf"
    subprocess.run(["arm-none-eabi-gcc", *cpu, "-T", fw / "boards/mps2/mps2.ld", "--specs=nano.specs", "-nostartfiles",
                    *objs, tmp_path / "model_data.o", "-o", elf], check=True)
    r = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-icount", "shift=0",
                        "-kernel", elf], capture_output=True, text=True, timeout=60)
    assert r.returncode == 7, r.stdout + r.stderr
    assert f"model {len(MODEL)} bytes, checksum {sum(MODEL)}" in r.stdout
    assert "at 25000000 Hz" in r.stdout


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_monitor_reads_firmware_in_qemu_over_a_socket(tmp_path):
    """The mps2 port and harness.c in QEMU, UART on a local TCP port, read by tinygen monitor."""
    import json
    import sys

    fw = resource_dir("firmware")
    cpu = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    inc = [f"-I{fw / 'include'}", f"-I{fw / 'common'}"]
    objs = []
    for src in (fw / "boards/mps2/startup.c", fw / "boards/mps2/board.c", fw / "common/syscalls.c",
                fw / "common/harness.c", Path(__file__).parent / "firmware" / "harness_demo.c"):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", *cpu, "-O1", "-Wall", "-Werror", *inc, "-c", src, "-o", obj], check=True)
        objs.append(obj)
    elf = tmp_path / "demo.elf"
    subprocess.run(["arm-none-eabi-gcc", *cpu, "-T", fw / "boards/mps2/mps2.ld", "--specs=nano.specs", "-nostartfiles",
                    *objs, "-o", elf], check=True)
    from qemu_serial import qemu_uart

    with qemu_uart(elf) as url:
        r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", url, "--board", "mps2-an386",
                            "--duration", "60", "--json", "--log", tmp_path / "run.csv"],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["inferences"] == 20 and s["bad_lines"] == 0 and s["cycles"]["counter"] == "systick"
    assert s["latency_us"]["max"] > s["latency_us"]["min"] > 0   # three sizes of work, three latencies


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_an_image_that_locks_up_is_one_sentence_with_qemus_reason(tmp_path):
    from tinygen.errors import FirmwareError
    from tinygen.device.qemu import run

    (tmp_path / "junk.elf").write_bytes(b"not an image\n")
    with pytest.raises(FirmwareError, match=r"QEMU exited with status .*\(qemu: fatal: Lockup"):
        run(tmp_path / "junk.elf", timeout=30)
