"""Drive an MLPerf Tiny / EEMBC EnergyRunner device under test (mlcommons/tiny benchmark/api):
'%'-terminated commands, answered by m- lines, e-[...] errors, and m-ready."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ..errors import TinygenError

# Bytes per `db` command: the reference host's 31 (benchmark/runner device_under_test.py), 62 hex
# digits, well inside the DUT's 80-character command buffer.
HEX_BYTES_PER_DB = 31
# The DUT's UART in MLPerf's energy mode (benchmark/runner devices_*.yaml `energy: 9600`, the
# references' th_serialport_initialize): what `monitor --mlperf ... --power` talks at by default.
ENERGY_BAUD = 9600
_LAP = re.compile(r"^m-lap-us-([0-9]+)$")
_RESULTS = re.compile(r"^m-results-\[([^]]+)\]$")


class MlperfError(TinygenError):
    """The DUT answered with an error, or not at all."""


@dataclass
class InferResult:
    n: int
    warmup: int
    total_us: int
    results: list[float]

    @property
    def latency_us(self) -> float:
        return self.total_us / self.n


class MlperfDut:
    def __init__(self, port, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self.buf = b""

    def _readline(self, deadline: float) -> str:
        while b"\n" not in self.buf:
            if time.monotonic() > deadline:
                raise MlperfError(f"the DUT did not answer within {self.timeout:.0f} s")
            self.buf += self.port.read(self.port.in_waiting or 1)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("ascii", errors="replace").strip()

    def command(self, cmd: str) -> list[str]:
        """Send one command; return its m- lines (without m-ready). An e- line is an MlperfError."""
        self.port.write(cmd.encode("ascii") + b"%")
        deadline = time.monotonic() + self.timeout
        lines, errors = [], []
        while True:
            line = self._readline(deadline)
            if line == "m-ready":
                break
            if line.startswith("e-"):
                errors.append(line)
            elif line.startswith("m-"):
                lines.append(line)
        if errors:
            raise MlperfError(f"'{cmd}' failed: {'; '.join(errors)}")
        return lines

    def sync(self) -> str:
        """Get in step with the DUT: whatever it printed on its own (m-init-done and m-ready at
        boot, perhaps later than we connected) is skipped up to the answer to our `name`.
        Returns the DUT's name."""
        self.port.write(b"name%")
        deadline = time.monotonic() + self.timeout
        name = None
        while True:
            line = self._readline(deadline)
            m = re.match(r"m-name-([^-\[]+)-\[(.*)\]", line)
            if m:
                name = f"{m.group(1)} [{m.group(2)}]"
            elif line == "m-ready" and name is not None:
                return name

    def name(self) -> str:
        for line in self.command("name"):
            m = re.match(r"m-name-([^-\[]+)-\[(.*)\]", line)
            if m:
                return f"{m.group(1)} [{m.group(2)}]"
        raise MlperfError("the DUT's answer to 'name' has no m-name line")

    def profile(self) -> dict[str, str]:
        out = {}
        for line in self.command("profile"):
            m = re.match(r"m-(profile|model)-\[(.*)\]", line)
            if m:
                out[m.group(1)] = m.group(2)
        return out

    def load(self, data: bytes) -> None:
        lines = self.command(f"db load {len(data)}")
        if not any("Expecting" in l for l in lines):
            raise MlperfError(f"the DUT did not accept 'db load {len(data)}': {lines}")
        done = False
        for i in range(0, len(data), HEX_BYTES_PER_DB):
            done = any(l == "m-load-done" for l in self.command("db " + data[i:i + HEX_BYTES_PER_DB].hex()))
        if not done:
            raise MlperfError("the DUT never said m-load-done")

    def infer(self, n: int, warmup: int, laps: bool = True) -> InferResult:
        """`infer N W`, read as the reference host reads it: the first m-lap-us is the start, the
        last the end, their difference the run's microseconds; the results line as floats. With
        laps=False (energy mode: the DUT pulses its timestamp pin instead of printing laps) the
        time is the caller's to take, and total_us is 0 when no laps came."""
        lines = self.command(f"infer {n} {warmup}")
        stamps = [int(m.group(1)) for m in map(_LAP.match, lines) if m]
        res = [m.group(1) for m in map(_RESULTS.match, lines) if m]
        if (laps and len(stamps) < 2) or not res:
            raise MlperfError(f"'infer {n} {warmup}' gave no timing or no results: {lines}")
        if len(stamps) >= 2 and stamps[-1] < stamps[0]:
            raise MlperfError(f"the DUT's clock went backwards during 'infer {n} {warmup}': {stamps[0]} then {stamps[-1]} us")
        values = [float(v) for v in res[-1].split(",") if v.strip()]
        return InferResult(n, warmup, stamps[-1] - stamps[0] if len(stamps) >= 2 else 0, values)


def payload(model_id: str, data) -> bytes:
    """The bytes the runner loads for one input of benchmark `model_id`, from raw bytes (sent as
    they are) or an array: uint8 pixels for ic01 and vww01 (values 0..255), int8 for kws01 and
    sww01, little-endian float32 for ad01 (the DUT converts them as the reference does)."""
    import numpy as np

    from ..model.mlperf_tiny import BENCHMARKS

    b = BENCHMARKS.get(model_id)
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
    elif b is None:
        raw = np.asarray(data).astype(np.int8).tobytes()
    else:
        a = np.asarray(data)
        if b.input_kind == "uint8":
            if a.size and (not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 255 or np.any(a != np.round(a))):
                raise MlperfError(f"{model_id} takes uint8 pixels, whole numbers 0..255, and this input is not one.")
            raw = a.astype(np.uint8).tobytes()
        elif b.input_kind == "float32":
            raw = a.astype("<f4").tobytes()
        else:
            if a.size and (not np.all(np.isfinite(a)) or a.min() < -128 or a.max() > 127 or np.any(a != np.round(a))):
                raise MlperfError(f"{model_id} takes int8 values, whole numbers -128..127, and this input is not one.")
            raw = a.astype(np.int8).tobytes()
    if b is not None and len(raw) != b.payload_bytes:
        raise MlperfError(f"{model_id} loads {b.payload_bytes} bytes ({b.input_elements} {b.input_kind} values); "
                          f"this input has {len(raw)}.")
    return raw


def run_session(port: str, rate: int, board, count: int, warmup: int, input_file=None,
                timeout: float = 30.0, power=None) -> dict:
    """`tinygen monitor --mlperf infer N W`: sync with the DUT, load the input (raw bytes, or the
    first sample of a .npy, in the form the benchmark the DUT reports takes; zeros without one),
    run N timed inferences after W warm-ups. Returns the summary the CLI prints or writes as JSON.

    With `power` (a device.power.PowerSession, not started), MLPerf's energy mode: the DUT pulses
    its timestamp pin before and after the N timed inferences, the monitor sees both edges on its
    digital input, and the energy between them divided by N is the energy per inference, as
    MLPerf's runner takes it. The time per inference is then the monitor's, between the edges."""
    import numpy as np

    from ..model.mlperf_tiny import BENCHMARKS
    from .monitor import MonitorError, energy_uj, open_port

    if count < 1 or warmup < 0:
        raise MlperfError("--mlperf takes `infer N W`, with N >= 1 inferences after W >= 0 warm-ups.")
    if power is not None and not power.monitor.has_pin:
        raise MlperfError(f"MLPerf's energy mode takes its window from the DUT's timestamp pin, and {power.monitor.name} "
                          "reads none here (pin=none); wire the pin to the monitor's input and name it.")
    window, first = None, 0
    if power is not None:
        power.start()   # a monitor that is not there says so before the DUT is touched
    try:
        ser = open_port(port, rate)
        dut = MlperfDut(ser, timeout=timeout)
        name = dut.sync()
        profile = dut.profile()
        model_id = profile.get("model", "")
        if input_file is not None:
            data = np.load(input_file)[0] if input_file.suffix == ".npy" else input_file.read_bytes()
            dut.load(payload(model_id, data))
        elif model_id in BENCHMARKS:
            dut.load(bytes(BENCHMARKS[model_id].payload_bytes))
        if power is not None:
            power.settle()   # every edge before `infer` (the boot pulse, a `timestamp`) is in and counted
            first = power.edge_count()
        r = dut.infer(count, warmup, laps=power is None)
        if power is not None:
            power.settle()
            window = power.pin_window(first, count)
        ser.close()
    except (MonitorError, MlperfError, OSError, ValueError, IndexError) as e:
        raise MlperfError(f"MLPerf DUT on {port}: {e}") from None
    finally:
        if power is not None:
            power.stop(settle_s=0.0, drain_s=0.0)
    if power is not None and power.error is not None:
        raise power.error
    if power is not None and window is None:
        got = power.edge_count() - first
        raise MlperfError(f"{power.monitor.name} saw {got} timestamp-pin edge{'s' if got != 1 else ''} during "
                          f"'infer {count} {warmup}', not the 2 MLPerf's energy mode makes: build the firmware with "
                          "--mlperf-mode energy and wire its timestamp pin (the board profile's serial.timestamp_pin) "
                          "to the monitor's digital input.")
    latency = r.latency_us if window is None else (window.end - window.start) / power.monitor.rate_hz / count * 1e6
    e = energy_uj(latency, board)
    energy = {"mean": e, "kind": "estimated" if e is not None else None}
    if window is not None:
        energy = {"mean": window.uj_per_inference, "median": window.uj_per_inference, "kind": "measured",
                  "window_uj": window.energy_uj, "inferences": count,
                  "estimate": {"mean": e, "kind": "estimated" if e is not None else None},
                  "power_monitor": power.summary(), "samples": power.samples}
    return {"port": port, "board": board.id if board else None, "dut": name, "profile": profile,
            "inferences": count, "warmup": warmup,
            "latency_us": {"mean": latency, "from": "serial laps" if window is None else "timestamp pin"},
            "energy_uj": energy, "results": r.results}
