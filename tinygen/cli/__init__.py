"""The tinygen command line: one module per command group, each only parsing options, calling
one library function and rendering its result (tables, or one JSON object with --json)."""

from __future__ import annotations

import sys

from . import boards, build, run, monitor, shrink, flash  # noqa: F401  (each registers its commands, in this order)
from .common import app, err


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted.")
        sys.exit(130)
