"""`tinygen monitor` against a fake device on a pseudo-terminal: boot text, good lines,
garbage, a cut line, the port vanishing and coming back under the same name."""

import json
import os
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest

from tinygen.boards import load_board
from tinygen.device.monitor import LineSplitter, Log, Monitor, energy_uj, latency_png
from tinygen.device.protocol import format_line


class FakeDevice:
    """A pty whose slave is reached through a symlink, so it can vanish and return as the same path."""

    def __init__(self, link: Path):
        self.link = link
        self.master = None
        self.slave = None
        self.plug()

    def plug(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.link)

    def unplug(self):
        self.link.unlink()
        os.close(self.master)
        os.close(self.slave)

    def write(self, data):
        os.write(self.master, data.encode() if isinstance(data, str) else data)


def inf(i, us=10_000):
    return format_line("inf", seq=i, cycles=us * 48, us=us, top=i % 10, score_milli=950)


def test_splitter_cuts_runaway_lines():
    s = LineSplitter()
    assert s.feed(b"abc\ndef") == [b"abc\n"]
    assert s.feed(b"x" * 5000) == [] and s.overflows == 1
    assert s.feed(b"ok\n") == [b"ok\n"]


def test_energy_is_estimated_from_the_board():
    edge = load_board("sparkfun-edge")   # 3.0 V, 0.29 mA
    assert energy_uj(1_000_000, edge) == pytest.approx(3.0 * 0.29 * 1000)


def test_monitor_survives_garbage_and_a_disconnect(tmp_path):
    dev = FakeDevice(tmp_path / "ttyFAKE")
    notes = []
    log = tmp_path / "run.jsonl"

    def device():
        time.sleep(0.5)  # pyserial flushes input on open: start once the monitor is reading
        dev.write("ROM v1.2 booting\r\n")
        dev.write(format_line("boot", board="sparkfun-edge", model="ab", arena_used_bytes=100, arena_bytes=2048,
                              clock_hz=48000000, counter="dwt"))
        for i in range(30):
            dev.write(inf(i))
        dev.write("TG1 inf seq=31 cycles=1 us=1 top=0 score_milli=1 *00\r\n")  # bad CRC
        dev.write(b"\x00\xff\xfe random noise\r\n")
        dev.write("TG1 inf seq=32 cyc")  # cut by the disconnect
        time.sleep(0.3)
        dev.unplug()
        time.sleep(1.0)
        dev.plug()
        time.sleep(0.8)
        for i in range(30, 60):
            dev.write(inf(i, us=12_000))
            time.sleep(0.002)

    threading.Thread(target=device, daemon=True).start()
    mon = Monitor(str(dev.link), 921600, load_board("sparkfun-edge"), Log(log, load_board("sparkfun-edge")),
                  reconnect_wait=0.1, notify=notes.append)
    stats = mon.run(count=60, duration=20)
    s = stats.summary(str(dev.link))
    assert s["inferences"] == 60
    assert s["reconnects"] == 1 and any("went away" in n for n in notes) and any("back" in n for n in notes)
    assert s["bad_lines"] == 2          # the bad CRC and the line cut by the disconnect
    assert s["other_lines"] >= 2        # boot text and noise: counted, skipped
    assert s["latency_us"]["min"] == 10_000 and s["latency_us"]["max"] == 12_000
    assert s["energy_uj"]["kind"] == "estimated" and s["energy_uj"]["median"] > 0
    records = [json.loads(l) for l in log.read_text().splitlines()]
    assert sum(r["kind"] == "inf" for r in records) == 60
    assert any(r["raw"].startswith("ROM") and not r["valid"] for r in records)


def test_monitor_cli_json_log_and_plot(tmp_path):
    dev = FakeDevice(tmp_path / "ttyCLI")
    done = threading.Event()

    def device():
        # a board streams whether or not anyone listens: lines before the CLI opens the port are
        # lost, so it streams until the CLI has its 40 (however long a loaded machine takes to start it)
        i = 0
        while not done.is_set():
            try:
                dev.write(inf(i, us=9_000 + 50 * (i % 7)))
            except OSError:      # the pty closed under it at the test's end
                return
            i += 1
            time.sleep(0.01)

    threading.Thread(target=device, daemon=True).start()
    try:
        r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(dev.link), "--board",
                            "sparkfun-edge", "--count", "40", "--duration", "30", "--json", "--log", tmp_path / "run.csv",
                            "--plot", tmp_path / "lat.png"], capture_output=True, text=True, timeout=60)
    finally:
        done.set()
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for key in ("port", "board", "inferences", "latency_us", "cycles", "energy_uj", "bad_lines", "reconnects"):
        assert key in s
    assert s["inferences"] == 40 and s["latency_us"]["p95"] >= s["latency_us"]["median"]
    assert (tmp_path / "lat.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "run.csv").read_text().splitlines()
    assert rows[0].startswith("time,raw,valid") and len(rows) == 41


def test_monitor_cli_bad_port_is_one_sentence(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1 and "Cannot open" in r.stderr


def test_send_feeds_a_serial_input_device(tmp_path):
    """monitor --send: one input per inference, each sent when the previous result is in."""
    import numpy as np

    dev = FakeDevice(tmp_path / "ttySER")
    x = np.arange(3 * 4, dtype=np.int8).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    got = []

    def device():
        buf = b""
        while len(got) < 3:
            buf += os.read(dev.master, 64)
            while b"\n" in buf:
                head, _, rest = buf.partition(b"\n")
                n = int(head[1:])
                if len(rest) < n:
                    break
                got.append(rest[:n])
                buf = rest[n:]
                dev.write(inf(len(got) - 1))

    threading.Thread(target=device, daemon=True).start()
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(dev.link), "--send",
                        tmp_path / "x.npy", "--duration", "30", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["inferences"] == 3
    assert got == [row.tobytes() for row in x]


def test_the_monitor_flash_goes_on_to_needs_only_port_and_board(capsys):
    """`flash --monitor` calls the monitor with its defaults: none of them may be a Typer option object."""
    from tinygen.cli.monitor import run_monitor

    run_monitor("loop://", "sparkfun-edge", duration=0.3, as_json=True)
    assert json.loads(capsys.readouterr().out)["board"] == "sparkfun-edge"


def test_values_that_are_not_numbers_are_counted_not_taken(tmp_path):
    """A checksum proves a line arrived as sent, not that the firmware sent sense: us=abc once
    crashed --log, a 400-digit us the plot, uj=nan made --json print NaN."""
    edge = load_board("sparkfun-edge")
    log = tmp_path / "run.jsonl"
    mon = Monitor("fuzz", 115200, edge, Log(log, edge))
    odd = [{"us": "abc"}, {"us": "-5"}, {"us": "1" * 400}, {"us": str(2**64)}, {"us": "+7"},
           {"us": "100", "uj": "nan"}, {"us": "100", "uj": "abc"}, {"us": "100", "uj": "-1"}, {"us": "100", "uj": "1e999"}]
    for fields in odd:
        mon._handle(format_line("inf", seq=1, **fields).encode())
    mon._handle(format_line("inf", seq=2, us=2000, uj="1.5").encode())
    mon.log.close()
    s = mon.stats.summary("fuzz")
    assert s["inferences"] == len(odd) + 1 and s["bad_values"] == len(odd)
    assert mon.stats.latencies_us == [100, 100, 100, 100, 2000] and mon.stats.energies_uj == [1.5]
    json.loads(json.dumps(s), parse_constant=lambda c: pytest.fail(f"{c} in --json"))
    records = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in --log")) for line in log.read_text().splitlines()]
    assert [r["energy_uj"] for r in records] == [None] * len(odd) + [1.5]
    latency_png(mon.stats, tmp_path / "lat.png", "odd values")


def test_mlperf_session_refuses_what_it_would_not_write(tmp_path):
    """--log and a --plot without --power have nothing to record in an --mlperf session: one
    sentence each, before the port is touched, and no file left behind."""
    for extra, words in ((["--log", tmp_path / "run.csv"], "--log records"), (["--plot", tmp_path / "p.png"], "give --power")):
        r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(tmp_path / "nope"),
                            "--mlperf", "infer", "2", "1", *map(str, extra)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.count("error:") == 1 and words in r.stderr
    assert not list(tmp_path.iterdir())
