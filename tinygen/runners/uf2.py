"""UF2 (github.com/microsoft/uf2): the image as 512-byte blocks, copied onto the RP2040's
BOOTSEL mass-storage drive (RPI-RP2)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from .core import FlashError, FlashResult, Image, Progress, Runner, check_image, register

MAGIC_START0, MAGIC_START1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
PAYLOAD = 256
BLOCK = 512


def to_uf2(data: bytes, address: int, family_id: int) -> bytes:
    """256 bytes of payload per block, as the RP2040 boot ROM wants them."""
    n = (len(data) + PAYLOAD - 1) // PAYLOAD
    out = bytearray()
    for i in range(n):
        chunk = data[i * PAYLOAD:(i + 1) * PAYLOAD].ljust(PAYLOAD, b"\x00")
        head = struct.pack("<8I", MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID, address + i * PAYLOAD, PAYLOAD, i, n, family_id)
        out += head + chunk.ljust(476, b"\x00") + struct.pack("<I", MAGIC_END)
    return bytes(out)


def uf2_to_image(path: Path) -> Image:
    raw = path.read_bytes()
    if len(raw) % BLOCK or not raw:
        raise FlashError(f"{path} is not a UF2 file (its size is not a multiple of 512).")
    pieces = {}
    for off in range(0, len(raw), BLOCK):
        m0, m1, flags, addr, size, _, _, _ = struct.unpack_from("<8I", raw, off)
        if (m0, m1) != (MAGIC_START0, MAGIC_START1) or struct.unpack_from("<I", raw, off + 508)[0] != MAGIC_END:
            raise FlashError(f"{path}: block {off // BLOCK} is not a UF2 block.")
        pieces[addr] = raw[off + 32:off + 32 + size]
    start = min(pieces)
    end = max(a + len(d) for a, d in pieces.items())
    buf = bytearray(b"\xff" * (end - start))
    for a, d in pieces.items():
        buf[a - start:a - start + len(d)] = d
    return Image(bytes(buf), start, path, "uf2")


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
        uf2 = to_uf2(image.data, image.address, family)
        drive = Path(self.options["drive"]) if self.options.get("drive") else find_drive()
        if drive is None:
            raise FlashError("No RPI-RP2 drive is mounted: hold BOOTSEL while plugging the Pico in, then run "
                             "tinygen flash again (or pass --drive with its mount point).")
        started = time.monotonic()
        self.io.write_file(drive / "firmware.uf2", uf2)
        progress(len(uf2), len(uf2))
        return FlashResult(self.name, len(uf2), time.monotonic() - started,
                           "the boot ROM checks each block's magic numbers and address",
                           [f"copied {len(uf2) // BLOCK} UF2 blocks (family 0x{family:08X}) at 0x{image.address:X} to {drive}"])
