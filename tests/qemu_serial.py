"""Boot an image in QEMU's mps2-an386 with its UART on a local TCP port, for tests that talk
to real firmware the way a host talks to a board. The port listens before QEMU starts, so
the first connection succeeds."""

from __future__ import annotations

import contextlib
from pathlib import Path


@contextlib.contextmanager
def qemu_uart(elf: Path, machine: str = "mps2-an386"):
    """Yields socket://127.0.0.1:<port> for pyserial; tinygen.qemu boots the image and stops it."""
    from tinygen.device.qemu import qemu_uart as boot

    with boot(elf, machine) as (port, _):
        yield f"socket://127.0.0.1:{port}"


def send_inputs(elf: Path, inputs: list[bytes], log: Path):
    """Boot `elf` (serial-input firmware), feed it `inputs` through `tinygen monitor`'s --send
    path, and return the monitor's stats and the raw output bytes of each inference."""
    import json

    from tinygen.device.monitor import Log, Monitor
    from tinygen.device.protocol import parse_line

    with qemu_uart(elf) as url:
        stats = Monitor(url, 115200, inputs=inputs, log=Log(log, None)).run(duration=60)
    events = [parse_line(r["raw"]) for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "inf"]
    return stats, [ev.hex_bytes("out") for ev in events]


@contextlib.contextmanager
def mlperf_dut(elf: Path, machine: str, debug_args: list[str], timeout: float):
    """Boot MLPerf-harness firmware in QEMU with `debug_args` (e.g. -d unimp or -trace, to watch a
    pin) and yield the host's MlperfDut speaking to it. The firmware never exits: QEMU is killed."""
    import socket
    import subprocess

    from tinygen.device.mlperf import MlperfDut

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    qemu = subprocess.Popen(["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none",
                             "-semihosting", "-icount", "shift=0", *debug_args, "-chardev",
                             f"socket,id=uart0,fd={listener.fileno()},server=on,wait=on,nodelay=on",
                             "-serial", "chardev:uart0", "-kernel", str(elf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=[listener.fileno()])
    sock = None
    try:
        sock = socket.create_connection(listener.getsockname(), timeout=30)
        listener.close()

        class SockPort:
            in_waiting = 0

            def read(self, n):
                return sock.recv(4096)

            def write(self, data):
                sock.sendall(data)

        yield MlperfDut(SockPort(), timeout=timeout)
    finally:
        if sock is not None:
            sock.close()
        listener.close()
        qemu.kill()
        qemu.wait()
