"""The uf2 runner: the image as UF2 blocks (image.to_uf2), copied onto the RP2040's BOOTSEL
mass-storage drive (RPI-RP2). An image for the start of flash carries its own boot2, whose
CRC32 the boot ROM checks before running anything: checked here first, since a wrong one
leaves the Pico in BOOTSEL with no word as to why."""

from __future__ import annotations

import binascii
import hashlib
import time
from pathlib import Path

from .core import FlashError, FlashResult, Image, Progress, Runner, check_image, register
from .image import BLOCK, to_uf2, uf2_to_image  # noqa: F401  (uf2_to_image: for callers)

RP2040_FAMILY = 0xE48BFF56
BOOT2_BYTES = 256   # the boot ROM copies these to SRAM; the last 4 are the CRC32 of the first 252


def _bitrev(x: int, width: int) -> int:
    return int(f"{x:0{width}b}"[::-1], 2)


def boot2_crc(boot2: bytes) -> int:
    """The CRC32 the RP2040 boot ROM computes over boot2's first 252 bytes: polynomial
    0x04C11DB7 taken MSB first, initial value 0xFFFFFFFF, no final inversion (CRC-32/MPEG-2).
    Computed as the pico-sdk's pad_checksum does, with zlib's bit-reflected CRC32 on bit-reversed
    bytes, reversed back."""
    data = bytes(_bitrev(b, 8) for b in boot2[:BOOT2_BYTES - 4])
    return _bitrev(binascii.crc32(data) ^ 0xFFFFFFFF, 32)


def check_boot2(image: Image) -> int:
    """The image's boot2 CRC32, or a FlashError where the boot ROM would refuse it."""
    if len(image.data) < BOOT2_BYTES:
        raise FlashError(f"{image.source.name} is {len(image.data)} bytes, shorter than the 256-byte boot2 an RP2040 "
                         "image starts with; rebuild it with the project's Makefile.")
    stored = int.from_bytes(image.data[BOOT2_BYTES - 4:BOOT2_BYTES], "little")
    crc = boot2_crc(image.data)
    if stored != crc:
        raise FlashError(f"{image.source.name}'s boot2 ends with 0x{stored:08X}, but the CRC32 of its first 252 bytes "
                         f"is 0x{crc:08X}: the boot ROM would not run it and the Pico would come back as the RPI-RP2 "
                         "drive. Rebuild it with the project's Makefile, which checksums boot2 with the pico-sdk's "
                         "pad_checksum.")
    return crc


def find_drive() -> Path | None:
    for root in (Path("/media"), Path("/run/media"), Path("/Volumes"), Path("/mnt")):
        for info in root.glob("**/INFO_UF2.TXT") if root.exists() else []:
            if "RPI-RP2" in info.read_text(errors="replace") or info.parent.name == "RPI-RP2":
                return info.parent
    return None


@register
class Uf2Runner(Runner):
    name = "uf2"

    def flash(self, image: Image, progress: Progress) -> FlashResult:
        check_image(image, self.board)
        family = int(self.board.raw.get("flash_tool", {}).get("family_id", 0))
        steps = []
        if family == RP2040_FAMILY and image.address == self.board.flash_origin:
            steps.append(f"boot2 CRC32 0x{check_boot2(image):08X} matches its first 252 bytes")
        uf2 = to_uf2(image.data, image.address, family)
        drive = Path(self.options["drive"]) if self.options.get("drive") else find_drive()
        if drive is None and self.io.dry_run:   # a dry run shows what the drive would get, mounted or not
            drive = Path("RPI-RP2")
        if drive is None:
            raise FlashError("No RPI-RP2 drive is mounted: hold BOOTSEL while plugging the Pico in, then run "
                             "tinygen flash again (or pass --drive with its mount point).")
        # what the drive gets, named exactly (a dry run shows it too): compare with build/firmware.uf2
        steps.append(f"firmware.uf2: {len(uf2) // BLOCK} UF2 blocks (family 0x{family:08X}) from 0x{image.address:X}, "
                     f"{len(image.data):,} bytes of image, sha256 {hashlib.sha256(uf2).hexdigest()}")
        for step in steps:
            self.io.note(step)
        started = time.monotonic()
        self.io.write_file(drive / "firmware.uf2", uf2)
        progress(len(uf2), len(uf2))
        steps.append(f"copied it to {drive}")
        return FlashResult(self.name, len(uf2), time.monotonic() - started,
                           "the boot ROM checks each block's magic numbers and address"
                           + (", and boot2's CRC32" if family == RP2040_FAMILY else ""), steps)
