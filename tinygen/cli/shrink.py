"""`tinygen shrink`: one recipe or the search; render the candidates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import TinygenError
from .common import BoardOpt, ForceOpt, JsonOpt, RuntimeOpt, app, err, fail, flag, kb, out, steps


@app.command()
def shrink(
    board: str = BoardOpt,
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A Keras .h5/.keras model. Default: the bundled digits example."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Training samples (.npz with x[, y]); labels optional: without them the student learns the original's outputs."),
    val: Optional[Path] = typer.Option(None, "--val", help="Held-out samples to measure accuracy on (labels, or agreement with the original's top-1)."),
    width: Optional[float] = typer.Option(None, "--width", "-w", min=0.01, max=1.0, help="Width multiplier: every Conv2D/Dense (but the output) keeps this share of its channels."),
    prune: Optional[float] = typer.Option(None, "--prune", min=0.0, max=0.95, help="Remove this share of all filters, least important first, ranked across layers (structured pruning; shrinks flash, SRAM and MACs)."),
    unstructured: bool = flag("--unstructured", help="With --prune: magnitude-prune individual weights instead (tensorflow-model-optimization); the report shows it saves no flash in a dense int8 model."),
    auto: bool = flag("--auto", help="Search widths 1, 0.75, 0.5, 0.35, 0.25 with PTQ (and QAT where PTQ loses accuracy), each int8 model that does not fit also clustered post-training to 7-2 index bits per channel and per tensor (with --runtime aot also pruned post-training, 50-90% of each weight zeroed, stored sparse), and keep the most accurate that fits."),
    max_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="With --auto: accuracy points the int8 model may lose against the original's."),
    floor: Optional[float] = typer.Option(None, "--accuracy-floor", help="With --auto: the lowest int8 accuracy accepted (0-1)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Distillation epochs."),
    cluster: Optional[int] = typer.Option(None, "--cluster", help="Weight clustering (Deep Compression): at most N (2-128) values per weight tensor, stored as TFLM compressed tensors and a coded image. With a Keras model: tensorflow-model-optimization's clustering, distilled (after --prune S --unstructured, sparsity-preserving); with an int8 .tflite and no data: k-means on its weights."),
    per_channel: bool = flag("--per-channel", help="With --cluster: centroids per output channel instead of per tensor (where the weight is quantized per channel)."),
    original: Optional[Path] = typer.Option(None, "--original", help="With --cluster and an int8 .tflite: the float Keras model it was made from, for the Deep Compression table's float32 size."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Where model.keras, model.tflite (int8) and shrink.json go. Default: build/<board>-shrunk/."),
    force: bool = ForceOpt,
    runtime: str = RuntimeOpt,
    as_json: bool = JsonOpt,
):
    """Make a model thinner for a board: width multiplier, distillation from the original, int8.

    Without --width, --prune or --auto it searches (--auto): the most accurate thinner model that fits.
    Rebuilds the network with the channels of its Conv2D, DepthwiseConv2D and Dense layers
    scaled by --width (residual Adds stay consistent), keeps the filters with the largest L1
    norm, fine-tunes by knowledge distillation from the original (labels optional), quantizes
    to int8, and reports accuracy (float and int8, held-out) and flash and SRAM next to the original.

    Exit status 0 when the result fits the board, 2 when it does not, 1 on bad input.

    Example: tinygen shrink --board raspberry-pi-pico --model model.h5 --data train.npz --val val.npz --width 0.5
    """
    from ..boards import load_board
    from ..shrink.recipe import shrink as run_shrink, shrink_inputs
    from ..shrink.search import run_search

    if cluster is not None:
        _cluster(board, model, data, val, cluster, per_channel, prune, unstructured, width, auto, original, epochs,
                 out_dir, force, as_json)
        return
    try:
        modes = sum(x is not None and x is not False for x in (width, prune, auto or None))
        if modes > 1:
            raise TinygenError("Give one of --width W, --prune S or --auto, e.g. tinygen shrink --board raspberry-pi-pico --auto.")
        auto = auto or modes == 0      # no recipe named: search for one
        if runtime not in ("tflm", "aot"):
            raise TinygenError(f"--runtime must be tflm or aot, not '{runtime}'.")
        if runtime != "tflm" and not auto:
            raise TinygenError("--runtime picks whose flash and SRAM the search measures; it needs --auto.")
        b = load_board(board)
        inputs = shrink_inputs(model, data, val)
        out_dir = out_dir or Path("build") / f"{b.id}-shrunk"
        with steps(as_json) as progress:
            if auto:
                result = run_search(b, inputs.teacher, inputs.source.path, inputs.train, inputs.val, max_drop, floor,
                                    epochs, out_dir, progress, force=force, runtime=runtime)
            else:
                result = run_shrink(b, inputs.teacher, inputs.train, inputs.val, width, epochs, out_dir, progress,
                                    prune=prune, unstructured=unstructured, force=force)
    except TinygenError as e:
        fail(e)
    if auto:
        render_search(result, as_json)
        return
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        if not result.chosen.fits:
            raise typer.Exit(2)
        return
    t = Table(title=f"Shrinking for {b.id}", title_justify="left")
    for c in ("width", "sparsity", "params", "MMACs", "float", "int8", "flash", "SRAM", "fits", "train s"):
        t.add_column(c, justify="right")
    pct = lambda v: "—" if v is None else f"{v:.1%}"  # noqa: E731
    for c in (result.original, result.chosen):
        t.add_row(f"{c.width:g}", f"{c.sparsity:.0%}", f"{c.params:,}", f"{c.macs / 1e6:.2f}", pct(c.accuracy_float), pct(c.accuracy_int8),
                  kb(c.flash_bytes), kb(c.sram_bytes), "yes" if c.fits else "[red]no[/]", f"{c.train_seconds:.1f}")
    out.print(t)
    o, c = result.original, result.chosen
    out.print(f"Accuracy measured by {c.accuracy_kind}. Int8 accuracy {pct(o.accuracy_int8)} -> {pct(c.accuracy_int8)}; "
              f"flash {o.flash_bytes - c.flash_bytes:+,} B saved, SRAM {o.sram_bytes - c.sram_bytes:+,} B saved.", highlight=False)
    out.print(f"Wrote {', '.join(result.files)} to {result.out_dir}/")
    if not c.fits:
        err.print(f"[bold red]At width {c.width:g} the model still does not fit {b.id}.[/] Try a smaller --width.", highlight=False)
        raise typer.Exit(2)


def _cluster(board, model, data, val, n, per_channel, prune, unstructured, width, auto, original, epochs, out_dir,
             force, as_json) -> None:
    """`shrink --cluster N`: train-time clustering of a Keras model, or k-means on an int8 .tflite."""
    from ..boards import load_board
    from ..shrink import cluster as cl
    from ..shrink.recipe import shrink_inputs

    try:
        if width is not None or auto:
            raise TinygenError("--cluster combines with --prune S --unstructured, not with --width or --auto.")
        if prune is not None and not unstructured:
            raise TinygenError("--cluster keeps what magnitude pruning zeroed: give --prune S with --unstructured.")
        cl.check_clusters(n)
        b = load_board(board)
        out_dir = out_dir or Path("build") / f"{b.id}-clustered"
        if cl.is_int8_tflite(model):
            if data is not None or prune is not None:
                raise TinygenError("An int8 .tflite is clustered after training (k-means on its weights): "
                                   "--data and --prune need the Keras model.")
            model_bytes, val_ds, keras_original = cl.post_training_inputs(model, val, original)
            with steps(as_json) as progress:
                result = cl.cluster_int8_model(b, model_bytes, n, per_channel, val_ds, keras_original, out_dir,
                                               force, progress)
        else:
            if original is not None:
                raise TinygenError("--original is for an int8 .tflite; a Keras --model is the float original itself.")
            inputs = shrink_inputs(model, data, val)
            with steps(as_json) as progress:
                result = cl.cluster_keras(b, inputs.teacher, inputs.train, inputs.val, n, per_channel,
                                          prune, epochs, out_dir, force, progress)
    except TinygenError as e:
        fail(e)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        render_compression(result)
    if not result.fit.fits:
        raise typer.Exit(2)


def render_compression(result) -> None:
    a, x = result.agreement, result.bit_exact
    print_compression_table(result.compression, f"Deep Compression for {result.board.id} ({result.clusters} centroids "
                            f"per {'channel' if result.per_channel else 'tensor'}, {result.method})")
    acc = (f" Top-1 accuracy {a.accuracy_before:.2%} -> {a.accuracy_after:.2%}." if a.accuracy_after is not None else "")
    out.print(f"Against the unclustered int8 model on {a.inputs}: top-1 agreement {a.top1_agreement:.1%}, outputs "
              f"{a.mean_abs_diff_lsb:.2f} int8 steps apart on average (max {a.max_abs_diff_lsb})." + acc, highlight=False)
    out.print(f"TFLM interpreter on the compressed model: {'bit-identical to' if x.identical else '[red]differs from[/] (max ' + str(x.max_abs_diff) + ' steps)'} "
              f"the clustered int8 model on {x.samples} inputs.", highlight=False)
    f = result.fit
    out.print(f"Flash {kb(f.flash.total_bytes)} of {kb(f.flash.budget_bytes)}, SRAM {kb(f.sram.total_bytes)} of "
              f"{kb(f.sram.budget_bytes)} on {result.board.id}. Wrote {', '.join(result.files)} to {result.out_dir}/",
              highlight=False)
    for note in f.runtime_note:
        err.print(note, highlight=False)


def print_compression_table(c: dict, title: str) -> None:
    """The Deep Compression table (FitReport.compression) and the coded image's sizes."""
    t = Table(title=title, title_justify="left")
    for col in ("float32", "int8", "pruned", "clustered (TFLM)", "coded", "ratio"):
        t.add_column(col, justify="right")
    size = lambda v: "—" if v is None else f"{v:,} B"  # noqa: E731
    t.add_row(size(c["float32_bytes"]), size(c["int8_bytes"]), size(c["pruned_bytes"]), size(c["clustered_bytes"]),
              size(c["coded_bytes"]), "—" if c["ratio"] is None else f"{c['ratio']:.1f}x")
    out.print(t)
    out.print("Coded image: " + ", ".join(f"{m} {v:,} B" for m, v in c["coded_sizes"].items())
              + f"; kept {c['coding']}.", highlight=False)


def render_search(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        t = Table(title=f"Candidates for {result.board.id} (* Pareto front, > chosen)", title_justify="left")
        for c in ("", "width", "pruned", "quant", "weights", "params", "MMACs", "float", "int8", "flash", "SRAM", "fits", "train s"):
            t.add_column(c, justify="right")
        for i, c in enumerate(result.candidates):
            mark = (">" if c is result.chosen else " ") + ("*" if i in result.pareto else " ")
            weights = (f"{c.cluster_bits}-bit/{c.cluster_granularity}" if c.cluster_bits else
                       f"sparse {c.weight_sparsity:.0%}" if c.weight_sparsity else "int8")
            t.add_row(mark, f"{c.width:g}", f"{c.sparsity:.0%}", c.quantization, weights, f"{c.params:,}", f"{c.macs / 1e6:.2f}", f"{c.accuracy_float:.1%}",
                      f"{c.accuracy_int8:.1%}", kb(c.flash_bytes), kb(c.sram_bytes), "yes" if c.fits else "no",
                      f"{c.train_seconds:.1f}")
        out.print(t)
        if result.skipped:
            named = [f"{r:g}" if not isinstance(r, (tuple, list)) else f"{r[0]:g} with {r[1]:.0%} of filters pruned"
                     for r in result.skipped]
            out.print(f"Not tried, as they could not be more accurate than a candidate that fits: widths "
                      f"{', '.join(named)}.", highlight=False)
        o, c = result.candidates[0], result.chosen
        clustered = (f", weights clustered to {c.cluster_bits} bits per {c.cluster_granularity}" if c.cluster_bits else
                     f", {c.weight_sparsity:.0%} of its weights zeroed (stored sparse)" if c.weight_sparsity else "")
        out.print(f"Chosen: width {c.width:g}, {c.sparsity:.0%} of filters pruned, {c.quantization}{clustered}; int8 accuracy {o.accuracy_int8:.2%} -> {c.accuracy_int8:.2%} "
                  f"({(c.accuracy_int8 - o.accuracy_int8) * 100:+.2f} points, by {c.accuracy_kind}). "
                  f"Wrote {', '.join(result.files)} to {result.out_dir}/", highlight=False)
