"""Measured energy per inference (`monitor --power`) against simulated monitors at their real
boundary (tests/power_sims.py): the PPK2's and LPM01A's serial protocols on pseudo-terminals, the
Joulescope's native driver under the real joulescope package. Each simulator knows the exact
integral of V x I over each inference; what tinygen measures must be within 0.5 % of it."""

import json
import os
import subprocess
import sys
import time

import pytest

from power_sims import FakeJoulescopeDriver, Lpm01aSim, Ppk2Sim, Waveform, _Pty, dut_lines
from tinygen.boards import load_board
from tinygen.device.monitor import Log, Monitor
from tinygen.device.power import PowerError, PowerSession, open_monitor, parse_spec

TOLERANCE = 0.005


def _check(windows, wave: Waveform):
    """Every window matched to the simulator's inference with the nearest start, within 0.5 %."""
    assert windows, "nothing was measured"
    errors = []
    for w in windows:
        k = min(range(len(wave.windows)), key=lambda j: abs(wave.windows[j][0] - w.start / w.rate))
        exact = wave.energy_uj(k)
        assert w.energy_uj == pytest.approx(exact, rel=TOLERANCE), (k, w.energy_uj, exact)
        errors.append(abs(w.energy_uj / exact - 1))
    return max(errors)


def _run(monitor, wave: Waveform, timeout: float = 30.0) -> PowerSession:
    s = PowerSession(monitor)
    s.start()
    t = time.monotonic()
    while s.samples < (wave.end + 0.05) * monitor.rate_hz and time.monotonic() - t < timeout and s.error is None:
        time.sleep(0.05)
    s.stop()
    assert s.error is None
    for w in s.windows:
        w.rate = monitor.rate_hz
    return s


def test_specs_and_bad_options_are_one_sentence():
    assert parse_spec("ppk2:/dev/ttyACM1,pin=3,mv=1800") == ("ppk2", "/dev/ttyACM1", {"pin": "3", "mv": "1800"})
    assert parse_spec("joulescope") == ("joulescope", None, {})
    for spec, words in [("nope:/dev/x", "There is no power monitor 'nope'"), ("ppk2", "needs its serial port"),
                        ("ppk2:/dev/x,pin=9", "0 to 7"), ("ppk2:/dev/x,mv=abc", "millivolts"),
                        ("ppk2:/dev/x,mv=9000", "800 to 5000"), ("lpm01a:/dev/x,freq=3k", "freq=3k"),
                        ("ppk2:/dev/x,colour=red", "no option colour"), ("ppk2:/dev/x,pin", "key=value"),
                        ("joulescope,edge=up", "`fall` \\(MLPerf's\\) or `rise`")]:
        with pytest.raises(PowerError, match=words):
            open_monitor(spec)
    with pytest.raises(PowerError, match="Cannot open"):
        open_monitor("ppk2:/nonexistent/tty").start()


def test_ppk2_pin_windows_equal_the_known_integral(tmp_path):
    wave = Waveform.regular(10, first=0.20013, gap=0.02537)
    sim = Ppk2Sim(tmp_path / "ttyPPK2", wave, pin=3)
    try:
        m = open_monitor(f"ppk2:{tmp_path / 'ttyPPK2'},mv=3000,pin=3")
        s = _run(m, wave)
    finally:
        sim.close()
    assert sim.vdd_mv == 3000 and (0x11, 2) in sim.commands and (0x0C, 1) in sim.commands   # source mode, powered
    assert len(s.windows) == 10 and all(w.source == "pin" for w in s.windows)
    assert _check(s.windows, wave) < TOLERANCE


def test_ppk2_without_a_calibration_reply_is_one_sentence(tmp_path):
    dead = _Pty(tmp_path / "ttyDEAD")   # a port that never answers
    try:
        with pytest.raises(PowerError, match="did not send a PPK2's calibration"):
            open_monitor(f"ppk2:{tmp_path / 'ttyDEAD'}").start()
    finally:
        dead.close()


def test_lpm01a_event_windows_equal_the_known_integral(tmp_path):
    wave = Waveform.regular(6, first=0.30013, length=0.1, gap=0.04037)
    sim = Lpm01aSim(tmp_path / "ttyLPM", wave)
    try:
        s = _run(open_monitor(f"lpm01a:{tmp_path / 'ttyLPM'},mv=3000"), wave)
    finally:
        sim.close()
    assert sim.commands[:3] == ["htc", "pwr off", "volt 3000m"] and "eventsrc d7 fal" in sim.commands
    assert "start" in sim.commands and sim.commands[-2:] == ["stop", "hrc"]
    assert len(s.windows) == 6
    assert _check(s.windows, wave) < TOLERANCE


def test_lpm01a_refusal_is_the_shields_sentence(tmp_path):
    sim = Lpm01aSim(tmp_path / "ttyLPM", Waveform.regular(1))
    sim.KNOWN = tuple(k for k in sim.KNOWN if k != "eventsrc")   # older firmware without the event input
    try:
        with pytest.raises(PowerError, match="refused `eventsrc d7 fal`: command not recognized"):
            open_monitor(f"lpm01a:{tmp_path / 'ttyLPM'},mv=3000").start()
    finally:
        sim.close()


@pytest.fixture
def fake_joulescope(monkeypatch):
    """The joulescope package, real down to the native driver it calls."""
    import joulescope.v1.driver as jd

    monkeypatch.setattr(jd, "Driver", FakeJoulescopeDriver)
    monkeypatch.setattr(jd.DriverWrapper, "__singleton__", None)
    yield FakeJoulescopeDriver
    s = jd.DriverWrapper.__dict__.get("__singleton__")
    if s is not None and s.driver is not None:
        s.driver.finalize()


def test_joulescope_gpi_windows_with_measured_voltage(fake_joulescope):
    wave = fake_joulescope.wave = Waveform.regular(8, first=0.20013, gap=0.02037, v0=3.3, r_source=2.0)
    m = open_monitor("joulescope,freq=100k")
    s = _run(m, wave)
    assert "JS220-004242" in m.describe()
    assert len(s.windows) == 8
    assert _check(s.windows, wave) < TOLERANCE
    # the voltage is measured per sample (it sags by 2 ohm x I): V0 x charge would be off by 0.25 %
    v0_times_charge = Waveform(wave.windows, v0=wave.v0, r_source=0.0).energy_uj(0)
    exact = wave.energy_uj(0)
    assert abs(s.windows[0].energy_uj - exact) < abs(v0_times_charge - exact) / 5


def test_lpm01a_serial_laps_through_the_monitor(tmp_path):
    """No pin: each window is the `us` of a TG1 line, placed where the line arrived."""
    wave = Waveform.regular(8, first=0.40013, length=0.08, gap=0.10037)
    sim = Lpm01aSim(tmp_path / "ttyLPM", wave, events=False)
    dut = _Pty(tmp_path / "ttyDUT")
    edge = load_board("sparkfun-edge")
    log = tmp_path / "run.jsonl"
    session = PowerSession(open_monitor(f"lpm01a:{tmp_path / 'ttyLPM'},mv=3000,pin=none", edge.supply_v))
    try:
        dut_lines(dut, sim, wave)
        mon = Monitor(str(tmp_path / "ttyDUT"), 921600, edge, Log(log, edge), power=session)
        stats = mon.run(count=8, duration=30)
    finally:
        sim.close()
        dut.close()
    s = stats.summary("dut")
    assert s["inferences"] == 8
    e = s["energy_uj"]
    assert e["kind"] == "measured" and e["power_monitor"]["name"] == "lpm01a" and e["samples"] == session.samples
    assert e["estimate"]["kind"] == "estimated" and e["estimate"]["median"] > 0
    assert all(w.source == "lap" for w in session.windows) and len(session.windows) == 8
    for w in session.windows:
        w.rate = 5000
    assert _check(session.windows, wave) < TOLERANCE
    records = [json.loads(l) for l in log.read_text().splitlines()]
    assert sum(r["kind"] == "power" and r["energy_kind"] == "measured" for r in records) == 8


def test_monitor_cli_power_json_plot_and_live_view(tmp_path):
    """`tinygen monitor --power ppk2:...`: --json carries the measured energy next to the estimate,
    --plot a current trace, and the live view shows both."""
    wave = Waveform.regular(6, first=1.50013, gap=0.03037)
    outputs = {}
    for as_json in (True, False):
        sim = Ppk2Sim(tmp_path / "ttyPPK2", wave)
        dut = _Pty(tmp_path / "ttyDUT")
        try:
            dut_lines(dut, sim, wave)
            args = [sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(tmp_path / "ttyDUT"), "--board",
                    "sparkfun-edge", "--count", "6", "--duration", "40",
                    "--power", f"ppk2:{tmp_path / 'ttyPPK2'},mv=3000", "--plot", str(tmp_path / "run.png")]
            r = subprocess.run(args + (["--json"] if as_json else []), capture_output=True, text=True, timeout=90,
                               env={**os.environ, "COLUMNS": "160"})
        finally:
            sim.close()
            dut.close()
        assert r.returncode == 0, r.stderr
        outputs[as_json] = r.stdout
    s = json.loads(outputs[True])
    e = s["energy_uj"]
    assert e["kind"] == "measured" and e["power_monitor"]["name"] == "ppk2" and e["samples"] > 100_000
    assert e["inferences"] == 6 and e["estimate"]["kind"] == "estimated"
    exact = sorted(wave.energy_uj(k) for k in range(6))
    assert e["median"] == pytest.approx((exact[2] + exact[3]) / 2, rel=TOLERANCE)
    assert (tmp_path / "run-power.png").read_bytes()[:4] == b"\x89PNG"
    live = outputs[False]
    (tmp_path / "live.txt").write_text(live)
    assert "measured" in live and "estimated" in live and "PPK2" in live


def test_monitor_cli_bad_power_spec_is_one_sentence(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", "loop://", "--duration", "0.5",
                        "--power", "ppk2:" + str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1 and "Cannot open" in r.stderr


def test_ppk2_falls_back_to_the_serial_laps_when_the_pin_never_moves(tmp_path):
    """No pin= named and firmware that drives no timestamp pin: two laps go by without an edge on
    D0, and the windows come from the laps instead."""
    wave = Waveform.regular(6, first=0.40013, length=0.05, gap=0.08037, pulse_s=0.0)   # the pin stays high
    sim = Ppk2Sim(tmp_path / "ttyPPK2", wave)
    dut = _Pty(tmp_path / "ttyDUT")
    session = PowerSession(open_monitor(f"ppk2:{tmp_path / 'ttyPPK2'},mv=3000"))
    assert session.use_pin is None
    try:
        dut_lines(dut, sim, wave)
        stats = Monitor(str(tmp_path / "ttyDUT"), 921600, None, power=session).run(count=6, duration=30)
    finally:
        sim.close()
        dut.close()
    assert stats.inferences == 6 and session.use_pin is False
    assert stats.summary("dut")["energy_uj"]["power_monitor"]["windows_from"] == "serial laps"
    assert len(session.windows) == 6 and all(w.source == "lap" for w in session.windows)
    for w in session.windows:
        w.rate = 100_000
    assert _check(session.windows, wave) < TOLERANCE


def test_ppk2_decode_is_ppk2_api_s_own_arithmetic(monkeypatch):
    """tinygen decodes the PPK2's samples with ppk2-api's formula and spike filter, vectorized (the
    library's per-sample Python cannot keep up with 100 k samples/s here): in chunks of any size,
    across switches between all five ranges, the µA and logic bits equal the library's own."""
    import numpy as np
    import ppk2_api.ppk2_api as lib

    from tinygen.device.power.ppk2 import decode

    class NoPort:
        def close(self):
            pass

    monkeypatch.setattr(lib.serial, "Serial", lambda *a, **k: NoPort())

    def api():
        p = lib.PPK2_API("sim")
        assert p._parse_metadata(Ppk2Sim.metadata(Ppk2Sim).decode())
        p.current_vdd = 3000
        return p

    wave = Waveform.regular(30, first=0.001, length=0.003, gap=0.002)
    t = np.arange(60_000) / 1e5
    amps = wave.current(t)
    amps[30_000:30_010] = 0.3     # range 3
    amps[40_000:40_005] = 1.5     # range 4, where the filter rewinds
    data = Ppk2Sim.encode(Ppk2Sim, amps, wave.pin(t))
    theirs, ours = api(), api()
    rng = np.random.default_rng(7)
    want, got, want_bits, got_bits, pos = [], [], [], [], 0
    while pos < len(data):
        chunk = data[pos: pos + int(rng.integers(1, 6000))]
        pos += len(chunk)
        if len(theirs.remainder["sequence"]) + len(chunk) >= 4:   # the library needs a whole sample to start
            a, b = theirs.get_samples(chunk)
            want += a
            want_bits += b
        else:
            theirs.remainder = {"sequence": theirs.remainder["sequence"] + chunk, "len": 0}
        a, b = decode(ours, chunk)
        got += a.tolist()
        got_bits += b.tolist()
    assert len(got) == len(want) == 60_000
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    assert got_bits == want_bits


def test_a_long_pin_window_outlives_the_kept_samples_and_divides_by_its_inferences():
    """MLPerf's energy mode: the pin falls before and after N inferences, 10 s or more apart;
    samples older than KEEP_S are let go, the energy at each edge was taken as it came. An edge can
    arrive in a chunk of its own (the LPM01A's `event` line between two samples)."""
    import numpy as np

    from tinygen.device.power import Chunk, PowerMonitor
    from tinygen.device.power.core import KEEP_S

    class Replay(PowerMonitor):
        """Hands over prepared chunks: 15 s at 1 kHz, 2 mA at 3 V between the edges, 1 mA outside."""
        name, has_pin, rate_hz = "replay", True, 1000.0

        def __init__(self):
            super().__init__(None, {}, None)
            i = np.full(20_000, 1e-3)
            i[2_000:17_000] = 2e-3
            self.chunks = [Chunk(i[:2_000], np.float64(3.0)), Chunk(np.zeros(0), np.float64(3.0), [2_000])]
            self.chunks += [Chunk(i[k:k + 500], np.float64(3.0), [17_000] if k + 500 > 17_000 >= k else [])
                            for k in range(2_000, 20_000, 500)]

        def start(self):
            pass

        def read(self):
            return self.chunks.pop(0) if self.chunks else time.sleep(0.01)

        def stop(self):
            pass

        def describe(self):
            return "replay"

    assert 15.0 > KEEP_S
    s = PowerSession(Replay(), per_window=1000)
    s.start()
    while s.samples < 20_000:
        time.sleep(0.01)
    s.stop(settle_s=0.0)
    assert len(s.windows) == 1
    w = s.windows[0]
    assert (w.start, w.end) == (2_000, 17_000)
    assert w.energy_uj == pytest.approx(3.0 * 2e-3 * 15.0 * 1e6, rel=1e-9)      # 90 mJ over the window
    assert w.uj_per_inference == pytest.approx(90.0, rel=1e-9)                    # over 1000 inferences
