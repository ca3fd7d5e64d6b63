"""tinygen's 32-bit arena figure against real TFLite Micro builds for Cortex-M4 and M0+, run in QEMU.

Needs TFLM_ROOT (a tflite-micro checkout whose Makefile can build `microlite` for
cortex_m_generic with CMSIS-NN; the first build takes several minutes), arm-none-eabi-gcc
and qemu-system-arm. Skips, saying which is missing, otherwise."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinygen.model import graph as analyze
from tinygen.project import codegen
from tinygen.tflm import arena
from tinygen.resources import resource_dir

TFLM_ROOT = os.environ.get("TFLM_ROOT")
pytestmark = [
    pytest.mark.tflm,
    pytest.mark.skipif(not TFLM_ROOT, reason="TFLM_ROOT is not set: point it at a tflite-micro checkout to build against real TFLM"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="arm-none-eabi-g++ is not installed"),
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed"),
]

# (TFLM TARGET_ARCH, gcc flags, QEMU machine, DSP extension). ARMv6-M code runs on the
# Cortex-M3 of mps2-an385, which checks the no-DSP CMSIS-NN path a Cortex-M0+ takes.
TARGETS = {
    "cortex-m4": ("cortex-m4+fp", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"], "mps2-an386", True),
    "cortex-m0plus": ("cortex-m0plus", ["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"], "mps2-an385", False),
}
CXXFLAGS = ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-ffunction-sections",
            "-fdata-sections", "-DTF_LITE_STATIC_MEMORY", "-DNDEBUG", "-DTF_LITE_STRIP_ERROR_STRINGS", "-Os"]


@pytest.fixture(scope="module", params=list(TARGETS))
def microlite(request) -> tuple[str, Path]:
    arch = TARGETS[request.param][0]
    root = Path(TFLM_ROOT)
    args = ["make", "-f", "tensorflow/lite/micro/tools/make/Makefile", "TARGET=cortex_m_generic",
            f"TARGET_ARCH={arch}", "OPTIMIZED_KERNEL_DIR=cmsis_nn", "BUILD_TYPE=release",
            f"TARGET_TOOLCHAIN_ROOT={Path(shutil.which('arm-none-eabi-gcc')).parent}/", f"-j{os.cpu_count()}", "microlite"]
    # TFLM's Makefile runs python3 scripts that import numpy and PIL: use this interpreter's.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=3600, env=env)
    assert r.returncode == 0, f"building TFLM's microlite failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    lib = root / "gen" / f"cortex_m_generic_{arch}_release_cmsis_nn_gcc" / "lib" / "libtensorflow-microlite.a"
    assert lib.exists()
    return request.param, lib


def tflm_arena(model_bytes: bytes, work: Path, core: str, lib: Path) -> int:
    _, cpu, machine, _ = TARGETS[core]
    g = analyze.parse(model_bytes)
    (work / "model_data.h").write_text(codegen.model_header("g_model", "m.tflite", g.sha256, len(model_bytes)))
    (work / "model_data.cc").write_text(codegen.model_source(model_bytes, "g_model", "m.tflite", g.sha256))
    fw = resource_dir("firmware")
    root = Path(TFLM_ROOT)
    dl = root / "tensorflow/lite/micro/tools/make/downloads"
    inc = [f"-I{p}" for p in (root, dl / "flatbuffers/include", dl / "gemmlowp", dl / "ruy", fw / "include", work)]
    objs = []
    for src in (fw / "boards/mps2/startup.c", fw / "boards/mps2/board.c", fw / "common/syscalls.c"):
        obj = work / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", *cpu, "-Os", f"-I{fw / 'include'}", "-c", src, "-o", obj], check=True)
        objs.append(obj)
    for src in (Path(__file__).parent / "firmware" / "arena_probe.cc", work / "model_data.cc"):
        obj = work / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-g++", *CXXFLAGS, *cpu, *inc, "-c", src, "-o", obj], check=True)
        objs.append(obj)
    elf = work / "probe.elf"
    subprocess.run(["arm-none-eabi-g++", *cpu, "-T", fw / "boards/mps2/mps2.ld", "-Wl,--gc-sections",
                    "--specs=nano.specs", "-nostartfiles", *objs, str(lib), "-lm", "-o", elf], check=True)
    r = subprocess.run(["qemu-system-arm", "-M", machine, "-nographic", "-semihosting", "-icount", "shift=0",
                        "-kernel", elf], capture_output=True, text=True, timeout=120)
    line = next(l for l in r.stdout.splitlines() if l.startswith("arena_used_bytes"))
    return int(line.split()[1])


@pytest.mark.parametrize("name", ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite", "kws_ref_model.tflite"])
def test_shared_models_match_tflm(shared_models, microlite, tmp_path, name):
    core, lib = microlite
    model = (shared_models / name).read_bytes()
    plan = arena.plan_arena(analyze.parse(model), arena.Target("arm", "cmsis-nn", dsp=TARGETS[core][3]))
    assert tflm_arena(model, tmp_path, core, lib) == plan.used_bytes


def test_tiny_models_match_tflm(tiny_models, microlite, tmp_path):
    core, lib = microlite
    for name, model in tiny_models.items():
        plan = arena.plan_arena(analyze.parse(model), arena.Target("arm", "cmsis-nn", dsp=TARGETS[core][3]))
        if not plan.exact:
            continue
        work = tmp_path / name
        work.mkdir()
        assert tflm_arena(model, work, core, lib) == plan.used_bytes, name
