"""Flash taken by each of tinygen's AOT kernels, per core: the table the fit check reads
(tinygen/data/aot_kernels.json), and the measurement that makes it.

Each kernel is linked alone into a program that calls it and nothing else, with the
generated firmware's compiler flags; its cost is that image's .text minus the .text of the
same program without the call. So a kernel's figure includes the libgcc and libm helpers
it pulls in (soft double on a Cortex-M4, soft float on an M0+). Two kernels sharing a helper
both count it: the sum over a model's kernels is an upper bound.

Regenerate after changing a kernel: `python -m tinygen.aot_size` (needs arm-none-eabi-gcc);
tests/test_aot.py checks that the table matches the kernels.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from .resources import resource_dir

TABLE = Path(__file__).parent / "data" / "aot_kernels.json"
OPT = "-O2"

# The cores measured, with the flags of a board that has each.
CORES = {
    "cortex-m0plus": ["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
}
MEASURED_CORE = {"cortex-m0": "cortex-m0plus", "cortex-m0plus": "cortex-m0plus", "cortex-m3": "cortex-m4",
                 "cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7", "cortex-m33": "cortex-m4"}

# kernel -> (source file, a call with arguments read from a volatile pointer, so nothing folds away)
CALLS = {
    "tg_conv2d": ("tg_conv.c", "tg_conv2d((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_depthwise_conv2d": ("tg_conv.c", "tg_depthwise_conv2d((const tg_conv_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_fully_connected": ("tg_fully_connected.c", "tg_fully_connected((const tg_fully_connected_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_average_pool2d": ("tg_pool.c", "tg_average_pool2d((const tg_pool_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_max_pool2d": ("tg_pool.c", "tg_max_pool2d((const tg_pool_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_mean": ("tg_pool.c", "tg_mean((const tg_mean_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_add": ("tg_elementwise.c", "tg_add((const tg_binary_params*)sink, (const int8_t*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_mul": ("tg_elementwise.c", "tg_mul((const tg_binary_params*)sink, (const int8_t*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_logistic": ("tg_elementwise.c", "tg_logistic((const tg_logistic_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_quantize_f32": ("tg_elementwise.c", "tg_quantize_f32((const tg_quantize_params*)sink, (const float*)sink, (int8_t*)sink);"),
    "tg_requantize": ("tg_elementwise.c", "tg_requantize((const tg_quantize_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_dequantize": ("tg_elementwise.c", "tg_dequantize((const tg_quantize_params*)sink, (const int8_t*)sink, (float*)sink);"),
    "tg_softmax": ("tg_softmax.c", "tg_softmax((const tg_softmax_params*)sink, (const int8_t*)sink, (int8_t*)sink);"),
    "tg_pad": ("tg_shape.c", "tg_pad((const tg_pad_params*)sink, (const void*)sink, (void*)sink);"),
    "tg_concatenation": ("tg_shape.c", "tg_concatenation((const tg_concat_params*)sink, (const void* const*)sink, (void*)sink);"),
}

# sizeof() of each parameter block on a 32-bit core: int32 fields and 4-byte pointers
# (tg_mean_params' uint8 flags fill one word; tg_quantize_params has one 8-byte-aligned double).
PARAM_BYTES = {
    "tg_conv_params": 27 * 4, "tg_fully_connected_params": 15 * 4, "tg_pool_params": 13 * 4,
    "tg_mean_params": 10 * 4, "tg_binary_params": 23 * 4, "tg_softmax_params": 5 * 4,
    "tg_logistic_params": 5 * 4, "tg_quantize_params": 32, "tg_pad_params": 14 * 4, "tg_concat_params": 3 * 4,
}


def _text(cflags: list[str], call: str, sources: list[Path], work: Path) -> int:
    main = work / "main.c"
    main.write_text('#include "tg_kernels.h"\nvoid* volatile sink;\n'
                    f"int main(void) {{ {call} return 0; }}\n")
    elf = work / "k.elf"
    cmd = ["arm-none-eabi-gcc", *cflags, OPT, "-std=c99", "-ffunction-sections", "-fdata-sections",
           f"-I{sources[0].parent}", str(main), *map(str, sources), "-nostartfiles", "-e", "main",
           "--specs=nano.specs", "-Wl,--gc-sections", "-lm", "-o", str(elf)]
    subprocess.run(cmd, check=True, capture_output=True)
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], check=True, capture_output=True, text=True).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.startswith((".text", ".rodata")))


def measure(core: str) -> dict[str, int]:
    """Bytes of flash per kernel on `core`, measured now (needs arm-none-eabi-gcc)."""
    d = resource_dir("firmware") / "aot"
    sources = sorted({d / src for src, _ in CALLS.values()})
    with tempfile.TemporaryDirectory() as tmp:
        base = _text(CORES[core], "", sources, Path(tmp))
        return {k: _text(CORES[core], call, sources, Path(tmp)) - base for k, (_, call) in CALLS.items()}


@lru_cache(maxsize=None)
def table() -> dict:
    return json.loads(TABLE.read_text())


def kernel_flash(kernels: list[str], cpu: str) -> tuple[int, str]:
    """(bytes, measured core) of these kernels' code on `cpu`."""
    core = MEASURED_CORE.get(cpu, "cortex-m4")
    sizes = table()["cores"][core]
    return sum(sizes[k] for k in kernels), core


def main() -> None:
    result = {"opt": OPT, "cores": {core: measure(core) for core in CORES}}
    TABLE.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
