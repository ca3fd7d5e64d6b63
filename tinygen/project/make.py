"""Compile a generated firmware project with its own Makefile and measure it with
arm-none-eabi-size. (Booting it in QEMU is tinygen.device.qemu's.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import FirmwareError
from ..ports import Port


@dataclass
class ImageSize:
    text: int
    data: int
    bss: int


def check_tools(port: Port, tflm_root: Path | None = None, sdk_root: Path | None = None,
                needs_tflm: bool = True) -> None:
    """Everything `make` will need, checked before any work: the cross compiler, make, the TFLM
    checkout (TFLM firmware) and the port's SDK. A FirmwareError names what is missing."""
    if shutil.which("arm-none-eabi-gcc") is None:
        raise FirmwareError("arm-none-eabi-gcc is not installed; on Debian/Ubuntu: apt-get install "
                            "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib.")
    if shutil.which("make") is None:
        raise FirmwareError("make is not installed; on Debian/Ubuntu: apt-get install make.")
    if needs_tflm and tflm_root is None:
        raise FirmwareError("--compile needs TensorFlow Lite Micro's sources: set TFLM_ROOT (or pass --tflm-root) "
                            "to a tflite-micro checkout (git clone https://github.com/tensorflow/tflite-micro), "
                            "or build with --runtime aot, which needs none.")
    if needs_tflm and not (tflm_root / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").exists():
        raise FirmwareError(f"{tflm_root} is not a tflite-micro checkout (no tensorflow/lite/micro/micro_interpreter.h).")
    sdk = port.sdk
    if sdk:
        if sdk_root is None:
            raise FirmwareError(f"This board's firmware needs {sdk['name']}: set {sdk['variable']} to it.")
        if not (sdk_root / sdk["check"]).exists():
            raise FirmwareError(f"{sdk_root} does not look like {sdk['name']} (no {sdk['check']}).")


def compile_project(project: Path, port: Port, tflm_root: Path | None = None, sdk_root: Path | None = None,
                    needs_tflm: bool = True, jobs: int | None = None,
                    make_args: list[str] | None = None) -> ImageSize:
    """`make` in the project folder, with TFLM_ROOT (TFLM firmware) and the port's SDK variable.
    The log goes to build/make.log."""
    check_tools(port, tflm_root, sdk_root, needs_tflm)
    args = (["make", f"-j{jobs or os.cpu_count() or 1}"] + ([f"TFLM_ROOT={tflm_root}"] if needs_tflm else [])
            + list(make_args or []) + ([f"{port.sdk_variable}={sdk_root}"] if port.sdk else []))
    (project / "build").mkdir(exist_ok=True)
    log = project / "build" / "make.log"
    # TFLM's Makefile runs python3 scripts needing numpy and Pillow: tinygen's own interpreter has both.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with log.open("w") as f:
        r = subprocess.run(args, cwd=project, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise FirmwareError(f"make failed in {project} ({tail[0][:200]}); the whole log is {log}.")
    return image_size(project / "build" / "firmware.elf")


def image_size(elf: Path) -> ImageSize:
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(x) for x in out.splitlines()[1].split()[:3])
    return ImageSize(text, data, bss)
