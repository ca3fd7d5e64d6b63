"""The Raspberry Pi Pico port (firmware/boards/rp2040): the MLPerf Tiny KWS and ResNet-8 models
built for its RP2040 on both runtimes, against the user's pico-sdk (PICO_SDK_PATH) and, for
TFLM, a tflite-micro checkout (TFLM_ROOT) with its prebuilt Cortex-M0+ library. No emulator
runs the RP2040 (QEMU has no model of it), so what is checked is the image: boot2 and its CRC32
as the boot ROM checks it, the vector table where boot2 jumps, the UF2 the drive would get, and
the linked sizes against the fit check's estimate."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import needs
from test_cli import TINYGEN, assert_one_sentence_error, run as cli

from tinygen.boards import load_board
from tinygen.device.runners import IO, FlashError, get_runner, load_image
from tinygen.ports import port_for

BOARD = load_board("raspberry-pi-pico")
PORT = port_for(BOARD)
SDK = os.environ.get("PICO_SDK_PATH")
TFLM_ROOT = os.environ.get("TFLM_ROOT")
M0PLUS_LIB = "gen/cortex_m_generic_cortex-m0plus_release_cmsis_nn_gcc/lib/libtensorflow-microlite.a"
MODELS = {"kws": "kws_ref_model.tflite", "resnet": "pretrainedResnet_quant.tflite"}
SRAM_END = BOARD.sram_origin + BOARD.sram_size

pytestmark = [needs("arm-none-eabi-gcc")]
NO_SDK = ("PICO_SDK_PATH is not set: point it at a pico-sdk checkout with its TinyUSB submodule "
          "(github.com/raspberrypi/pico-sdk) to build the Raspberry Pi Pico's firmware")


def _crc32_mpeg2(data: bytes) -> int:
    """The RP2040 boot ROM's CRC32, bit by bit: polynomial 0x04C11DB7 MSB first, initial value
    0xFFFFFFFF, no reflection, no final inversion (RP2040 datasheet, section 2.8.1.3.1)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def test_own_crc_matches_the_standard_check_value():
    # CRC-32/MPEG-2's catalogued check value, so the image tests below rest on a known-good CRC
    assert _crc32_mpeg2(b"123456789") == 0x0376E6E7


@pytest.fixture(scope="module", params=[(r, m) for r in ("aot", "tflm") for m in MODELS])
def built(request, tmp_path_factory, shared_models) -> tuple[dict, Path]:
    """`tinygen build --compile` for one runtime and model: the --json result and the folder."""
    runtime, model = request.param
    if not SDK:
        pytest.skip(NO_SDK)
    if runtime == "tflm":
        if not TFLM_ROOT:
            pytest.skip("TFLM_ROOT is not set: point it at a tflite-micro checkout to build the Pico's TFLM firmware")
        if not (Path(TFLM_ROOT) / M0PLUS_LIB).is_file():
            pytest.skip(f"TFLM_ROOT has no prebuilt Cortex-M0+ library ({M0PLUS_LIB}); building one takes most of an hour")
    out = tmp_path_factory.mktemp(f"pico-{runtime}-{model}")
    r = cli("build", "--board", BOARD.id, "--model", shared_models / MODELS[model], "--runtime", runtime,
            "--out", out, "--compile", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), out


def _elf(out: Path):
    from elftools.elf.elffile import ELFFile

    return ELFFile((out / "build" / "firmware.elf").open("rb"))


def _symbol(elf, name: str) -> int:
    return next(s for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name == name)["st_value"]


def test_boot2_is_256_bytes_at_the_start_of_flash_with_the_crc_the_boot_rom_checks(built):
    j, out = built
    assert j["project"]["port"] == "rp2040" and j["project"]["runtime"] == j["runtime"]
    elf = _elf(out)
    boot2 = elf.get_section_by_name(".boot2")
    assert boot2["sh_addr"] == BOARD.flash_origin == 0x10000000 and boot2["sh_size"] == 256
    data = boot2.data()
    assert int.from_bytes(data[252:256], "little") == _crc32_mpeg2(data[:252])
    # and it is the SDK's boot2 for the Pico's flash (W25Q080 driver), padded with zeros
    code = (out / "build" / "boot2" / "boot2.bin").read_bytes()
    assert 64 < len(code) <= 252 and data[:252] == code.ljust(252, b"\0")


def test_vector_table_and_reset_entry_are_where_boot2_jumps(built):
    """boot2 sets VTOR to 0x10000100, loads SP from its first word and jumps to the second."""
    _, out = built
    elf = _elf(out)
    text = elf.get_section_by_name(".text")
    assert text["sh_addr"] == BOARD.app_flash_origin == 0x10000100
    sp, reset = struct.unpack_from("<2I", text.data())
    assert sp == SRAM_END == 0x20042000        # the top of SCRATCH_Y, the sixth SRAM bank
    handler = _symbol(elf, "Reset_Handler")
    assert reset & 1, "the reset vector must have the Thumb bit set"
    assert reset & ~1 == handler & ~1 == elf["e_entry"] & ~1
    assert BOARD.app_flash_origin < reset & ~1 < BOARD.flash_origin + BOARD.flash_size
    # the SDK copies the table up to __vectors_end into RAM: all 16 + 32 words of it
    assert _symbol(elf, "__vectors_end") - _symbol(elf, "__vectors") == 4 * (16 + 32)


def test_ram_layout_stack_in_the_scratch_banks_statics_in_the_striped_ones(built):
    _, out = built
    elf = _elf(out)
    top, limit, bss_end = (_symbol(elf, n) for n in ("__StackTop", "__StackLimit", "__bss_end__"))
    assert top == SRAM_END and top - limit == BOARD.stack_bytes
    assert limit == 0x20040000                 # an 8 KB stack is exactly SCRATCH_X and SCRATCH_Y
    assert BOARD.sram_origin <= bss_end <= limit


def test_uf2_from_make_is_what_the_flash_runner_would_copy(built, tmp_path):
    """port/elf2uf2.py (run by make) and tinygen's uf2 runner write the same bytes from the ELF,
    and `tinygen flash --dry-run` names them by their sha256."""
    _, out = built
    uf2 = (out / "build" / "firmware.uf2").read_bytes()
    image = load_image(out, BOARD)
    assert image.address == BOARD.flash_origin
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    get_runner("uf2")(BOARD, IO(say=lambda t: None), drive=str(drive)).flash(image, lambda d, t: None)
    assert (drive / "firmware.uf2").read_bytes() == uf2
    blocks = [uf2[i:i + 512] for i in range(0, len(uf2), 512)]
    assert len(blocks) == (len(image.data) + 255) // 256
    for n, block in enumerate(blocks):
        _, _, flags, addr, size, no, total, family = struct.unpack_from("<8I", block)
        assert (addr, size, no, total) == (0x10000000 + 256 * n, 256, n, len(blocks))
        assert flags & 0x2000 and family == BOARD.raw["flash_tool"]["family_id"] == 0xE48BFF56
    r = cli("flash", "--board", BOARD.id, out, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["steps"]
    assert any(hashlib.sha256(uf2).hexdigest() in s for s in steps)
    assert any(f"0x{_crc32_mpeg2(image.data[:252]):08X}" in s for s in steps)


def test_flash_refuses_an_image_whose_boot2_crc_is_wrong(built, tmp_path):
    _, out = built
    image = load_image(out, BOARD)
    image.data = image.data[:100] + bytes([image.data[100] ^ 1]) + image.data[101:]
    with pytest.raises(FlashError, match="boot ROM would not run it"):
        get_runner("uf2")(BOARD, IO(say=lambda t: None), drive=str(tmp_path)).flash(image, lambda d, t: None)
    assert not (tmp_path / "firmware.uf2").exists()


def test_linked_size_is_within_the_fit_estimate(built):
    j, out = built
    size, flash, sram = j["size"], j["flash"], j["sram"]
    linked = size["text"] + size["data"]
    assert linked <= flash["total_bytes"] <= BOARD.app_flash_bytes
    # the port's allowance covers everything but the model, the runtime and the test vectors
    assert linked - flash["model_bytes"] - flash["runtime_bytes"] - flash["test_vector_bytes"] <= PORT.app_flash_bytes
    # every byte the ELF puts in SRAM (data, bss, the RAM vector table, the SDK's RAM-resident
    # code, which size counts as text), with the stack, within the fit's SRAM
    ram = sum(s["sh_size"] for s in _elf(out).iter_sections()
              if s["sh_flags"] & 2 and BOARD.sram_origin <= s["sh_addr"] < SRAM_END)
    assert size["data"] + size["bss"] <= ram
    assert ram + BOARD.stack_bytes <= sram["total_bytes"] <= BOARD.sram_size


def test_clock_is_the_boards_133_mhz_from_the_pll_settings():
    """SysTick counts the processor clock; the PLL defines give exactly the board's clock."""
    d = dict(x.split("=", 1) for x in PORT.defines if "=" in x)
    vco, pd1, pd2 = int(d["PLL_SYS_VCO_FREQ_HZ"]), int(d["PLL_SYS_POSTDIV1"]), int(d["PLL_SYS_POSTDIV2"])
    xosc = 12_000_000                          # the Pico's crystal
    assert vco % xosc == 0 and 750_000_000 <= vco <= 1_600_000_000   # RP2040 datasheet: VCO range
    assert 1 <= pd2 <= pd1 <= 7
    assert vco // (pd1 * pd2) == int(d["SYS_CLK_HZ"]) == BOARD.clock_hz == PORT.tick_hz == 133_000_000
    assert PORT.tick_source == "SysTick" and PORT.run is None          # nothing emulates an RP2040


def test_without_pico_sdk_path_the_build_says_what_to_fetch(tmp_path, shared_models):
    env = {k: v for k, v in os.environ.items() if k != "PICO_SDK_PATH"}
    r = subprocess.run(TINYGEN + ["build", "--board", BOARD.id, "--model", str(shared_models / MODELS["kws"]),
                                  "--runtime", "aot", "--out", str(tmp_path / "fw"), "--compile"],
                       capture_output=True, text=True, env=dict(env, COLUMNS="1000"), timeout=600)
    line = assert_one_sentence_error(r)
    assert re.fullmatch(r"error: .*pico-sdk.*github\.com/raspberrypi/pico-sdk.*set PICO_SDK_PATH to it\.", line)
    assert not (tmp_path / "fw" / "build").exists()
