"""MLPerf Tiny's energy mode on every port: the DUT firmware built with `--harness mlperf
--mlperf-mode energy`, linked against each port's SDKs, and its timestamp pin checked without the
board. The pin is the board profile's serial.timestamp_pin, driven by the port's own
firmware/boards/<family>/timestamp_pin.c. mps2-an386 runs in QEMU, whose `-d unimp` log shows each
store to the CMSDK GPIO; the other ports' pin functions are run from the linked image by
thumb_trace, and what they store is compared with what each chip's reference manual says sets the
pin up as a push-pull output and drives it high and low.

Each board needs its SDK variables (AMBIQ_ROOT; NRFX_ROOT, TINYUSB_ROOT and CMSIS_ROOT;
PICO_SDK_PATH; STM32CUBE_L4_ROOT; STM32CUBE_F7_ROOT); a test without them skips, naming them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import needs
from test_cli import run as cli
from thumb_trace import Image

from tinygen.boards import load_board
from tinygen.ports import port_for

pytestmark = [needs("arm-none-eabi-gcc")]

MODEL = "kws_ref_model.tflite"

# What each chip's reference manual says configures the board's pin and drives it, as
# (register address, mask, value after init), the (address, value) stored for high and for low,
# and register reset values that matter (a bit the init must clear).
#   STM32L4R5 (RM0432), PF13: RCC_AHB2ENR 0x4002104C bit 5 GPIOFEN; GPIOF 0x48001400: MODER
#   bits 27:26 = 01 (reset 11, analog), OTYPER bit 13 = 0, PUPDR bits 27:26 = 00; BSRR +0x18.
#   STM32F746 (RM0385), PI3: RCC_AHB1ENR 0x40023830 bit 8 GPIOIEN; GPIOI 0x40022000: MODER bits
#   7:6 = 01, OTYPER bit 3 = 0; BSRR +0x18.
#   nRF52840 (product specification), P0.23: P0 0x50000000, PIN_CNF[23] at +0x75C DIR (bit 0) = 1;
#   OUTSET +0x508, OUTCLR +0x50C.
#   RP2040 (datasheet), GPIO22: SIO 0xD0000000 GPIO_OUT_SET +0x14, GPIO_OUT_CLR +0x18, GPIO_OE_SET
#   +0x24; IO_BANK0 GPIO22_CTRL 0x400140B4 FUNCSEL (bits 4:0) = 5 (SIO); PADS_BANK0 GPIO22
#   0x4001C05C OD (bit 7) = 0.
#   Apollo3 (datasheet), pad 39: GPIO 0x40010000 WTSB +0x94 sets pads 32-49, WTCB +0x9C clears
#   them (bit 39 - 32 = 7); the pad itself is configured by the HAL's am_hal_gpio_pinconfig(39,
#   g_AM_HAL_GPIO_OUTPUT) (function 3 = GPIO, push-pull).
#   MPS2 CMSDK AHB GPIO0 (0x40010000), bit 8: OUTENSET +0x10, ALTFUNCCLR +0x1C, UB_MASKED +0x804.
CHIPS = {
    "nucleo-l4r5zi": dict(
        config=[(0x4002104C, 1 << 5, 1 << 5), (0x48001400, 3 << 26, 1 << 26), (0x48001404, 1 << 13, 0),
                (0x4800140C, 3 << 26, 0)],
        high=(0x48001418, 1 << 13), low=(0x48001418, 1 << 29), output=0x48001400, reset={0x48001400: 0xFFFF_FFFF}),
    "stm32f746g-disco": dict(
        config=[(0x40023830, 1 << 8, 1 << 8), (0x40022000, 3 << 6, 1 << 6), (0x40022004, 1 << 3, 0),
                (0x4002200C, 3 << 6, 0)],
        high=(0x40022018, 1 << 3), low=(0x40022018, 1 << 19), output=0x40022000,
        reset={0x40022000: 0xFFFF_FFFF, 0x4002200C: 0xC0}),
    "arduino-nano-33-ble-sense": dict(
        config=[(0x5000075C, 1, 1)], high=(0x50000508, 1 << 23), low=(0x5000050C, 1 << 23), output=0x5000075C,
        reset={}),
    "raspberry-pi-pico": dict(
        config=[(0xD0000024, 1 << 22, 1 << 22), (0x400140B4, 0x1F, 5), (0x4001C05C, 1 << 7, 0)],
        high=(0xD0000014, 1 << 22), low=(0xD0000018, 1 << 22), output=0xD0000024,
        reset={0x400140B4: 0x1F, 0x4001C05C: 0x56}),
    # the HAL's pinconfig, called last, makes the pad an output
    "sparkfun-edge": dict(config=[], high=(0x40010094, 1 << 7), low=(0x4001009C, 1 << 7), output=None, reset={}),
    "mps2-an386": dict(
        config=[(0x40010010, 1 << 8, 1 << 8), (0x4001001C, 1 << 8, 1 << 8)],
        high=(0x40010804, 1 << 8), low=(0x40010804, 0), output=0x40010010, reset={}),
}


def _skip_without_sdks(board_id: str) -> None:
    missing = [v for v in port_for(load_board(board_id)).sdk_variables if not os.environ.get(v)]
    if missing:
        pytest.skip(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: the {board_id} "
                    "energy-mode firmware links against them")


_built: dict[str, tuple[dict, Path]] = {}


@pytest.fixture(scope="module")
def energy_build(tmp_path_factory, shared_models):
    def build(board_id: str) -> tuple[dict, Path]:
        _skip_without_sdks(board_id)
        if board_id not in _built:
            out = tmp_path_factory.mktemp(f"energy-{board_id}")
            r = cli("build", "--board", board_id, "--model", shared_models / MODEL, "--runtime", "aot",
                    "--harness", "mlperf", "--mlperf-mode", "energy", "--compile", "--out", out, "--json")
            assert r.returncode == 0, r.stderr
            _built[board_id] = (json.loads(r.stdout), out)
        return _built[board_id]
    return build


@pytest.mark.parametrize("board_id", list(CHIPS))
def test_energy_firmware_links_with_the_boards_pin_and_9600_baud(energy_build, board_id):
    j, out = energy_build(board_id)
    board = load_board(board_id)
    pin = board.raw["serial"]["timestamp_pin"]
    assert "port/timestamp_pin.c" in j["project"]["files"]
    make_log = (out / "build" / "make.log").read_text()
    assert f"-DTG_TIMESTAMP_PIN={pin}u" in make_log and "-DTG_UART_BAUD=9600" in make_log
    assert re.search(r"timestamp_pin\.c", make_log)
    # the fit check's estimate still holds the image with the pin code and the DUT in it
    linked = j["size"]["text"] + j["size"]["data"]
    assert linked <= j["flash"]["total_bytes"]


@pytest.mark.parametrize("board_id", list(CHIPS))
def test_the_linked_pin_code_makes_a_push_pull_output_that_idles_high(energy_build, board_id):
    _, out = energy_build(board_id)
    chip = CHIPS[board_id]
    image = Image(out / "build" / "firmware.elf")
    t = image.run("board_timestamp_pin_init", reset=chip["reset"])
    for addr, mask, value in chip["config"]:
        assert t.memory.get(addr, 0) & mask == value, f"{addr:#x} = {t.memory.get(addr, 0):#x}"
    # driven high before it becomes an output: the pin shows no falling edge at init
    first_output = min((i for i, (a, _) in enumerate(t.stores) if a == chip["output"]), default=len(t.stores))
    assert chip["high"] in t.stores[:first_output]
    if board_id == "sparkfun-edge":
        # the HAL configures the pad: pad 39, with the HAL's own push-pull GPIO output set-up
        ((callee, args),) = t.calls
        cfg = int.from_bytes(image.read(image.symbols["g_AM_HAL_GPIO_OUTPUT"], 4), "little")
        assert callee == "am_hal_gpio_pinconfig" and args[:2] == [load_board(board_id).raw["serial"]["timestamp_pin"], cfg]
    else:
        assert t.calls == []
    # one store per level, to the register the manual names, changing this pin alone
    assert image.run("board_timestamp_pin_write", 1).stores == [chip["high"]]
    assert image.run("board_timestamp_pin_write", 0).stores == [chip["low"]]


def test_energy_mode_consoles_leave_usb_for_a_uart_at_9600(energy_build):
    """The Nano and the Pico print on USB CDC by default; in energy mode the board is powered through
    the monitor and talks to MLPerf's IO manager over a UART, so board_init brings up a UART at 9600
    and no USB, and the USB stack is not in the image. The Edge's UART goes through its BSP with a
    configuration whose first field, ui32BaudRate, is 9600 (am_hal_uart_config_t)."""
    # nRF52840 product specification, UART0 at 0x40002000: PSEL.TXD +0x50C, PSEL.RXD +0x514 (pin, port
    # in bit 5), BAUDRATE +0x524 (0x00275000 = 9600), ENABLE +0x500 (4); the board's D1/TX = P1.03,
    # D0/RX = P1.10. board_init waits for HFCLKSTARTED (CLOCK +0x100): the model says it started.
    _, out = energy_build("arduino-nano-33-ble-sense")
    image = Image(out / "build" / "firmware.elf")
    t = image.run("board_init", status={0x40000100: 1})
    assert t.calls == [] and "tud_task_ext" not in image.symbols     # no tusb_init: USB stays off
    uart = {a: v for a, v in t.stores if 0x40002000 <= a < 0x40003000}
    assert uart[0x4000250C] == 32 + 3 and uart[0x40002514] == 32 + 10
    assert uart[0x40002524] == 0x0027_5000 and uart[0x40002500] == 4

    # pico-sdk: uart_init(uart0 = UART0_BASE 0x40034000, 9600), GP0 and GP1 to GPIO_FUNC_UART (2)
    _, out = energy_build("raspberry-pi-pico")
    image = Image(out / "build" / "firmware.elf")
    calls = [(name, args[:2]) for name, args in image.run("board_init").calls]
    assert calls[:3] == [("uart_init", [0x4003_4000, 9600]), ("gpio_set_function", [0, 2]), ("gpio_set_function", [1, 2])]
    assert "stdio_usb_init" not in image.symbols

    _, out = energy_build("sparkfun-edge")
    image = Image(out / "build" / "firmware.elf")
    config = dict(image.run("board_init").calls)["am_bsp_uart_printf_enable_custom"][0]
    assert int.from_bytes(image.read(config, 4), "little") == 9600


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")
def test_mps2_energy_firmware_pulses_gpio0_bit_8_in_qemu(energy_build, tmp_path):
    """The built KWS energy-mode image booted in QEMU's mps2-an386: the CMSDK GPIO blocks are
    unimplemented devices there, and `-d unimp` logs every store. The pin is set high and made an
    output at boot, pulsed once at boot (th_timestamp_initialize), twice around each `infer`'s
    inferences and once per `timestamp`; the UART carries no m-lap-us."""
    _, out = energy_build("mps2-an386")
    log = tmp_path / "unimp.log"
    from qemu_serial import mlperf_dut

    with mlperf_dut(out / "build" / "firmware.elf", "mps2-an386", ["-d", "unimp", "-D", str(log)], timeout=60) as c:
        assert c.sync() == "dut [tinygen]" and c.profile()["model"] == "kws01"
        c.load(bytes(490))
        lines = c.command("infer 3 1")
        assert "m-infer-done" in lines and not any(l.startswith("m-lap-us") for l in lines)
        assert c.command("timestamp") == []
        c.command("name")     # a round trip after the last pulse, so that it is in the log
    stores = [(int(o, 16), int(v, 16)) for o, v in
              re.findall(r"cmsdk-ahb-gpio: unimplemented device write \(size 4, offset (0x[0-9a-f]+), value (0x[0-9a-f]+)\)",
                         log.read_text())]
    high, low = (0x804, 0x100), (0x804, 0)
    # high first, alternate function off, output on; then pulses: boot, infer (start, end), timestamp
    assert stores == [high, (0x01C, 0x100), (0x010, 0x100)] + [low, high] * 4, stores


def test_a_board_without_a_pin_is_refused_in_one_sentence(tmp_path, shared_models):
    from tinygen.boards import boards_dir

    text = (boards_dir() / "mps2-an386.toml").read_text()
    text = re.sub(r"\ntimestamp_pin = \d+\n", "\n", text)
    (tmp_path / "nopin.toml").write_text(text)
    r = cli("build", "--board", tmp_path / "nopin.toml", "--model", shared_models / MODEL, "--runtime", "aot",
            "--harness", "mlperf", "--mlperf-mode", "energy", "--out", tmp_path / "o")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "board profile names none (serial.timestamp_pin)" in " ".join(r.stderr.split()), r.stderr
