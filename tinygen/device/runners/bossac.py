"""Arduino's SAM-BA loader for the Nano 33 BLE Sense (double-tap reset to enter it), through
the user's `bossac`, as the Arduino mbed core uploads.

The Nano's bootloader adds its own base, 0x10000, to the addresses bossac sends: the Arduino
IDE uploads sketches linked at 0x10000 with no --offset, and an image for 0x26000 (above a
SoftDevice) goes with --offset=0x16000 (Arduino's nano33ble bootloader-update sketch, OpenMV's
flasher). So the offset is the image's address less the start of the application flash."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from .core import FlashError, FlashResult, Image, Progress, Runner, check_image, register


@register
class BossacRunner(Runner):
    name = "bossac"
    needs_port = True

    def argv(self, bin_path: Path, image: Image) -> list[str]:
        offset = image.address - self.board.app_flash_origin
        # -e erase, -w write, -v verify (bossac reads the flash back and compares), -R reset
        return ["bossac", "-d", f"--port={self.port}", "-U", "-i", "-e", "-w", "-v", f"--offset=0x{offset:X}",
                "-R", str(bin_path)]

    def flash(self, image: Image, progress: Progress) -> FlashResult:
        check_image(image, self.board)
        if not self.io.dry_run and shutil.which("bossac") is None:
            raise FlashError("bossac is not installed (it comes with the Arduino mbed core, or apt-get install bossa-cli).")
        # The loader only answers while it waits after a double tap (or after tinygen's firmware,
        # like an Arduino sketch, gets the 1200-baud touch): say so before bossac looks for it.
        self.io.note(f"Double-tap {self.board.name}'s reset button: its LED pulses while the bootloader waits on "
                     f"{self.port} (or open the port at 1200 baud, as the Arduino IDE does)")
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            bin_path = Path(tmp) / "firmware.bin"
            self.io.write_file(bin_path, image.data)
            self.io.run(self.argv(bin_path, image))
        progress(len(image.data), len(image.data))
        return FlashResult(self.name, len(image.data), time.monotonic() - started, "bossac -v: read back and compared",
                           [f"bossac wrote {len(image.data):,} bytes at 0x{image.address:X} and reset the board"])


@register
class QemuRunner(Runner):
    name = "qemu"

    def flash(self, image: Image, progress: Progress) -> FlashResult:
        raise FlashError(f"{self.board.id} is emulated: there is nothing to flash; `tinygen build --board "
                         f"{self.board.id} --compile --run` boots the image in QEMU.")
