"""What every command shares: the Typer app, the consoles, the options defined once, the one
way an error becomes a sentence and an exit code, and the progress display."""

from __future__ import annotations

import contextlib
import traceback

import typer
from rich.console import Console

from .. import __version__


app = typer.Typer(
    help="Make a trained network fit a microcontroller: int8 quantization, an exact flash and "
    "SRAM fit check per board, and the model as C for TensorFlow Lite Micro.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

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


def fail(e: BaseException, code: int = 1) -> None:
    """The one way an error reaches the user: `error: <one sentence>` on stderr, and the exit code.
    The sentence is printed as text: a path or op name with [brackets] is not rich markup."""
    from rich.markup import escape

    if verbose():
        traceback.print_exception(e)
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
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
def steps(quiet: bool):
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


def kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def verbose() -> bool:
    """--verbose: tracebacks and TensorFlow's own output."""
    return _state["verbose"]
