"""`tinygen monitor`: the live view of a board's profiling lines, or an MLPerf Tiny session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import TinygenError
from .common import JsonOpt, app, err, fail, out


@app.command()
def monitor(
    port: str = typer.Option(..., "--port", "-p", help="A serial port or pyserial URL: /dev/ttyUSB0, socket://127.0.0.1:5555, rfc2217://host:port, loop://."),
    board: Optional[str] = typer.Option(None, "--board", "-b", help="The board, for its baud rate and the energy estimate (supply voltage x active current)."),
    baud: Optional[int] = typer.Option(None, "--baud", help="Baud rate. Default: the board's, else 115200."),
    count: Optional[int] = typer.Option(None, "--count", "-n", min=1, help="Stop after this many inferences."),
    duration: Optional[float] = typer.Option(None, "--duration", "-t", min=0.1, help="Stop after this many seconds."),
    log: Optional[Path] = typer.Option(None, "--log", help="Write every line, raw and parsed, flushed as it arrives: .csv or .jsonl."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write latency over time and its histogram as a PNG at the end."),
    send: Optional[Path] = typer.Option(None, "--send", help="For firmware built with --input serial: samples to send, one per inference (.npy or .npz 'x'; int8, or float with --model to quantize them)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="With --send and float samples: the int8 .tflite whose input quantization to use."),
    mlperf: Optional[tuple[str, int, int]] = typer.Option(None, "--mlperf", help="Drive an MLPerf Tiny DUT instead: `--mlperf infer N W` runs N timed inferences after W warm-ups."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", help="With --mlperf: the input to load, raw bytes (.bin) or a .npy (first sample) in the form the DUT's benchmark takes (uint8 pixels for ic01/vww01, float32 for ad01, int8 for kws01). Default: zeros."),
    power: Optional[str] = typer.Option(None, "--power", help="Measure energy per inference with a power monitor: ppk2:/dev/ttyACM1, joulescope[:SERIAL] or lpm01a:/dev/ttyACM2, options after commas (pin=, mv=, freq=, mode=). Windows come from the firmware's timestamp pin on the monitor's digital input (PPK2 D0, Joulescope GPI0, LPM01A D7), or with pin=none from the serial laps."),
    as_json: bool = JsonOpt,
):
    """Watch a board's profiling lines: latency, inferences per second, energy, outputs.

    Reads the TG1 lines tinygen firmware prints (firmware/README.md), skipping and counting
    anything else. If the port vanishes (a reset, a pulled cable) it says so, waits and
    reconnects. Stops at --count, --duration, the firmware's `done` line, or Ctrl-C, then
    prints a summary.

    Example: tinygen monitor --port socket://127.0.0.1:5555 --count 500 --log run.csv --plot latency.png --json
    """
    run_monitor(port, board, baud, count, duration, log, plot, send, model, mlperf, input_file, as_json, power=power)


def run_monitor(port: str, board: Optional[str], baud: Optional[int] = None, count: Optional[int] = None,
                 duration: Optional[float] = None, log: Optional[Path] = None, plot: Optional[Path] = None,
                 send: Optional[Path] = None, model: Optional[Path] = None, mlperf=None,
                 input_file: Optional[Path] = None, as_json: bool = False, power: Optional[str] = None) -> None:
    """What `tinygen monitor` does; also where `flash --monitor` goes on to."""
    from rich.live import Live

    from ..boards import load_board
    from ..device.monitor import Log, Monitor, MonitorError, latency_png, samples_to_send

    from ..files import check_out_file, write_drawn_file

    try:
        b = load_board(board) if board else None
        rate = baud or (b.baud if b else 115200)
        if mlperf is not None and log is not None:
            raise TinygenError("--log records the lines of tinygen's own harness; an --mlperf session's results "
                               "are in its summary (--json for a script).")
        if mlperf is not None and plot is not None and power is None:
            raise TinygenError("With --mlperf, --plot draws the power monitor's current trace: give --power too.")
        # with --mlperf only the power trace is drawn (there is no latency series)
        pictures = [] if plot is None else ([plot] if mlperf is None else []) + ([_power_png(plot)] if power else [])
        for picture in pictures:
            check_out_file(picture, "--plot")   # a user's file is refused before the session, not after
        logger = Log(log, b) if log and mlperf is None else None
    except (TinygenError, OSError) as e:
        fail(e)
    if mlperf is not None:
        session = None
        if power is not None:
            from ..device.mlperf import ENERGY_BAUD
            from ..device.power import PowerSession, open_monitor

            rate = baud or ENERGY_BAUD   # the energy-mode DUT's UART, whatever the board's usual rate
            try:
                session = PowerSession(open_monitor(power, b.supply_v if b else None), pair_edges=False)
            except TinygenError as e:
                fail(e)
        _run_mlperf(port, rate, b, mlperf, input_file, as_json, session)
        if session is not None and plot is not None:
            try:
                _power_after(session, plot, port, b)
            except TinygenError as e:
                fail(e)
        return
    try:
        inputs = samples_to_send(send, model) if send else []
        session = _power_session(power, b) if power else None
        if session is not None:
            session.start()   # a monitor that is not there says so before the live view starts
    except TinygenError as e:
        if logger is not None:
            logger.discard()
        fail(e)
    m = Monitor(port, rate, b, logger, inputs=inputs, notify=lambda msg: err.print(f"[yellow]{msg}[/]", highlight=False),
                power=session)
    try:
        if as_json:
            stats = m.run(count, duration)
        else:
            with Live(_monitor_view(m.stats, port), console=out, refresh_per_second=4, transient=False) as live:
                stats = m.run(count, duration, on_update=lambda st: live.update(_monitor_view(st, port)))
                live.update(_monitor_view(stats, port))   # with --power, the last windows come in as the session ends
    except (MonitorError, TinygenError) as e:   # TinygenError: the power monitor's (PowerError)
        if session is not None:
            session.stop(settle_s=0.0, drain_s=0.0)   # the board's port never opened: stop the monitor too
        if logger is not None:
            logger.discard()   # when the port never opened; a session's log is already in place
        fail(e)
    except KeyboardInterrupt:
        stats = m.stats
    summary = stats.summary(port)
    try:
        if plot is not None and stats.latencies_us:
            write_drawn_file(plot, "--plot", lambda p: latency_png(stats, p, f"{port}" + (f" ({b.id})" if b else "")))
        if session is not None:
            _power_after(session, plot, port, b)
    except TinygenError as e:
        fail(e)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(_monitor_summary(summary))


def _power_session(spec: str, board):
    """--power: the monitor named in the spec, set up (not yet started) for the session."""
    from ..device.power import PowerSession, open_monitor

    return PowerSession(open_monitor(spec, board.supply_v if board else None))


def _power_after(session, plot: Optional[Path], port: str, board) -> None:
    """After a --power session: the current trace with its windows, and a word if none was found."""
    if not session.windows:
        how = ("no timestamp pin edges came in: wire the firmware's timestamp pin to the monitor's input, or add "
               "`,pin=none` to take windows from the serial laps") if session.use_pin else \
            "no serial lap could be placed in the monitor's samples"
        err.print(f"[yellow]No inference was measured by {session.monitor.name}: {how}.[/]", highlight=False)
    if plot is None or not session.samples:
        return
    from ..plots import power_trace_png

    rate = session.monitor.rate_hz
    seconds, current, pin = session.trace()
    windows = [(w.start / rate, w.end / rate, w.uj_per_inference) for w in session.windows]
    path = _power_png(plot)
    from ..files import write_drawn_file

    write_drawn_file(path, "--plot", lambda p: power_trace_png(
        seconds, current, windows, p, f"{session.monitor.describe()}; {port}" + (f" ({board.id})" if board else ""), pin=pin))
    err.print(f"Wrote {path}", highlight=False)


def _power_png(plot: Path) -> Path:
    """Where --plot's current trace goes beside the latency plot."""
    return plot.with_name(f"{plot.stem}-power{plot.suffix or '.png'}")


def _run_mlperf(port, rate, board, mlperf, input_file, as_json, power=None):
    import os

    from ..device.mlperf import run_session

    verb, n, warmup = mlperf
    if verb != "infer":
        fail(TinygenError("--mlperf takes `infer N W`, with N >= 1 inferences after W >= 0 warm-ups."))
    try:
        summary = run_session(port, rate, board, n, warmup, input_file,
                              timeout=float(os.environ.get("TINYGEN_MLPERF_TIMEOUT", "30")), power=power)
    except TinygenError as e:   # MlperfError, or the power monitor's PowerError
        fail(e)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        energy, profile = summary["energy_uj"], summary["profile"]
        e = energy["mean"]
        said = "" if e is None else f", {e:.3f} µJ each (measured)" if energy["kind"] == "measured" else f", ~{e:.2f} µJ (estimated)"
        out.print(f"DUT {summary['dut']}, model {profile.get('model', '?')}: {n} inferences after {warmup} warm-ups, "
                  f"{summary['latency_us']['mean']:,.1f} µs each" + said, highlight=False, markup=False)   # `dut [name]` is no markup
        if energy["kind"] == "measured":
            pm, est = energy["power_monitor"], energy["estimate"]["mean"]
            out.print(f"{pm['describe']}: {pm['samples']:,} samples; {energy['window_uj']:,.3f} µJ between the timestamp "
                      f"pin's edges around the {n} inferences" + (f"; datasheet estimate {est:.3f} µJ" if est is not None else ""),
                      highlight=False, markup=False)
        out.print(f"results: {summary['results']}", highlight=False, markup=False)


def _monitor_view(stats, port: str):
    from rich.console import Group
    from rich.text import Text

    s = stats.summary(port)
    lat = s["latency_us"]
    t = Table(title=f"tinygen monitor — {port}" + (f" ({s['board']})" if s["board"] else ""), title_justify="left")
    e = s["energy_uj"]
    energy_head = "energy µJ" + {"estimated": " (est.)", "measured": " (meas.)"}.get(e["kind"], "")
    for c in ("inferences", "per s", "min µs", "median µs", "p95 µs", "max µs", energy_head, "bad lines", "other", "reconnects"):
        t.add_column(c, justify="right")
    fmt = lambda v: "—" if v is None else f"{v:,.0f}"  # noqa: E731
    t.add_row(f"{s['inferences']:,}", f"{s['inferences_per_second']:.2f}", fmt(lat["min"]), fmt(lat["median"]),
              fmt(lat["p95"]), fmt(lat["max"]), "—" if e["median"] is None else f"{e['median']:.2f}",
              str(s["bad_lines"]), str(s["other_lines"]), str(s["reconnects"]))
    last = Table(title="last outputs", title_justify="left")
    for c in ("seq", "µs", "cycles", "top", "score", "match"):
        last.add_column(c, justify="right")
    for ev in reversed(stats.last):
        last.add_row(ev.fields.get("seq", ""), ev.fields.get("us", ""), ev.fields.get("cycles", ""),
                     ev.fields.get("top", ""), _milli(ev.int("score_milli")), ev.fields.get("match", ""))
    note = Text("cycles are QEMU's SysTick counts, not a real chip's" if stats.boot and
                stats.boot.fields.get("board") == "mps2-an386" else "", style="dim")
    if stats.power is None:
        return Group(t, last, note)
    p, num = stats.power, lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    power = Text(f"{p['describe']}: {p['samples']:,} samples, {p['windows']:,} windows from the {p['windows_from']}; "
                 f"energy per inference {num(e['median'])} µJ measured, {num(e['estimate']['median'])} µJ estimated",
                 style="cyan")
    return Group(t, power, last, note)


def _milli(v: int | None) -> str:
    """Thousandths as a decimal, in integers: a float of a 300-digit value overflows."""
    if v is None:
        return ""
    return f"{'-' if v < 0 else ''}{abs(v) // 1000}.{abs(v) % 1000:03d}"


def _monitor_summary(s: dict):
    t = Table(title="Summary", title_justify="left")
    t.add_column("")
    t.add_column("value", justify="right")
    lat = s["latency_us"]
    rows = [("inferences", f"{s['inferences']:,}"), ("inferences per second", f"{s['inferences_per_second']:.2f}")]
    for k in ("min", "median", "p95", "max"):
        rows.append((f"latency {k} (µs)", "—" if lat[k] is None else f"{lat[k]:,.0f}"))
    rows.append(("cycles median", "—" if s["cycles"]["median"] is None else f"{s['cycles']['median']:,.0f}"))
    e = s["energy_uj"]
    rows.append(("energy median (µJ)", "—" if e["median"] is None else f"{e['median']:.3f} ({e['kind']})"))
    if "power_monitor" in e:
        est = e["estimate"]["median"]
        rows += [("energy estimate (µJ)", "—" if est is None else f"{est:.3f} (datasheet V x mA x µs)"),
                 ("measured inferences", f"{e['inferences']:,}"),
                 ("power monitor", f"{e['power_monitor']['name']}, {e['samples']:,} samples, windows from the "
                                   f"{e['power_monitor']['windows_from']}")]
    rows += [("test-vector mismatches", str(s["mismatches"])), ("bad lines", str(s["bad_lines"])),
             ("bad values", str(s["bad_values"])),
             ("other lines", str(s["other_lines"])), ("reconnects", str(s["reconnects"]))]
    for k, v in rows:
        t.add_row(k, v)
    return t
