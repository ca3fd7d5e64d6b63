#!/usr/bin/env python3
"""elf2uf2.py FIRMWARE.ELF FIRMWARE.UF2: the ELF's loadable flash contents as UF2 blocks for
the RP2040's boot ROM (github.com/microsoft/uf2): 256 bytes of payload per 512-byte block,
each with its flash address and the RP2040 family id. What the pico-sdk's picotool does, in
the standard library only, so that `make` needs nothing the SDK's own build does not.
tinygen's uf2 runner writes the same blocks from the same ELF (tests/test_pico.py checks)."""

import struct
import sys

FAMILY_RP2040 = 0xE48BFF56
FLASH_START, FLASH_END = 0x10000000, 0x11000000   # the XIP window the boot ROM writes
MAGIC_START0, MAGIC_START1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
PAYLOAD = 256


def flash_image(elf: bytes) -> tuple[int, bytes]:
    """(address, bytes) of every PT_LOAD segment with file contents, placed at its load
    address (LMA: .data's initial values sit in flash after the code), gaps 0xFF."""
    if elf[:4] != b"\x7fELF" or elf[4] != 1 or elf[5] != 1:
        sys.exit("elf2uf2.py: not a 32-bit little-endian ELF file")
    phoff, = struct.unpack_from("<I", elf, 28)
    phentsize, phnum = struct.unpack_from("<HH", elf, 42)
    segments = []
    for i in range(phnum):
        p_type, p_offset, _, p_paddr, p_filesz = struct.unpack_from("<5I", elf, phoff + i * phentsize)
        if p_type == 1 and p_filesz:
            if not FLASH_START <= p_paddr < p_paddr + p_filesz <= FLASH_END:
                sys.exit(f"elf2uf2.py: a segment loads at 0x{p_paddr:08X}, outside the RP2040's flash")
            segments.append((p_paddr, elf[p_offset:p_offset + p_filesz]))
    if not segments:
        sys.exit("elf2uf2.py: the ELF has nothing to load")
    start = min(a for a, _ in segments)
    image = bytearray(b"\xff" * (max(a + len(d) for a, d in segments) - start))
    for a, d in segments:
        image[a - start:a - start + len(d)] = d
    return start, bytes(image)


def to_uf2(data: bytes, address: int, family_id: int = FAMILY_RP2040) -> bytes:
    n = (len(data) + PAYLOAD - 1) // PAYLOAD
    out = bytearray()
    for i in range(n):
        chunk = data[i * PAYLOAD:(i + 1) * PAYLOAD].ljust(PAYLOAD, b"\x00")
        head = struct.pack("<8I", MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID, address + i * PAYLOAD, PAYLOAD, i, n,
                           family_id)
        out += head + chunk.ljust(476, b"\x00") + struct.pack("<I", MAGIC_END)
    return bytes(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: elf2uf2.py FIRMWARE.ELF FIRMWARE.UF2")
    with open(sys.argv[1], "rb") as f:
        address, data = flash_image(f.read())
    with open(sys.argv[2], "wb") as f:
        f.write(to_uf2(data, address))
