"""The tinygen command line. It parses, calls the library and renders; nothing else."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import TinygenError

app = typer.Typer(
    help="Make a trained network fit a microcontroller: int8 quantization, an exact flash and "
    "SRAM fit check per board, and the model as C for TensorFlow Lite Micro.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
boards_app = typer.Typer(help="The bundled board profiles (boards/*.toml).", no_args_is_help=False,
                         invoke_without_command=True)
app.add_typer(boards_app, name="boards")

out = Console()
err = Console(stderr=True)
_state = {"verbose": False}

BoardOpt = typer.Option(..., "--board", "-b", help="A bundled board id (see `tinygen boards`) or the path of a board .toml file.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout instead of tables.")
MatchOpt = typer.Option("tflm", "--match", help="With --runtime aot, whose int8 arithmetic to reproduce bit for bit: "
                        "tflm (TFLite Micro) or tflite (TFLite's reference kernels; they differ only in "
                        "FULLY_CONNECTED's rounding and MUL's multiplier). Test vectors are checked against the same interpreter.")
RuntimeOpt = typer.Option("tflm", "--runtime", help="tflm: TensorFlow Lite Micro interprets the model on the device. "
                          "aot: tinygen compiles it ahead of time to plain C99 with its own int8 kernels "
                          "(smaller arena and flash; no TFLM needed).")


def _fail(e: BaseException, code: int = 1) -> None:
    if _state["verbose"]:
        traceback.print_exception(e)
    err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and TensorFlow's own output."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
):
    _state["verbose"] = verbose
    if version:
        out.print(f"tinygen {__version__}")
        raise typer.Exit()


@contextlib.contextmanager
def _steps(quiet: bool):
    """A progress display on stderr; yields progress(step, done=None, total=None), one bar per step."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True, disable=quiet) as bar:
        tasks: dict[str, int] = {}

        def progress(step, done=None, total=None):
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done or 0, total=total)

        yield progress


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


@boards_app.callback(invoke_without_command=True)
def boards_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List the bundled boards, one line each."""
    if ctx.invoked_subcommand is not None:
        return
    from .boards import all_boards

    try:
        bs = all_boards()
    except TinygenError as e:
        _fail(e)
    if as_json:
        print(json.dumps([{"id": b.id, "name": b.name, "mcu": b.mcu, "cpu": b.cpu, "clock_hz": b.clock_hz,
                           "flash_bytes": b.app_flash_bytes, "sram_bytes": b.sram_size} for b in bs], indent=2))
        return
    t = Table(title="Bundled boards", title_justify="left")
    for c in ("id", "MCU", "core", "clock", "app flash", "SRAM"):
        t.add_column(c, justify="right" if c in ("clock", "app flash", "SRAM") else "left")
    for b in bs:
        t.add_row(b.id, b.mcu, b.cpu, f"{b.clock_hz / 1e6:g} MHz", f"{b.app_flash_bytes // 1024:,} KiB", f"{b.sram_size // 1024:,} KiB")
    out.print(t)


@boards_app.command("show")
def boards_show(board: str = typer.Argument(..., help="Board id or board file."), as_json: bool = JsonOpt):
    """Every figure of one board, with the source each figure comes from."""
    from .boards import load_board

    try:
        b = load_board(board)
    except TinygenError as e:
        _fail(e)
    if as_json:
        print(json.dumps(b.raw, indent=2))
        return
    out.print(f"[bold]{b.name}[/] ({b.id}) — {b.source}")
    out.print(b.source.read_text(), highlight=False, markup=False)


@app.command()
def fit(
    board: str = BoardOpt,
    model: Path = typer.Option(..., "--model", "-m", help="A full-int8 .tflite, or a Keras/SavedModel model to quantize first."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Calibration samples (.npz with x[, y], or .npy), for a float model."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write per-layer memory as a PNG."),
    runtime: str = RuntimeOpt,
    as_json: bool = JsonOpt,
):
    """Check whether a model fits a board: flash and SRAM, with headroom or overage.

    Exit status 0 when it fits, 2 when it does not, 1 on bad input.

    Example: tinygen fit --board nucleo-l4r5zi --model model.tflite
    """
    _run_build(board, model, data, None, None, as_json, fit_only=True, plot=plot, runtime=runtime)


@app.command()
def build(
    board: str = BoardOpt,
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Keras .h5/.keras, a SavedModel folder, or .tflite. Default: the bundled digits example."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Calibration samples: .npz with 'x' (and labels 'y'), or .npy. Without it, generated samples are used and accuracy is unknown."),
    val: Optional[Path] = typer.Option(None, "--val", help="Held-out samples with labels, for the accuracy report. Default: --data."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder. Default: build/<board>/."),
    input_source: str = typer.Option("test-vectors", "--input", help="Where the firmware's inputs come from: test-vectors (compiled in, checked against the host interpreter) or serial (sent by the host)."),
    harness: str = typer.Option("tinygen", "--harness", help="tinygen: print a TG1 line per inference (for `tinygen monitor`); mlperf: answer the MLPerf Tiny / EnergyRunner DUT protocol instead."),
    raw_output: bool = typer.Option(False, "--raw-output", help="Have the firmware print every output byte on each inference line, not only the top class and score."),
    vectors: int = typer.Option(10, "--vectors", min=1, help="How many test vectors to compile in (from --val, else --data)."),
    no_project: bool = typer.Option(False, "--no-project", help="Write the model and fit report only, no firmware project."),
    compile_: bool = typer.Option(False, "--compile", help="Build the firmware with arm-none-eabi-gcc and report its real size (needs TFLM_ROOT)."),
    run_: bool = typer.Option(False, "--run", help="Boot the firmware in QEMU (mps2-an386) and show what it prints; implies --compile."),
    tflm_root: Optional[Path] = typer.Option(None, "--tflm-root", envvar="TFLM_ROOT", help="A tflite-micro checkout (default: $TFLM_ROOT)."),
    ambiq_root: Optional[Path] = typer.Option(None, "--ambiq-root", envvar="AMBIQ_ROOT", help="AmbiqSuite SDK with boards_sfe, for the SparkFun Edge (default: $AMBIQ_ROOT)."),
    shrink_: Optional[str] = typer.Option(None, "--shrink", help="auto: first search for the most accurate thinner model that fits (see `tinygen shrink --auto`), then build it."),
    max_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="With --shrink auto: accuracy points the int8 model may lose."),
    flash_: bool = typer.Option(False, "--flash", help="After --compile, put the firmware on the board (see `tinygen flash`)."),
    port: Optional[str] = typer.Option(None, "--port", "-p", help="With --flash/--monitor: the board's serial port."),
    monitor_after: bool = typer.Option(False, "--monitor", help="After --flash, go straight on into `tinygen monitor` on --port."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write per-layer memory as a PNG."),
    runtime: str = RuntimeOpt,
    match: str = MatchOpt,
    as_json: bool = JsonOpt,
):
    """Quantize a model to full int8, check it against a board, and write it as C.

    Writes, in --out: model.tflite (int8), fit.json (the report) and, for boards with a
    firmware port (sparkfun-edge, mps2-an386), a TFLite Micro firmware project: Makefile,
    CMakeLists.txt, README.md, src/ (main.cc, model_settings.h, model_data.cc, test vectors)
    and port/. Exit status 0 when it fits, 2 when it does not, 1 on bad input or a failed build.

    Examples:
      tinygen build --board sparkfun-edge --model model.h5 --data calib.npz --out build/edge
      tinygen build --board mps2-an386 --out build/qemu --compile --run
      tinygen build --board sparkfun-edge --model model.h5 --runtime aot --out build/aot
    """
    if shrink_ is not None:
        if shrink_ != "auto":
            _fail(TinygenError("--shrink takes `auto`; for one chosen recipe use `tinygen shrink --width W`."))
        model, data, val = _shrink_first(board, model, data, val, max_drop, as_json)
    firmware = {"input_source": input_source, "vector_count": vectors, "project": not no_project, "harness": harness, "raw_output": raw_output,
                "compile": compile_ or run_ or flash_, "run": run_, "tflm_root": tflm_root,
                "sdk_roots": {"AMBIQ_ROOT": ambiq_root}}
    _run_build(board, model, data, val, out_dir, as_json, fit_only=False, plot=plot, firmware=firmware, runtime=runtime,
               match=match)
    if flash_:
        from .boards import load_board

        built = out_dir or Path("build") / load_board(board).id
        flash(image=built, board=board, port=port, runner=None, baud=None, drive=None, probe=None, dry_run=False,
              monitor_after=monitor_after, as_json=False)


def _nullcontext():
    return contextlib.nullcontext()


def _shrink_first(board_name: str, model: Optional[Path], data: Optional[Path], val: Optional[Path],
                  max_drop: Optional[float], as_json: bool = False) -> tuple[Path, Optional[Path], Optional[Path]]:
    """Run the search for `build --shrink auto`; returns the chosen Keras model and the data to build it with."""
    from .boards import load_board
    from .data import conform, load_data
    from .examples import digits_model_path, digits_splits
    from .models import detect, input_shape, load_keras
    from .shrink import run_search

    try:
        b = load_board(board_name)
        src = detect(model or digits_model_path())
        if src.kind != "keras":
            raise TinygenError("--shrink auto rebuilds the network, so it needs the Keras model.")
        teacher = load_keras(src)
        shape = input_shape(src, teacher)
        if model is None:
            train_ds, val_ds = (conform(d, shape) for d in digits_splits())
        elif data is None or val is None:
            raise TinygenError("--shrink auto trains and measures: pass --data (training samples) and --val (held-out ones).")
        else:
            train_ds, val_ds = conform(load_data(data), shape), conform(load_data(val), shape, "validation data")
        out = Path("build") / f"{b.id}-shrunk"
        with err.status("Searching for a model that fits (widths, PTQ/QAT)...") if not as_json else _nullcontext():
            result = run_search(b, teacher, src.path, train_ds, val_ds, max_drop, None, 10, out)
    except TinygenError as e:
        _fail(e)
    if not as_json:  # with --json, stdout is the build's one object; the search is in search.json
        _render_search(result, as_json=False)
    if model is None:  # the bundled example: build the chosen model with the same digits
        import atexit
        import shutil
        import tempfile

        import numpy as np

        tmp = Path(tempfile.mkdtemp(prefix="tinygen-"))
        atexit.register(shutil.rmtree, tmp, True)
        np.savez(tmp / "train.npz", x=train_ds.x, y=train_ds.y)
        np.savez(tmp / "val.npz", x=val_ds.x, y=val_ds.y)
        data, val = tmp / "train.npz", tmp / "val.npz"
    return result.out_dir / "model.keras", data, val


def _run_build(board_name, model, data, val, out_dir, as_json, fit_only, plot=None, firmware=None, runtime="tflm",
               match="tflm"):
    from .boards import load_board
    from .build import build as run

    try:
        board = load_board(board_name)
        if not fit_only and out_dir is None:
            out_dir = Path("build") / board.id
        with _steps(as_json) as progress:
            fw = firmware or {}
            result = run(board, model, data, None if fit_only else out_dir, val, progress=progress,
                         input_source=fw.get("input_source", "test-vectors"),
                         vector_count=fw.get("vector_count", 10), project=fw.get("project", False),
                         harness=fw.get("harness", "tinygen"), raw_output=fw.get("raw_output", False),
                         runtime=runtime, match=match)
            if fw.get("compile") and result.report.fits:
                from .build import compile_and_run

                compile_and_run(result, fw["tflm_root"], fw["sdk_roots"], fw["run"], progress)
    except TinygenError as e:
        _fail(e)
    except KeyboardInterrupt:
        err.print("interrupted; nothing was written.")
        raise typer.Exit(130)
    report = result.report
    if plot is not None:
        from .plots import layer_memory_png

        layer_memory_png(report, plot)
        err.print(f"Wrote {plot}", highlight=False)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for w in result.warnings:
            err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
        _render(result)
    if not report.fits:
        err.print(f"[bold red]{Path(report.model_path).name} does not fit {report.board.id}:[/] {report.advice()}",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _render(result) -> None:
    r = result.report
    g = r.graph
    kernels = "tinygen AOT runtime" if r.runtime == "aot" else f"TFLM, {r.kernels} kernels"
    out.print(f"[bold]{Path(r.model_path).name}[/] on [bold]{r.board.name}[/] ({r.board.cpu}, {kernels})")
    out.print(f"sha256 {g.sha256[:16]}…  {len(g.operators)} ops: {', '.join(g.ops)}  "
              f"{g.params:,} parameters, {g.macs:,} MACs", highlight=False)
    layers = Table(title="Layers", title_justify="left")
    for c in ("#", "op", "output", "params", "MACs", "activations"):
        layers.add_column(c, justify="left" if c in ("op", "output") else "right")
    for l in g.layers:
        layers.add_row(str(l.index), l.op, "x".join(map(str, l.output_shape)), f"{l.params:,}", f"{l.macs:,}", f"{l.activation_bytes:,}")
    out.print(layers)
    t = Table(title=f"Fit on {r.board.id}", title_justify="left")
    for c in ("", "used", "budget", "headroom", "verdict"):
        t.add_column(c, justify="left" if c in ("", "verdict") else "right")
    for name, b in (("flash", r.flash), ("SRAM", r.sram)):
        verdict = "[green]fits[/]" if b.fits else f"[red]over by {-b.headroom_bytes:,} B[/]"
        t.add_row(name, _kb(b.total_bytes), _kb(b.budget_bytes), f"{b.headroom_bytes:+,} B", verdict)
    out.print(t)
    vectors = f" + test vectors {r.test_vector_bytes:,}" if r.test_vector_bytes else ""
    if r.runtime == "aot":
        a = r.aot
        out.print(f"  flash = weights {a['weight_bytes']:,} + parameter blocks {a['param_bytes']:,} + AOT kernels "
                  f"{r.runtime_bytes:,} ({', '.join(a['kernels'])}) + application {r.app_bytes:,}{vectors}", highlight=False)
        out.print(f"  SRAM  = arena {r.arena_bytes:,} (planned ahead, {a['arena_heuristic']}; "
                  f"ops run in place: {len(a['in_place_ops'])}) + stack {r.stack_bytes:,} + static {r.static_ram_bytes:,}",
                  highlight=False)
    else:
        out.print(f"  flash = model {r.model_bytes:,} + TFLM runtime {r.runtime_bytes:,} ({', '.join(g.ops)}) "
                  f"+ application {r.app_bytes:,}{vectors}", highlight=False)
        out.print(f"  SRAM  = arena {r.arena_bytes:,} (activations {r.plan.head_bytes:,} + persistent {r.plan.tail_bytes:,}) "
                  f"+ margin {r.arena_reserved_bytes - r.arena_bytes:,} + stack {r.stack_bytes:,} + static {r.static_ram_bytes:,}",
                  highlight=False)
    if not r.plan.exact:
        out.print(f"[yellow]The arena is not exact: tinygen does not model the allocations of {', '.join(r.plan.unmodelled_ops)}.[/]")
    for n in r.runtime_note:
        out.print(f"[yellow]{n}[/]")
    a = result.accuracy
    if a.samples:
        if a.kind == "labels":
            f = f"{a.float_top1:.2%}" if a.float_top1 is not None else "n/a"
            out.print(f"Accuracy on {a.samples:,} labelled samples: float {f}, int8 {a.int8_top1:.2%}")
        else:
            out.print(f"Int8 top-1 agreement with the float model on {a.samples:,} samples: {a.int8_top1:.2%} (no labels)")
    if result.out_dir is not None:
        shown = [f for f in result.files if "/" not in f] + sorted({f.split("/")[0] + "/" for f in result.files if "/" in f})
        out.print(f"Wrote {', '.join(shown)} to {result.out_dir}/")
    if result.size is not None:
        z = result.size
        out.print(f"Linked firmware (arm-none-eabi-size): text {z.text:,} + data {z.data:,} = flash {z.text + z.data:,} B "
                  f"(tinygen estimated {r.flash.total_bytes:,}); static RAM data+bss {z.data + z.bss:,} B "
                  f"(estimated SRAM {r.sram.total_bytes - r.stack_bytes:,} without the stack)", highlight=False)
    if result.run is not None:
        rr = result.run
        out.print(f"In QEMU: arena_used_bytes {rr.arena_used_bytes:,} (tinygen: {r.arena_bytes:,}); "
                  f"{rr.vectors} test vectors, {rr.mismatches} differing from the host TFLite Micro interpreter", highlight=False)
        if rr.cycles:
            out.print(f"  SysTick cycles per inference under QEMU -icount (deterministic, not a real chip's): "
                      f"{', '.join(f'{c:,}' for c in rr.cycles[:5])}{' ...' if len(rr.cycles) > 5 else ''}", highlight=False)



@app.command("run")
def run_cmd(
    board: str = typer.Option(..., "--board", "-b", help="mps2-an386 (QEMU's Cortex-M4, booted here) or host (this machine, for --runtime aot)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Keras .h5/.keras, a SavedModel folder, or .tflite. Default: the bundled digits example."),
    runtime: str = typer.Option("aot", "--runtime", help="aot: tinygen's ahead-of-time C. tflm: TensorFlow Lite Micro (needs TFLM_ROOT; mps2-an386 only)."),
    input_source: str = typer.Option("test-vectors", "--input", help="test-vectors: inputs compiled in, each output checked against the host's TFLite Micro interpreter."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Samples (.npz with x, or .npy) for calibration and test vectors. Without it, they are generated."),
    vectors: int = typer.Option(10, "--vectors", min=1, help="How many test vectors to run."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Keep the firmware project here (default: a temporary folder, removed)."),
    tflm_root: Optional[Path] = typer.Option(None, "--tflm-root", envvar="TFLM_ROOT", help="With --runtime tflm: a tflite-micro checkout."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds the firmware may run in QEMU."),
    layers: bool = typer.Option(False, "--layers", help="Also time each layer (AOT in QEMU): a table, and `layers` in the JSON."),
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
    """
    from .run import run

    if input_source != "test-vectors":
        _fail(TinygenError(f"`tinygen run` takes --input test-vectors (outputs checked on the device); for "
                           f"{input_source} inputs, `tinygen build --input {input_source}` and `tinygen monitor`."))
    try:
        with _steps(as_json) as progress:
            report = run(board, model, data, runtime, vectors, out_dir, tflm_root, progress, timeout,
                         layers=layers or plot is not None, match=match)
    except TinygenError as e:
        _fail(e)
    except KeyboardInterrupt:
        err.print("interrupted.")
        raise typer.Exit(130)
    if plot is not None and report.layers:
        from .plots import layer_ticks_png

        layer_ticks_png(report, plot)
        err.print(f"Wrote {plot}", highlight=False)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _render_run(report)
    if report.mismatches:
        raise typer.Exit(3)


def _render_run(r) -> None:
    for w in r.warnings:
        err.print(f"[yellow]note:[/] {w}", highlight=False, soft_wrap=True)
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
    input_file: Optional[Path] = typer.Option(None, "--input-file", help="With --mlperf: the input to load, raw bytes (.bin) or an int8 .npy (first sample). Default: zeros."),
    as_json: bool = JsonOpt,
):
    """Watch a board's profiling lines: latency, inferences per second, energy, outputs.

    Reads the TG1 lines tinygen firmware prints (firmware/README.md), skipping and counting
    anything else. If the port vanishes (a reset, a pulled cable) it says so, waits and
    reconnects. Stops at --count, --duration, the firmware's `done` line, or Ctrl-C, then
    prints a summary.

    Example: tinygen monitor --port socket://127.0.0.1:5555 --count 500 --log run.csv --plot latency.png --json
    """
    _run_monitor(port, board, baud, count, duration, log, plot, send, model, mlperf, input_file, as_json)


def _run_monitor(port: str, board: Optional[str], baud: Optional[int] = None, count: Optional[int] = None,
                 duration: Optional[float] = None, log: Optional[Path] = None, plot: Optional[Path] = None,
                 send: Optional[Path] = None, model: Optional[Path] = None, mlperf=None,
                 input_file: Optional[Path] = None, as_json: bool = False) -> None:
    """What `tinygen monitor` does; also where `flash --monitor` goes on to."""
    from rich.live import Live

    from .boards import load_board
    from .monitor import Log, Monitor, MonitorError, latency_png

    try:
        b = load_board(board) if board else None
        rate = baud or (b.baud if b else 115200)
        logger = Log(log, b) if log else None
    except (TinygenError, OSError) as e:
        _fail(e)
    if mlperf is not None:
        _run_mlperf(port, rate, b, mlperf, input_file, as_json)
        return
    try:
        inputs = _serial_inputs(send, model) if send else []
    except TinygenError as e:
        _fail(e)
    m = Monitor(port, rate, b, logger, inputs=inputs, notify=lambda msg: err.print(f"[yellow]{msg}[/]", highlight=False))
    try:
        if as_json:
            stats = m.run(count, duration)
        else:
            with Live(_monitor_view(m.stats, port), console=out, refresh_per_second=4, transient=False) as live:
                stats = m.run(count, duration, on_update=lambda st: live.update(_monitor_view(st, port)))
    except MonitorError as e:
        _fail(e)
    except KeyboardInterrupt:
        stats = m.stats
    summary = stats.summary(port)
    if plot is not None and stats.latencies_us:
        latency_png(stats, plot, f"{port}" + (f" ({b.id})" if b else ""))
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(_monitor_summary(summary))


@app.command()
def shrink(
    board: str = BoardOpt,
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A Keras .h5/.keras model. Default: the bundled digits example."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Training samples (.npz with x[, y]); labels optional: without them the student learns the original's outputs."),
    val: Optional[Path] = typer.Option(None, "--val", help="Held-out samples to measure accuracy on (labels, or agreement with the original's top-1)."),
    width: Optional[float] = typer.Option(None, "--width", "-w", min=0.01, max=1.0, help="Width multiplier: every Conv2D/Dense (but the output) keeps this share of its channels."),
    prune: Optional[float] = typer.Option(None, "--prune", min=0.0, max=0.95, help="Remove this share of all filters, least important first, ranked across layers (structured pruning; shrinks flash, SRAM and MACs)."),
    unstructured: bool = typer.Option(False, "--unstructured", help="With --prune: magnitude-prune individual weights instead (tensorflow-model-optimization); the report shows it saves no flash in a dense int8 model."),
    auto: bool = typer.Option(False, "--auto", help="Search widths 1, 0.75, 0.5, 0.35, 0.25 with PTQ (and QAT where PTQ loses accuracy) and keep the most accurate that fits."),
    max_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="With --auto: accuracy points the int8 model may lose against the original's."),
    floor: Optional[float] = typer.Option(None, "--accuracy-floor", help="With --auto: the lowest int8 accuracy accepted (0-1)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Distillation epochs."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Where model.keras, model.tflite (int8) and shrink.json go. Default: build/<board>-shrunk/."),
    as_json: bool = JsonOpt,
):
    """Make a model thinner for a board: width multiplier, distillation from the original, int8.

    Rebuilds the network with the channels of its Conv2D, DepthwiseConv2D and Dense layers
    scaled by --width (residual Adds stay consistent), keeps the filters with the largest L1
    norm, fine-tunes by knowledge distillation from the original (labels optional), quantizes
    to int8, and reports accuracy (float and int8, held-out) and flash and SRAM next to the original.

    Example: tinygen shrink --board raspberry-pi-pico --model model.h5 --data train.npz --val val.npz --width 0.5
    """
    from .boards import load_board
    from .data import conform, load_data
    from .examples import digits_model_path, digits_splits
    from .models import detect, load_keras, input_shape
    from .shrink import shrink as run_shrink

    try:
        b = load_board(board)
        if model is None:
            model, (train_ds, val_ds) = digits_model_path(), digits_splits()
        src = detect(model)
        if src.kind != "keras":
            raise TinygenError(f"Shrinking rebuilds the network, so it needs the Keras model, not a {src.kind.replace('_', ' ')}.")
        teacher = load_keras(src)
        shape = input_shape(src, teacher)
        if data is not None:
            train_ds = conform(load_data(data), shape)
            val_ds = conform(load_data(val), shape, "validation data") if val else None
        elif model != digits_model_path():
            raise TinygenError("Shrinking trains: pass --data with training samples (and --val with held-out ones).")
        else:
            train_ds, val_ds = conform(train_ds, shape), conform(val_ds, shape)
        if val_ds is None:
            raise TinygenError("Shrinking needs held-out data to measure accuracy on: pass --val.")
        if sum(x is not None and x is not False for x in (width, prune, auto or None)) != 1:
            raise TinygenError("Give one of --width W, --prune S or --auto, e.g. tinygen shrink --board raspberry-pi-pico --auto.")
        out_dir = out_dir or Path("build") / f"{b.id}-shrunk"
        with _steps(as_json) as progress:
            if auto:
                from .shrink import run_search

                result = run_search(b, teacher, src.path, train_ds, val_ds, max_drop, floor, epochs, out_dir, progress)
            else:
                result = run_shrink(b, teacher, train_ds, val_ds, width, epochs, out_dir, progress,
                                    prune=prune, unstructured=unstructured)
    except TinygenError as e:
        _fail(e)
    if auto:
        _render_search(result, as_json)
        return
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    t = Table(title=f"Shrinking for {b.id}", title_justify="left")
    for c in ("width", "sparsity", "params", "MMACs", "float", "int8", "flash", "SRAM", "fits", "train s"):
        t.add_column(c, justify="right")
    pct = lambda v: "—" if v is None else f"{v:.1%}"  # noqa: E731
    for c in (result.original, result.chosen):
        t.add_row(f"{c.width:g}", f"{c.sparsity:.0%}", f"{c.params:,}", f"{c.macs / 1e6:.2f}", pct(c.accuracy_float), pct(c.accuracy_int8),
                  _kb(c.flash_bytes), _kb(c.sram_bytes), "yes" if c.fits else "[red]no[/]", f"{c.train_seconds:.1f}")
    out.print(t)
    o, c = result.original, result.chosen
    out.print(f"Accuracy measured by {c.accuracy_kind}. Int8 accuracy {pct(o.accuracy_int8)} -> {pct(c.accuracy_int8)}; "
              f"flash {o.flash_bytes - c.flash_bytes:+,} B saved, SRAM {o.sram_bytes - c.sram_bytes:+,} B saved.", highlight=False)
    out.print(f"Wrote {', '.join(result.files)} to {result.out_dir}/")
    if not c.fits:
        err.print(f"[bold red]At width {c.width:g} the model still does not fit {b.id}.[/] Try a smaller --width.", highlight=False)
        raise typer.Exit(2)


def _render_search(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        t = Table(title=f"Candidates for {result.board.id} (* Pareto front, > chosen)", title_justify="left")
        for c in ("", "width", "pruned", "quant", "params", "MMACs", "float", "int8", "flash", "SRAM", "fits", "train s"):
            t.add_column(c, justify="right")
        for i, c in enumerate(result.candidates):
            mark = (">" if c is result.chosen else " ") + ("*" if i in result.pareto else " ")
            t.add_row(mark, f"{c.width:g}", f"{c.sparsity:.0%}", c.quantization, f"{c.params:,}", f"{c.macs / 1e6:.2f}", f"{c.accuracy_float:.1%}",
                      f"{c.accuracy_int8:.1%}", _kb(c.flash_bytes), _kb(c.sram_bytes), "yes" if c.fits else "no",
                      f"{c.train_seconds:.1f}")
        out.print(t)
        if result.skipped:
            named = [f"{r:g}" if not isinstance(r, (tuple, list)) else f"{r[0]:g} with {r[1]:.0%} of filters pruned"
                     for r in result.skipped]
            out.print(f"Not tried, as they could not be more accurate than a candidate that fits: widths "
                      f"{', '.join(named)}.", highlight=False)
        o, c = result.candidates[0], result.chosen
        out.print(f"Chosen: width {c.width:g}, {c.sparsity:.0%} of filters pruned, {c.quantization}; int8 accuracy {o.accuracy_int8:.2%} -> {c.accuracy_int8:.2%} "
                  f"({(c.accuracy_int8 - o.accuracy_int8) * 100:+.2f} points, by {c.accuracy_kind}). "
                  f"Wrote {', '.join(result.files)} to {result.out_dir}/", highlight=False)


@app.command()
def flash(
    image: Path = typer.Argument(..., help="A build directory from `tinygen build --compile`, or a .bin, .hex, .elf or .uf2 image."),
    board: str = BoardOpt,
    port: Optional[str] = typer.Option(None, "--port", "-p", help="Serial port for UART bootloaders (sparkfun-edge): /dev/ttyUSB0, or any pyserial URL."),
    runner: Optional[str] = typer.Option(None, "--runner", help="Override the board's loader: ambiq-uart, pyocd or uf2."),
    baud: Optional[int] = typer.Option(None, "--baud", help="Bootloader baud rate. Default: the board's (921600 on the Edge)."),
    drive: Optional[Path] = typer.Option(None, "--drive", help="uf2: the RPI-RP2 drive's mount point, if not found by itself."),
    probe: Optional[str] = typer.Option(None, "--probe", help="pyocd: the unique id of the probe to use, if several are plugged in."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print exactly what would run or be sent, and touch nothing."),
    monitor_after: bool = typer.Option(False, "--monitor", help="Go straight on into `tinygen monitor` on the same port."),
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
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from .boards import load_board
    from .runners import IO, get_runner, load_image

    try:
        b = load_board(board)
        cls = get_runner(runner or b.runner)
        if cls.needs_port and not port:
            raise TinygenError(f"The {cls.name} loader talks over a serial port: pass --port (e.g. /dev/ttyUSB0).")
        img = load_image(image, b)
        io = IO(dry_run=dry_run, verbose=_state["verbose"], say=lambda t: err.print(t, highlight=False, markup=False))
        r = cls(b, io, port, baud, drive=drive, probe=probe)
        with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True,
                      disable=as_json or dry_run) as bar:
            task = bar.add_task("flash", total=None)
            result = r.flash(img, lambda done, total: bar.update(task, completed=done, total=total))
    except TinygenError as e:
        _fail(e)
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
            _fail(TinygenError("--monitor needs --port, the board's serial port."))
        _run_monitor(port, board)


def _serial_inputs(path: Path, model: Optional[Path]) -> list[bytes]:
    """Samples for serial-input firmware, as int8 bytes."""
    import numpy as np

    from . import analyze
    from .data import load_data
    from .errors import DataError
    from .evaluate import quantize_samples

    x = np.asarray(load_data(path).x)
    if x.dtype != np.int8:
        if model is None:
            raise DataError(f"{path} holds {x.dtype} samples; pass --model (the int8 .tflite) to quantize them, or send int8.")
        x = quantize_samples(analyze.parse(model.read_bytes(), model.name), x.astype(np.float32))
    return [s.tobytes() for s in x]


def _run_mlperf(port, rate, board, mlperf, input_file, as_json):
    import numpy as np

    from .mlperf import MlperfDut, MlperfError
    from .monitor import MonitorError, energy_uj, open_port

    verb, n, warmup = mlperf
    if verb != "infer" or n < 1 or warmup < 0:
        _fail(TinygenError("--mlperf takes `infer N W`, with N >= 1 inferences after W >= 0 warm-ups."))
    try:
        ser = open_port(port, rate)
        dut = MlperfDut(ser, timeout=float(os.environ.get("TINYGEN_MLPERF_TIMEOUT", "30")))
        name = dut.sync()
        profile = dut.profile()
        if input_file is not None:
            data = np.load(input_file) if input_file.suffix == ".npy" else input_file.read_bytes()
            data = np.asarray(data).astype(np.int8)[0].tobytes() if not isinstance(data, bytes) else data
            dut.load(data)
        r = dut.infer(n, warmup)
        ser.close()
    except (MonitorError, MlperfError, OSError, ValueError) as e:
        _fail(TinygenError(f"MLPerf DUT on {port}: {e}"))
    e = energy_uj(r.latency_us, board)
    summary = {"port": port, "board": board.id if board else None, "dut": name, "profile": profile,
               "inferences": n, "warmup": warmup, "latency_us": {"mean": r.latency_us},
               "energy_uj": {"mean": e, "kind": "estimated" if e is not None else None}, "results": r.results}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(f"DUT {name}, model {profile.get('model', '?')}: {n} inferences after {warmup} warm-ups, "
                  f"{r.latency_us:,.1f} µs each" + (f", ~{e:.2f} µJ (estimated)" if e is not None else ""), highlight=False)
        out.print(f"results: {r.results}", highlight=False)


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
        score = ev.int("score_milli")
        last.add_row(ev.fields.get("seq", ""), ev.fields.get("us", ""), ev.fields.get("cycles", ""),
                     ev.fields.get("top", ""), "" if score is None else f"{score / 1000:.3f}", ev.fields.get("match", ""))
    note = Text("cycles are QEMU's SysTick counts, not a real chip's" if stats.boot and
                stats.boot.fields.get("board") == "mps2-an386" else "", style="dim")
    return Group(t, last, note)


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
    rows += [("test-vector mismatches", str(s["mismatches"])), ("bad lines", str(s["bad_lines"])),
             ("other lines", str(s["other_lines"])), ("reconnects", str(s["reconnects"]))]
    for k, v in rows:
        t.add_row(k, v)
    return t


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
