"""`tinygen boards`: the bundled board profiles."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from ..errors import TinygenError
from .common import JsonOpt, app, fail, out

boards_app = typer.Typer(help="The bundled board profiles (boards/*.toml).", no_args_is_help=False,
                         invoke_without_command=True)
app.add_typer(boards_app, name="boards")


@boards_app.callback(invoke_without_command=True)
def boards_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List the bundled boards, one line each."""
    if ctx.invoked_subcommand is not None:
        return
    from ..boards import all_boards

    try:
        bs = all_boards()
    except TinygenError as e:
        fail(e)
    if as_json:
        print(json.dumps([{"id": b.id, "name": b.name, "mcu": b.mcu, "cpu": b.cpu, "clock_hz": b.clock_hz,
                           "flash_bytes": b.app_flash_bytes, "sram_bytes": b.sram_size} for b in bs], indent=2))
        return
    from rich import box

    # The id is what a user types: never cut or wrapped; the MCU's name goes last and gives way.
    rows = [(b.id, b.cpu.removeprefix("cortex-").upper().replace("PLUS", "+"), f"{b.clock_hz / 1e6:g} MHz",
             f"{b.app_flash_bytes // 1024:,} KiB", f"{b.sram_size // 1024:,} KiB", b.mcu) for b in bs]
    heads = ("id", "core", "clock", "app flash", "SRAM", "MCU")
    t = Table(title="Bundled boards", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, h in enumerate(heads):
        if h == "MCU":
            t.add_column(h, no_wrap=True, overflow="ellipsis", min_width=8)
        else:
            t.add_column(h, no_wrap=True, justify="left" if i < 2 else "right", style="bold" if i == 0 else None,
                         min_width=max(len(h), *(len(r[i]) for r in rows)))
    for r in rows:
        t.add_row(*r)
    out.print(t)


@boards_app.command("show")
def boards_show(board: str = typer.Argument(..., help="Board id or board file."), as_json: bool = JsonOpt):
    """Every figure of one board, with the source each figure comes from."""
    from ..boards import load_board

    try:
        b = load_board(board)
    except TinygenError as e:
        fail(e)
    if as_json:
        print(json.dumps(b.raw, indent=2))
        return
    out.print(f"[bold]{b.name}[/] ({b.id}) — {b.source}")
    out.print(b.source.read_text(), highlight=False, markup=False)
