"""Compile a generated firmware project with its own Makefile, measure it with
arm-none-eabi-size, and boot it in QEMU where the board can be emulated."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TinygenError
from .protocol import parse_line


class FirmwareError(TinygenError):
    """The firmware could not be built or run."""


@dataclass
class ImageSize:
    text: int
    data: int
    bss: int


@dataclass
class RunResult:
    arena_used_bytes: int | None
    vectors: int
    mismatches: int
    cycles: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stack_used_bytes: int | None = None
    layers: list[tuple[int, int]] = field(default_factory=list)   # (op index, cycles), with PROFILE_LAYERS


def compile_project(project: Path, tflm_root: Path | None, sdk: dict | None = None,
                    sdk_root: Path | None = None, jobs: int | None = None, needs_tflm: bool = True,
                    make_args: list[str] | None = None) -> ImageSize:
    """`make` in the project folder. The log goes to build/make.log."""
    if shutil.which("arm-none-eabi-gcc") is None:
        raise FirmwareError("arm-none-eabi-gcc is not installed; on Debian/Ubuntu: apt-get install "
                            "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib.")
    if shutil.which("make") is None:
        raise FirmwareError("make is not installed; on Debian/Ubuntu: apt-get install make.")
    if needs_tflm and tflm_root is None:
        raise FirmwareError("--compile needs TensorFlow Lite Micro's sources: set TFLM_ROOT (or pass --tflm-root) "
                            "to a tflite-micro checkout (git clone https://github.com/tensorflow/tflite-micro).")
    if needs_tflm and not (tflm_root / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").exists():
        raise FirmwareError(f"{tflm_root} is not a tflite-micro checkout (no tensorflow/lite/micro/micro_interpreter.h).")
    args = (["make", f"-j{jobs or os.cpu_count() or 1}"] + ([f"TFLM_ROOT={tflm_root}"] if needs_tflm else [])
            + list(make_args or []))
    if sdk:
        if sdk_root is None:
            raise FirmwareError(f"This board's firmware needs {sdk['name']}: set {sdk['variable']} to it.")
        if not (sdk_root / sdk["check"]).exists():
            raise FirmwareError(f"{sdk_root} does not look like {sdk['name']} (no {sdk['check']}).")
        args.append(f"{sdk['variable']}={sdk_root}")
    (project / "build").mkdir(exist_ok=True)
    log = project / "build" / "make.log"
    # TFLM's Makefile runs python3 scripts needing numpy and Pillow: tinygen's own interpreter has both.
    import sys

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


def run_in_qemu(command: list[str], elf: Path, timeout: float = 600) -> RunResult:
    """Boot the image, read its UART until it exits, and tally the harness lines."""
    if shutil.which(command[0]) is None:
        raise FirmwareError(f"{command[0]} is not installed; on Debian/Ubuntu: apt-get install qemu-system-arm.")
    try:
        r = subprocess.run(command + [str(elf)], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"The firmware did not finish within {timeout:.0f} s in QEMU.") from None
    lines = r.stdout.decode(errors="replace").splitlines()
    result = RunResult(None, 0, 0, lines=lines)
    for line in lines:
        ev = parse_line(line)
        if ev is None:
            continue
        if ev.kind == "boot":
            result.arena_used_bytes = ev.int("arena_used_bytes")
        elif ev.kind == "inf":
            result.cycles.append(ev.int("cycles", 0))
        elif ev.kind == "done":
            result.vectors = ev.int("vectors", 0)
            result.mismatches = ev.int("mismatches", 0)
            result.stack_used_bytes = ev.int("stack_used_bytes")
        elif ev.kind == "err":
            result.errors.append(ev.fields.get("what", "?"))
    if result.errors:
        raise FirmwareError(f"The firmware stopped with an error: {', '.join(result.errors)}.")
    if result.arena_used_bytes is None:
        raise FirmwareError(f"The firmware printed no boot line (QEMU exit status {r.returncode}).")
    return result
