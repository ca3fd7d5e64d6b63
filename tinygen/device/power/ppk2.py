"""Nordic's Power Profiler Kit II through `ppk2-api`: 100 k samples/s of current, each with the
eight logic inputs D0-D7, one of which is the firmware's timestamp pin.

`ppk2:/dev/ttyACM1[,mv=3000][,mode=source|ampere][,pin=0..7|none][,edge=fall|rise]`
In source mode the PPK2 powers the board at `mv` (default: the board's supply voltage); in ampere
mode it measures a board powered elsewhere, and `mv` is that supply's voltage (the PPK2 does not
measure it). Either way the voltage is the one set, not a measurement."""

from __future__ import annotations

import time

import numpy as np

from .core import Chunk, PowerError, PowerMonitor, register

RATE_HZ = 100_000   # the PPK2 streams at a fixed rate
RANGES = 5
_BLOCK = 128        # the running average in blocks: 0.82^-128 is far inside a float's range


def _running_average(x: np.ndarray, alpha: float, y0: float) -> np.ndarray:
    """y[k] = alpha x[k] + (1 - alpha) y[k-1] from y[-1] = y0, as the library updates it per sample:
    within a block, y[k] = b^(k+1) y0 + alpha b^k sum_j<=k b^-j x[j] with b = 1 - alpha."""
    beta = 1.0 - alpha
    y = np.empty_like(x)
    k = np.arange(_BLOCK, dtype=np.float64)
    up, down = beta ** k, beta ** -k
    for s in range(0, len(x), _BLOCK):
        xb = x[s:s + _BLOCK]
        m = len(xb)
        y[s:s + m] = beta * up[:m] * y0 + alpha * up[:m] * np.cumsum(xb * down[:m])
        y0 = y[s + m - 1]
    return y


def decode(ppk, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """ppk2-api's PPK2_API.get_samples, vectorized: the same calibration formula from the same
    parsed modifiers, the same spike filter at range switches, the same state kept on the `ppk`
    object (so the two can take turns). The library decodes one sample at a time in Python, about
    1 s of CPU per second of a PPK2's stream here: a reader that slow falls ever further behind.
    Where a switch into the top range (4) needs the filter's rewinding, the chunk goes to the
    library itself. Returns (µA, logic bits)."""
    rem = ppk.remainder["sequence"]
    buf = rem + data
    n = len(buf) // 4
    ppk.remainder = {"sequence": buf[n * 4:], "len": len(buf) - n * 4}
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=np.uint8)
    w = np.frombuffer(buf[: n * 4], dtype="<u4")
    rng = np.minimum((w >> 14) & 0x7, 4).astype(np.int64)
    bits = ((w >> 24) & 0xFF).astype(np.uint8)
    prev = int(ppk.prev_range) if ppk.prev_range is not None else int(rng[0])
    change = rng != np.concatenate([[prev], rng[:-1]])
    # flagged: a switch here or in the two samples before (after_spike counts 3 down), or the
    # countdown carried over from the last chunk
    flagged = change.copy()
    flagged[1:] |= change[:-1]
    flagged[2:] |= change[:-2]
    carry = max(0, int(ppk.after_spike))
    first_change = int(np.argmax(change)) if change.any() else n
    flagged[: min(carry, first_change, n)] = True
    if (flagged & (rng == 4)).any():
        ppk.remainder = {"sequence": rem, "len": len(rem)}   # the library takes it from the top
        amps, raw = ppk.get_samples(data)
        return np.asarray(amps, dtype=np.float64), np.asarray(raw, dtype=np.uint8)
    m = ppk.modifiers
    col = {k: np.array([float(m[k][str(i)]) for i in range(RANGES)]) for k in ("R", "GS", "GI", "O", "S", "I", "UG")}
    r = ((w & 0x3FFF).astype(np.float64) * 4 - col["O"][rng]) * (ppk.adc_mult / col["R"][rng])
    adc = col["UG"][rng] * (r * (col["GS"][rng] * r + col["GI"][rng]) + (col["S"][rng] * (ppk.current_vdd / 1000)
                                                                         + col["I"][rng]))
    out = adc.copy()
    for attr, alpha in (("rolling_avg4", ppk.spike_filter_alpha5), ("rolling_avg", ppk.spike_filter_alpha)):
        y0 = getattr(ppk, attr)
        y0 = adc[0] if y0 is None else y0
        y = _running_average(adc, alpha, y0)
        setattr(ppk, attr, float(y[-1]))
        if attr == "rolling_avg":
            out[flagged] = y[flagged]          # below range 4 the filtered value replaces the sample
    last = np.flatnonzero(change)
    if len(last):
        c = int(last[-1])
        ppk.after_spike = max(0, 2 - (n - 1 - c))
        ppk.consecutive_range_samples = min(n - 1 - c, 2)
    else:
        used = min(carry, n)
        ppk.after_spike = carry - used
        ppk.consecutive_range_samples += used
    ppk.prev_range = str(int(rng[-1]))
    return out * 1e6, bits


def _ppk2_api():
    try:
        from ppk2_api.ppk2_api import PPK2_API
    except ImportError:
        raise PowerError("Reading a PPK2 needs the ppk2-api package: pip install 'tinygen[power]'.") from None
    return PPK2_API


@register
class Ppk2(PowerMonitor):
    name = "ppk2"
    rate_hz = RATE_HZ

    def __init__(self, target, options, supply_v):
        super().__init__(target, options, supply_v)
        if not target:
            raise PowerError("ppk2 needs its serial port: --power ppk2:/dev/ttyACM1 (the PPK2's first port).")
        default_mv = int(round((supply_v or 3.3) * 1000))
        self.mv = self.option("mv", default_mv, int, "a whole number of millivolts, 800 to 5000")
        if not 800 <= self.mv <= 5000:
            raise PowerError(f"ppk2: mv={self.mv} is outside what the PPK2 supplies (800 to 5000 mV).")
        self.mode = self.option("mode", "source")
        if self.mode not in ("source", "ampere"):
            raise PowerError(f"ppk2: mode={self.mode}; it is `source` (the PPK2 powers the board) or `ampere`.")
        pin = self.option("pin", "0")   # D0 unless named; with no edges on it, the serial laps
        if pin.lower().lstrip("d") not in [str(i) for i in range(8)] + ["none"]:
            raise PowerError(f"ppk2: pin={pin}; the PPK2's logic inputs are 0 to 7 (D0-D7), or `none` for the serial laps.")
        self.pin = None if pin.lower() == "none" else int(pin.lower().lstrip("d"))
        self.has_pin = self.pin is not None
        self.falling = self.edge_option()
        self.ppk = None
        self._level = None
        self._n = 0

    def start(self) -> None:
        api = _ppk2_api()
        import serial

        try:
            self.ppk = api(self.target, timeout=1, write_timeout=1)
        except (serial.SerialException, OSError, ValueError) as e:
            raise PowerError(f"Cannot open {self.target}: {e}.") from None
        if not self.ppk.get_modifiers():
            self.stop()
            raise PowerError(f"{self.target} did not send a PPK2's calibration when asked: is it the PPK2's first "
                             "serial port, and is nothing else (nRF Connect) using it?")
        if self.mode == "source":
            self.ppk.use_source_meter()
        else:
            self.ppk.use_ampere_meter()
        self.ppk.set_source_voltage(self.mv)
        if self.mode == "source":
            self.ppk.toggle_DUT_power("ON")
        self.ppk.start_measuring()

    def read(self) -> Chunk | None:
        data = self.ppk.get_data()
        if not data:
            time.sleep(0.002)
            return None
        amps_u, bits = decode(self.ppk, data)
        n = min(len(amps_u), len(bits))
        if n == 0:
            return None
        i = np.asarray(amps_u[:n], dtype=np.float64) * 1e-6
        edges, pin = [], None
        if self.pin is not None:
            pin = (np.asarray(bits[:n], dtype=np.uint8) >> self.pin) & 1
            edges = self._edges(pin)
        self._n += n
        return Chunk(i, np.float64(self.mv / 1000.0), edges, pin)

    def _edges(self, pin: np.ndarray) -> list[int]:
        """Absolute indices of the samples where the pin changed to its active level."""
        prev = np.concatenate([[pin[0] if self._level is None else self._level], pin[:-1]])
        self._level = int(pin[-1])
        hit = (prev == 1) & (pin == 0) if self.falling else (prev == 0) & (pin == 1)
        return (np.flatnonzero(hit) + self._n).tolist()

    def stop(self) -> None:
        if self.ppk is None:
            return
        ppk, self.ppk = self.ppk, None
        try:
            ppk.stop_measuring()
            ppk.ser.close()
        except Exception:  # noqa: BLE001 (a port already gone: nothing left to stop)
            pass

    def describe(self) -> str:
        pin = f"timestamp pin D{self.pin} ({'falling' if self.falling else 'rising'} edges)" if self.pin is not None \
            else "windows from the serial laps"
        return f"PPK2 on {self.target}, {self.mode} mode at {self.mv} mV (set, not measured), 100 kHz, {pin}"
