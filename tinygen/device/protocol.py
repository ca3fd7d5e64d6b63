"""Version 1 of the lines tinygen firmware prints (firmware/common/harness.h):

    TG1 <kind> <key>=<value> ... *<crc8 hex>

A pure parser: one line in, one Event or None out. Anything that is not a whole,
well-formed, CRC-checked line (boot text from other firmware, garbage, a line cut
by a reset) is None, never an exception."""

from __future__ import annotations

import re
from dataclasses import dataclass

VERSION_TAG = "TG1"
_INT = re.compile(r"-?[0-9]+")   # what the firmware prints; Python's int() also takes "+1", "1_000"
_CRC = re.compile(r"[0-9a-f]{2}")   # int(x, 16) also takes " f" and "+f"


def _crc8_table() -> bytes:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return bytes(table)


_CRC8 = _crc8_table()


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8, polynomial 0x07, initial value 0 (what harness.c computes bit by bit)."""
    table = _CRC8
    for b in data:
        crc = table[crc ^ b]
    return crc


@dataclass(frozen=True)
class Event:
    kind: str
    fields: dict[str, str]

    def int(self, key: str, default: int | None = None) -> int | None:
        """The field as a decimal integer, or `default` if it is missing or not one."""
        v = self.fields.get(key)
        if v is None or not _INT.fullmatch(v):
            return default
        try:
            return int(v)
        except ValueError:   # more digits than Python converts (sys.get_int_max_str_digits)
            return default

    def hex_bytes(self, key: str) -> bytes | None:
        v = self.fields.get(key)
        try:
            return bytes.fromhex(v) if v is not None else None
        except ValueError:
            return None


def parse_line(line: str | bytes) -> Event | None:
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError:
            return None
    line = line.rstrip("\r\n")
    body, sep, check = line.rpartition(" *")
    if not sep or not _CRC.fullmatch(check) or not body.startswith(VERSION_TAG + " ") or not body.isprintable():
        return None   # the firmware prints no control characters: a line with one is not its line
    try:
        if int(check, 16) != crc8(body.encode("ascii")):
            return None
    except ValueError:   # a str line with characters beyond ASCII
        return None
    parts = body.split(" ")
    if len(parts) < 2 or not parts[1].isalpha():
        return None
    fields = {}
    for item in parts[2:]:
        key, eq, value = item.partition("=")
        if not eq or not key or key in fields:   # a key twice: which one is meant is not known
            return None
        fields[key] = value
    return Event(parts[1], fields)


def format_line(kind: str, /, **fields) -> str:
    """The line the firmware would print for these fields (for tests and fake devices)."""
    body = " ".join([VERSION_TAG, kind] + [f"{k}={v}" for k, v in fields.items()])
    return f"{body} *{crc8(body.encode('ascii')):02x}\r\n"
