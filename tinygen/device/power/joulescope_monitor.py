"""Joulescope JS220 / JS110 through the `joulescope` package: current and voltage both measured
per sample, and general-purpose input 0 (GPI0) read with them as the timestamp pin.

`joulescope[:SERIAL][,freq=100k][,pin=0|none][,edge=fall|rise]`"""

from __future__ import annotations

import time

import numpy as np

from .core import Chunk, PowerError, PowerMonitor, register

RATES = {"1M": 1_000_000, "500k": 500_000, "200k": 200_000, "100k": 100_000, "50k": 50_000,
         "20k": 20_000, "10k": 10_000}


def _joulescope():
    try:
        import joulescope
    except ImportError:
        raise PowerError("Reading a Joulescope needs the joulescope package: pip install 'tinygen[power]'.") from None
    return joulescope


@register
class Joulescope(PowerMonitor):
    name = "joulescope"

    def __init__(self, target, options, supply_v):
        super().__init__(target, options, supply_v)
        freq = self.option("freq", "100k")
        if freq not in RATES:
            raise PowerError(f"joulescope: freq={freq}; it takes {', '.join(RATES)}.")
        self.rate_hz = RATES[freq]
        pin = self.option("pin", "0").lower()
        if pin not in ("0", "none"):
            raise PowerError(f"joulescope: pin={pin}; the timestamp pin is read on GPI0 (`pin=0`), or `none` for the serial laps.")
        self.has_pin = pin == "0"
        self.falling = self.edge_option()
        self.device = None
        self._next = None
        self._level = None
        self._n = 0
        self._last_i = 0.0
        self._last_v = 0.0

    def start(self) -> None:
        js = _joulescope()
        devices = js.scan(config="auto")
        if self.target:
            devices = [d for d in devices if d.serial_number == self.target or str(d) == self.target]
        if not devices:
            raise PowerError("No Joulescope is connected" + (f" with serial number {self.target}" if self.target else "")
                             + ": is it plugged in, and is the Joulescope UI closed?")
        if len(devices) > 1:
            raise PowerError(f"{len(devices)} Joulescopes are connected ({', '.join(map(str, devices))}); "
                             "name one: --power joulescope:SERIAL.")
        d = self.device = devices[0]
        self.target = str(d)
        try:
            d.open()
            d.parameter_set("sensor_power", "on")
            d.parameter_set("sampling_frequency", self.rate_hz)
            d.parameter_set("current_lsb", "gpi0")   # the JS110 carries GPI0 in the current's LSB; the JS220 streams it
            d.start()
        except Exception as e:  # noqa: BLE001 (the driver raises its own kinds for a device that went away)
            self.stop()
            raise PowerError(f"The Joulescope {d} could not start streaming: {e}.") from None

    def read(self) -> Chunk | None:
        sb = self.device.stream_buffer if self.device is not None else None
        if sb is None:
            raise PowerError("The Joulescope stopped streaming.")
        first, end = sb.sample_id_range
        if first is None or first == end:
            time.sleep(0.005)
            return None
        if self._next is None:
            self._next = first
        if self._next < first:
            raise PowerError(f"The Joulescope's buffer overran: {first - self._next:,} samples were lost; "
                             "a lower freq= keeps up.")
        if self._next >= end:
            time.sleep(0.005)
            return None
        data = sb.samples_get(self._next, end, fields=["current", "voltage", "current_lsb"])
        self._next = end
        sig = data["signals"]
        i = self._filled(np.array(sig["current"]["value"], dtype=np.float64), "_last_i")
        v = self._filled(np.array(sig["voltage"]["value"], dtype=np.float64), "_last_v")
        edges, pin = [], None
        if self.has_pin:
            pin = (np.asarray(sig["current_lsb"]["value"]) > 0).astype(np.uint8)
            prev = np.concatenate([[pin[0] if self._level is None else self._level], pin[:-1]])
            self._level = int(pin[-1])
            hit = (prev == 1) & (pin == 0) if self.falling else (prev == 0) & (pin == 1)
            edges = (np.flatnonzero(hit) + self._n).tolist()
        self._n += len(i)
        return Chunk(i, v, edges, pin)

    def _filled(self, x: np.ndarray, last: str) -> np.ndarray:
        """A sample the Joulescope could not measure (NaN, around a range switch) takes the one before."""
        for k in np.flatnonzero(~np.isfinite(x)):   # rare: a loop over them is enough
            x[k] = x[k - 1] if k else getattr(self, last)
        if len(x):
            setattr(self, last, float(x[-1]))
        return x

    def stop(self) -> None:
        if self.device is None:
            return
        d, self.device = self.device, None
        try:
            d.stop()
            d.close()
        except Exception:  # noqa: BLE001 (a device already gone: nothing left to stop)
            pass

    def describe(self) -> str:
        how = f"timestamp pin on GPI0 ({'falling' if self.falling else 'rising'} edges)" if self.has_pin \
            else "windows from the serial laps"
        return f"Joulescope {self.target or ''}, current and voltage measured, {self.rate_hz:,} Hz, {how}".replace("  ", " ")
