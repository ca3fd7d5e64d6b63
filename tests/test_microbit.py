"""The BBC micro:bit port (firmware/boards/nrf51): AOT firmware cross-compiled for its Cortex-M0,
booted in QEMU's microbit machine, every output checked against the host's interpreter; the
image's layout and the fit check's figures against what was linked and what the firmware
reports. The first Cortex-M0 to run in the tests: the kernels' plain-C paths, no DSP."""

from __future__ import annotations

import json

import pytest

from conftest import needs
from test_cli import run as cli

from tinygen.boards import load_board
from tinygen.ports import port_for

pytestmark = [needs("arm-none-eabi-gcc"), needs("qemu-system-arm")]

BOARD = load_board("bbc-microbit")


def _run(out, *model_args) -> dict:
    r = cli("run", "--board", BOARD.id, "--runtime", "aot", *model_args, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[dict, object]:
    """The bundled digits CNN (no --model): it fits the micro:bit's 16 KB with room to spare."""
    out = tmp_path_factory.mktemp("microbit-digits")
    return _run(out), out


@pytest.fixture(scope="module")
def block(tmp_path_factory) -> dict:
    """What the digits CNN leaves out: a depthwise convolution, an ADD large enough for its
    lookup table (the deepest stack frame of the AOT kernels), average pooling, LOGISTIC."""
    from tinymodels import int8, keras

    k = keras()
    L = k.layers
    inp = L.Input((12, 12, 4), batch_size=1)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(inp)
    x = L.Add()([L.Conv2D(4, 1)(x), inp])
    x = L.Flatten()(L.AveragePooling2D(2)(x))
    model = tmp_path_factory.mktemp("microbit-block") / "block.tflite"
    model.write_bytes(int8(k.Model(inp, L.Dense(6, activation="sigmoid")(x))))
    j = _run(model.parent / "fw", "--model", model)
    kernels = json.loads((model.parent / "fw" / "fit.json").read_text())["aot"]["kernels"]
    assert {"tg_depthwise_conv2d", "tg_add", "tg_average_pool2d", "tg_logistic"} <= set(kernels)
    return j


def _check(j: dict) -> None:
    assert j["board"] == BOARD.id and j["runtime"] == "aot"
    assert j["vectors"] > 0 and j["mismatches"] == 0
    # TIMER0 ticks at the port's rate; under -icount shift=0 one is 1e9 / 16e6 = 62.5 instructions
    port = port_for(BOARD)
    assert port.tick_source in j["tick_unit"] and port.tick_hz == BOARD.clock_hz
    assert j["ticks_per_inference"] > 0
    assert j["instructions_per_inference"] == round(j["ticks_per_inference"] * 1e9 / port.tick_hz)
    est = j["estimate"]
    assert j["arena_bytes"] == est["arena_bytes"]
    # the fit check's flash is an upper bound on the linked image
    assert j["flash_bytes"] <= est["flash_bytes"] <= BOARD.app_flash_bytes
    # static RAM is the arena and a few bytes of port state; with the reserved stack, within the estimate
    assert est["arena_bytes"] <= j["sram_bytes"] and j["sram_bytes"] + BOARD.stack_bytes <= est["sram_bytes"]
    assert est["sram_bytes"] <= BOARD.sram_size
    assert 0 < j["stack_used_bytes"] < BOARD.stack_bytes


def test_digits_cnn_runs_with_every_output_matching(digits):
    _check(digits[0])


def test_depthwise_add_pool_logistic_run_with_every_output_matching(block):
    _check(block)


def test_the_image_boots_from_a_vector_table_at_zero(digits):
    """Word 0 is the initial SP (the top of RAM), word 1 the reset handler: in flash, Thumb."""
    from elftools.elf.elffile import ELFFile

    with open(digits[1] / "build" / "firmware.elf", "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_ARM"
        text = elf.get_section_by_name(".text")
        assert text["sh_addr"] == BOARD.flash_origin == 0
        sp, reset = (int.from_bytes(text.data()[i:i + 4], "little") for i in (0, 4))
        handler = next(s for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name == "Reset_Handler")
    assert sp == BOARD.sram_origin + BOARD.sram_size
    assert reset & 1, "the reset vector must have the Thumb bit set"
    assert reset & ~1 == handler["st_value"] & ~1
    assert BOARD.flash_origin < reset & ~1 < BOARD.flash_origin + BOARD.flash_size


@pytest.mark.skipif(not __import__("os").environ.get("TFLM_ROOT"),
                    reason="TFLM_ROOT is not set: TFLM firmware for the micro:bit links a tflite-micro checkout's "
                           "Cortex-M0+ library")
def test_tflm_firmware_runs_on_the_micro_bit(tmp_path):
    """TFLM's Cortex-M0+ library (ARMv6-M code, which the nRF51's M0 runs) with the nrf51 port, in
    QEMU's microbit machine: every output equal to the host interpreter's, the arena TFLM reports
    equal to the fit check's."""
    import os

    r = cli("run", "--board", BOARD.id, "--runtime", "tflm", "--vectors", "5", "--out", tmp_path / "fw", "--json",
            "--tflm-root", os.environ["TFLM_ROOT"])
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["vectors"] == 5 and j["mismatches"] == 0
    assert j["arena_bytes"] == j["estimate"]["arena_bytes"]
    assert j["flash_bytes"] <= j["estimate"]["flash_bytes"]
