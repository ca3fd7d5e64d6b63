"""Boot an image in QEMU's mps2-an386 with its UART on a local TCP port, for tests that talk
to real firmware the way a host talks to a board."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


@contextlib.contextmanager
def qemu_uart(elf: Path, machine: str = "mps2-an386"):
    """Yields socket://127.0.0.1:<port> for pyserial; tinygen.qemu boots the image and stops it."""
    from tinygen.qemu import qemu_uart as boot

    with boot(elf, machine) as (port, _):
        yield f"socket://127.0.0.1:{port}"


def retry_connect(fn, attempts: int = 100, wait: float = 0.05):
    """QEMU listens a moment after it starts: call fn until it stops raising a connection error."""
    from tinygen.errors import TinygenError

    for i in range(attempts):
        try:
            return fn()
        except TinygenError:
            if i == attempts - 1:
                raise
            time.sleep(wait)
