"""`tinygen run`: build, run without a board, check every output; render the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import TinygenError
from .common import ForceOpt, JsonOpt, MatchOpt, app, err, fail, flag, out, steps, warn


@app.command("run")
def run_cmd(
    board: str = typer.Option(..., "--board", "-b", help="mps2-an386 (QEMU's Cortex-M4), bbc-microbit (QEMU's micro:bit, a Cortex-M0; --runtime aot), both booted here, or host (this machine, for --runtime aot)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Keras .h5/.keras, a SavedModel folder, or .tflite. Default: the bundled digits example."),
    runtime: str = typer.Option("aot", "--runtime", help="aot: tinygen's ahead-of-time C. tflm: TensorFlow Lite Micro (needs TFLM_ROOT; mps2-an386 only)."),
    input_source: str = typer.Option("test-vectors", "--input", help="test-vectors: inputs compiled in, each output checked against the host's TFLite Micro interpreter."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Samples (.npz with x, or .npy) for calibration and test vectors. Without it, they are generated."),
    vectors: int = typer.Option(10, "--vectors", min=1, help="How many test vectors to run."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Keep the firmware project here (default: a temporary folder, removed)."),
    force: bool = ForceOpt,
    tflm_root: Optional[Path] = typer.Option(None, "--tflm-root", envvar="TFLM_ROOT", help="With --runtime tflm: a tflite-micro checkout."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds the firmware may run in QEMU."),
    layers: bool = flag("--layers", help="Also time each layer in QEMU (AOT: each kernel call; TFLM: each operator's Invoke, through TFLM's profiler interface): a table, and `layers` in the JSON."),
    compare: bool = flag("--compare", help="Time each layer as AOT and as TFLM firmware (needs TFLM_ROOT) in the same QEMU, side by side with AOT / TFLM per layer: where tinygen's kernels are slower."),
    match: str = MatchOpt,
    plot: Optional[Path] = typer.Option(None, "--plot", help="With --layers: write the ticks per layer as a PNG."),
    as_json: bool = JsonOpt,
):
    """Build a model's firmware and run it without a board: in QEMU, or on this machine.

    With --board mps2-an386 the firmware is cross-compiled with arm-none-eabi-gcc and booted in
    qemu-system-arm -M mps2-an386 -icount shift=0 (one nanosecond per executed instruction), its
    UART served on a local TCP port; the firmware checks every output against the host
    interpreter's and streams TG1 lines, then QEMU exits. SysTick counts under -icount are
    deterministic and comparable between builds, not a real chip's cycles. With --board host the
    same AOT C is compiled with this machine's cc and run here.

    Exit status 0 when every output matches, 3 when some differ, 1 on bad input or a failed build.

    Examples:
      tinygen run --board mps2-an386 --model model.h5 --runtime aot --input test-vectors
      tinygen run --board host --model model.tflite --runtime aot --json
      tinygen run --board mps2-an386 --model kws.tflite --compare
    """
    from ..pipeline.run import compare_layers, run

    if input_source != "test-vectors":
        fail(TinygenError(f"`tinygen run` takes --input test-vectors (outputs checked on the device); for "
                           f"{input_source} inputs, `tinygen build --input {input_source}` and `tinygen monitor`."))
    if compare:
        try:
            with steps(as_json) as progress:
                comparison = compare_layers(board, model, data, vectors, out_dir, tflm_root, progress, timeout, force)
        except TinygenError as e:
            fail(e)
        except KeyboardInterrupt:
            err.print("interrupted.")
            raise typer.Exit(130)
        if as_json:
            print(json.dumps(comparison.to_json(), indent=2))
        else:
            _render_comparison(comparison)
        if comparison.aot.mismatches or comparison.tflm.mismatches:
            raise typer.Exit(3)
        return
    try:
        if plot is not None:   # a user's file there is refused before the build, not after
            from ..files import check_out_file

            check_out_file(plot, "--plot")
        with steps(as_json) as progress:
            report = run(board, model, data, runtime, vectors, out_dir, tflm_root, progress, timeout,
                         layers=layers or plot is not None, match=match, force=force)
    except TinygenError as e:
        fail(e)
    except KeyboardInterrupt:
        err.print("interrupted.")
        raise typer.Exit(130)
    if plot is not None and report.layers:
        from ..files import write_drawn_file
        from ..plots import layer_ticks_png

        try:
            write_drawn_file(plot, "--plot", lambda p: layer_ticks_png(report, p))
        except TinygenError as e:
            fail(e)
        err.print(f"Wrote {plot}", highlight=False)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _render_run(report)
    if report.mismatches:
        raise typer.Exit(3)


def _render_run(r) -> None:
    for w in r.warnings:
        warn(w)
    where = "this machine" if r.board == "host" else f"QEMU ({r.board})"
    verdict = "[green]all match[/]" if r.mismatches == 0 else f"[red]{r.mismatches} differ[/]"
    out.print(f"[bold]{r.runtime}[/] on {where}: {r.vectors} test vectors, {verdict} "
              f"(reference: the host's {r.reference} interpreter)", highlight=False)
    if r.other_mismatches is not None:
        other = "TFLite Micro's interpreter" if r.reference == "tflite" else "TFLite's reference kernels"
        out.print(f"  against {other}: {r.other_mismatches} differ (the two disagree on FULLY_CONNECTED's "
                  "rounding; --match picks one)", highlight=False)
    t = Table(title_justify="left")
    for c in ("", "measured", "tinygen estimated"):
        t.add_column(c, justify="left" if not c else "right")
    t.add_row("arena", f"{r.arena_bytes:,} B", f"{r.estimate.get('arena_bytes', 0):,} B")
    if r.flash_bytes is not None:
        t.add_row("flash (text + data)", f"{r.flash_bytes:,} B", f"{r.estimate.get('flash_bytes', 0):,} B")
    if r.sram_bytes is not None:
        t.add_row("static RAM (data + bss)", f"{r.sram_bytes:,} B", "")
    if r.stack_used_bytes is not None:
        t.add_row("stack used (painted)", f"{r.stack_used_bytes:,} B", "")
    out.print(t)
    if r.ticks_per_inference is not None:
        extra = (f" = {r.instructions_per_inference:,} instructions" if r.instructions_per_inference else "")
        out.print(f"  per inference: {r.ticks_per_inference:,} ticks{extra}; {r.tick_unit}", highlight=False)
    if r.layers:
        total = sum(l["ticks"] for l in r.layers) or 1
        lt = Table(title="Ticks per layer (first test vector)", title_justify="left")
        for c in ("op", "kernel", "ticks", "share"):
            lt.add_column(c, justify="left" if c == "kernel" else "right")
        for l in r.layers:
            lt.add_row(str(l["op_index"]), l["op"], f"{l['ticks']:,}", f"{l['ticks'] / total:.1%}")
        out.print(lt)
    if r.out_dir is not None:
        out.print(f"Kept the firmware project in {r.out_dir}/")


def _render_comparison(c) -> None:
    for r in (c.aot, c.tflm):
        for w in r.warnings:
            warn(w)
        verdict = "[green]all match[/]" if r.mismatches == 0 else f"[red]{r.mismatches} differ[/]"
        out.print(f"[bold]{r.runtime}[/]: {r.vectors} test vectors, {verdict}; {r.ticks_per_inference:,} ticks per "
                  f"inference, arena {r.arena_bytes:,} B, flash {r.flash_bytes:,} B", highlight=False)
    t = Table(title=f"Ticks per layer, first test vector (AOT / TFLM = {c.ratio})", title_justify="left")
    for col in ("op", "kernel", "AOT", "TFLM", "AOT / TFLM"):
        t.add_column(col, justify="left" if col == "kernel" else "right")
    for l in c.layers():
        ratio = l["ratio"]
        shown = "" if ratio is None else (f"[red]{ratio:.2f}[/]" if ratio > 1.0 else f"{ratio:.2f}")
        kernel = l["op"] + (f" (in op {l['runs_in']}'s call)" if "runs_in" in l else
                            f" + op {', '.join(map(str, l['with_ops']))} (one call)" if "with_ops" in l else "")
        t.add_row(str(l["op_index"]), kernel, f"{l['aot_ticks']:,}", f"{l['tflm_ticks']:,}", shown)
    out.print(t)
    out.print(f"  {c.aot.tick_unit}", highlight=False)
