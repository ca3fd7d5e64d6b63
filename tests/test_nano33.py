"""The Arduino Nano 33 BLE Sense port (firmware/boards/nrf52): KWS and ResNet firmware for both
runtimes, linked against the user's nrfx, TinyUSB and CMSIS (and TFLM's prebuilt Cortex-M4F
CMSIS-NN library), checked as an image the Arduino bootloader can start: the vector table at
0x10000, the reset entry inside the image, the initial stack pointer at the top of RAM; and
arm-none-eabi-size within the fit check's figures. QEMU has no nRF52840, so nothing here runs.

Needs NRFX_ROOT, TINYUSB_ROOT and CMSIS_ROOT (and TFLM_ROOT for --runtime tflm); skips,
naming the missing ones, otherwise."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess

import pytest

from conftest import needs
from test_cli import TINYGEN, assert_one_sentence_error

from tinygen.boards import load_board
from tinygen.ports import port_for

BOARD = load_board("arduino-nano-33-ble-sense")
PORT = port_for(BOARD)
SDK = PORT.sdk_variables
pytestmark = [needs("arm-none-eabi-gcc")]


def _missing(runtime: str) -> list[str]:
    wanted = list(SDK) + (["TFLM_ROOT"] if runtime == "tflm" else [])
    return [v for v in wanted if not os.environ.get(v)]


def _skip_unless_sdks(runtime: str) -> None:
    missing = _missing(runtime)
    if missing:
        pytest.skip(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: point "
                    f"{'it' if len(missing) == 1 else 'them'} at the checkouts ({PORT.family}/port.toml names each)")


def _tinygen(*args, env=None):
    return subprocess.run(TINYGEN + [str(a) for a in args], capture_output=True, text=True, timeout=1200,
                          env=dict(env if env is not None else os.environ, COLUMNS="200"))


MODELS = {"kws": "kws_ref_model.tflite", "resnet": "pretrainedResnet_quant.tflite"}


@pytest.fixture(scope="module", params=[(m, r) for m in MODELS for r in ("aot", "tflm")], ids=lambda p: "-".join(p))
def firmware(request, shared_models, tmp_path_factory):
    """`tinygen build --compile --json` for one model and runtime: (the build's JSON, its folder)."""
    name, runtime = request.param
    _skip_unless_sdks(runtime)
    out = tmp_path_factory.mktemp(f"nano-{name}-{runtime}")
    r = _tinygen("build", "--board", BOARD.id, "--model", shared_models / MODELS[name], "--runtime", runtime,
                 "--out", out / "fw", "--compile", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout), out / "fw"


def test_the_vector_table_is_where_the_bootloader_jumps(firmware):
    j, out = firmware
    elf, image = out / "build" / "firmware.elf", (out / "build" / "firmware.bin").read_bytes()
    header = subprocess.run(["arm-none-eabi-readelf", "-h", "-S", "-s", str(elf)], capture_output=True, text=True,
                            check=True).stdout
    entry = int(header.split("Entry point address:", 1)[1].split()[0], 16)
    # section headers: "[ 1] .text  PROGBITS  00010000 ..."
    sections = {m[1]: int(m[2], 16) for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]{8})\s", header)}
    # objcopy's binary starts at the lowest loaded address: the vector table, at the application's origin
    assert sections[".text"] == BOARD.app_flash_origin == 0x10000
    sp, reset = struct.unpack_from("<II", image, 0)
    # the initial stack pointer is the top of the nRF52840's 256 KB of RAM, with the board's stack below it
    assert sp == BOARD.sram_origin + BOARD.sram_size == 0x20040000
    # the reset vector is the ELF's entry (Thumb: odd), inside the image
    assert reset & 1 and reset == entry
    assert BOARD.app_flash_origin < entry < BOARD.app_flash_origin + len(image)
    symbols = {l.split()[-1]: int(l.split()[1], 16) for l in header.splitlines() if l.strip()[:1].isdigit()
               and len(l.split()) >= 8}
    assert symbols["Reset_Handler"] == entry
    assert symbols["__StackTop"] - symbols["__StackLimit"] == BOARD.stack_bytes
    assert symbols["__bss_end__"] <= symbols["__StackLimit"]


def test_the_linked_size_is_within_the_fit_check(firmware):
    j, _ = firmware
    size, flash, sram = j["size"], j["flash"], j["sram"]
    linked = size["text"] + size["data"]
    # the fit check's flash (with the port's measured application allowance) bounds the image,
    # by no more than that allowance's rounding and the runtime tables' margin
    assert linked <= flash["total_bytes"] <= linked + 8192
    assert flash["budget_bytes"] == BOARD.flash_size - 0x10000
    # static RAM (the arena, TFLM's and the port's state, TinyUSB's buffers) and the stack fit the estimate
    assert size["data"] + size["bss"] + BOARD.stack_bytes <= sram["total_bytes"] <= BOARD.sram_size
    assert sram["arena_bytes"] < size["data"] + size["bss"]


def test_flash_dry_run_sends_the_image_to_the_bootloader_at_its_base(firmware):
    """The bootloader adds 0x10000 to bossac's addresses: an image linked there goes at offset 0."""
    _, out = firmware
    r = _tinygen("flash", out / "build" / "firmware.elf", "--board", BOARD.id, "--port", "/dev/ttyACM0", "--dry-run")
    assert r.returncode == 0, r.stderr
    said = " ".join((r.stdout + r.stderr).split())
    assert "Double-tap" in said and "--offset=0x0 -R" in said


def test_missing_sdk_variables_are_named_in_one_sentence(shared_models, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SDK}
    r = _tinygen("build", "--board", BOARD.id, "--model", shared_models / MODELS["kws"], "--runtime", "aot",
                 "--out", tmp_path / "fw", "--compile", env=env)
    line = assert_one_sentence_error(r)
    assert all(v in line for v in SDK) and "github.com/NordicSemiconductor/nrfx" in line
    assert not (tmp_path / "fw").exists()   # refused before any work


def test_a_model_too_big_for_the_ram_is_refused_before_compiling(tmp_path):
    _skip_unless_sdks("aot")
    from tinymodels import int8, keras

    L = keras().layers
    inp = L.Input((160, 160, 8), batch_size=1)   # 160 x 160 x 16 int8 activations: 400 KB > 256 KB of RAM
    model = tmp_path / "wide.tflite"
    model.write_bytes(int8(keras().Model(inp, L.Conv2D(16, 3, padding="same")(inp)), samples=4))
    r = _tinygen("build", "--board", BOARD.id, "--model", model, "--runtime", "aot", "--out", tmp_path / "fw",
                 "--compile", "--json")
    assert r.returncode == 2, r.stderr[-2000:]
    j = json.loads(r.stdout)
    assert not j["sram"]["fits"] and j["sram"]["total_bytes"] > BOARD.sram_size
    assert not (tmp_path / "fw" / "build").exists()   # make never ran
