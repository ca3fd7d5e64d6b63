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


def _sdk_roots(port: Port, sdk_root: Path | None, sdk_roots: dict[str, Path | None] | None) -> dict[str, Path | None]:
    """{variable: path} for every SDK the port needs; `sdk_root` is the first's, for one-SDK callers."""
    roots = {v: (sdk_roots or {}).get(v) for v in port.sdk_variables}
    if sdk_root is not None and port.sdk_variable:
        roots[port.sdk_variable] = sdk_root
    return roots


def check_tools(port: Port, tflm_root: Path | None = None, sdk_root: Path | None = None,
                needs_tflm: bool = True, sdk_roots: dict[str, Path | None] | None = None) -> None:
    """Everything `make` will need, checked before any work: the cross compiler, make, the TFLM
    checkout (TFLM firmware) and the port's SDKs (`sdk_roots` by variable; `sdk_root` the first's).
    A FirmwareError names what is missing: every unset SDK variable in one sentence."""
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
    roots = _sdk_roots(port, sdk_root, sdk_roots)
    missing = [s for s in port.sdks if roots[s["variable"]] is None]
    if len(missing) == 1:
        sdk = missing[0]
        raise FirmwareError(f"This board's firmware needs {sdk['name']}: set {sdk['variable']} to it.")
    if missing:
        raise FirmwareError(f"This board's firmware needs {_and([s['name'] for s in missing])}: set "
                            f"{_and([s['variable'] for s in missing])} to them (in that order).")
    for sdk in port.sdks:
        root = Path(roots[sdk["variable"]])
        if not (root / sdk["check"]).exists():
            raise FirmwareError(f"{root} does not look like {sdk['name']} (no {sdk['check']}); "
                                f"set {sdk['variable']} to it.")


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def compile_project(project: Path, port: Port, tflm_root: Path | None = None, sdk_root: Path | None = None,
                    needs_tflm: bool = True, jobs: int | None = None,
                    make_args: list[str] | None = None, sdk_roots: dict[str, Path | None] | None = None) -> ImageSize:
    """`make` in the project folder, with TFLM_ROOT (TFLM firmware) and the port's SDK variable.
    The log goes to build/make.log."""
    check_tools(port, tflm_root, sdk_root, needs_tflm, sdk_roots)
    args = (["make", f"-j{jobs or os.cpu_count() or 1}"] + ([f"TFLM_ROOT={tflm_root}"] if needs_tflm else [])
            + list(make_args or []) + [f"{v}={p}" for v, p in _sdk_roots(port, sdk_root, sdk_roots).items()])
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
