"""What every runner shares: one IO object through which every external call and byte goes, so
that --dry-run and --verbose hold everywhere, the Runner base class and the registry by name.
The image itself is image.py's."""

from __future__ import annotations

import shlex
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from ...boards import Board
from .image import FlashError, Image, check_image, load_address, load_image  # noqa: F401


@dataclass
class IO:
    """The one place external calls and byte streams go through."""

    dry_run: bool = False
    verbose: bool = False
    say: Callable[[str], None] = print
    transcript: list[str] = field(default_factory=list)   # what was (or would be) done

    def note(self, text: str) -> None:
        self.transcript.append(text)
        if self.verbose or self.dry_run:
            self.say(text)

    def run(self, argv: list[str]) -> None:
        self.note("$ " + shlex.join(argv))
        if not self.dry_run:
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode != 0:
                raise FlashError(f"`{shlex.join(argv)}` failed: {(r.stderr or r.stdout).strip()[:300]}")

    def sleep(self, seconds: float) -> None:
        self.note(f"wait {seconds * 1000:g} ms")
        if not self.dry_run:
            time.sleep(seconds)

    def open_serial(self, url: str, baud: int, timeout: float):
        self.note(f"open {url} at {baud} baud")
        if self.dry_run:
            return _DryPort(self)
        import serial

        try:
            return _LoggedPort(serial.serial_for_url(url, baudrate=baud, timeout=timeout), self)
        except (serial.SerialException, ValueError, OSError) as e:
            raise FlashError(f"Cannot open {url}: {e}.") from None

    def write_file(self, path: Path, data: bytes) -> None:
        self.note(f"write {len(data):,} bytes to {path}")
        if not self.dry_run:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)


class _LoggedPort:
    def __init__(self, port, io: IO):
        self.port, self.io = port, io

    def write(self, data: bytes) -> None:
        if self.io.verbose:
            self.io.note(f"-> {len(data)} bytes {data[:16].hex()}{'...' if len(data) > 16 else ''}")
        self.port.write(data)

    def read(self, n: int) -> bytes:
        data = self.port.read(n)
        if self.io.verbose:
            self.io.note(f"<- {len(data)} bytes {data[:16].hex()}{'...' if len(data) > 16 else ''}")
        return data

    def set_lines(self, dtr: bool, rts: bool) -> bool:
        """Drive the modem lines; False where the port has none (a pty, some adapters, a socket)."""
        self.io.note(f"DTR {'on' if dtr else 'off'}, RTS {'on' if rts else 'off'}")
        try:
            self.port.dtr, self.port.rts = dtr, rts
        except Exception:   # noqa: BLE001 - pyserial raises SerialException, OSError or ValueError by backend
            return False
        return True

    def discard_input(self) -> None:
        self.port.reset_input_buffer()

    def set_timeout(self, seconds: float) -> None:
        self.port.timeout = seconds

    def close(self) -> None:
        self.port.close()


class _DryPort:
    """In a dry run: records what would be sent; nothing is read."""

    def __init__(self, io: IO):
        self.io = io

    def write(self, data: bytes) -> None:
        self.io.note(f"-> {len(data)} bytes {data[:16].hex()}{'...' if len(data) > 16 else ''}")

    def read(self, n: int) -> bytes:
        return b""

    def set_lines(self, dtr: bool, rts: bool) -> bool:
        self.io.note(f"DTR {'on' if dtr else 'off'}, RTS {'on' if rts else 'off'}")
        return True

    def discard_input(self) -> None:
        pass

    def set_timeout(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class FlashResult:
    runner: str
    bytes_written: int
    seconds: float
    verified: str             # how the write was checked
    steps: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]   # (bytes done, bytes total)


class Runner(ABC):
    name: ClassVar[str]
    needs_port: ClassVar[bool] = False

    def __init__(self, board: Board, io: IO, port: str | None = None, baud: int | None = None, **options):
        self.board, self.io, self.port, self.baud, self.options = board, io, port, baud, options

    @abstractmethod
    def flash(self, image: Image, progress: Progress) -> FlashResult:
        ...


_RUNNERS: dict[str, type[Runner]] = {}


def register(cls: type[Runner]) -> type[Runner]:
    _RUNNERS[cls.name] = cls
    return cls


def runner_names() -> list[str]:
    return sorted(_RUNNERS)


def get_runner(name: str) -> type[Runner]:
    if name not in _RUNNERS:
        raise FlashError(f"There is no runner '{name}'; tinygen has {', '.join(runner_names())}.")
    return _RUNNERS[name]
