"""tinygen flash without hardware: a simulated Ambiq bootloader on a pty, pyocd's own programmer
over a faked probe and flash algorithm, UF2 checked block by block against the specification,
exact dry-run byte streams."""

import json
import struct
import subprocess
import sys
from types import SimpleNamespace

import pytest
from pyocd.core.memory_map import FlashRegion, MemoryMap
from pyocd.flash.builder import MemoryBuilder, ProgrammingInfo

from ambiq_sim import SimulatedBootloader
from tinygen.boards import load_board
from tinygen.device.runners import IO, FlashError, get_runner, load_image
from tinygen.device.runners.ambiq_uart import DATA, HELLO, OTADESC, UPDATE, image_blob, message, wired_update_blob
from tinygen.device.runners.image import Image
from tinygen.device.runners.image import to_uf2, uf2_to_image
from tinygen.device.runners.uf2 import boot2_crc

EDGE = load_board("sparkfun-edge")


def app(n: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def flash_edge(sim, data, **options):
    io = IO(say=lambda t: None)
    runner = get_runner("ambiq-uart")(EDGE, io, sim.path, 921600, timeout=1.0, **options)
    seen = []
    result = runner.flash(Image(data, 0xC000, __import__("pathlib").Path("fw.bin"), "bin"), lambda d, t: seen.append((d, t)))
    return result, io, seen


def test_image_blob_fields():
    blob = image_blob(b"\x01\x02\x03", 0xC000)
    word0, crc, w2 = struct.unpack_from("<III", blob, 0)
    assert word0 == (0xCB << 24) | (128 + 4)            # magic, no encryption, header + padded app
    assert w2 == 0x10008080                              # install-time CRC check on; key indices 8
    assert struct.unpack_from("<IIII", blob, 112) == (0xC000, 0, 0xFFFFFFFF, 0xFFFFFFFF)
    assert blob[128:] == b"\x01\x02\x03\x00"
    import zlib
    assert crc == zlib.crc32(blob[8:]) & 0xFFFFFFFF
    parts = wired_update_blob(blob, 0x20000, part_size=0x2000)
    assert len(parts) == 1 and parts[0][80] == 6 and parts[0][81] == 1
    assert struct.unpack_from("<III", parts[0], 84) == (0x12344321, 0x20000, len(blob))


@pytest.mark.parametrize("size", [1000, 20_000, 300 * 1024 + 7])
def test_flash_to_the_simulated_bootloader(size):
    sim = SimulatedBootloader()
    sim.start()
    data = app(size)
    try:
        result, io, seen = flash_edge(sim, data)
    finally:
        sim.close()
    assert sim.errors == []
    assert sim.installed() == (0xC000, data + b"\x00" * (-size % 4))
    assert sim.reset_kind == 2
    assert seen[-1][0] == seen[-1][1] == result.bytes_written
    assert len(sim.parts) == (1 if size < 0x48000 - 200 else 2)


def test_a_nack_is_retried():
    sim = SimulatedBootloader(nack={4})     # the first Data message
    sim.start()
    try:
        result, io, _ = flash_edge(sim, app(5000))
    finally:
        sim.close()
    assert sim.errors == [] and sim.installed()[1][:5000] == app(5000)
    assert any("NACK: out of sequence, the bootloader expects 0; sending again" in t for t in io.transcript)


def test_a_lost_reply_to_a_data_chunk_goes_on_where_the_bootloader_is():
    """The Ack to the first Data chunk never arrives: tinygen sends the chunk again, the bootloader
    (which has it) answers out of sequence with the next offset it expects, and tinygen goes on
    from there instead of re-sending until it gives up."""
    sim = SimulatedBootloader(lose={4})
    sim.start()
    try:
        result, io, _ = flash_edge(sim, app(20_000))
    finally:
        sim.close()
    assert sim.errors == [] and sim.installed()[1][:20_000] == app(20_000)
    assert sim.kinds[:6] == [HELLO, OTADESC, UPDATE, DATA, DATA, DATA]   # chunk 0, chunk 0 again, chunk 1
    assert any("no answer within 1 s; try 1 of 4" in t for t in io.transcript)
    assert any("expects offset 8,180 next (it has this chunk already): going on" in t for t in io.transcript)


class _WiredIO(IO):
    """The Edge's serial adapter as asb.py relies on it: releasing DTR (and RTS) releases reset with
    the bootload pin high. Only the modem lines are simulated; the bytes go over the pty."""

    def __init__(self, sim, **kw):
        super().__init__(**kw)
        self.sim = sim

    def open_serial(self, url, baud, timeout):
        port = super().open_serial(url, baud, timeout)
        sim = self.sim

        class Wired(type(port)):
            def set_lines(self, dtr, rts):
                self.io.note(f"DTR {'on' if dtr else 'off'}, RTS {'on' if rts else 'off'}")
                if not dtr and not rts:
                    sim.reset()
                return True
        port.__class__ = Wired
        return port


@pytest.mark.parametrize("missed", [0, 2])
def test_reset_into_the_bootloader_through_dtr_rts(missed):
    """A board asleep in its application is reset into its bootloader through DTR/RTS, as asb.py
    does; a reset the bootloader misses is tried again, up to three times."""
    sim = SimulatedBootloader(asleep=True, missed_resets=missed)
    sim.start()
    io = _WiredIO(sim, say=lambda t: None)
    try:
        result = get_runner("ambiq-uart")(EDGE, io, sim.path, 921600, timeout=0.5).flash(
            Image(app(3000), 0xC000, __import__("pathlib").Path("fw.bin"), "bin"), lambda d, t: None)
    finally:
        sim.close()
    assert sim.errors == [] and sim.installed()[1][:3000] == app(3000)
    assert sim.resets == missed + 1
    assert f"after {missed + 1} reset(s) through DTR/RTS" in result.steps[0]
    assert io.transcript[1:4] == ["wait 5 ms", "DTR off, RTS off", "wait 100 ms"]


def test_a_board_that_never_wakes_names_the_button():
    sim = SimulatedBootloader(asleep=True, missed_resets=99)
    sim.start()
    io = _WiredIO(sim, say=lambda t: None)
    try:
        with pytest.raises(FlashError, match="did not answer the Hello after 3 resets through DTR/RTS.*hold button 14"):
            get_runner("ambiq-uart")(EDGE, io, sim.path, 921600, timeout=0.3).flash(
                Image(app(100), 0xC000, __import__("pathlib").Path("fw.bin"), "bin"), lambda d, t: None)
    finally:
        sim.close()


def test_replies_wait_as_long_as_ambiqs_host():
    """Ambiq's uart_wired_update.py waits 12 s for a reply (the last comes after the flash write);
    --timeout changes it; the Hello waits asb.py's 5 s at most."""
    from tinygen.device.runners import ambiq_uart

    assert ambiq_uart.REPLY_TIMEOUT == 12.0 and ambiq_uart.HELLO_TIMEOUT == 5.0
    timeouts = []

    class Recording(IO):
        def open_serial(self, url, baud, timeout):
            port = super().open_serial(url, baud, timeout)
            timeouts.append(timeout)
            real = port.set_timeout
            port.set_timeout = lambda t: (timeouts.append(t), real(t))
            return port

    for options in ({}, {"timeout": 30.0}):
        sim = SimulatedBootloader()
        sim.start()
        try:
            get_runner("ambiq-uart")(EDGE, Recording(say=lambda t: None), sim.path, 921600, **options).flash(
                Image(app(100), 0xC000, __import__("pathlib").Path("fw.bin"), "bin"), lambda d, t: None)
        finally:
            sim.close()
    assert timeouts == [5.0, 12.0, 5.0, 30.0]


def test_a_corrupt_reply_is_retried():
    sim = SimulatedBootloader(corrupt={3})  # the Update's Ack: its length byte flipped, so only its CRC tells
    sim.start()
    try:
        _, io, _ = flash_edge(sim, app(5000))
    finally:
        sim.close()
    assert sim.errors == [] and sim.installed()[1][:5000] == app(5000)
    assert sim.kinds[:5] == [HELLO, OTADESC, UPDATE, UPDATE, DATA]      # the Update sent again
    assert any(t.startswith("Update (") and t.endswith("no valid answer; try 1 of 4") for t in io.transcript)


def test_a_board_that_stops_answering_halfway():
    sim = SimulatedBootloader(stop_after=6)
    sim.start()
    try:
        with pytest.raises(FlashError) as e:
            flash_edge(sim, app(60_000))
    finally:
        sim.close()
    msg = str(e.value)
    assert "did not answer the Data at" in msg and "stays in its bootloader" in msg and "run tinygen flash again" in msg


def test_no_bootloader_at_all(tmp_path):
    sim = SimulatedBootloader(stop_after=0)
    sim.start()
    try:
        with pytest.raises(FlashError, match="did not answer the Hello.*hold button 14"):
            flash_edge(sim, app(100))
    finally:
        sim.close()


def test_refused_before_touching_the_board(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (EDGE.app_flash_bytes + 1))
    io = IO(say=lambda t: None)
    runner = get_runner("ambiq-uart")(EDGE, io, str(tmp_path / "no-such-port"), None)
    with pytest.raises(FlashError, match="over by 1"):
        runner.flash(load_image(big, EDGE), lambda d, t: None)
    with pytest.raises(FlashError, match="linked at 0x8000000.*0xC000"):
        runner.flash(Image(b"\0" * 16, 0x08000000, big, "elf"), lambda d, t: None)
    assert io.transcript == []      # nothing was opened or sent


def test_dry_run_byte_stream_is_exact(tmp_path):
    img = tmp_path / "tiny.bin"
    img.write_bytes(b"\xAA" * 10)
    io = IO(dry_run=True, say=lambda t: None)
    get_runner("ambiq-uart")(EDGE, io, "/dev/ttyUSB0", None).flash(load_image(img, EDGE), lambda d, t: None)
    part = wired_update_blob(image_blob(b"\xAA" * 10, 0xC000), 0x20000)[0]
    import zlib
    sent = [message(0), message(2, struct.pack("<I", 0xFE000)),
            message(3, struct.pack("<III", len(part), zlib.crc32(part) & 0xFFFFFFFF, 0)),
            message(8, struct.pack("<I", 0) + part), message(6, struct.pack("<I", 2))]
    fmt = lambda b: f"-> {len(b)} bytes {b[:16].hex()}{'...' if len(b) > 16 else ''}"  # noqa: E731
    assert io.transcript == (["open /dev/ttyUSB0 at 921600 baud", "wait 5 ms", "DTR off, RTS off", "wait 100 ms"]
                             + [fmt(b) for b in sent])


class FakeTarget:
    """A target as pyocd's MemoryLoader sees it: a real memory map whose flash region hands out a
    FakeFlashBuilder, memory to read back, a reset. Everything above it is pyocd's own code."""

    def __init__(self, flash_start: int, flash_bytes: int, flip=None):
        self.mem, self.flip, self.resets = {}, flip, 0
        region = FlashRegion(start=flash_start, length=flash_bytes, blocksize=0x800, is_boot_memory=True)
        region.flash = FakeFlash(self, region)
        self.memory_map = MemoryMap(region)
        self.debug_sequence_delegate = None
        self.selected_core = SimpleNamespace(node_name="cortex_m")

    def read_memory_block8(self, addr, n):
        data = [self.mem.get(addr + i, 0xFF) for i in range(n)]
        if self.flip is not None:
            data[self.flip] ^= 1
        return data

    def reset(self):
        self.resets += 1


class FakeFlash:
    def __init__(self, target, region):
        self.target, self.region, self.builders = target, region, []

    def get_flash_builder(self):
        self.builders.append(FakeFlashBuilder(self.target, self.region))
        return self.builders[-1]


class FakeFlashBuilder(MemoryBuilder):
    """pyocd's MemoryBuilder interface (an ABC: a missing method fails here), writing the fake
    target's memory instead of running a flash algorithm over a probe."""

    def __init__(self, target, region):
        super().__init__()
        self.target, self._region, self.chunks = target, region, []

    @property
    def region(self):
        return self._region

    def add_data(self, addr, data):
        assert all(isinstance(b, int) and 0 <= b < 256 for b in data), "pyocd hands builders byte values"
        self.chunks.append((addr, list(data)))
        self._buffered_data_size += len(data)

    def erase(self, progress_cb=None, **kwargs):
        progress_cb(1.0)

    def program(self, progress_cb=None, **kwargs):
        for addr, data in self.chunks:
            for i, b in enumerate(data):
                self.target.mem[addr + i] = b
        progress_cb(1.0)
        return ProgrammingInfo(total_byte_count=self._buffered_data_size, program_byte_count=self._buffered_data_size)


class FakeSession:
    def __init__(self, target):
        self.target, self.board, self.options = target, SimpleNamespace(target=target), {}

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("flip", [None, 5])
def test_pyocd_runner_programs_reads_back_and_resets(flip, monkeypatch):
    """The runner drives pyocd's real FileProgrammer and MemoryLoader; only the probe and the
    flash algorithm below them are faked, so a call pyocd would reject fails here too."""
    board = load_board("nucleo-l4r5zi")
    target = FakeTarget(0x08000000, 2 * 1024 * 1024, flip)
    calls = []
    cls = get_runner("pyocd")
    monkeypatch.setattr(cls, "session_factory", staticmethod(lambda t, probe: calls.append((t, probe)) or FakeSession(target)))
    data = app(3000)
    runner = cls(board, IO(say=lambda t: None), probe="0669FF")
    img = Image(data, 0x08000000, __import__("pathlib").Path("fw.bin"), "bin")
    seen = []
    if flip is None:
        result = runner.flash(img, lambda d, t: seen.append((d, t)))
        assert calls == [("stm32l4r5zitx", "0669FF")] and target.resets == 1
        assert result.verified == "read back and compared byte for byte"
        assert bytes(target.mem[0x08000000 + i] for i in range(len(data))) == data
        [builder] = target.memory_map[0].flash.builders
        assert [a for a, _ in builder.chunks] == [0x08000000]
        assert seen[-1] == (len(data), len(data))
    else:
        with pytest.raises(FlashError, match="Read-back differs from the image at 0x8000005"):
            runner.flash(img, lambda d, t: None)
        assert target.resets == 0


def test_uf2_blocks_follow_the_specification():
    data = app(1000)
    uf2 = to_uf2(data, 0x10000000, 0xE48BFF56)
    assert len(uf2) == 4 * 512
    for i in range(4):
        block = uf2[i * 512:(i + 1) * 512]
        m0, m1, flags, addr, size, no, total, family = struct.unpack_from("<8I", block)
        assert (m0, m1) == (0x0A324655, 0x9E5D5157)
        assert flags == 0x2000 and family == 0xE48BFF56      # familyID present
        assert addr == 0x10000000 + 256 * i and size == 256 and no == i and total == 4
        assert struct.unpack_from("<I", block, 508)[0] == 0x0AB16F30
        assert block[32:32 + 256] == data[i * 256:(i + 1) * 256].ljust(256, b"\0")
        assert block[32 + 256:508] == b"\0" * (476 - 256)


def test_uf2_runner_copies_to_the_drive(tmp_path):
    pico = load_board("raspberry-pi-pico")
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    data = bytearray(app(700))
    data[252:256] = boot2_crc(data).to_bytes(4, "little")   # a Pico image starts with a checksummed boot2
    img = Image(bytes(data), 0x10000000, tmp_path / "fw.bin", "bin")
    get_runner("uf2")(pico, IO(say=lambda t: None), drive=str(drive)).flash(img, lambda d, t: None)
    back = uf2_to_image(drive / "firmware.uf2")
    assert back.address == 0x10000000 and back.data[:700] == img.data


def test_cli_dry_run_json(tmp_path):
    img = tmp_path / "fw.bin"
    img.write_bytes(app(100))
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "flash", img, "--board", "sparkfun-edge", "--port",
                        "/dev/ttyUSB9", "--dry-run", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["runner"] == "ambiq-uart" and s["dry_run"] and s["address"] == 0xC000
    assert "-> 8 bytes" in r.stderr   # the Hello, shown not sent


def test_cli_wrong_runner_is_one_sentence(tmp_path):
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\0")
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "flash", img, "--board", "sparkfun-edge", "--runner", "jlink"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "There is no runner 'jlink'" in r.stderr and "Traceback" not in r.stderr


def test_bossac_argv_is_exact(tmp_path):
    nano = load_board("arduino-nano-33-ble-sense")
    io = IO(dry_run=True, say=lambda t: None)
    img = Image(app(64), 0x10000, tmp_path / "fw.bin", "bin")
    get_runner("bossac")(nano, io, "/dev/ttyACM0").flash(img, lambda d, t: None)
    assert io.transcript[0].startswith("Double-tap Arduino Nano 33 BLE Sense's reset button")
    assert io.transcript[1].startswith("write 64 bytes to ") and io.transcript[1].endswith("firmware.bin")
    bin_path = io.transcript[1].split(" to ", 1)[1]
    # the bootloader adds its base, 0x10000: an image linked there goes at bossac's offset 0
    assert io.transcript[2] == f"$ bossac -d --port=/dev/ttyACM0 -U -i -e -w -v --offset=0x0 -R {bin_path}"


def test_the_emulator_has_nothing_to_flash(tmp_path):
    with pytest.raises(FlashError, match="is emulated: there is nothing to flash"):
        get_runner("qemu")(load_board("mps2-an386"), IO(say=lambda t: None)).flash(
            Image(b"\0", 0, tmp_path / "x.bin", "bin"), lambda d, t: None)
