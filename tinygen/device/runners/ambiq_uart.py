"""The Ambiq Apollo3 secure bootloader's UART wired update, as the SparkFun Edge uses it.

Written from the protocol that AmbiqSuite's tools/apollo3_scripts define
(create_cust_image_blob.py, create_cust_wireupdate_blob.py, uart_wired_update.py):

1. the application becomes a non-secure image blob (magic 0xCB, installed at 0xC000, CRC);
2. that becomes a wired-update blob (image type 6, staged at 0x20000, split in 288 KiB parts);
3. over the UART, every message is CRC32(params) + params, params starting with
   (length << 16 | type): Hello (answered by an 88-byte Status), OTA descriptor, then per part
   Update (size, CRC32) and Data chunks of up to 8180 bytes, each answered by a 20-byte Ack;
   a NACK is retried up to four times; Reset at the end starts the application.
"""

from __future__ import annotations

import struct
import time
import zlib

from .core import FlashError, FlashResult, Image, Progress, Runner, check_image, register

HELLO, STATUS, OTADESC, UPDATE, ABORT, RECOVER, RESET, ACK, DATA = range(9)
ACK_SUCCESS = 0
ACK_ERRORS = {1: "failure", 2: "invalid INFO0", 3: "CRC mismatch", 4: "security", 5: "message too big",
              6: "unknown message type", 7: "invalid address", 8: "invalid operation", 9: "invalid parameter",
              10: "out of sequence", 11: "too much data"}
STATUS_LEN, ACK_LEN = 88, 20
MAX_MSG = 8192                    # the bootloader's UART buffer
MAX_CHUNK = MAX_MSG - 12
MAX_PART = 0x48000                # 288 KiB per update part (MAX_DOWNLOAD_SIZE)
FLASH_PAGE = 0x2000
MAGIC_NONSECURE = 0xCB
IMAGETYPE_NONSECURE = 6
FLASH_KEY = 0x12344321
IMAGE_HDR = 128                   # AM_IMAGEHDR_SIZE_AUX
WU_HDR = 96                       # AM_WU_IMAGEHDR_SIZE
TRIES = 4                         # Ambiq's host: a message is sent at most four times
ACK_OUT_OF_SEQUENCE = 10
REPLY_TIMEOUT = 12.0              # uart_wired_update.py: the last reply waits for the flash write
HELLO_TIMEOUT = 5.0               # asb.py's connection timeout
RESET_TRIES = 3                   # asb.py: the bootloader misses the bootload pin ~1 time in 10


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def image_blob(app: bytes, load_address: int, version: int = 0) -> bytes:
    """create_cust_image_blob: a non-secure image with install-time CRC, no auth, no encryption."""
    app = _pad4(app)
    hdr = bytearray(IMAGE_HDR)
    struct.pack_into("<I", hdr, 0, (MAGIC_NONSECURE << 24) | (IMAGE_HDR + len(app)))
    crc_install, key_idx = 1, 8    # crcI=1 (check the CRC before installing); key indices default to 8
    struct.pack_into("<I", hdr, 8, ((crc_install << 4) << 24) | ((key_idx << 4) & 0xF0) | ((key_idx << 12) & 0xF000))
    struct.pack_into("<IIII", hdr, 112, load_address, version & 0x7FFF, 0xFFFFFFFF, 0xFFFFFFFF)
    struct.pack_into("<I", hdr, 4, crc32(bytes(hdr[8:]) + app))
    return bytes(hdr) + app


def wired_update_blob(blob: bytes, stage_address: int, part_size: int = MAX_PART) -> list[bytes]:
    """create_cust_wireupdate_blob: one 96-byte header per part of at most part_size bytes."""
    blob = _pad4(blob)
    parts = []
    key_idx = 8
    for n, start in enumerate(range(0, len(blob), part_size)):
        chunk = blob[start:start + part_size]
        hdr = bytearray(WU_HDR)
        struct.pack_into("<I", hdr, 0, ((key_idx << 8) & 0xF00) | ((key_idx << 24) & 0x0F000000))
        hdr[80] = IMAGETYPE_NONSECURE
        hdr[81] = 1 if n == 0 else 0        # options: install after download, on the first part
        struct.pack_into("<III", hdr, 84, FLASH_KEY, stage_address + n * part_size, len(chunk))
        parts.append(bytes(hdr) + chunk)
    return parts


def message(kind: int, payload: bytes = b"") -> bytes:
    params = struct.pack("<I", ((len(payload) + 8) << 16) | kind) + payload
    return struct.pack("<I", crc32(params)) + params


@register
class AmbiqUartRunner(Runner):
    name = "ambiq-uart"
    needs_port = True

    def flash(self, image: Image, progress: Progress) -> FlashResult:
        check_image(image, self.board)
        tool = self.board.raw.get("flash_tool", {})
        baud = self.baud or tool.get("baud", 921600)
        stage = int(tool.get("stage_address", 0x20000))
        ota = int(tool.get("ota_descriptor", 0xFE000))
        # Ambiq's uart_wired_update.py waits 12 s for every reply: the last one comes only once
        # the bootloader has written the whole image to flash. A Hello is answered at once; a
        # board not in its bootloader is found out after asb.py's 5 s, not 12.
        timeout = float(self.options.get("timeout") or REPLY_TIMEOUT)
        hello_timeout = min(timeout, HELLO_TIMEOUT)
        parts = wired_update_blob(image_blob(image.data, image.address), stage)
        total = sum(len(p) for p in parts)
        started = time.monotonic()
        port = self.io.open_serial(self.port, baud, hello_timeout)
        sent = 0
        steps = []
        try:
            status, resets = self._hello(port)
            version, max_storage, sbl_status, state = struct.unpack_from("<IIII", status, 8) if status else (0, 0, 0, 0)
            steps.append(f"hello: bootloader version 0x{version:X}, state 0x{state:X}"
                         + (f" (after {resets} reset(s) through DTR/RTS)" if resets else ""))
            port.set_timeout(timeout)
            self._acked(port, message(OTADESC, struct.pack("<I", ota)), "OTA descriptor")
            # parts go last first, as Ambiq's host does
            for part in reversed(parts):
                self._acked(port, message(UPDATE, struct.pack("<III", len(part), crc32(part), 0)),
                            f"Update ({len(part):,} bytes)")
                off = 0
                while off < len(part):
                    nxt = self._data(port, part, off, sent, total)
                    sent += nxt - off
                    off = nxt
                    progress(sent, total)
            steps.append(f"sent {len(parts)} part(s), {total:,} bytes, each checked by CRC32 before install")
            self._acked(port, message(RESET, struct.pack("<I", 2)), "Reset")
            steps.append("reset: the bootloader installs the image at "
                         f"0x{image.address:X} after its CRC check, then starts it")
        finally:
            port.close()
        return FlashResult(self.name, total, time.monotonic() - started,
                           "CRC32 of each part checked by the bootloader, and the image CRC before install", steps)

    def _hello(self, port) -> tuple[bytes, int]:
        """Reset the board into its bootloader the way SparkFun's asb.py does, then Hello.

        On the Edge's serial adapter DTR pulls reset low: opening the port asserts it; releasing
        DTR and RTS 5 ms later lets the board start with its bootload pin high, and the bootloader
        must hear the Hello within its 250 ms window (asb.py: 100 ms works). asb.py retries this
        three times, as the bootloader misses the pin about one time in ten. Where the lines do
        nothing (an adapter without them, a pty), the board must already wait in its bootloader:
        button 14 held while reset is pressed."""
        lines = reset = self.options.get("reset", True) is not False
        last = 0
        for attempt in range(1, RESET_TRIES + 1):
            if reset:
                self.io.sleep(0.005)
                lines = port.set_lines(dtr=False, rts=False)
                if lines:
                    self.io.sleep(0.100)
                    port.discard_input()
            resp, last = self._exchange(port, message(HELLO), STATUS_LEN, expect=STATUS)
            if resp or self.io.dry_run:
                return resp, attempt if lines else 0
            if not lines:
                break
            self.io.note(f"Hello: no answer after a reset through DTR/RTS; try {attempt} of {RESET_TRIES}")
            port.set_lines(dtr=True, rts=True)     # hold reset again for the next try
        how = (f"after {RESET_TRIES} resets through DTR/RTS" if lines
               else "(--no-reset)" if not reset else "and this port cannot reset it (no DTR/RTS lines)")
        raise FlashError(f"The board did not answer the Hello {how} (expected {STATUS_LEN} bytes, got {last} "
                         f"within {port_timeout(port)}); hold button 14 on the Edge and press reset, so that it "
                         "waits in its bootloader, then run tinygen flash again.")

    def _exchange(self, port, msg: bytes, length: int, expect: int) -> tuple[bytes, int]:
        """Send one message and read its reply: (the reply, or b"" when it is missing, short,
        corrupt or of another type; the number of bytes that came)."""
        port.write(msg)
        if self.io.dry_run:
            return b"", 0
        resp = port.read(length)
        if len(resp) != length:
            return b"", len(resp)
        word = struct.unpack_from("<I", resp, 4)[0]
        if crc32(resp[4:]) != struct.unpack_from("<I", resp, 0)[0] or (word & 0xFFFF) != expect:
            return b"", length
        return resp, length

    def _acked(self, port, msg: bytes, what: str, sent: int = 0, total: int = 0) -> bytes:
        """Send a message until it is acknowledged (TRIES times, as Ambiq's host); a missing
        reply counts as a failed try, as a NACK does."""
        last = "no valid answer"
        for attempt in range(1, TRIES + 1):
            resp, got = self._exchange(port, msg, ACK_LEN, expect=ACK)
            if self.io.dry_run:
                return b""
            if resp:
                status = struct.unpack_from("<I", resp, 12)[0]
                if status == ACK_SUCCESS:
                    return resp
                last = f"NACK: {ACK_ERRORS.get(status, f'status {status}')}"
                if status == ACK_OUT_OF_SEQUENCE and what.startswith("Data"):
                    return resp    # the caller reads where the bootloader is
            elif got < ACK_LEN:
                last = f"no answer within {port_timeout(port)}" if got == 0 else f"a short answer ({got} bytes)"
            else:
                last = "no valid answer"
            self.io.note(f"{what}: {last}; try {attempt} of {TRIES}")
        where = f" after {sent:,} of {total:,} bytes" if total else ""
        verb = "did not answer" if last.startswith(("no answer", "a short")) else "refused"
        raise FlashError(f"The bootloader {verb} the {what} {TRIES} times ({last}){where}; the board stays in its "
                         "bootloader, ready for another try: run tinygen flash again.")

    def _data(self, port, part: bytes, off: int, sent: int, total: int) -> int:
        """Send the chunk at `off`; return the offset the bootloader expects next.

        Each Data Ack carries the next sequence number (byte offset) the bootloader expects, for
        hosts on a lossy line (Ambiq's Secure Update Flow, 6.1). When the reply to a chunk is lost,
        the chunk goes again and the bootloader, which has it already, answers "out of sequence"
        with the offset after it: that is an acknowledgement, and the transfer goes on from there."""
        chunk = part[off:off + MAX_CHUNK]
        what = f"Data at {off:,} of a {len(part):,}-byte part"
        for _ in range(TRIES):
            resp = self._acked(port, message(DATA, struct.pack("<I", off) + chunk), what, sent=sent, total=total)
            if self.io.dry_run:
                return off + len(chunk)
            status, expected = struct.unpack_from("<II", resp, 12)
            if status == ACK_SUCCESS:
                return off + len(chunk)
            if expected != off and expected <= len(part) and (expected % MAX_CHUNK == 0 or expected == len(part)):
                self.io.note(f"{what}: the bootloader expects offset {expected:,} next"
                             + (" (it has this chunk already): going on" if expected > off else ": going back"))
                return expected
            self.io.note(f"{what}: NACK: out of sequence, the bootloader expects {expected:,}; sending again")
        raise FlashError(f"The bootloader and tinygen lost step in the {what} (it expects offset {expected:,}); "
                         "the board stays in its bootloader, ready for another try: run tinygen flash again.")


def port_timeout(port) -> str:
    t = getattr(getattr(port, "port", None), "timeout", None)
    return f"{t:g} s" if t else "the timeout"
