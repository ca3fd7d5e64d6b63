"""Flash taken by each of tinygen's AOT kernels, per core: the table the fit check reads
(tinygen/aot/tables/kernels.json), and the measurement that makes it.

Each kernel is linked alone into a program that calls it and nothing else, with the
generated firmware's compiler flags; its cost is the symbols (code and constant data) that
image has beyond the same program without the call: its own functions and the libgcc, libc
and libm helpers it pulls in (soft double on a Cortex-M4, soft float on an M0+). A model's
kernel code is the union of its kernels' symbols, so a shared helper counts once.

Regenerate after changing a kernel: `python -m tinygen.aot.size` (needs arm-none-eabi-gcc);
tests/test_aot.py checks that the table matches the kernels.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from ..boards import MEASURED_CORE
from ..resources import resource_dir

TABLE = Path(__file__).parent / "tables" / "kernels.json"
OPT = "-O2"

# The cores measured, with the flags of a board that has each.
CORES = {
    "cortex-m0plus": ["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
}

# kernel -> (source file, a call with arguments read from a volatile pointer, so nothing folds away)
CALLS = {
    "tg_conv2d": ("tg_conv.c", "tg_conv2d((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_conv2d_1x1": ("tg_conv.c", "tg_conv2d_1x1((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_depthwise_conv2d": ("tg_conv.c", "tg_depthwise_conv2d((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_conv2d_1x1_backwards": ("tg_conv.c", "tg_conv2d_1x1_backwards((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_conv2d_backwards": ("tg_conv.c", "tg_conv2d_backwards((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_depthwise_conv2d_backwards": ("tg_conv.c", "tg_depthwise_conv2d_backwards((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_conv2d_add": ("tg_conv.c", "tg_conv2d_add((const tg_conv_params*)sink, (const tg_binary_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_conv_ring": ("tg_ring.c", "tg_conv_ring((const tg_ring_params*)sink, (int8_t*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_conv_ring_add": ("tg_ring.c", "tg_conv_ring_add((const tg_ring_params*)sink, (const tg_binary_params*)sink, (int8_t*)sink, (int8_t*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_fully_connected": ("tg_fully_connected.c", "tg_fully_connected((const tg_fully_connected_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_average_pool2d": ("tg_pool.c", "tg_average_pool2d((const tg_pool_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_max_pool2d": ("tg_pool.c", "tg_max_pool2d((const tg_pool_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_mean": ("tg_pool.c", "tg_mean((const tg_mean_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_add": ("tg_elementwise.c", "tg_add((const tg_binary_params*)sink, (const int8_t*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_sub": ("tg_elementwise.c", "tg_sub((const tg_binary_params*)sink, (const int8_t*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_mul": ("tg_elementwise.c", "tg_mul((const tg_binary_params*)sink, (const int8_t*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_logistic": ("tg_elementwise.c", "tg_logistic((const tg_logistic_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_quantize_f32": ("tg_elementwise.c", "tg_quantize_f32((const tg_quantize_params*)sink, (const float*)sink, (int8_t*)sink);"),
    "tg_requantize": ("tg_elementwise.c", "tg_requantize((const tg_quantize_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_dequantize": ("tg_elementwise.c", "tg_dequantize((const tg_quantize_params*)sink, (const int8_t*)sink, (float*)sink);"),
    "tg_softmax": ("tg_softmax.c", "tg_softmax((const tg_softmax_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_pad": ("tg_shape.c", "tg_pad((const tg_pad_params*)sink, (const void*)sink, (void*)sink);"),
    "tg_concatenation": ("tg_shape.c", "tg_concatenation((const tg_concat_params*)sink, (const void* const*)sink, (void*)sink);"),
    "tg_lut_conv2d": ("tg_lut_conv.c", "tg_lut_conv2d((const tg_conv_lut_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_lut_conv2d_1x1": ("tg_lut_conv.c", "tg_lut_conv2d_1x1((const tg_conv_lut_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_lut_depthwise_conv2d": ("tg_lut_conv.c", "tg_lut_depthwise_conv2d((const tg_conv_lut_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_lut_pointwise": ("tg_lut.c", "tg_lut_pointwise((const tg_conv_lut_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_lut_fully_connected": ("tg_lut.c", "tg_lut_fully_connected((const tg_fully_connected_lut_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_lut_fully_connected_4": ("tg_lut.c", "tg_lut_fully_connected_4((const tg_fully_connected_lut_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_sparse_conv2d_1x1": ("tg_sparse.c", "tg_sparse_conv2d_1x1((const tg_conv_sparse_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_sparse_fully_connected": ("tg_sparse.c", "tg_sparse_fully_connected((const tg_fully_connected_sparse_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
}

# sizeof() of each parameter block on a 32-bit core: int32 fields and 4-byte pointers
# (tg_mean_params' uint8 flags fill one word; tg_quantize_params has one 8-byte-aligned double).
PARAM_BYTES = {
    "tg_conv_params": 28 * 4, "tg_fully_connected_params": 15 * 4, "tg_pool_params": 13 * 4,
    "tg_mean_params": 10 * 4, "tg_binary_params": 23 * 4, "tg_softmax_params": 5 * 4,
    "tg_logistic_params": 5 * 4, "tg_quantize_params": 32, "tg_pad_params": 14 * 4, "tg_concat_params": 3 * 4,
}
# the LUT kernels' (tg_lut.h): the dense block and a tg_lut_weights of two pointers and six int32
PARAM_BYTES.update({"tg_conv_lut_params": PARAM_BYTES["tg_conv_params"] + 8 * 4,
                    "tg_fully_connected_lut_params": PARAM_BYTES["tg_fully_connected_params"] + 8 * 4})
# the sparse kernels' (tg_sparse.h): the dense block and a tg_sparse_weights of five pointers and three int32
PARAM_BYTES.update({"tg_conv_sparse_params": PARAM_BYTES["tg_conv_params"] + 8 * 4,
                    "tg_fully_connected_sparse_params": PARAM_BYTES["tg_fully_connected_params"] + 8 * 4})
# a ring form's tg_ring_params (tg_kernels.h: two pointers and three int32), a static const in its call
RING_PARAMS_BYTES = 5 * 4


def param_bytes(program, arena=None) -> int:
    """The const parameter blocks of a lowered program, one per kernel call, and with its memory
    plan `arena`, one per ring form."""
    rings = sum(f.form.startswith("ring") for f in arena.forms.values()) if arena is not None else 0
    return sum(PARAM_BYTES[s.params_type] for s in program.steps if s.kernel) + rings * RING_PARAMS_BYTES


def _objects(cflags: list[str], sources: list[Path], work: Path) -> list[Path]:
    """The kernel sources compiled once per core; each measurement links them with its own main
    (gcc compiles each file on its own either way, so the image is the same as from sources)."""
    objects = []
    for src in sources:
        obj = work / f"{src.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", *cflags, OPT, "-std=c99", "-ffunction-sections", "-fdata-sections",
                        f"-I{src.parent}", "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
        objects.append(obj)
    return objects


def _symbols(cflags: list[str], call: str, sources: list[Path], work: Path, objects: list[Path]) -> dict[str, int]:
    """{symbol: bytes} of code and constant data linked into a program that makes `call`."""
    main = work / "main.c"
    main.write_text('#include "tg_kernels.h"\nvoid* volatile sink;\n'
                    f"int main(void) {{ {call} return 0; }}\n")
    elf = work / "k.elf"
    cmd = ["arm-none-eabi-gcc", *cflags, OPT, "-std=c99", "-ffunction-sections", "-fdata-sections",
           f"-I{sources[0].parent}", str(main), *map(str, objects), "-nostartfiles", "-e", "main",
           "--specs=nano.specs", "-Wl,--gc-sections", "-lm", "-o", str(elf)]
    subprocess.run(cmd, check=True, capture_output=True)
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2].lower() in "tr":   # code and read-only data, with a size
            symbols[parts[3]] = int(parts[1], 16)
    return symbols


def measure(core: str) -> dict[str, dict[str, int]]:
    """{kernel: {symbol: bytes}} on `core`: what linking each kernel alone adds to an empty
    program, its own functions and the helpers (libgcc, libc, libm) it pulls in. Needs
    arm-none-eabi-gcc."""
    d = resource_dir("firmware") / "aot"
    sources = sorted({d / src for src, _ in CALLS.values()})
    with tempfile.TemporaryDirectory() as tmp:
        objects = _objects(CORES[core], sources, Path(tmp))
        base = _symbols(CORES[core], "", sources, Path(tmp), objects)
        result = {}
        for k, (_, call) in CALLS.items():
            syms = _symbols(CORES[core], call, sources, Path(tmp), objects)
            result[k] = {name: size for name, size in sorted(syms.items())
                         if name not in base and name != "main" and size}
        return result


@lru_cache(maxsize=None)
def table() -> dict:
    return json.loads(TABLE.read_text())


# Symbol sizes leave out the alignment padding between functions: 1% on top for it. With it,
# every estimate checked (mps2-an386, SparkFun Edge) stays above the linked image.
_LINK_SLACK = 0.01


def kernel_flash(kernels: list[str], cpu: str) -> tuple[int, str]:
    """(bytes, measured core) of these kernels' code on `cpu`: the union of the symbols they
    link in, so a helper two kernels share (memcpy, a soft-float routine) counts once."""
    core = MEASURED_CORE.get(cpu, "cortex-m4")
    per_kernel = table()["cores"][core]
    union: dict[str, int] = {}
    for k in kernels:
        union.update(per_kernel[k])
    total = sum((size + 3) // 4 * 4 for size in union.values())
    return total + math.ceil(total * _LINK_SLACK), core


def main() -> None:
    result = {"opt": OPT, "cores": {core: measure(core) for core in CORES}}
    TABLE.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
