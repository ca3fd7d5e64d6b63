"""Coded model images for storage and over-the-air updates: the model blob Huffman-coded
(canonical Huffman over bytes, decoded on the board by firmware/common/tg_huffman.c), next to
zlib and lzma from Python's standard library; the smallest is kept.

The Huffman image ("TGH1"), every integer little-endian:
  bytes 0-3    b"TGH1"
  bytes 4-7    the decoded length
  bytes 8-135  the code length of each byte value 0..255, 4 bits each (low nibble first),
               0 for a value that does not occur; lengths are at most 15 bits
  bytes 136-   the codes, most significant bit first, canonical (shorter codes first, then
               by byte value), the last byte padded with zero bits."""

from __future__ import annotations

import heapq
import lzma
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"TGH1"
MAX_CODE_BITS = 15
HEADER_BYTES = 8 + 128
METHODS = ("huffman", "zlib", "lzma")


def _code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code lengths for byte counts, at most MAX_CODE_BITS: when the tree is deeper, the
    rarest counts are flattened (halved, kept >= 1) and the tree rebuilt, the way JPEG encoders
    bound their tables, costing a fraction of a bit where it happens."""
    counts = counts.astype(np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(256, np.int64)
    if len(used) == 1:           # one value: it still needs a one-bit code
        lengths[used[0]] = 1
        return lengths
    while True:
        heap = [(int(counts[s]), int(s), (int(s),)) for s in used]
        heapq.heapify(heap)
        depth = np.zeros(256, np.int64)
        while len(heap) > 1:
            ca, ka, sa = heapq.heappop(heap)
            cb, kb, sb = heapq.heappop(heap)
            for s in sa + sb:
                depth[s] += 1
            heapq.heappush(heap, (ca + cb, min(ka, kb), sa + sb))
        if depth.max() <= MAX_CODE_BITS:
            return depth
        counts = np.where(counts > 0, np.maximum(1, counts >> 1), 0)


def _canonical(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each byte value, from its length (DEFLATE's construction)."""
    codes = np.zeros(256, np.int64)
    code = 0
    for length in range(1, MAX_CODE_BITS + 1):
        for s in np.flatnonzero(lengths == length):
            codes[s] = code
            code += 1
        code <<= 1
    return codes


def huffman_encode(data: bytes) -> bytes:
    """`data` as a TGH1 image (module docstring)."""
    arr = np.frombuffer(data, np.uint8)
    lengths = _code_lengths(np.bincount(arr, minlength=256))
    codes = _canonical(lengths)
    nibbles = lengths.astype(np.uint8)
    header = MAGIC + struct.pack("<I", len(data)) + bytes((nibbles[0::2] | (nibbles[1::2] << 4)).tolist())
    if not len(arr):
        return header
    # Every code as MAX_CODE_BITS bits, left-aligned; keep the first `length` of each row.
    sym_len = lengths[arr]
    aligned = codes[arr] << (MAX_CODE_BITS - sym_len)
    bits = (aligned[:, None] >> np.arange(MAX_CODE_BITS - 1, -1, -1)) & 1
    keep = np.arange(MAX_CODE_BITS)[None, :] < sym_len[:, None]
    return header + np.packbits(bits[keep].astype(np.uint8)).tobytes()


def huffman_decode(image: bytes) -> bytes:
    """The bytes a TGH1 image holds (the same algorithm as tg_huffman.c, for tests and tools)."""
    if len(image) < HEADER_BYTES or image[:4] != MAGIC:
        raise ValueError("not a TGH1 image")
    (size,) = struct.unpack_from("<I", image, 4)
    packed = np.frombuffer(image, np.uint8, 128, 8)
    lengths = np.empty(256, np.int64)
    lengths[0::2], lengths[1::2] = packed & 15, packed >> 4
    codes = _canonical(lengths)
    table = {(int(lengths[s]), int(codes[s])): s for s in np.flatnonzero(lengths)}
    bits = np.unpackbits(np.frombuffer(image, np.uint8, offset=HEADER_BYTES)).tolist()
    out = bytearray()
    code = length = 0
    for b in bits:
        if len(out) == size:
            break
        code, length = (code << 1) | b, length + 1
        s = table.get((length, code))
        if s is not None:
            out.append(s)
            code = length = 0
        elif length > MAX_CODE_BITS:
            raise ValueError("invalid code in TGH1 image")
    if len(out) != size:
        raise ValueError("TGH1 image ends early")
    return bytes(out)


@dataclass
class Coded:
    method: str                  # the smallest of METHODS
    data: bytes                  # the coded image in that method
    sizes: dict[str, int]        # bytes per method

    @property
    def coded_bytes(self) -> int:
        return len(self.data)


def code(blob: bytes) -> Coded:
    """`blob` coded three ways (Huffman, zlib level 9, lzma preset 9 extreme); the smallest kept,
    and every size reported."""
    images = {"huffman": huffman_encode(blob), "zlib": zlib.compress(blob, 9),
              "lzma": lzma.compress(blob, preset=9 | lzma.PRESET_EXTREME)}
    best = min(METHODS, key=lambda m: len(images[m]))
    return Coded(best, images[best], {m: len(images[m]) for m in METHODS})
