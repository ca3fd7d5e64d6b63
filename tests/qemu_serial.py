"""Boot an image in QEMU's mps2-an386 with its UART on a local TCP port, for tests that talk
to real firmware the way a host talks to a board."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path


@contextlib.contextmanager
def qemu_uart(elf: Path, machine: str = "mps2-an386"):
    """Yields socket://127.0.0.1:<port>; QEMU waits for the first connection before it starts the guest."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qemu = subprocess.Popen(["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none",
                             "-semihosting", "-icount", "shift=0", "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
                             "-kernel", str(elf)], stderr=subprocess.DEVNULL)
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        # firmware that has finished exits through semihosting; firmware still waiting for
        # input (serial, MLPerf) never does, so it is stopped
        try:
            qemu.wait(timeout=5)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()


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
