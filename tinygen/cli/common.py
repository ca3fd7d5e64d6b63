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


def flag(*names: str, help: str) -> typer.models.OptionInfo:
    """An on/off option; shown without a value placeholder in --help."""
    return typer.Option(False, *names, help=help, metavar="")


JsonOpt = flag("--json", help="Print one JSON object on stdout instead of tables.")
ForceOpt = flag("--force", help="Write into an --out that holds files tinygen did not write, beside them; yours are still "
               "never overwritten or removed.")
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

    from ..errors import FitError

    if isinstance(e, FitError):
        code = 2       # the contract of every command: 2 is "does not fit"
    if verbose():
        traceback.print_exception(e)
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"tinygen {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = flag("--verbose", "-v", help="Show tracebacks and TensorFlow's own output."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", metavar="",
                                 is_eager=True, callback=_print_version),
):
    _state["verbose"] = verbose


@contextlib.contextmanager
def steps(quiet: bool):
    """A progress display on stderr; yields progress(step, done=None, total=None). The running step
    has a spinner (and a bar and a count when it has a total); a finished step gets a tick and its time."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

    class _IfCounted:   # a bar, a share and a count only for a step that counts something
        def __init__(self, column):
            self.column = column

        def __getattr__(self, name):
            return getattr(self.column, name)

        def __call__(self, task):
            return self.column(task) if task.fields.get("counted") else ""

    spinner = SpinnerColumn(finished_text="[green]✓[/]")
    with Progress(spinner, TextColumn("{task.description}"), _IfCounted(BarColumn(bar_width=24)),
                  _IfCounted(TaskProgressColumn()), _IfCounted(TextColumn("{task.completed:.0f}/{task.total:.0f}")),
                  TimeElapsedColumn(), console=err, transient=True, disable=quiet) as bar:
        tasks: dict[str, int] = {}
        current: list[int] = []

        def progress(step, done=None, total=None):
            if step not in tasks:
                if current:   # the step before is over: a tick, its bar full, its clock stopped
                    t = bar.tasks[current[0]]
                    bar.update(current[0], total=t.total or 1, completed=t.total or 1)
                    bar.stop_task(current[0])
                tasks[step] = bar.add_task(step, total=total, counted=total is not None)
                current[:] = [tasks[step]]
            bar.update(tasks[step], completed=done or 0, total=total, counted=total is not None)

        yield progress


def kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def warn(message: str) -> None:
    """A warning the user should read: one label for every command."""
    from rich.markup import escape

    err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def verbose() -> bool:
    """--verbose: tracebacks and TensorFlow's own output."""
    return _state["verbose"]
