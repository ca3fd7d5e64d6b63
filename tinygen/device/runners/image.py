"""The image to flash: read from a build folder or a .bin/.hex/.elf/.uf2 file, and checked
against the board before anything touches it. UF2 (github.com/microsoft/uf2) is written and
read here too: 512-byte blocks of 256 bytes of payload, as the RP2040's boot ROM wants them."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ...boards import Board
from ...errors import TinygenError


class FlashError(TinygenError):
    """Flashing failed or was refused; the message says which step and what to do."""


@dataclass
class Image:
    data: bytes
    address: int              # where the first byte goes
    source: Path
    kind: str                 # bin, hex, elf, uf2

    def end(self) -> int:
        return self.address + len(self.data)


def load_image(path: Path, board: Board) -> Image:
    """A build directory from `tinygen build --compile`, or a .bin/.hex/.elf/.uf2 file."""
    if path.is_dir():
        for candidate in (path / "build" / "firmware.elf", path / "build" / "firmware.bin"):
            if candidate.exists():
                path = candidate
                break
        else:
            raise FlashError(f"{path} holds no build/firmware.elf or .bin: run `tinygen build --compile` first.")
    if not path.exists():
        raise FlashError(f"There is no image at {path}.")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        return Image(path.read_bytes(), load_address(board), path, "bin")
    if suffix == ".hex":
        from intelhex import IntelHex, HexReaderError

        try:
            ih = IntelHex(str(path))
        except (HexReaderError, ValueError) as e:
            raise FlashError(f"{path} is not a valid Intel HEX file ({e}).") from None
        start = ih.minaddr()
        return Image(bytes(ih.tobinarray(start=start)), start, path, "hex")
    if suffix == ".elf":
        return _load_elf(path)
    if suffix == ".uf2":
        return uf2_to_image(path)
    raise FlashError(f"{path.name}: tinygen flashes .bin, .hex, .elf or .uf2 images, or a build directory.")


def _load_elf(path: Path) -> Image:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            segs = [(s["p_paddr"], s.data()) for s in elf.iter_segments()
                    if s["p_type"] == "PT_LOAD" and s["p_filesz"] > 0]
    except ELFError as e:
        raise FlashError(f"{path} is not a readable ELF file ({e}).") from None
    if not segs:
        raise FlashError(f"{path} has nothing to load.")
    segs.sort()
    start = segs[0][0]
    end = max(a + len(d) for a, d in segs)
    if end - start > 64 * 1024 * 1024:
        raise FlashError(f"{path}'s segments span {end - start:,} bytes; is it linked for flash at all?")
    buf = bytearray(b"\xff" * (end - start))
    for a, d in segs:
        buf[a - start:a - start + len(d)] = d
    return Image(bytes(buf), start, path, "elf")


def load_address(board: Board) -> int:
    """Where the board's loader writes an image: flash_tool.load_address, else after the bootloader."""
    return int(board.raw.get("flash_tool", {}).get("load_address", board.app_flash_origin))


def check_image(image: Image, board: Board) -> None:
    """Refuse, before touching the board, an image that cannot be right for it."""
    if image.address != load_address(board):
        raise FlashError(
            f"{image.source.name} is linked at 0x{image.address:X}, but {board.id}'s loader puts applications at "
            f"0x{load_address(board):X}; rebuild it for {board.id}.")
    room = board.flash_origin + board.flash_size - image.address
    if len(image.data) > room:
        raise FlashError(
            f"{image.source.name} is {len(image.data):,} bytes; {board.id} has {room:,} bytes of flash from "
            f"0x{image.address:X} (over by {len(image.data) - room:,}).")


# --- UF2 ---

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
