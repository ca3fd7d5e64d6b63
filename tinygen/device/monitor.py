"""`tinygen monitor`: read a board's harness lines from any pyserial URL, keep statistics,
log every line as it arrives, and survive a port that vanishes.

The library part is a reader (bytes to lines), a pure parser (protocol.parse_line), a
Stats accumulator and a Monitor loop that reconnects; the CLI only renders."""

from __future__ import annotations

import csv
import json
import math
import queue
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import serial

from ..boards import Board
from ..errors import TinygenError
from ..files import OutFile
from .protocol import Event, parse_line

MAX_LINE = 4096   # a longer run of bytes without a newline is garbage, not a line
COUNTER_LIMIT = 2**64   # `us` and `cycles` are the firmware's unsigned counters: anything beyond is not one
WRITE_CHUNK = 256       # the writer's slice: it checks between slices whether the session has ended
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")


class MonitorError(TinygenError):
    """The port cannot be opened or the session cannot go on."""


def energy_uj(us: float, board: Board | None) -> float | None:
    """Energy of one inference, estimated from the board's supply and active current."""
    if board is None:
        return None
    return board.supply_v * board.active_ma * us / 1000.0   # V x mA = mW; mW x us = nJ


def counter(ev: Event, key: str) -> int | None:
    """A counter field (`us`, `cycles`): a whole number the firmware's 64-bit counter can hold, else
    None. A line's checksum proves it arrived as sent, not that the firmware sent sense."""
    v = ev.int(key)
    return v if v is not None and 0 <= v < COUNTER_LIMIT else None


def measured_uj(ev: Event) -> float | None:
    """A power monitor's `uj=`: a finite, non-negative decimal, else None (no NaN reaches --json)."""
    text = ev.fields.get("uj")
    if text is None or not _DECIMAL.fullmatch(text):
        return None
    v = float(text)
    return v if math.isfinite(v) else None


def bad_values(ev: Event) -> int:
    """How many of an inference line's measurements are there but are not numbers tinygen can use."""
    return sum(1 for key, ok in (("us", counter(ev, "us")), ("cycles", counter(ev, "cycles")), ("uj", measured_uj(ev)))
               if key in ev.fields and ok is None)


@dataclass
class Stats:
    board: Board | None = None
    latencies_us: list[float] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)
    energies_uj: list[float] = field(default_factory=list)
    energy_kind: str = "estimated"
    inferences: int = 0
    bad_lines: int = 0
    other_lines: int = 0
    reconnects: int = 0
    mismatches: int = 0
    bad_values: int = 0                # us=, cycles=, uj= that are not usable numbers: skipped, counted
    last: list[Event] = field(default_factory=list)
    boot: Event | None = None
    first_at: float | None = None      # monotonic time of the first and latest inference lines
    last_at: float | None = None
    measured_uj: list[float] = field(default_factory=list)   # per inference, from a power monitor (--power)
    power: dict | None = None          # the power monitor's own summary

    def add(self, ev: Event) -> None:
        if ev.kind == "boot":
            self.boot = ev
        elif ev.kind == "inf":
            self.inferences += 1
            now = time.monotonic()
            self.first_at = self.first_at or now
            self.last_at = now
            self.bad_values += bad_values(ev)
            us = counter(ev, "us")
            if us is not None:
                self.latencies_us.append(us)
            c = counter(ev, "cycles")
            if c is not None:
                self.cycles.append(c)
            measured = measured_uj(ev)
            if measured is not None:
                self.energies_uj.append(measured)
                self.energy_kind = "measured"
            elif us is not None and self.energy_kind == "estimated" and "uj" not in ev.fields:
                e = energy_uj(us, self.board)
                if e is not None:
                    self.energies_uj.append(e)
            if ev.fields.get("match") == "0":
                self.mismatches += 1
            self.last = (self.last + [ev])[-5:]

    @staticmethod
    def _pct(values: list[float], q: float) -> float | None:
        if not values:
            return None
        s = sorted(values)
        return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]

    def per_second(self) -> float:
        """Inferences per second between the first and the latest inference line."""
        if self.inferences < 2 or self.first_at is None:
            return 0.0
        span = self.last_at - self.first_at
        return (self.inferences - 1) / span if span > 0 else 0.0

    def _energy(self) -> dict:
        e = {"median": statistics.median(self.energies_uj) if self.energies_uj else None,
             "kind": self.energy_kind if self.energies_uj else None}
        if self.power is None:
            return e
        m = self.measured_uj
        return {"median": statistics.median(m) if m else None, "kind": "measured",
                "mean": statistics.fmean(m) if m else None, "min": min(m) if m else None, "max": max(m) if m else None,
                "inferences": len(m), "estimate": e, "power_monitor": self.power, "samples": self.power["samples"]}

    def summary(self, port: str) -> dict:
        lat = self.latencies_us
        return {
            "port": port,
            "board": self.board.id if self.board else None,
            "inferences": self.inferences,
            "latency_us": {
                "min": min(lat) if lat else None,
                "median": statistics.median(lat) if lat else None,
                "p95": self._pct(lat, 0.95),
                "max": max(lat) if lat else None,
            },
            "cycles": {"median": statistics.median(self.cycles) if self.cycles else None,
                       "counter": self.boot.fields.get("counter") if self.boot else None},
            "energy_uj": self._energy(),
            "inferences_per_second": round(self.per_second(), 3),
            "mismatches": self.mismatches,
            "bad_lines": self.bad_lines,
            "bad_values": self.bad_values,
            "other_lines": self.other_lines,
            "reconnects": self.reconnects,
        }


class LineSplitter:
    """Bytes in, complete lines out. Over-long runs are cut and counted as bad."""

    def __init__(self):
        self.buf = bytearray()
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        lines = []
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                break
            lines.append(bytes(self.buf[: i + 1]))
            del self.buf[: i + 1]
        if len(self.buf) > MAX_LINE:
            self.buf.clear()
            self.overflows += 1
        return lines

    def reset(self) -> bytes:
        """What was pending when the port went away: a partial line."""
        pending, self.buf = bytes(self.buf), bytearray()
        return pending


class Log:
    """Every line, raw and parsed, flushed as it arrives: CSV or JSONL by extension. The lines go
    to a hidden temporary beside `path` (`live`), renamed to `path` by close(); a file of the
    user's at `path` is refused (files.OutFile), tinygen's own earlier log replaced."""

    FIELDS = ["time", "raw", "valid", "kind", "seq", "cycles", "us", "top", "score_milli", "energy_uj"]

    def __init__(self, path: Path, board: Board | None):
        self.board = board
        self.jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson")
        self.out = OutFile(path, "--log")
        self.live = self.out.tmp
        self.f: TextIO = self.out.f
        self.csv = None if self.jsonl else csv.writer(self.f)
        if self.csv:
            self.csv.writerow(self.FIELDS)
            self.f.flush()

    def write(self, raw: str, ev: Event | None) -> None:
        now = time.time()
        e = None
        if ev is not None and ev.kind == "inf":
            us = counter(ev, "us")
            e = measured_uj(ev) if "uj" in ev.fields else (None if us is None else energy_uj(us, self.board))
        if self.jsonl:
            rec = {"time": now, "raw": raw, "valid": ev is not None,
                   "kind": ev.kind if ev else None, "fields": ev.fields if ev else None, "energy_uj": e}
            self.f.write(json.dumps(rec) + "\n")
        else:
            f = ev.fields if ev else {}
            self.csv.writerow([f"{now:.6f}", raw, int(ev is not None), ev.kind if ev else "",
                               f.get("seq", ""), f.get("cycles", ""), f.get("us", ""), f.get("top", ""),
                               f.get("score_milli", ""), "" if e is None else f"{e:.3f}"])
        self.f.flush()

    def write_window(self, w, rate_hz: float) -> None:
        """A measured window (--power): when it was in the monitor's samples and its energy per inference."""
        start, end = w.start / rate_hz, w.end / rate_hz
        if self.jsonl:
            self.f.write(json.dumps({"time": time.time(), "kind": "power", "source": w.source, "seq": w.seq,
                                     "window_s": [start, end], "inferences": w.inferences,
                                     "energy_uj": w.uj_per_inference, "energy_kind": "measured"}) + "\n")
        else:
            self.csv.writerow([f"{time.time():.6f}", f"power {w.source} {start:.6f}-{end:.6f} s", 1, "power",
                               w.seq or "", "", f"{(end - start) * 1e6:.0f}", "", "", f"{w.uj_per_inference:.3f}"])
        self.f.flush()

    def close(self) -> None:
        self.out.close()

    def discard(self) -> None:
        """A session that never started: its temporary removed, an earlier log left as it was."""
        self.out.discard()


def open_port(url: str, baud: int, timeout: float = 0.2):
    """Any pyserial URL: /dev/tty*, socket://host:port, rfc2217://..., loop://."""
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError, OSError) as e:
        raise MonitorError(f"Cannot open {url}: {e}.") from None


class Writer(threading.Thread):
    """Writes the samples for --send in a thread of its own. A write blocks until the port takes the
    bytes: on a board that stops reading, or on loop:// once its 4 KiB buffer is full, that is
    forever, and the reading (and --duration) must not wait on it. pyserial's own non-blocking write
    spins while a tty's buffer is full, so a thread is the portable way."""

    def __init__(self, port):
        super().__init__(daemon=True, name="tinygen-send")
        self.port = port
        self.pending: queue.Queue[bytes] = queue.Queue()
        self.ended = threading.Event()

    def send(self, data: bytes) -> None:
        self.pending.put(data)

    def run(self) -> None:
        while not self.ended.is_set():
            try:
                data = self.pending.get(timeout=0.05)
            except queue.Empty:
                continue
            for i in range(0, len(data), WRITE_CHUNK):
                if self.ended.is_set():
                    return
                try:
                    self.port.write(data[i:i + WRITE_CHUNK])
                except Exception:  # noqa: BLE001 (a port closing under a write raises many kinds;
                    return         # the reader sees the port go and reconnects)

    def stop(self) -> None:
        """End the thread, unblocking a write that waits: drop what the port has not sent (the
        session is over) and cancel the write where the port can."""
        self.ended.set()
        for unblock in ("reset_output_buffer", "cancel_write"):
            try:
                getattr(self.port, unblock)()
            except Exception:  # noqa: BLE001 (not every handler has it, or the port is gone)
                pass
        self.join(timeout=1.0)


@dataclass
class Monitor:
    url: str
    baud: int
    board: Board | None = None
    log: Log | None = None
    reconnect_wait: float = 0.5
    give_up_after: float = 60.0       # seconds without the port before the session ends
    notify: Callable[[str], None] = lambda msg: None
    stop_at_done: bool = True          # a test-vector firmware prints `done` when it has finished
    inputs: list[bytes] = field(default_factory=list)   # for --input serial firmware: sent one per inference
    power: object | None = None       # a device.power.PowerSession (--power): measured energy per inference
    stats: Stats = field(init=False)
    finished: bool = field(init=False, default=False)

    def __post_init__(self):
        self.stats = Stats(self.board)

    def _send_next(self) -> None:
        """Serial-input firmware waits for `I<N>\\n` and N bytes before each inference."""
        if self._next_input < len(self.inputs):
            data = self.inputs[self._next_input]
            self._writer.send(f"I{len(data)}\n".encode() + data)
            self._next_input += 1

    def _start_writer(self, port) -> None:
        if self.inputs:
            self._writer = Writer(port)
            self._writer.start()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    def _handle(self, raw: bytes) -> None:
        text = raw.decode("ascii", errors="replace").rstrip("\r\n")
        ev = parse_line(raw)
        if ev is not None and self.power is not None and ev.kind == "inf" and counter(ev, "us") is not None:
            # the inference ended before its line was sent: 10 bits a byte at the port's rate
            self.power.lap(time.monotonic(), counter(ev, "us"), ev.fields.get("seq"), len(raw) * 10 / self.baud)
        if ev is not None:
            self.stats.add(ev)
            if ev.kind == "done":
                self.finished = True
        elif text.startswith("TG"):
            self.stats.bad_lines += 1   # ours, but corrupt or cut
        elif text:
            self.stats.other_lines += 1  # boot text, other firmware: counted, skipped
        if self.log is not None:
            self.log.write(text, ev)

    def run(self, count: int | None = None, duration: float | None = None,
            stop: Callable[[], bool] = lambda: False, on_update: Callable[[Stats], None] = lambda s: None) -> Stats:
        """Read until `count` inferences, `duration` seconds, the firmware's `done`, or stop()."""
        splitter = LineSplitter()
        deadline = None if duration is None else time.monotonic() + duration
        port = open_port(self.url, self.baud)
        self._next_input, self._writer = 0, None
        if self.inputs:
            count = len(self.inputs) if count is None else min(count, len(self.inputs))
            self._start_writer(port)
            self._send_next()
        lost_since = None
        try:
            if self.power is not None:
                self.power.start()
                self.stats.power, self._power_shown = self.power.summary(), time.monotonic()
            while True:
                self._poll_power()
                if stop() or (deadline and time.monotonic() >= deadline):
                    break
                if count is not None and self.stats.inferences >= count:
                    break
                if port is None:
                    try:
                        port = open_port(self.url, self.baud)
                        self.stats.reconnects += 1
                        self._start_writer(port)
                        if self.inputs and self._next_input > self.stats.inferences:
                            self._next_input = self.stats.inferences   # resend the one that was lost
                            self._send_next()
                        self.notify(f"{self.url} is back; reading again.")
                        lost_since = None
                    except MonitorError:
                        if time.monotonic() - lost_since > self.give_up_after:
                            raise MonitorError(f"{self.url} has been gone for {self.give_up_after:.0f} s; giving up.") from None
                        time.sleep(self.reconnect_wait)
                        continue
                try:
                    data = port.read(port.in_waiting or 1)
                except (serial.SerialException, OSError) as e:
                    self.notify(f"{self.url} went away ({e}); waiting for it to come back.")
                    if splitter.reset():
                        self.stats.bad_lines += 1   # the line it was in the middle of
                    self._stop_writer()
                    try:
                        port.close()
                    except Exception:
                        pass
                    port, lost_since = None, time.monotonic()
                    continue
                if not data:
                    on_update(self.stats)
                    continue
                for raw in splitter.feed(data):
                    before = self.stats.inferences
                    self._handle(raw)
                    if self.inputs and self.stats.inferences > before:
                        self._send_next()
                    if count is not None and self.stats.inferences >= count:
                        break
                self.stats.bad_lines += splitter.overflows
                splitter.overflows = 0
                on_update(self.stats)
                if self.finished and self.stop_at_done:
                    break
        finally:
            self._stop_writer()
            if port is not None:
                port.close()
            if self.power is not None:
                self.power.stop()
                self._poll_power(final=True)
            if self.log is not None:
                self.log.close()
        return self.stats

    def _poll_power(self, final: bool = False) -> None:
        """Measured windows in, per inference; a monitor that failed ends the session."""
        if self.power is None:
            return
        if self.power.error is not None and not final:
            raise MonitorError(str(self.power.error))
        new = self.power.poll(final)
        for w in new:
            self.stats.measured_uj.extend([w.uj_per_inference] * w.inferences)
            if self.log is not None:
                self.log.write_window(w, self.power.monitor.rate_hz)
        now = time.monotonic()
        if new or final or now - self._power_shown > 0.5:   # its summary sorts every window: not per line
            self.stats.power, self._power_shown = self.power.summary(), now


def latency_png(stats: Stats, path: Path, title: str) -> None:
    """Latency over the session and its histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = stats.latencies_us
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120, gridspec_kw={"width_ratios": [2, 1]})
    a.plot(range(len(lat)), [v / 1000 for v in lat], lw=0.8, color="#4c72b0")
    a.set_xlabel("inference")
    a.set_ylabel("latency (ms)")
    a.set_title(title, fontsize=9)
    b.hist([v / 1000 for v in lat], bins=min(50, max(5, len(lat) // 10)), color="#4c72b0")
    b.set_xlabel("latency (ms)")
    b.set_ylabel("inferences")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def samples_to_send(path: Path, model: Path | None) -> list[bytes]:
    """`--send`: samples for serial-input firmware, one per inference, as int8 bytes; float samples
    are quantized with the int8 model's input scale and zero point. With the model, samples are
    checked against its input shape as well."""
    import numpy as np

    from ..errors import DataError, ModelError
    from ..model.data import Dataset, conform, load_data, quantize_samples
    from ..model.graph import parse

    what = "the samples to send"
    ds = load_data(path, what)
    ds = Dataset(ds.x, None, ds.source, x_name=ds.x_name)   # labels are not sent
    if model is None:
        if ds.x.dtype != np.int8:
            raise DataError(f"{path} holds {ds.x.dtype} samples; pass --model (the int8 .tflite) to quantize them, or send int8.")
        return [s.tobytes() for s in ds.x]
    if not model.is_file():
        there = f"{model} is a folder" if model.is_dir() else f"There is no model at {model}"
        raise ModelError(f"{there}; --model takes the int8 .tflite whose input quantization to use.")
    try:
        model_bytes = model.read_bytes()
    except OSError as e:
        raise ModelError(f"{model} cannot be read ({e.strerror or e}).") from None
    graph = parse(model_bytes, model.name)
    tin = graph.tensors[graph.inputs[0]]
    if tin.dtype != "INT8":
        raise ModelError(f"{model.name} takes {tin.dtype.lower()} input, not int8; --model takes the int8 .tflite "
                         "tinygen built, whose input the firmware reads.")
    x = conform(ds, tin.shape, what).x
    return [s.tobytes() for s in quantize_samples(graph, x)]
