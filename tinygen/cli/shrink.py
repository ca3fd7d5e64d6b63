"""`tinygen shrink`: one recipe or the search; render the candidates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import TinygenError
from .common import BoardOpt, ForceOpt, JsonOpt, app, err, fail, flag, kb, out, steps


@app.command()
def shrink(
    board: str = BoardOpt,
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A Keras .h5/.keras model. Default: the bundled digits example."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Training samples (.npz with x[, y]); labels optional: without them the student learns the original's outputs."),
    val: Optional[Path] = typer.Option(None, "--val", help="Held-out samples to measure accuracy on (labels, or agreement with the original's top-1)."),
    width: Optional[float] = typer.Option(None, "--width", "-w", min=0.01, max=1.0, help="Width multiplier: every Conv2D/Dense (but the output) keeps this share of its channels."),
    prune: Optional[float] = typer.Option(None, "--prune", min=0.0, max=0.95, help="Remove this share of all filters, least important first, ranked across layers (structured pruning; shrinks flash, SRAM and MACs)."),
    unstructured: bool = flag("--unstructured", help="With --prune: magnitude-prune individual weights instead (tensorflow-model-optimization); the report shows it saves no flash in a dense int8 model."),
    auto: bool = flag("--auto", help="Search widths 1, 0.75, 0.5, 0.35, 0.25 with PTQ (and QAT where PTQ loses accuracy) and keep the most accurate that fits."),
    max_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="With --auto: accuracy points the int8 model may lose against the original's."),
    floor: Optional[float] = typer.Option(None, "--accuracy-floor", help="With --auto: the lowest int8 accuracy accepted (0-1)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Distillation epochs."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Where model.keras, model.tflite (int8) and shrink.json go. Default: build/<board>-shrunk/."),
    force: bool = ForceOpt,
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

    try:
        modes = sum(x is not None and x is not False for x in (width, prune, auto or None))
        if modes > 1:
            raise TinygenError("Give one of --width W, --prune S or --auto, e.g. tinygen shrink --board raspberry-pi-pico --auto.")
        auto = auto or modes == 0      # no recipe named: search for one
        b = load_board(board)
        inputs = shrink_inputs(model, data, val)
        out_dir = out_dir or Path("build") / f"{b.id}-shrunk"
        with steps(as_json) as progress:
            if auto:
                result = run_search(b, inputs.teacher, inputs.source.path, inputs.train, inputs.val, max_drop, floor,
                                    epochs, out_dir, progress, force=force)
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


def render_search(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        t = Table(title=f"Candidates for {result.board.id} (* Pareto front, > chosen)", title_justify="left")
        for c in ("", "width", "pruned", "quant", "params", "MMACs", "float", "int8", "flash", "SRAM", "fits", "train s"):
            t.add_column(c, justify="right")
        for i, c in enumerate(result.candidates):
            mark = (">" if c is result.chosen else " ") + ("*" if i in result.pareto else " ")
            t.add_row(mark, f"{c.width:g}", f"{c.sparsity:.0%}", c.quantization, f"{c.params:,}", f"{c.macs / 1e6:.2f}", f"{c.accuracy_float:.1%}",
                      f"{c.accuracy_int8:.1%}", kb(c.flash_bytes), kb(c.sram_bytes), "yes" if c.fits else "no",
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
