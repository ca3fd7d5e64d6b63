"""Boot firmware in qemu-system-arm with its UART on a local TCP port, and read the harness
lines from it the way the host reads a board's serial port.

`-icount shift=0` makes QEMU advance its clock one nanosecond per executed instruction, so
SysTick counts are deterministic and comparable between builds, though not a real chip's cycles.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FirmwareError
from .protocol import Event, parse_line


@dataclass
class RunResult:
    """What a firmware run printed, tallied from its TG1 lines."""
    arena_used_bytes: int | None = None
    vectors: int = 0
    mismatches: int = 0
    cycles: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    stack_used_bytes: int | None = None
    layers: list[tuple[int, int]] = field(default_factory=list)   # (op index, cycles), with PROFILE_LAYERS
    done: bool = False

    def take(self, ev: Event) -> None:
        """Tally one event; `done` ends the run, `err` is raised as a FirmwareError."""
        if ev.kind == "boot":
            self.arena_used_bytes = ev.int("arena_used_bytes")
        elif ev.kind == "layer":
            self.layers.append((ev.int("op", 0), ev.int("cycles", 0)))
        elif ev.kind == "inf":
            self.cycles.append(ev.int("cycles", 0))
        elif ev.kind == "done":
            self.vectors = ev.int("vectors", 0)
            self.mismatches = ev.int("mismatches", 0)
            self.stack_used_bytes = ev.int("stack_used_bytes")
            # AOT firmware measures its arena after the last inference; TFLM's is in `boot`
            self.arena_used_bytes = ev.int("arena_used_bytes", self.arena_used_bytes)
            self.done = True
        elif ev.kind == "err":
            raise FirmwareError(f"The firmware stopped with an error: {ev.fields.get('what', '?')}.")


@contextlib.contextmanager
def qemu_uart(elf: Path, machine: str = "mps2-an386"):
    """Yields (the TCP port of the UART, the QEMU process). QEMU waits for the first
    connection before it starts the guest, so no byte is lost. On leaving, firmware that
    has finished has exited through semihosting; one still running is stopped."""
    if shutil.which("qemu-system-arm") is None:
        raise FirmwareError("qemu-system-arm is not installed; on Debian/Ubuntu: apt-get install qemu-system-arm.")
    # The listening socket is made here and handed to QEMU by descriptor: a port picked here and
    # bound later by QEMU could be taken in between by another process (two runs side by side).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        fd = listener.fileno()
        qemu = subprocess.Popen(["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none",
                                 "-semihosting", "-icount", "shift=0",
                                 "-chardev", f"socket,id=uart0,fd={fd},server=on,wait=on",
                                 "-serial", "chardev:uart0", "-kernel", str(elf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=[fd])
    try:
        yield port, qemu
    finally:
        try:
            qemu.wait(timeout=5)
        except subprocess.TimeoutExpired:
            qemu.terminate()
            try:
                qemu.wait(timeout=5)
            except subprocess.TimeoutExpired:
                qemu.kill()
                qemu.wait()


def connect(port: int, qemu: subprocess.Popen, wait: float = 10.0) -> socket.socket:
    """Open the UART. A plain socket, not pyserial's socket:// handler: that one drops bytes it
    has read when the peer closes within the same read() call, and QEMU closes right after the
    firmware's last line. The listener exists before QEMU starts, so one try is enough."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    except OSError as e:
        if qemu.poll() is not None:
            raise FirmwareError(f"QEMU stopped before the firmware started: {_exit_reason(qemu)}.") from None
        raise FirmwareError(f"Could not connect to QEMU's UART on 127.0.0.1:{port}: {e.strerror or e}.") from None
    s.settimeout(0.5)
    return s


def _exit_reason(qemu: subprocess.Popen) -> str:
    """QEMU's exit status and the last thing it said, less its own 'waiting for connection' notice."""
    status = qemu.wait()
    said = [ln for ln in (qemu.stderr.read() or b"").decode(errors="replace").splitlines()
            if ln.strip() and "waiting for connection" not in ln]
    # a lockup prints "qemu: fatal: ..." and then a register dump: the first line says why
    why = next((ln for ln in said if ln.startswith("qemu")), said[-1] if said else "")
    return f"QEMU exited with status {status}" + (f" ({why.strip()[:200]})" if why else "")


def run(elf: Path, machine: str = "mps2-an386", timeout: float = 600.0,
        on_line=lambda ev: None) -> RunResult:
    """Boot `elf`, read its TG1 lines until `done` (or `err`), and tally them."""
    result = RunResult()
    deadline = time.monotonic() + timeout
    with qemu_uart(elf, machine) as (tcp_port, qemu):
        port = connect(tcp_port, qemu)
        buf = b""
        try:
            while True:
                try:
                    chunk = port.recv(4096)
                except socket.timeout:
                    chunk = None
                except ConnectionResetError:
                    chunk = b""
                if chunk == b"":
                    raise FirmwareError(f"The firmware's UART closed before it said it was done: {_exit_reason(qemu)}.")
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        line = raw.decode(errors="replace").strip()
                        result.lines.append(line)
                        ev = parse_line(line)
                        if ev is None:
                            continue
                        on_line(ev)
                        result.take(ev)
                        if result.done:
                            return result
                elif qemu.poll() is not None:
                    raise FirmwareError(f"The firmware stopped before it said it was done: {_exit_reason(qemu)}.")
                if time.monotonic() > deadline:
                    raise FirmwareError(f"The firmware did not finish within {timeout:.0f} s in QEMU.")
        finally:
            port.close()
