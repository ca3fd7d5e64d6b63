"""Flash runners, one per loader, registered by name (after Zephyr's west runners)."""

from __future__ import annotations

from pathlib import Path

from ...boards import Board
from . import ambiq_uart, bossac, pyocd_runner, uf2  # noqa: F401  (registration)
from .core import IO, FlashError, FlashResult, Image, Runner, get_runner, load_image, runner_names  # noqa: F401


def prepare(board: Board, image_path: Path, io: IO, port: str | None = None, runner: str | None = None,
            baud: int | None = None, **options) -> tuple[Runner, Image]:
    """The board's runner (or `runner`), set up on `io`, and the image it will flash, read and
    checked before anything touches the board."""
    cls = get_runner(runner or board.runner)
    if cls.needs_port and not port:
        raise FlashError(f"The {cls.name} loader talks over a serial port: pass --port (e.g. /dev/ttyUSB0).")
    image = load_image(image_path, board)
    return cls(board, io, port, baud, **options), image
