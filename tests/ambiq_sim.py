"""A simulated Ambiq Apollo3 secure bootloader on a pseudo-terminal, for flash tests.

It checks every frame (CRC32, length, type, sequence), rebuilds what was sent, and can be
told to stop answering, corrupt, NACK or lose a reply, pace itself to a baud rate, or sleep in
the application until a reset with the bootload pin high wakes its bootloader. Data Acks carry
the next sequence number (byte offset) expected, as Ambiq's Secure Update Flow (6.1) defines."""

from __future__ import annotations

import os
import select
import struct
import threading
import time
import tty
import zlib

from tinygen.device.runners.ambiq_uart import ACK, DATA, HELLO, OTADESC, RESET, STATUS, UPDATE


def crc32(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


class SimulatedBootloader(threading.Thread):
    def __init__(self, baud: int | None = None, stop_after: int | None = None, corrupt: set[int] = frozenset(),
                 nack: set[int] = frozenset(), delay: float = 0.0, lose: set[int] = frozenset(),
                 asleep: bool = False, missed_resets: int = 0):
        super().__init__(daemon=True)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.baud, self.stop_after, self.corrupt, self.nack, self.delay = baud, stop_after, corrupt, nack, delay
        self.lose = lose                        # message numbers processed but whose reply never arrives
        self.asleep = asleep                    # in the application: Hello goes unanswered
        self.missed_resets = missed_resets      # resets that come too late for the bootload pin
        self.resets = 0
        self.messages = 0
        self.kinds: list[int] = []     # the type of every message received, in order
        self.errors: list[str] = []
        self.parts: list[bytes] = []
        self.reset_kind = None
        self._part = None
        self._want = None
        # close() wakes the thread through this pipe and joins it before closing the pty: a thread
        # still reading a closed fd number would read whatever the next test's pty reuses it for.
        self._wake_r, self._wake_w = os.pipe()

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            ready, _, _ = select.select([self.master, self._wake_r], [], [])
            if self._wake_r in ready:
                raise EOFError
            chunk = os.read(self.master, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        if self.baud:
            time.sleep(n * 10 / self.baud)   # the wire's pace: 10 bits a byte at 8N1
        return buf

    def reset(self) -> None:
        """Reset released with the bootload pin high (the host let go of DTR and RTS)."""
        self.resets += 1
        if self.resets > self.missed_resets:
            self.asleep = False

    def _reply(self, kind: int, words: list[int]) -> None:
        if self.messages in self.lose:
            return
        params = struct.pack("<I", ((len(words) * 4 + 8) << 16) | kind) + struct.pack(f"<{len(words)}I", *words)
        frame = bytearray(struct.pack("<I", crc32(params)) + params)
        if self.messages in self.corrupt:
            frame[6] ^= 0xFF
        if self.delay:
            time.sleep(self.delay)
        if self.baud:
            time.sleep(len(frame) * 10 / self.baud)
        os.write(self.master, bytes(frame))

    def run(self) -> None:
        try:
            while True:
                head = self._read(8)
                crc, word = struct.unpack("<II", head)
                length, kind = word >> 16, word & 0xFFFF
                params = head[4:] + self._read(length - 8)
                self.messages += 1
                self.kinds.append(kind)
                if crc32(params) != crc:
                    self.errors.append(f"message {self.messages}: bad CRC")
                if self.stop_after is not None and self.messages > self.stop_after:
                    continue   # the board has gone quiet
                status = 10 if self.messages in self.nack else 0
                if kind == HELLO:
                    if self.asleep:
                        continue
                    self._reply(STATUS, [0x3, 0x48000, 0, 0x1] + [0] * 16)
                    continue
                seq = 0
                if kind == UPDATE:
                    size, crc_part, _ = struct.unpack_from("<III", params, 4)
                    self._part, self._want = bytearray(), (size, crc_part)
                elif kind == DATA:
                    offset = struct.unpack_from("<I", params, 4)[0]
                    if status == 0:
                        if offset != len(self._part):
                            # a host re-sending a chunk whose Ack was lost is not an error: the
                            # NACK tells it where to go on
                            if offset + len(params) - 8 != len(self._part):
                                self.errors.append(f"data at {offset}, expected {len(self._part)}")
                            status = 10
                        else:
                            self._part += params[8:]
                            if len(self._part) == self._want[0]:
                                if crc32(bytes(self._part)) != self._want[1]:
                                    self.errors.append("part CRC mismatch")
                                self.parts.insert(0, bytes(self._part))   # parts arrive last first
                    seq = len(self._part)
                elif kind == RESET:
                    self.reset_kind = struct.unpack_from("<I", params, 4)[0]
                elif kind != OTADESC:
                    self.errors.append(f"unexpected message type {kind}")
                self._reply(ACK, [kind, status, seq])
        except (EOFError, OSError):
            return

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        if self.is_alive():
            self.join(timeout=5)
        for fd in (self.master, self.slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def installed(self) -> tuple[int, bytes]:
        """(load address, application) from the staged wired-update parts and the image blob in them."""
        blob = b"".join(p[96:] for p in self.parts)
        word0, crc = struct.unpack_from("<II", blob, 0)
        assert word0 >> 24 == 0xCB, "not a non-secure image blob"
        length = word0 & 0x7FFFFF
        assert crc32(blob[8:length]) == crc, "image CRC"
        address = struct.unpack_from("<I", blob, 112)[0]
        return address, blob[128:length]
