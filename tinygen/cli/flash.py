"""`tinygen flash`: the board's loader, through the runner registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TinygenError
from .common import BoardOpt, JsonOpt, app, err, fail, flag, out, verbose


@app.command()
def flash(
    image: Path = typer.Argument(..., help="A build directory from `tinygen build --compile`, or a .bin, .hex, .elf or .uf2 image."),
    board: str = BoardOpt,
    port: Optional[str] = typer.Option(None, "--port", "-p", help="Serial port for UART bootloaders (sparkfun-edge): /dev/ttyUSB0, or any pyserial URL."),
    runner: Optional[str] = typer.Option(None, "--runner", help="Override the board's loader: ambiq-uart, pyocd or uf2."),
    baud: Optional[int] = typer.Option(None, "--baud", help="Bootloader baud rate. Default: the board's (921600 on the Edge)."),
    drive: Optional[Path] = typer.Option(None, "--drive", help="uf2: the RPI-RP2 drive's mount point, if not found by itself."),
    probe: Optional[str] = typer.Option(None, "--probe", help="pyocd: the unique id of the probe to use, if several are plugged in."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.1, help="ambiq-uart: seconds to wait for each bootloader reply. Default 12, as Ambiq's own script (the last reply comes only after the flash is written); the Hello waits 5 at most."),
    reset: bool = typer.Option(True, "--reset/--no-reset", help="ambiq-uart: reset the board into its bootloader through the adapter's DTR/RTS lines, as SparkFun's asb.py does. --no-reset: it already waits there (button 14 held while pressing reset)."),
    dry_run: bool = flag("--dry-run", help="Print exactly what would run or be sent, and touch nothing."),
    monitor_after: bool = flag("--monitor", help="Go straight on into `tinygen monitor` on the same port."),
    power: Optional[str] = typer.Option(None, "--power", help="With --monitor: measure energy per inference with a power monitor (see `tinygen monitor --power`): ppk2:/dev/ttyACM1, joulescope or lpm01a:/dev/ttyACM2."),
    as_json: bool = JsonOpt,
):
    """Put a built firmware on the board with the board's own loader.

    The image is checked before the board is touched: it must fit the board's flash and be
    linked at the address its loader expects. Every external call and byte stream goes
    through one place that honours --dry-run and --verbose.

    Examples:
      tinygen flash --board sparkfun-edge --port /dev/ttyUSB0 build/edge
      tinygen flash --board nucleo-l4r5zi build/l4
      tinygen flash --board raspberry-pi-pico build/pico --dry-run
    """
    flash_image(image, board, port, runner, baud, dry_run, monitor_after, as_json, drive=drive, probe=probe,
                timeout=timeout, reset=reset, power=power)


def flash_image(image: Path, board: str, port: Optional[str], runner: Optional[str] = None, baud: Optional[int] = None,
                dry_run: bool = False, monitor_after: bool = False, as_json: bool = False, power: Optional[str] = None,
                **options) -> None:
    """What `tinygen flash` does; `build --flash` goes on to it too."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from ..boards import load_board
    from ..device.runners import IO, prepare

    if power and not monitor_after:
        fail(TinygenError("--power measures while monitoring: add --monitor."))
    try:
        b = load_board(board)
        io = IO(dry_run=dry_run, verbose=verbose(), say=lambda t: err.print(t, highlight=False, markup=False))
        r, img = prepare(b, image, io, port, runner, baud, **options)
        with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True,
                      disable=as_json or dry_run) as bar:
            task = bar.add_task("flash", total=None)
            result = r.flash(img, lambda done, total: bar.update(task, completed=done, total=total))
    except TinygenError as e:
        fail(e)
    except KeyboardInterrupt:
        err.print("interrupted: the transfer stopped part way; the board stays in its bootloader, ready for another try.")
        raise typer.Exit(130)
    summary = {"board": b.id, "runner": result.runner, "image": str(img.source), "address": img.address,
               "image_bytes": len(img.data), "bytes_sent": result.bytes_written, "seconds": round(result.seconds, 3),
               "verified": result.verified, "dry_run": dry_run, "steps": result.steps}
    if as_json:
        print(json.dumps(summary, indent=2))
    elif not dry_run:
        out.print(f"Flashed {img.source.name} ({len(img.data):,} bytes at 0x{img.address:X}) to {b.id} with "
                  f"{result.runner} in {result.seconds:.1f} s; verified: {result.verified}.", highlight=False)
    if monitor_after and not dry_run:
        if not port:
            fail(TinygenError("--monitor needs --port, the board's serial port."))
        from .monitor import run_monitor

        run_monitor(port, board, power=power)
