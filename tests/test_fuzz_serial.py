"""Fuzzing what comes over the serial port and what `monitor --send` writes to it.

Lines: mutated TG1 lines through protocol.parse_line, checked against an independent reading of
the format (firmware/README.md: a regular expression and a bit-by-bit CRC-8); checksum-valid lines
with values of every wrong kind through the Monitor, its --log (csv and jsonl), --json summary
(parsed with NaN and Infinity refused), --plot and the live view. Sending: a sample larger than
loop://'s 4 KiB buffer must not stop the session outliving --duration; a 0-d array or a missing
--model is one sentence.

Seeded. TINYGEN_FUZZ_CASES (default 3000, shared with test_fuzz_data) runs more."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tinygen.boards import load_board
from tinygen.cli.monitor import _monitor_summary, _monitor_view
from tinygen.device.monitor import Log, Monitor, latency_png
from tinygen.device.protocol import format_line, parse_line

CASES = int(os.environ.get("TINYGEN_FUZZ_CASES", "3000"))
BOARD = load_board("sparkfun-edge")


# --- an independent reading of the line format ------------------------------------------------

def crc8_bitwise(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


LINE = re.compile(rb"(TG1 ([A-Za-z]+)((?: [!-<>-~][!-~]*?=[!-~]*)*)) \*([0-9a-f]{2})[\r\n]*")


def expected(line: bytes) -> tuple[str, dict[str, str]] | None:
    """What a TG1 line says, read by the format, or None if it is not a whole, well-formed,
    CRC-checked line: printable ASCII, words separated by single spaces, each key once."""
    m = LINE.fullmatch(line)
    if not m or crc8_bitwise(m.group(1)) != int(m.group(4), 16):
        return None
    fields = {}
    for item in m.group(3).decode().split(" ")[1:]:
        key, _, value = item.partition("=")
        if key in fields:
            return None
        fields[key] = value
    return m.group(2).decode(), fields


def make_line(kind: str, items: list[tuple[str, str]], end: bytes = b"\r\n") -> bytes:
    """A line with a correct CRC whatever it holds (duplicate keys, odd values): format_line cannot."""
    body = " ".join(["TG1", kind] + [f"{k}={v}" for k, v in items]).encode("latin-1")
    return body + b" *%02x" % crc8_bitwise(body) + end


# --- line families ----------------------------------------------------------------------------

KEYS = "abcdefghijklmnopqrstuvwxyz_"
HEX = "0123456789abcdef"


def good_line(rng) -> bytes:
    kind = ["inf", "boot", "done", "err", "layer"][int(rng.integers(5))]
    n = int(rng.integers(0, 7))
    fields = {"".join(rng.choice(list(KEYS), int(rng.integers(1, 8)))): str(int(rng.integers(-2**31, 2**32)))
              if rng.integers(2) else "".join(rng.choice(list(HEX), int(rng.integers(1, 40)))) for _ in range(n)}
    return format_line(kind, **fields).encode()


def fam_valid(rng):
    return "valid", good_line(rng)


def fam_flip(rng):
    b = bytearray(good_line(rng))
    k = int(rng.integers(1, 4))
    for i in rng.integers(0, len(b), k):
        b[i] ^= int(rng.integers(1, 256))
    return f"flip {k}", bytes(b)


def fam_cut(rng):
    b = good_line(rng)
    return "cut", b[:int(rng.integers(0, len(b)))]


def fam_splice(rng):
    a, b = good_line(rng), good_line(rng)
    op = int(rng.integers(4))
    if op == 0:
        return "two lines as one", a.rstrip(b"\r\n") + b
    if op == 1:
        i = int(rng.integers(0, len(a)))
        return "bytes inserted", a[:i] + rng.integers(0, 256, int(rng.integers(1, 6)), dtype=np.uint8).tobytes() + a[i:]
    if op == 2:
        i = int(rng.integers(0, len(a)))
        return "bytes deleted", a[:i] + a[i + int(rng.integers(1, 6)):]
    i = int(rng.integers(4, len(a) - 6))
    return "tail of another line", a[:i] + b[int(rng.integers(0, len(b))):]


ODD = ["", "abc", "-5", "-0", "0", "1" * 300, "9" * 25, str(2**64), str(2**64 - 1), "nan", "NaN", "inf", "-inf",
       "Infinity", "1e5", "1.5", "+3", "1_000", "0x10", "1e999", "00012", "---", "12abc", "=", "==1", ".5", "5.",
       "1e-5", "-1e3", "1" * 400, "1" * 5000]


def fam_recrc(rng):
    """Checksum-valid lines that are still not the firmware's: odd values, control characters,
    duplicate keys, odd CRC spellings. parse_line may take them only as the format reads them."""
    items = [("seq", "1"), ("cycles", "480000"), ("us", "10000"), ("top", "3"), ("score_milli", "950")]
    op = int(rng.integers(5))
    if op == 0:
        key = items[int(rng.integers(len(items)))][0]
        items = [(k, ODD[int(rng.integers(len(ODD)))] if k == key else v) for k, v in items]
        return "odd value", make_line("inf", items)
    if op == 1:
        items.append(items[int(rng.integers(len(items)))])
        return "a key twice", make_line("inf", items)
    if op == 2:
        c = chr(int(rng.choice([0, 7, 9, 11, 12, 13, 27, 127, 0xE9])))
        k, v = items[0]
        return "control character", make_line("inf", [(k, v + c)] + items[1:])
    if op == 3:
        line = make_line("inf", items, end=b"")
        return "CRC spelled oddly", line[:-2] + [b"+", b" ", b"0"][int(rng.integers(3))] + line[-1:].upper() + b"\r\n"
    return "odd kind", make_line(["in f", "", "inf2", "INF", "x" * 200][int(rng.integers(5))], items)


def fam_noise(rng):
    b = rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8).tobytes()
    return "noise", (b"TG1 " + b) if rng.integers(2) else b


LINE_FAMILIES = {f.__name__[4:]: f for f in (fam_valid, fam_flip, fam_cut, fam_splice, fam_recrc, fam_noise)}


def parse_outcome(line: bytes) -> str:
    try:
        got = [parse_line(line), parse_line(line.decode("latin-1"))]
    except Exception as e:  # noqa: BLE001 (what the fuzzer looks for)
        return f"crash:{type(e).__name__}"
    want = expected(line)
    for ev in got:
        if ev is None and want is not None:
            return "dropped a good line"
        if ev is not None:
            if want is None:
                body, _, check = line.rstrip(b"\r\n").rpartition(b" *")
                ok = bool(re.fullmatch(rb"[0-9a-fA-F]{2}", check)) and crc8_bitwise(body) == int(check, 16)
                return "took a malformed line" if ok else "took a bad checksum"
            if (ev.kind, ev.fields) != want:
                return "misread a line"
    return "taken" if want is not None else "refused"


# --- value families: checksum-valid lines through the Monitor -----------------------------------

def fam_values(rng) -> tuple[str, bytes]:
    fields = {"seq": "1", "cycles": "480000", "us": "10000", "top": "3", "score_milli": "950"}
    if rng.integers(2):
        fields["uj"] = "12.5"
    keys = list(fields)
    for key in rng.choice(keys, int(rng.integers(1, 3)), replace=False):
        fields[str(key)] = ODD[int(rng.integers(len(ODD) - 1))]   # not the 5000 digits: longer than a line
    kind = "inf" if rng.integers(6) else ["boot", "done", "err"][int(rng.integers(3))]
    return f"{kind} with odd values", format_line(kind, **fields).encode()


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def check_stats(stats, since: dict) -> str | None:
    """Why the statistics mislead after the latest line, or None."""
    for v in stats.latencies_us[since["lat"]:] + stats.cycles[since["cyc"]:]:
        if not isinstance(v, int) or not 0 <= v < 2**64:
            return f"took {'a negative' if v < 0 else 'a huge'} number as a counter"
    for e in stats.energies_uj[since["e"]:]:
        if not (isinstance(e, float) and np.isfinite(e) and e >= 0):
            return f"took {e if not np.isfinite(e) else 'a negative'} as energy"
    return None


def monitor_case(mon: Monitor, log: Path | None, raw: bytes) -> str:
    """One line through the Monitor, its --log, --json and the live view: 'ok' or what went wrong."""
    since = {"lat": len(mon.stats.latencies_us), "cyc": len(mon.stats.cycles), "e": len(mon.stats.energies_uj)}
    start = log.stat().st_size if log else 0
    stage = "handle"
    try:
        mon._handle(raw)
        stage = "summary"
        summary = mon.stats.summary("fuzz")
        stage = "json"
        try:
            json.loads(json.dumps(summary), parse_constant=_no_constants)
        except ValueError:
            return "--json is not JSON"
        stage = "view"   # built for every line (the formatting is there); drawn once a batch (rich is slow)
        mon.view = (_monitor_view(mon.stats, "fuzz"), _monitor_summary(summary))
    except Exception as e:  # noqa: BLE001
        return f"crash:{type(e).__name__} in {stage}"
    why = check_stats(mon.stats, since)
    if why:
        return f"misleads: {why}"
    return (log_record(log, start) if log else None) or "ok"


def log_record(path: Path, start: int) -> str | None:
    """What is wrong with what the latest line added to --log from byte `start`: it must be one
    JSON record (no NaN) in a .jsonl, one row of every column in a .csv."""
    added = path.read_bytes()[start:].decode()
    if ".jsonl" in path.suffixes:   # run.jsonl, or its live temporary .run.jsonl.<hex>.tinygen-tmp
        if added.count("\n") != 1:
            return f"--log .jsonl got {added.count(chr(10))} records for a line"
        try:
            json.loads(added, parse_constant=_no_constants)
        except ValueError:
            return "--log .jsonl record is not JSON"
        return None
    rows = list(csv.reader(io.StringIO(added, newline="")))
    if len(rows) != 1 or len(rows[0]) != len(Log.FIELDS):
        return f"--log .csv got {len(rows)} rows for a line"
    return None


def plot_outcome(stats, png: Path) -> str:
    try:
        latency_png(stats, png, "fuzz")
    except Exception as e:  # noqa: BLE001
        return f"crash:{type(e).__name__} in plot"
    return "ok"


def run_values(count: int, tmp: Path, seed: int = 0, batch: int = 5000) -> Counter:
    """Each line through a Monitor of its own (so each outcome is that line's), all writing to one
    .jsonl and one .csv log; then each batch through one Monitor, whose summary, live view and plot
    must hold after all of it (a plot that fails is redone line by line to name the lines)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120)
    out = Counter()
    for start in range(0, count, batch):
        lines = [fam_values(np.random.default_rng([seed, i]))[1] for i in range(start, min(count, start + batch))]
        jsonl, csv_path = tmp / f"log{start}.jsonl", tmp / f"log{start}.csv"
        # while a log is open its lines are in a hidden temporary beside it (`live`), renamed at close
        logs = [(log, log.live) for log in (Log(jsonl, BOARD), Log(csv_path, BOARD))]
        results = []
        for raw in lines:
            r = [monitor_case(Monitor("fuzz", 115200, BOARD, log), path, raw) for log, path in logs]
            results.append(next((x for x in r if x != "ok"), "ok"))
        for log, _ in logs:
            log.close()
        whole = Monitor("fuzz", 115200, BOARD)
        session = next((r for r in (monitor_case(whole, None, raw) for raw in lines)
                        if r.startswith(("crash", "--json"))), "ok")
        try:
            for part in getattr(whole, "view", ()):
                console.print(part)
        except Exception as e:  # noqa: BLE001
            session = f"crash:{type(e).__name__} drawing the view"
        plot = plot_outcome(whole.stats, tmp / "lat.png")
        out[f"(a session of all {len(lines)}: {session}; its plot: {plot})"] += 1
        if plot != "ok":
            for i, raw in enumerate(lines):
                one = Monitor("fuzz", 115200, BOARD)
                try:
                    one._handle(raw)
                except Exception:  # noqa: BLE001 (counted above)
                    continue
                if one.stats.latencies_us and results[i] == "ok":
                    results[i] = plot_outcome(one.stats, tmp / "lat.png")
        out.update(results)
    return out


def run_lines(count_per_family: int, seed: int = 0) -> dict[str, Counter]:
    out = {}
    for fam, make in LINE_FAMILIES.items():
        out[fam] = Counter(parse_outcome(make(np.random.default_rng([seed, i, len(fam)]))[1])
                           for i in range(count_per_family))
    return out


# --- the tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", list(LINE_FAMILIES))
def test_parse_line_reads_lines_as_the_format_does(family):
    n = max(1, CASES // 2 // len(LINE_FAMILIES))
    bad = []
    for i in range(n):
        name, line = LINE_FAMILIES[family](np.random.default_rng([0, i, len(family)]))
        got = parse_outcome(line)
        if got not in ("taken", "refused") or (family == "valid" and got != "taken"):
            bad.append(f"#{i} {name} {line[:80]!r}: {got}")
    assert not bad, f"{len(bad)} of {n}: " + "; ".join(bad[:5])


def test_odd_values_never_crash_or_mislead_the_monitor(tmp_path):
    got = run_values(max(1, CASES // 4), tmp_path)
    assert all(k == "ok" or re.fullmatch(r"\(a session of all \d+: ok; its plot: ok\)", k) for k in got), got


def _monitor_cli(dev, payload: list[bytes], *args) -> subprocess.CompletedProcess:
    """`tinygen monitor` on the fake device's port; the payload is written once the monitor has the
    port open (pyserial empties the input buffer on opening)."""
    proc = subprocess.Popen([sys.executable, "-m", "tinygen.cli", "monitor", "--port", str(dev.link), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tty = os.ttyname(dev.slave)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == tty for fd in os.listdir(f"/proc/{proc.pid}/fd")):
                break
        except OSError:
            pass
        time.sleep(0.05)
    time.sleep(0.3)
    threading.Thread(target=lambda: [dev.write(raw) for raw in payload], daemon=True).start()
    out, err = proc.communicate(timeout=90)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_session_of_odd_lines_through_a_port_and_the_cli(tmp_path):
    """The same lines, with damaged lines between them, from a pseudo-terminal to `tinygen monitor
    --json --log --plot`: exit 0, JSON without NaN, every line logged."""
    from test_monitor import FakeDevice

    dev = FakeDevice(tmp_path / "ttyFUZZ")
    lines = [raw for raw in (fam_values(np.random.default_rng([1, i]))[1] for i in range(300))
             if not raw.startswith(b"TG1 done")]   # `done` ends the session
    damaged = [LINE_FAMILIES[f](np.random.default_rng([1, i, 9]))[1].replace(b"\n", b"") + b"\n"
               for i, f in enumerate(["flip", "cut", "splice", "noise"] * 25)]
    payload = [x for pair in zip(lines, damaged + [b""] * len(lines)) for x in pair if x]
    payload.append(format_line("done", vectors=0, mismatches=0).encode())
    r = _monitor_cli(dev, payload, "--board", "sparkfun-edge", "--duration", "30", "--json",
                     "--log", tmp_path / "run.jsonl", "--plot", tmp_path / "lat.png")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    s = json.loads(r.stdout, parse_constant=_no_constants)
    read = [expected(raw) for raw in payload]
    assert s["inferences"] == sum(e is not None and e[0] == "inf" for e in read)
    assert s["bad_values"] > 0 and s["latency_us"]["max"] < 2**64
    records = [json.loads(x, parse_constant=_no_constants) for x in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert sum(rec["valid"] for rec in records) == sum(e is not None for e in read)
    assert (tmp_path / "lat.png").read_bytes()[:4] == b"\x89PNG"


def test_send_larger_than_the_port_buffer_ends_at_duration():
    """loop:// holds 4 KiB; a sample of 9,000 bytes once blocked port.write for good."""
    mon = Monitor("loop://", 115200, inputs=[bytes(9000)] * 3)
    t = time.monotonic()
    stats = mon.run(duration=1.0)
    assert time.monotonic() - t < 3.0
    assert stats.inferences == 0 and stats.other_lines + stats.bad_lines >= 1   # the echo of what was sent


def test_cli_send_larger_than_the_port_buffer_ends_at_duration(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((3, 9000), np.int8))
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", "loop://", "--send",
                        tmp_path / "big.npy", "--duration", "1", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout, parse_constant=_no_constants)["inferences"] == 0
    assert time.monotonic() - t < 30


SEND_CASES = {   # samples, model ("kws": the shared int8 KWS model)
    "0-d": (np.int8(5), None),
    "float without --model": (np.zeros((2, 49, 10, 1), np.float32), None),
    "missing --model": (np.zeros((2, 49, 10, 1), np.float32), "nope.tflite"),
    "--model not a model": (np.zeros((2, 49, 10, 1), np.float32), "x.npy"),
    "--model a folder": (np.zeros((2, 49, 10, 1), np.float32), "."),
    "samples of another shape": (np.zeros((2, 7), np.float32), "kws"),
    "NaN samples": (np.full((2, 49, 10, 1), np.nan, np.float32), "kws"),
    "no samples": (np.zeros((0, 49, 10, 1), np.int8), None),
}


def _send_args(case, tmp_path, shared_models):
    x, model = SEND_CASES[case]
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy", None if model is None else shared_models / "kws_ref_model.tflite" if model == "kws" else tmp_path / model


@pytest.mark.parametrize("case", list(SEND_CASES))
def test_send_refuses_in_one_sentence(case, tmp_path, shared_models):
    from tinygen.device.monitor import samples_to_send
    from tinygen.errors import TinygenError

    with pytest.raises(TinygenError) as e:
        samples_to_send(*_send_args(case, tmp_path, shared_models))
    assert "\n" not in str(e.value) and str(e.value).endswith(".")


@pytest.mark.parametrize("case", ["0-d", "missing --model"])
def test_cli_send_refuses_in_one_sentence(case, tmp_path, shared_models):
    x, model = _send_args(case, tmp_path, shared_models)
    args = ["--model", model] if model is not None else []
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", "loop://", "--send", x, *args,
                        "--duration", "1", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.count("error:") == 1 and r.stdout == "", r.stderr


def test_send_quantizes_float_samples_with_the_model(shared_models, tmp_path):
    """What --send writes for float samples: the model's own input quantization, sample by sample."""
    from tinygen.device.monitor import samples_to_send
    from tinygen.model.graph import parse

    x = np.random.default_rng(0).normal(size=(3, 49, 10, 1)).astype(np.float32) * 20
    np.save(tmp_path / "x.npy", x)
    model = shared_models / "kws_ref_model.tflite"
    g = parse(model.read_bytes())
    tin = g.tensors[g.inputs[0]]
    want = np.clip(np.round(x / tin.first_scale) + tin.first_zero_point, -128, 127).astype(np.int8)
    assert samples_to_send(tmp_path / "x.npy", model) == [row.tobytes() for row in want]
