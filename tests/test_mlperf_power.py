"""MLPerf Tiny's energy mode measured end to end (`monitor --mlperf infer N W --power ...`): a
simulated energy-mode DUT (tests/power_sims.py MlperfDutSim) whose inferences and timestamp pulses
are drawn in a simulated power monitor's current and digital input, by the monitor's clock. The
energy between the two pin edges around the N timed inferences, divided by N, must be within 0.5 %
of the simulator's exact integral; the boot pulse before it must not count."""

import json
import os
import subprocess
import sys
import time

import pytest

from power_sims import FakeJoulescopeDriver, Lpm01aSim, MlperfDutSim, Ppk2Sim, Waveform
from tinygen.boards import load_board
from tinygen.device.mlperf import MlperfError, run_session
from tinygen.device.power import PowerSession, open_monitor

TOLERANCE = 0.005


def _exact(dut: MlperfDutSim, wave: Waveform, n: int) -> tuple[float, float]:
    """(µJ per inference, µs per inference) of the DUT's one timed run."""
    ((a, b),) = dut.runs
    return wave.energy_uj(0) / n, (b - a) / n * 1e6


def test_cli_mlperf_energy_with_a_ppk2(tmp_path):
    """Through the CLI: the PPK2 on D0, --json and the power plot; 40 inferences after 2 warm-ups."""
    wave = Waveform([])
    sim = Ppk2Sim(tmp_path / "ttyPPK2", wave, pin=0)
    dut = MlperfDutSim(tmp_path / "ttyDUT", sim, wave)
    try:
        r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(tmp_path / "ttyDUT"),
                            "--board", "nucleo-l4r5zi", "--mlperf", "infer", "40", "2",
                            "--power", f"ppk2:{tmp_path / 'ttyPPK2'},pin=0,mv=3000", "--plot", str(tmp_path / "run.png"),
                            "--json"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160"})
    finally:
        sim.close()
        dut.close()
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    uj, us = _exact(dut, wave, 40)
    e = j["energy_uj"]
    assert e["kind"] == "measured" and e["inferences"] == 40 and e["power_monitor"]["name"] == "ppk2"
    assert e["mean"] == pytest.approx(uj, rel=TOLERANCE)
    assert e["estimate"]["kind"] == "estimated"
    assert j["latency_us"]["from"] == "timestamp pin" and j["latency_us"]["mean"] == pytest.approx(us, rel=TOLERANCE)
    assert j["profile"]["model"] == "kws01" and j["results"][-1] == 1.0
    assert len(wave.pulses) == 1    # the boot pulse came in before `infer` and was left out
    assert (tmp_path / "run-power.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "result.json").write_text(r.stdout)


def test_lpm01a_mlperf_energy_from_d7_events(tmp_path):
    """MLPerf's reference monitor: D7 events at 5 kHz; a longer run (50 x 6.1 ms), since one sample
    is 0.2 ms."""
    wave = Waveform([])
    sim = Lpm01aSim(tmp_path / "ttyLPM", wave)
    dut = MlperfDutSim(tmp_path / "ttyDUT", sim, wave)
    try:
        s = run_session(str(tmp_path / "ttyDUT"), 9600, load_board("nucleo-l4r5zi"), 50, 1,
                        power=PowerSession(open_monitor(f"lpm01a:{tmp_path / 'ttyLPM'},mv=3000"), pair_edges=False))
    finally:
        sim.close()
        dut.close()
    uj, us = _exact(dut, wave, 50)
    assert s["energy_uj"]["mean"] == pytest.approx(uj, rel=TOLERANCE)
    assert s["latency_us"]["mean"] == pytest.approx(us, rel=TOLERANCE)


def test_joulescope_mlperf_energy_from_gpi0_with_the_supply_sagging(tmp_path, monkeypatch):
    import pyjoulescope_driver as jd

    monkeypatch.setattr(jd, "Driver", FakeJoulescopeDriver)
    wave = Waveform([], r_source=2.0, v0=3.3)
    FakeJoulescopeDriver.wave = wave

    monkeypatch.setattr(FakeJoulescopeDriver, "last", None)

    class Clock:
        """The DUT simulator keeps time by the monitor's stream start, as with the others: here that
        of the driver the joulescope package makes once the session starts."""

        class streaming:
            @staticmethod
            def wait(timeout):
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    if FakeJoulescopeDriver.last is not None and FakeJoulescopeDriver.last.t0 is not None:
                        return True
                    time.sleep(0.005)
                return False

        @property
        def t0(self):
            return FakeJoulescopeDriver.last.t0

    dut = MlperfDutSim(tmp_path / "ttyDUT", Clock(), wave)
    try:
        s = run_session(str(tmp_path / "ttyDUT"), 9600, None, 30, 0,
                        power=PowerSession(open_monitor("joulescope,pin=0"), pair_edges=False))
    finally:
        dut.close()
    uj, us = _exact(dut, wave, 30)
    assert s["energy_uj"]["mean"] == pytest.approx(uj, rel=TOLERANCE)


def test_a_performance_mode_dut_gives_one_sentence_not_a_number(tmp_path):
    """A DUT that pulses no pin (built with --mlperf-mode performance, or the pin not wired): no
    window, and the sentence says what to do."""
    wave = Waveform([], pulse_s=0.0)   # the pin never falls
    sim = Ppk2Sim(tmp_path / "ttyPPK2", wave, pin=0)
    dut = MlperfDutSim(tmp_path / "ttyDUT", sim, wave)
    try:
        with pytest.raises(MlperfError, match="saw 0 timestamp-pin edges during 'infer 5 0', not the 2 MLPerf's "
                                              "energy mode makes: build the firmware with --mlperf-mode energy"):
            run_session(str(tmp_path / "ttyDUT"), 9600, None, 5, 0,
                        power=PowerSession(open_monitor(f"ppk2:{tmp_path / 'ttyPPK2'},pin=0,mv=3000"), pair_edges=False))
    finally:
        sim.close()
        dut.close()


def test_pin_none_is_refused_before_the_dut_is_touched(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(tmp_path / "nothing"),
                        "--mlperf", "infer", "5", "0", "--power", f"ppk2:{tmp_path / 'nope'},pin=none"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("error:") == 1
    assert "takes its window from the DUT's timestamp pin" in " ".join(r.stderr.split()), r.stderr
