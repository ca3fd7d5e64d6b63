"""Power monitors that are not here, simulated at their real boundary with a known current waveform:
the PPK2's byte protocol and the LPM01A's ASCII protocol on pseudo-terminals, and the Joulescope's
native driver (pyjoulescope_driver.Driver, the C library that owns the USB backend) where the
joulescope package calls it. Each knows the exact integral of its waveform over each inference."""

from __future__ import annotations

import math
import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinygen.device.protocol import format_line


@dataclass
class Waveform:
    """Idle current between inferences; during one, a level with a sine ripple on it. The timestamp
    pin idles high and falls for `pulse_s` at each inference's start and end (MLPerf's th_timestamp).
    Supply: v0 volts through a source resistance, so the voltage sags with the current."""

    windows: list[tuple[float, float]]
    idle_a: float = 0.35e-3
    active_a: float = 4.0e-3
    ripple_a: float = 0.8e-3
    period_s: float = 3e-3
    pulse_s: float = 0.5e-3
    v0: float = 3.0
    r_source: float = 0.0
    # Also busy, with no pulse around it (MLPerf's warm-ups), and lone pulses (the DUT's boot, a
    # `timestamp` command). An MLPerf DUT simulator appends to these, and to `windows`, as it runs.
    busy: list[tuple[float, float]] = field(default_factory=list)
    pulses: list[float] = field(default_factory=list)

    @classmethod
    def regular(cls, n: int, first: float = 0.3, length: float = 0.030, gap: float = 0.025, **kw) -> "Waveform":
        """n inferences, each a little longer than the one before (so no two windows are the same)."""
        w, t = [], first
        for k in range(n):
            d = length * (1 + 0.07 * (k % 5))
            w.append((t, t + d))
            t += d + gap
        return cls(w, **kw)

    @property
    def end(self) -> float:
        return self.windows[-1][1]

    @property
    def falls(self) -> list[float]:
        """Every falling edge of the pin: each window's start and end, and the lone pulses."""
        return [x for w in self.windows for x in w] + list(self.pulses)

    def _active(self, t: np.ndarray) -> np.ndarray:
        spans = sorted(self.windows + self.busy)
        if not spans:
            return np.zeros(np.shape(t), dtype=bool)
        starts = np.array([a for a, _ in spans])
        ends = np.array([b for _, b in spans])
        k = np.searchsorted(starts, t, side="right") - 1
        return (k >= 0) & (t < ends[np.clip(k, 0, None)])

    def current(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        i = self.active_a + self.ripple_a * np.sin(2 * np.pi * t / self.period_s)
        return np.where(self._active(t), i, self.idle_a)

    def mean_current(self, t0: np.ndarray, dt: float) -> np.ndarray:
        """The mean over [t0, t0 + dt): what an integrating ADC reports. Exact, from 16 sub-samples
        where a window's edge falls inside (good to well under 0.1 % of one sample)."""
        sub = (np.arange(16) + 0.5) / 16 * dt
        return self.current(t0[:, None] + sub[None, :]).mean(axis=1)

    def voltage(self, i: np.ndarray) -> np.ndarray:
        return self.v0 - self.r_source * i

    def pin(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        low = np.zeros(t.shape, dtype=bool)
        for x in self.falls:
            low |= (t >= x) & (t < x + self.pulse_s)
        return np.where(low, 0, 1).astype(np.uint8)

    def energy_uj(self, k: int) -> float:
        """The exact integral of V x I over inference k, in µJ."""
        a, b = self.windows[k]
        w = 2 * np.pi / self.period_s
        int_i = self.active_a * (b - a) + self.ripple_a / w * (math.cos(w * a) - math.cos(w * b))
        int_sin2 = (b - a) / 2 - (math.sin(2 * w * b) - math.sin(2 * w * a)) / (4 * w)
        int_i2 = (self.active_a ** 2 * (b - a) + 2 * self.active_a * self.ripple_a / w * (math.cos(w * a) - math.cos(w * b))
                  + self.ripple_a ** 2 * int_sin2)
        return (self.v0 * int_i - self.r_source * int_i2) * 1e6


class _Pty:
    """A pseudo-terminal whose slave is reached through a symlink, like a USB serial port."""

    def __init__(self, link: Path):
        self.link = link
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(self.slave))
        self.stopped = threading.Event()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.stopped.is_set():
            _, w, _ = select.select([], [self.master], [], 0.05)
            if w:
                view = view[os.write(self.master, view[:4096]):]

    def close(self) -> None:
        self.stopped.set()
        time.sleep(0.1)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class Ppk2Sim(_Pty):
    """The PPK2's serial protocol as ppk2-api speaks it: one-byte opcodes with their arguments,
    the calibration text ending `END` on GET_META_DATA, and on AVERAGE_START a stream of 4-byte
    little-endian samples (14-bit ADC code, 3-bit range, 8 logic bits in the top byte) at
    100 kHz, paced in real time."""

    RATE = 100_000
    ARGS = {0x19: 0, 0x11: 1, 0x0D: 2, 0x0C: 1, 0x06: 0, 0x07: 0, 0x08: 1, 0x20: 0, 0x15: 0, 0x16: 0}
    R = [1031.64, 101.65, 10.15, 0.94, 0.043]
    GS = [0.0, 2.0, 0.2, 0.02, 0.001]    # ppk2-api applies UG * (r * (GS * r + GI) + S * vdd + I)
    GI = [1.0, 0.995, 0.997, 1.002, 1.0]
    O = [30.0, 25.0, 20.0, 15.0, 10.0]
    ADC_MULT = 1.8 / 163840

    def __init__(self, link: Path, wave: Waveform, pin: int = 0):
        super().__init__(link)
        self.wave, self.pin_bit = wave, pin
        self.commands: list[tuple[int, ...]] = []
        self.vdd_mv = None
        self.streaming = threading.Event()
        self.t0 = None
        self.sent = 0
        threading.Thread(target=self._run, daemon=True).start()

    def metadata(self) -> bytes:
        rows = ["Calibrated: 1"]
        for key, vals in (("R", self.R), ("GS", self.GS), ("GI", self.GI), ("O", self.O)):
            rows += [f"{key}{i}: {v:.4f}" for i, v in enumerate(vals)]
        rows += [f"S{i}: 0.0000" for i in range(5)] + [f"I{i}: 0.0000" for i in range(5)]
        rows += [f"UG{i}: 1.0000" for i in range(5)] + ["HW: 9173", "mode: 2", "IA: 56", "END"]
        return ("\n".join(rows) + "\n").encode()

    def encode(self, amps: np.ndarray, logic: np.ndarray) -> bytes:
        """Each current as the PPK2 would send it: the most sensitive range whose ADC code fits."""
        codes = np.zeros(len(amps), dtype=np.uint32)
        ranges = np.full(len(amps), -1)
        for rng in range(5):
            gs, gi = self.GS[rng], self.GI[rng]
            if gs:
                r = (-gi + np.sqrt(gi * gi + 4 * gs * amps)) / (2 * gs)
            else:
                r = amps / gi
            code = np.round((r * self.R[rng] / self.ADC_MULT + self.O[rng]) / 4)
            fits = (ranges < 0) & (code >= 0) & (code <= 15000)
            codes[fits] = code[fits].astype(np.uint32)
            ranges[fits] = rng
        words = codes | (ranges.astype(np.uint32) << 14) | (logic.astype(np.uint32) << 24)
        return words.astype("<u4").tobytes()

    def _run(self) -> None:
        buf = b""
        while not self.stopped.is_set():
            r, _, _ = select.select([self.master], [], [], 0.005)
            if r:
                try:
                    buf += os.read(self.master, 256)
                except OSError:
                    return
                while buf and len(buf) > self.ARGS.get(buf[0], 0):
                    op, n = buf[0], self.ARGS.get(buf[0], 0)
                    cmd, buf = tuple(buf[: n + 1]), buf[n + 1:]
                    self.commands.append(cmd)
                    if op == 0x19:
                        self.write(self.metadata())
                    elif op == 0x0D:
                        self.vdd_mv = (cmd[1] - 3) * 256 + cmd[2] + 800 - 32
                    elif op == 0x06:
                        self.t0, self.sent = time.monotonic(), 0
                        self.streaming.set()
                    elif op == 0x07:
                        self.streaming.clear()
            if self.streaming.is_set():
                due = int((time.monotonic() - self.t0) * self.RATE)
                if due - self.sent >= 500:
                    t = np.arange(self.sent, due) / self.RATE
                    logic = self.wave.pin(t) << self.pin_bit   # the other seven inputs stay low
                    self.write(self.encode(self.wave.current(t), logic))
                    self.sent = due


class Lpm01aSim(_Pty):
    """The LPM01A's ASCII protocol: `PowerShield > ack <cmd>` to each command it knows, `error` with
    an `Error detail:` line to others; after `start`, one `ascii_dec` current per line (the mean over
    the sample period), a TimeStamp line each second, and `event <n> ris` where the pin fell."""

    KNOWN = ("htc", "hrc", "pwr", "volt", "freq", "acqtime", "output", "format", "trigsrc", "eventsrc", "start",
             "stop", "lcd", "powershield", "version", "status")
    RATES = {"5k": 5000, "2k": 2000, "1k": 1000, "500": 500, "200": 200, "100": 100}

    def __init__(self, link: Path, wave: Waveform, events: bool = True):
        super().__init__(link)
        self.wave, self.events = wave, events
        self.commands: list[str] = []
        self.rate = 100
        self.mv = None
        self.streaming = threading.Event()
        self.t0 = None
        self.sent = 0
        self.event_count = 0
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def ascii_dec(a: float) -> str:
        """6409-07 = 6409 x 10^-7 A: four digits and a power of ten."""
        e = math.floor(math.log10(a)) - 3
        m = int(round(a / 10 ** e))
        if m >= 10000:
            m, e = m // 10, e + 1
        return f"{m:04d}{e:+03d}"

    def _answer(self, line: str) -> None:
        self.commands.append(line)
        word, _, arg = line.partition(" ")
        if word not in self.KNOWN:
            self.write(f"PowerShield > error {line}\r\nError detail: command not recognized\r\n".encode())
            return
        if word == "freq":
            if arg not in self.RATES:
                self.write(f"PowerShield > error {line}\r\nError detail: value out of range\r\n".encode())
                return
            self.rate = self.RATES[arg]
        if word == "volt":
            self.mv = int(arg.rstrip("m"))
        if word == "stop":
            self.streaming.clear()
            self.write(b"PowerShield > Acquisition completed\r\n")
        self.write(f"PowerShield > ack {line}\r\n".encode())
        if word == "start":
            self.t0, self.sent = time.monotonic(), 0
            self.streaming.set()

    def _run(self) -> None:
        buf = b""
        while not self.stopped.is_set():
            r, _, _ = select.select([self.master], [], [], 0.005)
            if r:
                try:
                    buf += os.read(self.master, 256)
                except OSError:
                    return
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    self._answer(line.decode().strip())
            if self.streaming.is_set():
                due = int((time.monotonic() - self.t0) * self.rate)
                if due > self.sent:
                    self.write(self._lines(self.sent, due).encode())
                    self.sent = due

    def _lines(self, a: int, b: int) -> str:
        dt = 1.0 / self.rate
        t = np.arange(a, b) * dt
        amps = self.wave.mean_current(t, dt)
        # the event line goes before the first sample that starts at or after the fall
        falls = {math.ceil(x * self.rate - 1e-6) for x in self.wave.falls}
        out = []
        for k, ak in enumerate(amps):
            if self.events and a + k in falls:
                out.append(f"event {self.event_count} ris")
                self.event_count += 1
            if (a + k) % self.rate == 0 and a + k:
                out.append(f"TimeStamp: {(a + k) // self.rate:03d}s 000ms, buff 00%")
            out.append(self.ascii_dec(float(ak)))
        return "\r\n".join(out) + "\r\n"


def dut_lines(dev: _Pty, sim, wave: Waveform, seqs=None) -> threading.Thread:
    """The firmware's serial side: each TG1 `inf` line written when its inference ends, by the
    monitor simulator's clock, with `us` its length."""

    def run():
        sim.streaming.wait(30)
        for k, (a, b) in enumerate(wave.windows):
            delay = sim.t0 + b - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            us = int(round((b - a) * 1e6))
            dev.write(format_line("inf", seq=k, cycles=us * 48, us=us, top=k % 10, score_milli=900).encode())
        dev.write(format_line("done", vectors=len(wave.windows), mismatches=0).encode())

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


class FakeJoulescopeDriver:
    """Stands in for pyjoulescope_driver.Driver, the native library under the joulescope package
    that owns the USB backend: device discovery, open/close, publish/subscribe by topic, and the
    stream messages it sends for each signal (`s/i/!data`, `s/v/!data`, ... `s/gpi/0/!data`) as
    the binding hands them to Python: sample_id at the 2 MHz input rate, decimate_factor, float32
    current/voltage/power, uint8 range, and the GPI bits packed eight to a byte."""

    INPUT_RATE = 2_000_000
    FIELDS = {"s/i/": (1, 0), "s/v/": (2, 0), "s/p/": (3, 0), "s/i/range/": (4, 0), "s/gpi/0/": (5, 0), "s/gpi/1/": (5, 1)}
    wave: Waveform | None = None
    path = "u/js220/004242"
    last: "FakeJoulescopeDriver | None" = None   # the one the joulescope package made: its clock (t0) for a DUT simulator

    def __init__(self):
        FakeJoulescopeDriver.last = self
        self.log_level = "INFO"
        self.subs: dict[str, list] = {}
        self.published: list[tuple[str, object]] = []
        self.fs = 1_000_000
        self.ctrl: set[str] = set()
        self.opened = False
        self.t0 = None
        self.streaming = threading.Event()
        self.stopped = threading.Event()
        self._thread = None

    def device_paths(self):
        return [self.path]

    def subscribe(self, topic, flags, fn, timeout=None):
        self.subs.setdefault(topic, []).append(fn)

    def unsubscribe(self, topic, fn=None, timeout=None):
        if callable(topic):
            return
        if topic in self.subs and fn in self.subs[topic]:
            self.subs[topic].remove(fn)

    def open(self, path, mode=None, timeout=None):
        assert path == self.path
        self.opened = True
        return 0

    def close(self, path, timeout=None):
        self.opened = False
        self.stopped.set()
        return 0

    def finalize(self, timeout=None):
        self.stopped.set()

    def query(self, topic, timeout=None):
        return 0x01000000

    def publish(self, topic, value, timeout=None):
        self.published.append((topic, value))
        rel = topic[len(self.path) + 1:] if topic.startswith(self.path + "/") else topic
        if rel == "h/fs":
            self.fs = int(value)
        elif rel.endswith("ctrl"):
            sig = rel[: -len("ctrl")]
            if value:
                self.ctrl.add(sig)
                if sig == "s/i/" and self._thread is None:
                    self.t0, self._thread = time.monotonic(), threading.Thread(target=self._stream, daemon=True)
                    self.streaming.set()
                    self._thread.start()
            else:
                self.ctrl.discard(sig)
        return 0

    def _stream(self) -> None:
        sent = 0
        while not self.stopped.is_set() and "s/i/" in self.ctrl:
            time.sleep(0.01)
            due = int((time.monotonic() - self.t0) * self.fs) // 8 * 8   # whole bytes of GPI bits
            if due <= sent:
                continue
            t = np.arange(sent, due) / self.fs
            i = self.wave.current(t)
            v = self.wave.voltage(i)
            values = {"s/i/": i.astype(np.float32), "s/v/": v.astype(np.float32), "s/p/": (i * v).astype(np.float32),
                      "s/i/range/": np.full(len(t), 4, dtype=np.uint8),
                      "s/gpi/0/": np.packbits(self.wave.pin(t), bitorder="little"),
                      "s/gpi/1/": np.zeros((due - sent) // 8, dtype=np.uint8)}
            decimate = self.INPUT_RATE // self.fs
            for sig in list(self.ctrl):
                field_id, index = self.FIELDS[sig]
                topic = f"{self.path}/{sig}!data"
                msg = {"source": 1, "sample_id": sent * decimate, "field_id": field_id, "index": index,
                       "sample_rate": self.INPUT_RATE, "decimate_factor": decimate, "data": values[sig]}
                for fn in list(self.subs.get(topic, [])):
                    fn(topic, msg)
            sent = due


class MlperfDutSim(_Pty):
    """An MLPerf Tiny DUT in energy mode on a pseudo-terminal, its work drawn in a monitor
    simulator's waveform by that simulator's clock: it pulses the timestamp pin once at boot and
    once per `timestamp`; `infer N W` is W warm-up inferences (busy, no pulse), the time the
    reference takes to print m-warmup-done and m-infer-start at 9600 baud, then a pulse, N
    inferences back to back and a pulse; no m-lap-us. `runs` holds the (start, end) of each timed
    run, so wave.energy_uj(k) / N is run k's exact energy per inference."""

    PRINT_S = 0.0317   # 'm-warmup-done\r\nm-infer-start-N\r\n' at 9600 8N1, about

    def __init__(self, link: Path, sim, wave: Waveform, infer_s: float = 0.0061, model: str = "kws01",
                 outputs: int = 12):
        super().__init__(link)
        self.sim, self.wave, self.infer_s, self.model, self.outputs = sim, wave, infer_s, model, outputs
        self.runs: list[tuple[float, float]] = []
        self.expect = self.got = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _now(self) -> float:
        return time.monotonic() - self.sim.t0

    def _until(self, t: float) -> None:
        delay = self.sim.t0 + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _pulse(self) -> None:
        t = self._now() + 0.01   # ahead of what the monitor simulator has streamed, on a busy machine too
        self.wave.pulses = self.wave.pulses + [t]
        self._until(t + self.wave.pulse_s)

    def _run(self) -> None:
        if not self.sim.streaming.wait(30):
            return
        self._pulse()   # th_timestamp_initialize: the boot pulse
        self.write(b"m-timestamp-mode-energy\r\nm-init-done\r\nm-ready\r\n")
        buf = b""
        while not self.stopped.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                buf += os.read(self.master, 4096)
            except OSError:
                return
            while b"%" in buf:
                cmd, _, buf = buf.partition(b"%")
                self.write(self._answer(cmd.decode("ascii").split()).encode() + b"m-ready\r\n")

    def _answer(self, argv: list[str]) -> str:
        if argv == ["name"]:
            return "m-name-dut-[simulated]\r\n"
        if argv == ["profile"]:
            return f"m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\nm-model-[{self.model}]\r\n"
        if argv[:2] == ["db", "load"]:
            self.expect, self.got = int(argv[2]), 0
            return f"m-[Expecting {self.expect} bytes]\r\n"
        if argv[:1] == ["db"]:
            self.got += len(argv[1]) // 2
            return "m-load-done\r\n" if self.got >= self.expect else ""
        if argv == ["timestamp"]:
            self._pulse()
            return ""
        if argv[:1] == ["infer"]:
            n, w = int(argv[1]), int(argv[2])
            t = self._now() + 0.05
            if w:
                self.wave.busy = self.wave.busy + [(t, t + w * self.infer_s)]
                t += w * self.infer_s
            a = t + self.PRINT_S
            b = a + n * self.infer_s
            self.wave.windows = self.wave.windows + [(a, b)]
            self.runs.append((a, b))
            self._until(b + self.wave.pulse_s + 0.002)
            results = ",".join(["0.000"] * (self.outputs - 1) + ["1.000"])
            return (f"m-warmup-start-{w}\r\nm-warmup-done\r\nm-infer-start-{n}\r\nm-infer-done\r\n"
                    f"m-results-[{results}]\r\n")
        return f"e-[Unknown command: {' '.join(argv)}]\r\n"
