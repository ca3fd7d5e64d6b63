"""ST's X-NUCLEO-LPM01A (PowerShield), MLPerf Tiny's reference energy monitor, over its ASCII
serial protocol (UM2269; MLPerf Tiny's runner drives it the same way): the host takes control
(`htc`), sets the supply voltage, sampling rate, output and format, powers the board and starts;
the shield answers each command with `ack <command>` (or `error <command>` and an
`Error detail:` line) and then streams one current sample per line in `ascii_dec`
(`6409-07` = 6409 x 10^-7 A = 640.9 µA), a `TimeStamp:` line each second, and an
`event <n> ris` line where the firmware's timestamp pin (Arduino D7) fell.

`lpm01a:/dev/ttyACM2[,mv=3000][,freq=5k][,pin=d7|none][,baud=3686400]`"""

from __future__ import annotations

import re
import time

import numpy as np

from .core import Chunk, PowerError, PowerMonitor, register

PROMPT = "PowerShield > "
_SAMPLE = re.compile(r"(\d{4})([-+]\d{2})")
_EVENT = re.compile(r"event (\d+) (ris|fal)")
# ascii_dec is unlimited in length only up to 5 kHz (UM2269's table; 10 kHz and 20 kHz stop after 1 s and 0.5 s)
RATES = {"5k": 5000, "2k": 2000, "1k": 1000, "500": 500, "200": 200, "100": 100}
REPLY_S = 2.0


@register
class Lpm01a(PowerMonitor):
    name = "lpm01a"

    def __init__(self, target, options, supply_v):
        super().__init__(target, options, supply_v)
        if not target:
            raise PowerError("lpm01a needs its serial port: --power lpm01a:/dev/ttyACM2 (the shield's ST-LINK VCP).")
        default_mv = int(round((supply_v or 3.3) * 1000))
        self.mv = self.option("mv", default_mv, int, "a whole number of millivolts, 1800 to 3300")
        if not 1800 <= self.mv <= 3300:
            raise PowerError(f"lpm01a: mv={self.mv} is outside what the LPM01A supplies (1800 to 3300 mV).")
        self.freq = self.option("freq", "5k")
        if self.freq not in RATES:
            raise PowerError(f"lpm01a: freq={self.freq}; in ascii_dec it streams without a limit at {', '.join(RATES)}.")
        self.rate_hz = RATES[self.freq]
        pin = self.option("pin", "d7").lower()
        if pin not in ("d7", "none"):
            raise PowerError(f"lpm01a: pin={pin}; the shield's event input is d7, or `none` for the serial laps.")
        self.has_pin = pin == "d7"
        self.baud = self.option("baud", 3686400, int, "a baud rate")
        self.port = None
        self._buf = b""
        self._n = 0
        self.events = 0
        self.messages: list[str] = []

    # -- commands --------------------------------------------------------------------------
    def _lines(self, timeout: float):
        """Lines as they come, for at most `timeout` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            data = self.port.read(self.port.in_waiting or 1)
            if not data:
                continue
            self._buf += data
            while b"\n" in self._buf:
                line, _, self._buf = self._buf.partition(b"\n")
                yield line.decode("ascii", errors="replace").replace(PROMPT, "").strip("\r\n\0 ")

    def command(self, cmd: str) -> None:
        """Send one command and wait for its `ack`; an `error` is one sentence with the shield's detail."""
        self.port.write(f"{cmd}\r\n".encode("ascii"))
        failed = None
        for line in self._lines(REPLY_S):
            if failed is not None:
                if line.startswith("Error detail"):
                    raise PowerError(f"The LPM01A refused `{cmd}`: {line.partition(':')[2].strip()}.")
                continue
            if line.startswith("ack") and cmd in line:
                return
            if line.startswith("error") and cmd in line:
                failed = line
        if failed is not None:
            raise PowerError(f"The LPM01A refused `{cmd}`.")
        raise PowerError(f"{self.target} did not acknowledge `{cmd}` within {REPLY_S:g} s: is it an LPM01A, at {self.baud} baud?")

    def start(self) -> None:
        import serial

        try:
            self.port = serial.serial_for_url(self.target, baudrate=self.baud, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as e:
            raise PowerError(f"Cannot open {self.target}: {e}.") from None
        try:
            self.command("htc")
            self.command("pwr off")
            self.command(f"volt {self.mv}m")
            self.command(f"freq {self.freq}")
            self.command("acqtime 0")
            self.command("output current")
            self.command("format ascii_dec")
            self.command("trigsrc sw")
            if self.has_pin:
                self.command("eventsrc d7 fal")
            self.command("pwr on")
            self.command("start")
        except PowerError:
            self.stop()
            raise

    # -- the stream -------------------------------------------------------------------------
    def read(self) -> Chunk | None:
        data = self.port.read(self.port.in_waiting or 1)
        if not data:
            return None
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        amps, edges = [], []
        for raw in lines:
            line = raw.decode("ascii", errors="replace").replace(PROMPT, "").strip("\r\n\0 ")
            m = _SAMPLE.fullmatch(line)
            if m:
                amps.append(int(m.group(1)) * 10.0 ** int(m.group(2)))
            elif _EVENT.fullmatch(line):
                edges.append(self._n + len(amps))   # the pin fell before the next sample
                self.events += 1
            elif line and not line.startswith("TimeStamp"):
                self.messages = (self.messages + [line])[-20:]   # acks, summaries, errors: not samples
        if not amps and not edges:
            return None
        self._n += len(amps)
        return Chunk(np.asarray(amps, dtype=np.float64), np.float64(self.mv / 1000.0), edges)

    def stop(self) -> None:
        if self.port is None:
            return
        try:
            self.command("stop")   # the samples still streaming before its ack are dropped
            self.command("hrc")    # give the shield back its front panel
        except Exception:  # noqa: BLE001 (a shield already gone or not answering: nothing left to stop)
            pass
        port, self.port = self.port, None
        try:
            port.close()
        except Exception:  # noqa: BLE001
            pass

    def describe(self) -> str:
        how = "timestamp pin on D7 (event lines)" if self.has_pin else "windows from the serial laps"
        return f"LPM01A on {self.target}, {self.mv} mV (set, not measured), {self.rate_hz:,} Hz ascii_dec, {how}"
