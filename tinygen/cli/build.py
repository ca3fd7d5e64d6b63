"""`tinygen fit` and `tinygen build`: parse, call pipeline.build, render the report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import TinygenError
from .common import BoardOpt, ForceOpt, JsonOpt, MatchOpt, RuntimeOpt, app, err, fail, flag, kb, out, steps, warn

TflmPlanOpt = typer.Option("auto", "--tflm-plan", help="TFLM's memory plan for the activations: offline (tinygen's, "
                           "written into the model's metadata; TFLM places every activation where it says), greedy "
                           "(TFLM's own planner), or auto: whichever needs the smaller arena on the board.")
DenseOpt = typer.Option("auto", "--dense", help="How a float model's dense (FULLY_CONNECTED) weights are quantized: "
                        "per-channel (the converter's default), per-tensor (a smaller TFLM arena), or auto: "
                        "per-tensor where its int8 accuracy (or agreement) is within 0.1 point of per-channel.")


@app.command()
def fit(
    board: str = BoardOpt,
    model: Path = typer.Option(..., "--model", "-m", help="A full-int8 .tflite, or a Keras/SavedModel model to quantize first."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Calibration samples (.npz with x[, y], or .npy), for a float model."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write per-layer memory and the memory timeline as a PNG."),
    runtime: str = RuntimeOpt,
    tflm_plan: str = TflmPlanOpt,
    dense: str = DenseOpt,
    as_json: bool = JsonOpt,
):
    """Check whether a model fits a board: flash and SRAM, with headroom or overage.

    Exit status 0 when it fits, 2 when it does not, 1 on bad input.

    Example: tinygen fit --board nucleo-l4r5zi --model model.tflite
    """
    from ..pipeline.build import BuildOptions

    _run_build(board, model, data, None, None, as_json, BuildOptions(project=False, runtime=runtime, tflm_plan=tflm_plan, dense=dense), plot=plot,
               fit_only=True)


@app.command()
def build(
    board: str = BoardOpt,
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Keras .h5/.keras, a SavedModel folder, or .tflite. Default: the bundled digits example."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Calibration samples: .npz with 'x' (and labels 'y'), or .npy. Without it, generated samples are used and accuracy is unknown."),
    val: Optional[Path] = typer.Option(None, "--val", help="Held-out samples with labels, for the accuracy report. Default: --data."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder. Default: build/<board>/."),
    force: bool = ForceOpt,
    input_source: str = typer.Option("test-vectors", "--input", help="Where the firmware's inputs come from: test-vectors (compiled in, checked against the host interpreter) or serial (sent by the host)."),
    harness: str = typer.Option("tinygen", "--harness", help="tinygen: print a TG1 line per inference (for `tinygen monitor`); mlperf: answer the MLPerf Tiny / EnergyRunner DUT protocol instead."),
    mlperf_model: Optional[str] = typer.Option(None, "--mlperf-model", help="With --harness mlperf: the benchmark id the DUT reports (kws01, vww01, ic01, ad01, sww01). Default: recognised from the model."),
    mlperf_mode: str = typer.Option("performance", "--mlperf-mode", help="With --harness mlperf: performance (m-lap-us timestamps) or energy (the board's timestamp pin pulses, UART at 9600 baud)."),
    raw_output: bool = flag("--raw-output", help="Have the firmware print every output byte on each inference line, not only the top class and score."),
    vectors: int = typer.Option(10, "--vectors", min=1, help="How many test vectors to compile in (from --val, else --data)."),
    no_project: bool = flag("--no-project", help="Write the model and fit report only, no firmware project."),
    compile_: bool = flag("--compile", help="Build the firmware with arm-none-eabi-gcc and report its real size (TFLM firmware needs TFLM_ROOT; --runtime aot needs nothing more)."),
    run_: bool = flag("--run", help="Boot the firmware in QEMU (mps2-an386, bbc-microbit) and show what it prints; implies --compile."),
    tflm_root: Optional[Path] = typer.Option(None, "--tflm-root", envvar="TFLM_ROOT", help="A tflite-micro checkout (default: $TFLM_ROOT)."),
    ambiq_root: Optional[Path] = typer.Option(None, "--ambiq-root", envvar="AMBIQ_ROOT", help="AmbiqSuite SDK with boards_sfe, for the SparkFun Edge (default: $AMBIQ_ROOT)."),
    shrink_: Optional[str] = typer.Option(None, "--shrink", help="auto: first search for the most accurate thinner model that fits (see `tinygen shrink --auto`), then build it."),
    max_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="With --shrink auto or --compress auto: accuracy points the int8 model may lose (--compress auto: 1 point unless given)."),
    compress: str = typer.Option("off", "--compress", help="Cluster the int8 weights post-training (k-means, tables per channel where the weights are quantized per channel): off, a number of index bits 2-7 (2^bits values), or auto: the smallest flash whose accuracy on the validation data (agreement with the int8 model without labels) stays within --max-accuracy-drop. --runtime tflm builds TFLM compressed tensors (model.compressed.tflite, with TFLM's DECODE op)."),
    flash_: bool = flag("--flash", help="After --compile, put the firmware on the board (see `tinygen flash`)."),
    port: Optional[str] = typer.Option(None, "--port", "-p", help="With --flash/--monitor: the board's serial port."),
    monitor_after: bool = flag("--monitor", help="After --flash, go straight on into `tinygen monitor` on --port."),
    power: Optional[str] = typer.Option(None, "--power", help="With --monitor: measure energy per inference with a power monitor (see `tinygen monitor --power`): ppk2:/dev/ttyACM1, joulescope or lpm01a:/dev/ttyACM2."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write per-layer memory and the memory timeline as a PNG."),
    runtime: str = RuntimeOpt,
    tflm_plan: str = TflmPlanOpt,
    dense: str = DenseOpt,
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
    from ..pipeline.build import BuildOptions

    calibration = validation = None
    try:   # before minutes of searching or quantizing
        from ..pipeline.compress import check_compress_options

        check_compress_options(compress, max_drop if shrink_ is None else None)
    except TinygenError as e:
        fail(e)
    if shrink_ is not None:
        if shrink_ != "auto":
            fail(TinygenError("--shrink takes `auto`; for one chosen recipe use `tinygen shrink --width W`."))
        model, calibration, validation, bits = _shrink_first(board, model, data, val, max_drop, as_json, runtime)
        data = val = None
        if bits is not None and compress == "off":   # the search chose clustered weights: build them so
            compress = str(bits)
    opts = BuildOptions(input_source=input_source, vector_count=vectors, project=not no_project, harness=harness,
                        raw_output=raw_output, runtime=runtime, match=match, force=force, tflm_plan=tflm_plan, dense=dense,
                        mlperf_model=mlperf_model, mlperf_mode=mlperf_mode, compress=compress,
                        max_accuracy_drop=max_drop if compress == "auto" else None)
    out_dir = _run_build(board, model, data, val, out_dir, as_json, opts, plot=plot,
                         compile_=compile_ or run_ or flash_, run=run_, tflm_root=tflm_root,
                         sdk_roots={"AMBIQ_ROOT": ambiq_root}, calibration=calibration, validation=validation)
    if flash_:
        from .flash import flash_image

        flash_image(out_dir, board, port, monitor_after=monitor_after, power=power)


def _shrink_first(board_name: str, model: Optional[Path], data: Optional[Path], val: Optional[Path],
                  max_drop: Optional[float], as_json: bool, runtime: str = "tflm"):
    """`build --shrink auto`: the search, rendered; returns the chosen model, the data to build it
    with, and the index bits its weights were clustered to (None: not clustered)."""
    from ..boards import load_board
    from ..pipeline.build import shrink_first
    from .shrink import render_search

    try:
        b = load_board(board_name)
        with steps(as_json) as progress:
            result, inputs = shrink_first(b, model, data, val, max_drop, progress, runtime=runtime)
    except TinygenError as e:
        fail(e)
    if not as_json:  # with --json, stdout is the build's one object; the search is in search.json
        render_search(result, as_json=False)
    bits = result.chosen.cluster_bits
    # a clustered or pruned choice is built from its int8 model (--compress keeps a clustered one as it is)
    post_training = bits or result.chosen.weight_sparsity
    return result.out_dir / ("model.tflite" if post_training else "model.keras"), inputs.train, inputs.val, bits


def _run_build(board_name, model, data, val, out_dir, as_json, opts, plot=None, compile_=False, run=False,
               tflm_root=None, sdk_roots=None, calibration=None, validation=None, fit_only=False):
    """Build (or, with fit_only, only check), render, and exit 2 when the model does not fit.
    Returns the output folder."""
    from ..boards import load_board
    from ..pipeline.build import build, compile_and_run
    from ..ports import find_port
    from ..project.make import check_tools

    try:
        if plot is not None:   # a user's file there is refused before the build, not after
            from ..files import check_out_file

            check_out_file(plot, "--plot")
        board = load_board(board_name)
        port = find_port(board)
        # the port's SDKs from the environment (NRFX_ROOT, ...), options such as --ambiq-root first
        sdk_roots = {**{v: Path(os.environ[v]) for v in (port.sdk_variables if port else ()) if os.environ.get(v)},
                     **{v: p for v, p in (sdk_roots or {}).items() if p is not None}}
        if compile_ and port is not None and opts.project:   # what make needs, before minutes of work
            check_tools(port, tflm_root, needs_tflm=opts.runtime == "tflm", sdk_roots=sdk_roots)
        if not fit_only and out_dir is None:
            out_dir = Path("build") / board.id
        with steps(as_json) as progress:
            result = build(board, model, data, None if fit_only else out_dir, val, opts, progress,
                           calibration=calibration, validation=validation)
            if compile_ and result.report.fits:
                compile_and_run(result, tflm_root, sdk_roots or {}, run, progress)
    except TinygenError as e:
        fail(e)
    except KeyboardInterrupt:
        err.print("interrupted; no output file was left half-written.")
        raise typer.Exit(130)
    report = result.report
    if plot is not None:
        from ..files import write_drawn_file
        from ..plots import layer_memory_png

        try:
            write_drawn_file(plot, "--plot", lambda p: layer_memory_png(report, p))
        except TinygenError as e:
            fail(e)
        err.print(f"Wrote {plot}", highlight=False)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for w in result.warnings:
            warn(w)
        _render(result)
    if not report.fits:
        err.print(f"[bold red]{escape(Path(report.model_path).name)} does not fit {report.board.id}:[/] "
                  f"{escape(report.advice())}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    return out_dir


def _render(result) -> None:
    r = result.report
    g = r.graph
    kernels = "tinygen AOT runtime" if r.runtime == "aot" else f"TFLM, {r.kernels} kernels"
    out.print(f"[bold]{escape(Path(r.model_path).name)}[/] on [bold]{escape(r.board.name)}[/] ({r.board.cpu}, {kernels})")
    kinds = f"{len(g.ops)} kind" + ("s" if len(g.ops) != 1 else "")
    out.print(f"sha256 {g.sha256[:16]}…  {len(g.operators)} operators of {kinds} ({', '.join(g.ops)}); "
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
    rows = [("flash", r.flash), ("SRAM", r.sram)]
    if r.test_vector_bytes:   # the model's own fit first; the vectors are a check that rides along
        from ..fit import Budget

        rows = [("flash, model", Budget(r.flash.total_bytes - r.test_vector_bytes, r.flash.budget_bytes)),
                (f"flash + {r.test_vectors} test vectors", r.flash), ("SRAM", r.sram)]
    for name, b in rows:
        verdict = "[green]fits[/]" if b.fits else f"[red]over by {-b.headroom_bytes:,} B[/]"
        t.add_row(name, kb(b.total_bytes), kb(b.budget_bytes), f"{b.headroom_bytes:+,} B", verdict)
    out.print(t)
    vectors = f" + {r.test_vectors} test vectors {r.test_vector_bytes:,}" if r.test_vector_bytes else ""
    if r.runtime == "aot":
        c = r.compiled
        out.print(f"  flash = weights {c.weight_bytes:,} + parameter blocks {c.param_bytes:,} + AOT kernels "
                  f"{r.runtime_bytes:,} ({', '.join(c.program.kernels)}) + application {r.app_bytes:,}{vectors}", highlight=False)
        out.print(f"  SRAM  = arena {r.arena_bytes:,} (planned ahead, {c.arena.heuristic}; "
                  f"ops run in place: {len(c.arena.in_place)}) + "
                  + (f"in-place kernel stack {c.arena.stack_bytes:,} + " if c.arena.stack_bytes else "")
                  + f"stack {r.stack_bytes:,} + static {r.static_ram_bytes:,}",
                  highlight=False)
    else:
        out.print(f"  flash = model {r.model_bytes:,} + TFLM runtime {r.runtime_bytes:,} ({', '.join(g.ops)}) "
                  f"+ application {r.app_bytes:,}{vectors}", highlight=False)
        peak = r.plan.transient_bytes
        out.print(f"  SRAM  = arena {r.arena_bytes:,} (activations {r.plan.head_bytes:,} + persistent {r.plan.tail_bytes:,}) "
                  + (f"+ AllocateTensors' peak {peak:,} " if peak else "")
                  + f"+ margin {r.arena_reserved_bytes - r.arena_bytes - peak:,} + stack {r.stack_bytes:,} + static {r.static_ram_bytes:,}",
                  highlight=False)
        if peak:
            out.print(f"  TFLM needs an arena of {r.plan.required_bytes:,} B while it allocates ({r.plan.required_phase}), "
                      f"{peak:,} B more than it keeps in use: the firmware reserves that.", highlight=False)
        if r.memory_plan is not None:
            mp = r.memory_plan
            used = {"offline": "tinygen's offline plan (in the model's metadata)", "greedy": "TFLM's greedy planner",
                    "model": "the offline plan the model came with"}[mp.used]
            offline = f"{mp.offline_arena_bytes:,}" if mp.offline_arena_bytes is not None else "n/a"
            out.print(f"  memory plan: {used}; arena with TFLM's greedy plan {mp.greedy_arena_bytes:,}, with tinygen's "
                      f"{offline} (activations at most {mp.bound_head_bytes:,} alive at once)", highlight=False)
    if not r.plan.exact:
        warn(f"The arena is not exact: tinygen does not model the allocations of {', '.join(r.plan.unmodelled_ops)}.")
    for n in r.runtime_note:
        warn(n)
    a = result.accuracy
    if a.samples:
        if a.kind == "labels":
            f = f"{a.float_top1:.2%}" if a.float_top1 is not None else "n/a"
            out.print(f"Accuracy on {a.samples:,} labelled samples: float {f}, int8 {a.int8_top1:.2%}")
        else:
            out.print(f"Int8 top-1 agreement with the float model on {a.samples:,} samples: {a.int8_top1:.2%} (no labels)")
    d = getattr(result, "dense", None)
    if d is not None:
        def score(v):
            return f"{v:.2%}" if v is not None else "not measured"
        out.print(f"Dense layers quantized {d.chosen} (--dense {d.asked}): int8 {score(d.per_channel)} per-channel, "
                  f"{score(d.per_tensor)} per-tensor", highlight=False)
    if getattr(result, "compress", None) is not None:
        _render_compress(result)
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


def _render_compress(result) -> None:
    """--compress: what each index width gave, what was kept, and the Deep Compression table."""
    from .shrink import print_compression_table

    c = result.compress
    pct = lambda v: "—" if v is None else f"{v:.2%}"  # noqa: E731
    t = Table(title=f"Weight clustering (--compress {c.asked}; scored by {c.measured_by})", title_justify="left")
    for col in ("bits", "flash", "score", "kept", ""):
        t.add_column(col, justify="left" if col == "" else "right")
    t.add_row("int8", kb(c.int8_flash_bytes), pct(c.int8_score), "", "unclustered")
    for x in c.tried:
        t.add_row(str(x.bits), "—" if x.flash_bytes is None else kb(x.flash_bytes), pct(x.score),
                  "yes" if x.bits == c.bits else "", x.why)
    out.print(t)
    if c.bits is None:
        out.print(f"Weights left as int8: {c.reason}.", highlight=False)
    else:
        out.print(f"Weights clustered to {c.bits} index bits ({c.reason}): flash {c.int8_flash_bytes:,} -> "
                  f"{c.flash_bytes:,} B, score {pct(c.int8_score)} -> {pct(c.score)}."
                  + ("" if c.bit_exact is None else f" TFLM's compressed model is "
                     f"{'bit-identical to' if c.bit_exact.identical else 'different from'} the clustered one on "
                     f"{c.bit_exact.samples} inputs."), highlight=False)
    if result.report.compression is not None:
        print_compression_table(result.report.compression, "Deep Compression")
