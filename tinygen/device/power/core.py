"""What every power monitor shares: the spec (`ppk2:/dev/ttyACM1,pin=0`), the registry by name, the
chunks of samples a monitor hands over, and the session that reads them in a thread of its own,
finds the inference windows and integrates V x I over each.

Windows come from the firmware's timestamp pin where the monitor has a digital input (MLPerf Tiny's
convention: the pin falls at the start and again at the end of what is timed, so falling edges pair
up), else from the serial laps: a TG1 `inf` line's `us` is the window's length, and where the line
arrived places it."""

from __future__ import annotations

import array
import bisect
import collections
import statistics
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...errors import TinygenError

TRACE_HZ = 1000          # the kept current trace (for the plot): means over 1 ms
KEEP_S = 10.0            # samples kept for placing lap windows (a pin edge's energy is taken as it arrives)
KEEP_MAX = 10_000_000    # ... and at most this many (80 MB; 10 s of a Joulescope at 1 MHz)
LAP_SEARCH_S = 0.040     # how far a lap window may move from where its line says it was (keep it under the idle gap)
LAP_SLACK_S = 0.050      # wait this long past a lap's window for its samples (USB and OS delay)


class PowerError(TinygenError):
    """The power monitor cannot be opened, is not what it should be, or stopped answering."""


@dataclass
class Chunk:
    """Samples from a monitor, in order: current (A) and voltage (V) per sample, the sample
    indices (from the start of the capture) where the timestamp pin fell, and the pin's level per
    sample where the monitor has one (for the plot)."""

    current_a: np.ndarray
    voltage_v: np.ndarray
    edges: list[int] = field(default_factory=list)
    pin: np.ndarray | None = None


class PowerMonitor(ABC):
    name: ClassVar[str]
    has_pin: ClassVar[bool] = False     # can see the firmware's timestamp pin
    rate_hz: float

    def __init__(self, target: str | None, options: dict[str, str], supply_v: float | None):
        self.target, self.options, self.supply_v = target, dict(options), supply_v
        self.pin_named = "pin" in options   # pin=... given: use it (or not) whatever comes in

    def option(self, key: str, default, kind=str, what: str = ""):
        """An option from the spec, converted; a bad one is one sentence."""
        if key not in self.options:
            return default
        try:
            return kind(self.options.pop(key))
        except ValueError:
            raise PowerError(f"{self.name}: `{key}=` takes {what or kind.__name__}.") from None

    def edge_option(self) -> bool:
        """`edge=fall` (MLPerf's th_timestamp pulls the pin low) or `edge=rise`: True for falling."""
        edge = self.option("edge", "fall")
        if edge not in ("fall", "rise"):
            raise PowerError(f"{self.name}: edge={edge}; the timestamp pin's active edge is `fall` (MLPerf's) or `rise`.")
        return edge == "fall"

    def check_options(self) -> None:
        if self.options:
            raise PowerError(f"{self.name} has no option {', '.join(sorted(self.options))}.")

    @abstractmethod
    def start(self) -> None:
        """Open, configure and start streaming."""

    @abstractmethod
    def read(self) -> Chunk | None:
        """What has arrived since the last call (waits a little when nothing has)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop streaming and close; safe to call twice."""

    @abstractmethod
    def describe(self) -> str:
        """One line: which monitor, where, at what rate and voltage, which input is the pin."""


_MONITORS: dict[str, type[PowerMonitor]] = {}


def register(cls: type[PowerMonitor]) -> type[PowerMonitor]:
    _MONITORS[cls.name] = cls
    return cls


def monitor_names() -> list[str]:
    return sorted(_MONITORS)


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """`name[:target][,key=value...]` -> (name, target, options)."""
    head, *opts = spec.split(",")
    name, _, target = head.partition(":")
    options = {}
    for o in opts:
        k, eq, v = o.partition("=")
        if not eq or not k:
            raise PowerError(f"--power options are key=value after the monitor, e.g. ppk2:/dev/ttyACM1,pin=0; `{o}` is not.")
        options[k.strip()] = v.strip()
    return name.strip().lower(), (target or None), options


def open_monitor(spec: str, supply_v: float | None = None) -> PowerMonitor:
    name, target, options = parse_spec(spec)
    if name not in _MONITORS:
        raise PowerError(f"There is no power monitor '{name}'; tinygen reads {', '.join(monitor_names())}.")
    m = _MONITORS[name](target, options, supply_v)
    m.check_options()
    return m


@dataclass
class Window:
    start: int             # sample indices, [start, end)
    end: int
    energy_uj: float       # over the whole window
    inferences: int        # inferences inside it
    source: str            # "pin" or "lap"
    seq: str | None = None
    moved: int = 0         # lap windows: samples the search moved it from where its line placed it

    @property
    def uj_per_inference(self) -> float:
        return self.energy_uj / self.inferences


class _Energy:
    """Energy per sample (V x I / rate) kept in chunks with a running total at each chunk's start,
    so any window's energy is two look-ups and two partial sums."""

    def __init__(self, rate: float):
        self.rate = rate
        self.starts: list[int] = []
        self.totals: list[float] = []   # energy (J) before each chunk
        self.chunks: collections.deque = collections.deque()
        self.n = 0
        self.total = 0.0

    def add(self, joules: np.ndarray) -> None:
        if not len(joules):
            return
        self.starts.append(self.n)
        self.totals.append(self.total)
        self.chunks.append(joules)
        self.n += len(joules)
        self.total += float(joules.sum())
        while self.starts and self.n - self.starts[0] > min(KEEP_S * self.rate, KEEP_MAX) and len(self.chunks) > 1:
            self.starts.pop(0)
            self.totals.pop(0)
            self.chunks.popleft()

    def before(self, i: int) -> float | None:
        """Energy (J) of samples [0, i), or None if sample i is gone or not here yet."""
        if i == self.n:
            return self.total
        if i > self.n or not self.starts or i < self.starts[0]:
            return None
        k = bisect.bisect_right(self.starts, i) - 1
        return self.totals[k] + float(self.chunks[k][: i - self.starts[k]].sum())

    def span(self, a: int, b: int) -> np.ndarray | None:
        """Per-sample energies of [a, b), or None if not all kept."""
        if a < 0 or b > self.n or not self.starts or a < self.starts[0]:
            return None
        k = bisect.bisect_right(self.starts, a) - 1
        parts, i = [], a
        while i < b:
            c, s = self.chunks[k], self.starts[k]
            parts.append(c[i - s: min(b, s + len(c)) - s])
            i = s + len(c)
            k += 1
        return np.concatenate(parts) if parts else np.zeros(0)


class PowerSession:
    """Reads a monitor in its own thread (a PPK2 streams 400 kB/s: a serial buffer read only between
    the firmware's lines would overflow) and turns samples into measured windows."""

    def __init__(self, monitor: PowerMonitor, per_window: int = 1, pair_edges: bool = True):
        self.monitor = monitor
        self.per_window = per_window
        # False: the caller says which edges bound a window (pin_window), as MLPerf's runner does
        # with the two timestamps around `infer`; poll() then pairs none of them
        self.pair_edges = pair_edges
        self._edge_log: list[tuple[int, float | None]] = []   # every edge: (sample index, energy in J before it)
        # None: not decided yet. A monitor that reads a pin, with no pin= named, uses it once edges
        # come in, and the serial laps if two laps' windows have gone by without one.
        self.use_pin = monitor.has_pin if monitor.pin_named or not monitor.has_pin else None
        self._edges_seen = False
        self.windows: list[Window] = []
        self.samples = 0
        self.error: PowerError | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._edges: list[tuple[int, float]] = []   # (sample index, energy in J before it), as they came
        self._laps: list[tuple[float, int, str | None, float]] = []   # (arrival, us, seq, line seconds)
        self._t0 = float("inf")             # host monotonic time of the first sample, bounded from above
        self._energy: _Energy | None = None
        self._trace = array.array("d")       # mean current (A) per 1/TRACE_HZ, for the whole session
        self._pin_trace = array.array("B")
        self._pending = np.zeros(0)
        self._pending_pin = np.zeros(0, dtype=np.uint8)
        self._new: list[Window] = []

    # -- the reading thread ---------------------------------------------------------------
    def start(self) -> None:
        """Open the monitor and read it from here on; a second call does nothing."""
        if self._thread is not None:
            return
        self.monitor.start()
        self._energy = _Energy(self.monitor.rate_hz)
        self._thread = threading.Thread(target=self._run, daemon=True, name="tinygen-power")
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                c = self.monitor.read()
                now = time.monotonic()
                if c is None or (len(c.current_a) == 0 and not c.edges):   # an edge can come alone (LPM01A)
                    continue
                self._take(c, now)
        except PowerError as e:
            self.error = e
        except Exception as e:  # noqa: BLE001 (a library raising anything: one sentence, not a dead thread)
            self.error = PowerError(f"{self.monitor.name} stopped: {e}.")

    def _take(self, c: Chunk, now: float) -> None:
        i = np.asarray(c.current_a, dtype=np.float64)
        v = np.broadcast_to(np.asarray(c.voltage_v, dtype=np.float64), i.shape)
        with self._lock:
            self._energy.add(i * v / self.monitor.rate_hz)
            # the energy up to each edge now, while its samples are here: a pin window (MLPerf's
            # are 10 s or more) need not keep its samples until its end comes
            at = [(e, self._energy.before(e)) for e in c.edges]
            self._edges.extend(at)
            self._edge_log.extend(at)
            self._edges_seen = self._edges_seen or bool(c.edges)
            self.samples += len(i)
            # the capture began no later than (read time - samples so far / rate): keep the tightest
            self._t0 = min(self._t0, now - self.samples / self.monitor.rate_hz)
            step = max(1, int(round(self.monitor.rate_hz / TRACE_HZ)))
            self._pending = np.concatenate([self._pending, i])
            whole = len(self._pending) // step * step
            if whole:
                self._trace.extend(self._pending[:whole].reshape(-1, step).mean(axis=1))
                self._pending = self._pending[whole:]
            if c.pin is not None:
                self._pending_pin = np.concatenate([self._pending_pin, np.asarray(c.pin, dtype=np.uint8)])
                whole = len(self._pending_pin) // step * step
                if whole:
                    self._pin_trace.extend(self._pending_pin[:whole].reshape(-1, step).min(axis=1))
                    self._pending_pin = self._pending_pin[whole:]

    def stop(self, settle_s: float = 0.2, drain_s: float = 15.0) -> None:
        """Stop once the samples up to now are in (`settle_s` more, for those still on their way;
        at most `drain_s` for a reader that fell behind a fast stream): the last inference's samples
        may still be coming when the firmware's last line is in."""
        self.settle(settle_s, drain_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        try:
            self.monitor.stop()
        finally:
            self._new = self.poll(final=True)   # resolved now, still handed out by the next poll()

    def settle(self, settle_s: float = 0.2, drain_s: float = 15.0) -> None:
        """Wait until the samples made up to now (and `settle_s` more) are in, at most `drain_s`."""
        if self._thread is None or self.error is not None:
            return
        with self._lock:
            due = self._host_to_sample(time.monotonic() + settle_s)
        end = time.monotonic() + drain_s
        time.sleep(settle_s)
        while due is not None and self.samples < due and time.monotonic() < end and self.error is None:
            time.sleep(0.02)

    # -- windows ----------------------------------------------------------------------------
    def edge_count(self) -> int:
        """Timestamp-pin edges seen so far, every one since the start."""
        with self._lock:
            return len(self._edge_log)

    def pin_window(self, first: int, inferences: int) -> Window | None:
        """The window from edge `first` (counted from the start) to the next one, for `inferences`
        inferences: MLPerf's energy mode, where the DUT pulses the pin before and after its timed
        inferences and the runner integrates between the two. None until both edges are in."""
        with self._lock:
            if len(self._edge_log) < first + 2:
                return None
            (a, ea), (b, eb) = self._edge_log[first:first + 2]
            if ea is None or eb is None or b <= a:
                return None
            w = Window(a, b, (eb - ea) * 1e6, inferences, "pin")
            self._add(w)
            return w

    def lap(self, arrival: float, us: int, seq: str | None, line_seconds: float) -> None:
        """A TG1 `inf` line arrived (host monotonic time): its inference ended before the line was
        sent, and lasted `us` by the firmware's clock."""
        if self.use_pin is not True:
            with self._lock:
                self._laps.append((arrival, us, seq, line_seconds))

    def _host_to_sample(self, t: float) -> float | None:
        """Sample index at host time t. Sample n was made before the read that brought it, so the
        capture began no later than (read time - n / rate) for every read: the smallest such bound
        is the best estimate. (The monitor's clock drifting from the host's, 50 ppm = 3 ms a
        minute, is left to the lap search.)"""
        if self._t0 == float("inf"):
            return None
        return (t - self._t0) * self.monitor.rate_hz

    def poll(self, final: bool = False) -> list[Window]:
        """Windows completed since the last call."""
        if self._energy is None:   # never started
            return []
        with self._lock:
            if self.use_pin is None:
                self._decide(final)
            if self.use_pin and not self.pair_edges:
                self._edges.clear()
            elif self.use_pin:
                while len(self._edges) >= 2:
                    (a, ea), (b, eb) = self._edges[:2]
                    del self._edges[:2]
                    if ea is not None and eb is not None and b > a:
                        self._add(Window(a, b, (eb - ea) * 1e6, self.per_window, "pin"))
            else:
                rate = self.monitor.rate_hz
                search, slack = int(LAP_SEARCH_S * rate), int(LAP_SLACK_S * rate)
                while self._laps:
                    arrival, us, seq, line_s = self._laps[0]
                    end = self._host_to_sample(arrival - line_s)
                    if end is None:
                        break
                    n = max(1, int(round(us * rate / 1e6)))
                    guess = int(round(end)) - n
                    if guess + n + search + slack > self._energy.n and not final:
                        break
                    self._laps.pop(0)
                    start = self._place(guess, n, search)
                    if start is not None:
                        self._window(start, start + n, "lap", seq, start - guess)
            new, self._new = self._new, []
        return new

    def _decide(self, final: bool) -> None:
        """Pin or laps, for a monitor that reads a pin when none was named: the pin once an edge has
        come in; the laps once two laps' windows (and the slack after them) are in the samples with
        no edge, or at the end."""
        if self._edges_seen:
            self.use_pin, self._laps = True, []
            return
        if len(self._laps) >= 2:
            arrival = self._laps[1][0]
            end = self._host_to_sample(arrival + LAP_SLACK_S)
            if end is not None and end <= self._energy.n:
                self.use_pin = False
        if final and self.use_pin is None:
            self.use_pin = False

    def _place(self, guess: int, n: int, search: int) -> int | None:
        """Where the n samples with the most energy are, within `search` of `guess`: the inference
        draws more than the loop around it, so that is where it ran."""
        lo = max(guess - search, self._energy.starts[0] if self._energy.starts else 0)
        hi = min(guess + search, self._energy.n - n)
        if hi < lo:
            return None
        e = self._energy.span(lo, hi + n)
        if e is None:
            return None
        c = np.concatenate([[0.0], np.cumsum(e)])
        sums = c[n:] - c[:-n]
        return lo + int(np.argmax(sums))

    def _window(self, a: int, b: int, source: str, seq: str | None, moved: int = 0) -> None:
        ea, eb = self._energy.before(a), self._energy.before(b)
        if ea is None or eb is None or b <= a:
            return
        self._add(Window(a, b, (eb - ea) * 1e6, self.per_window, source, seq, moved))

    def _add(self, w: Window) -> None:
        self.windows.append(w)
        self._new.append(w)

    # -- what the CLI shows ------------------------------------------------------------------
    def summary(self) -> dict:
        per = [w.uj_per_inference for w in self.windows]
        return {
            "name": self.monitor.name,
            "describe": self.monitor.describe(),
            "rate_hz": self.monitor.rate_hz,
            "windows_from": {True: "timestamp pin", False: "serial laps", None: "pin or laps (not yet known)"}[self.use_pin],
            "samples": self.samples,
            "windows": len(self.windows),
            "uj_per_inference": {"median": statistics.median(per) if per else None,
                                 "mean": statistics.fmean(per) if per else None,
                                 "min": min(per) if per else None, "max": max(per) if per else None},
        }

    def trace(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Seconds, mean current (A) per millisecond, and the pin's level where it has one."""
        with self._lock:
            i = np.frombuffer(self._trace, dtype=np.float64).copy()
            pin = np.frombuffer(self._pin_trace, dtype=np.uint8).copy() if len(self._pin_trace) else None
        step = max(1, int(round(self.monitor.rate_hz / TRACE_HZ)))
        return np.arange(len(i)) * step / self.monitor.rate_hz, i, pin
