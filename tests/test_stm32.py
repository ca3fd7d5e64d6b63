"""The STM32 ports (firmware/boards/stm32l4 for the NUCLEO-L4R5ZI, stm32f7 for the STM32F746G-DISCO):
the MLPerf Tiny KWS and ResNet-8 models built with `tinygen build --compile` on both runtimes, against
the CMSIS headers of an STM32Cube checkout; each image's layout (vector table, reset handler, initial
SP, stack, where the arena landed) and its arm-none-eabi-size against the fit check. QEMU has no
machine for either part, so nothing here runs the firmware.

Each board needs its variable (STM32CUBE_L4_ROOT, STM32CUBE_F7_ROOT: an STM32Cube checkout, of which
only Drivers/CMSIS is read), --runtime tflm also TFLM_ROOT; a test without them skips, naming the one
missing."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import needs
from test_cli import TINYGEN, assert_one_sentence_error
from test_cli import run as cli

from tinygen.boards import load_board
from tinygen.ports import port_for

pytestmark = [needs("arm-none-eabi-gcc")]

MODELS = {"kws": "kws_ref_model.tflite", "resnet": "pretrainedResnet_quant.tflite"}
# Where each linker script puts the start of .bss, and with it the arena: (first address past it, what it is)
ARENA_REGION = {"nucleo-l4r5zi": (0x2003_0000, "SRAM1"), "stm32f746g-disco": (0x2001_0000, "DTCM")}


def _sdk(board_id: str) -> Path:
    sdk = port_for(load_board(board_id)).sdk
    root = os.environ.get(sdk["variable"])
    if not root:
        pytest.skip(f"{sdk['variable']} is not set: point it at {sdk['name']} to build the {board_id} firmware")
    return Path(root)


_built: dict[tuple[str, str, str], tuple[dict, Path]] = {}


@pytest.fixture(scope="module")
def built(tmp_path_factory, shared_models):
    """build(board, runtime, model) -> (the build's JSON, its folder); each built once per module."""
    def build(board_id: str, runtime: str, model: str) -> tuple[dict, Path]:
        _sdk(board_id)
        if runtime == "tflm" and not os.environ.get("TFLM_ROOT"):
            pytest.skip("TFLM_ROOT is not set: point it at a tflite-micro checkout to build the TFLM firmware")
        key = (board_id, runtime, model)
        if key not in _built:
            out = tmp_path_factory.mktemp(f"{board_id}-{runtime}-{model}")
            r = cli("build", "--board", board_id, "--model", shared_models / MODELS[model], "--runtime", runtime,
                    "--compile", "--out", out, "--json")
            assert r.returncode == 0, r.stderr
            _built[key] = (json.loads(r.stdout), out)
        return _built[key]
    return build


CASES = [(b, rt, m) for b in ARENA_REGION for rt in ("aot", "tflm") for m in MODELS]
IDS = [f"{b}-{rt}-{m}" for b, rt, m in CASES]


@pytest.mark.parametrize("board_id, runtime, model", CASES, ids=IDS)
def test_the_image_is_within_the_fit_estimate(built, board_id, runtime, model):
    j, _ = built(board_id, runtime, model)
    board, port = load_board(board_id), port_for(load_board(board_id))
    assert j["project"]["port"] == board.family and j["project"]["runtime"] == runtime
    size, flash, sram = j["size"], j["flash"], j["sram"]
    linked = size["text"] + size["data"]
    # the estimate is an upper bound, and a tight one: above by less than the application allowance
    assert linked <= flash["total_bytes"] < linked + port.app_flash_bytes
    assert flash["app_bytes"] == port.app_flash_bytes
    # static RAM (the arena among it) and the board's stack, within the estimate, within the board
    arena = sram["arena_bytes"] if runtime == "aot" else sram["arena_reserved_bytes"]
    assert arena <= size["bss"]
    assert size["data"] + size["bss"] + board.stack_bytes <= sram["total_bytes"] <= board.sram_size


def _memory(linker_script: Path) -> dict[str, tuple[int, int]]:
    """The MEMORY regions of a linker script: {name: (origin, length)}."""
    regions = {}
    for name, origin, length, unit in re.findall(
            r"^\s*(\w+)\s*\([rwx]+\)\s*:\s*ORIGIN\s*=\s*(0x[0-9A-Fa-f]+),\s*LENGTH\s*=\s*(\d+)([KM]?)",
            linker_script.read_text(), re.M):
        regions[name] = (int(origin, 16), int(length) * {"": 1, "K": 1024, "M": 1024 * 1024}[unit])
    return regions


def _irq_count(device_header: Path) -> int:
    """Peripheral interrupts in the device header: one more than the highest IRQn."""
    enum = re.search(r"typedef enum\s*\{(.*?)\}\s*IRQn_Type;", device_header.read_text(), re.S).group(1)
    return max(int(n) for n in re.findall(r"_IRQn\s*=\s*(\d+)", enum)) + 1


@pytest.mark.parametrize("board_id, runtime, model", CASES, ids=IDS)
def test_the_image_boots_from_flash_with_the_stack_at_the_top_of_ram(built, board_id, runtime, model):
    from elftools.elf.elffile import ELFFile

    j, out = built(board_id, runtime, model)
    board, port = load_board(board_id), port_for(load_board(board_id))
    regions = _memory(out / "port" / port.linker_script)
    # the linker script's memories are the board's, so the fit check's budget is what links
    assert regions["FLASH"] == (board.flash_origin, board.flash_size)
    assert regions["RAM"] == (board.sram_origin, board.sram_size)
    ram_top = sum(regions["RAM"])

    with open(out / "build" / "firmware.elf", "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_ARM"
        symbols = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}
        text = elf.get_section_by_name(".text")
        bss = elf.get_section_by_name(".bss")
        bss_range = (bss["sh_addr"], bss["sh_addr"] + bss["sh_size"])
        largest = max((s for s in symbols.values() if s["st_info"]["type"] == "STT_OBJECT"
                        and bss_range[0] <= s["st_value"] < bss_range[1]), key=lambda s: s["st_size"])
        table = symbols["vectors"]
        words = [int.from_bytes(text.data()[i:i + 4], "little") for i in range(0, table["st_size"], 4)]

    assert text["sh_addr"] == table["st_value"] == board.flash_origin == 0x0800_0000
    # 16 system entries and one per interrupt of the device header the port was built with
    assert len(words) == 16 + _irq_count(_sdk(board_id) / port.sdk["check"])
    sp, reset = words[0], words[1]
    assert sp == ram_top == symbols["__StackTop"]["st_value"]
    assert sp - symbols["__StackLimit"]["st_value"] == board.stack_bytes
    assert reset & 1, "the reset vector must have the Thumb bit set"
    assert reset & ~1 == symbols["Reset_Handler"]["st_value"] & ~1
    for handler in words[1:]:
        assert handler == 0 or (handler & 1 and board.flash_origin < handler < board.flash_origin + board.flash_size)
    # the arena is the largest object in .bss, and starts where the board file says it does
    end, region = ARENA_REGION[board_id]
    arena = j["sram"]["arena_bytes"] if runtime == "aot" else j["sram"]["arena_reserved_bytes"]
    assert largest["st_size"] >= arena
    assert board.sram_origin <= largest["st_value"] < end, f"the arena starts outside {region}"


def test_the_m7_links_tflms_cortex_m4_library(built):
    """The F746's TFLM firmware links TFLM's prebuilt cortex-m4+fp CMSIS-NN library (ARMv7E-M code the M7
    runs), not a cortex-m7+fp build of its own; its own code is compiled for the M7."""
    _, out = built("stm32f746g-disco", "tflm", "kws")
    makefile = (out / "Makefile").read_text()
    assert "TFLM_ARCH := cortex-m4+fp" in makefile and "-mcpu=cortex-m7" in makefile
    log = (out / "build" / "make.log").read_text()
    assert "cortex_m_generic_cortex-m4+fp_release_cmsis_nn_gcc/lib/libtensorflow-microlite.a" in log
    assert "ld: warning" not in log   # the linker took the mixed M4/M7 objects without a word


@pytest.mark.parametrize("board_id", list(ARENA_REGION))
def test_a_model_that_does_not_fit_is_refused_before_compiling(tmp_path, board_id):
    """A max-pool over 600 x 600 x 2: 900,000 bytes of activations, more than either board's SRAM."""
    from tflite_builder import OneOp

    _sdk(board_id)
    m = OneOp()
    x = m.tensor([1, 600, 600, 2], scale=0.05, zero_point=-3)
    y = m.tensor([1, 300, 300, 2], scale=0.05, zero_point=-3)
    model = tmp_path / "big_pool.tflite"
    model.write_bytes(m.model("MAX_POOL_2D", [x], [y], padding=1, strideH=2, strideW=2, filterHeight=2,
                              filterWidth=2, fusedActivationFunction=0))
    r = cli("build", "--board", board_id, "--model", model, "--runtime", "aot", "--compile", "--out", tmp_path / "fw")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert f"big_pool.tflite does not fit {board_id}: SRAM is over by" in r.stderr
    assert not (tmp_path / "fw" / "build").exists()


@pytest.mark.parametrize("board_id", list(ARENA_REGION))
def test_a_missing_or_wrong_sdk_is_one_sentence_naming_the_variable(tmp_path, board_id):
    sdk = port_for(load_board(board_id)).sdk
    env = {k: v for k, v in os.environ.items() if k != sdk["variable"]}
    args = TINYGEN + ["build", "--board", board_id, "--runtime", "aot", "--compile", "--out", str(tmp_path / "fw")]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    error = assert_one_sentence_error(r)
    assert sdk["variable"] in error and "github.com/STMicroelectronics/STM32Cube" in error
    assert not (tmp_path / "fw").exists()   # refused before any work

    r = subprocess.run(args, capture_output=True, text=True, env=dict(env, **{sdk["variable"]: str(tmp_path)}), timeout=600)
    error = assert_one_sentence_error(r)
    assert str(tmp_path) in error and sdk["check"] in error
