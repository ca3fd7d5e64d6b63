"""What every runner shares: the image to flash, checked against the board before anything
touches it, and one IO object through which every external call and byte goes, so that
--dry-run and --verbose hold everywhere."""

from __future__ import annotations

import shlex
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from ..boards import Board
from ..errors import TinygenError


class FlashError(TinygenError):
    """Flashing failed or was refused; the message says which step and what to do."""


@dataclass
class Image:
    data: bytes
    address: int              # where the first byte goes
    source: Path
    kind: str                 # bin, hex, elf, uf2

    def end(self) -> int:
        return self.address + len(self.data)


def load_image(path: Path, board: Board) -> Image:
    """A build directory from `tinygen build --compile`, or a .bin/.hex/.elf/.uf2 file."""
    if path.is_dir():
        for candidate in (path / "build" / "firmware.elf", path / "build" / "firmware.bin"):
            if candidate.exists():
                path = candidate
                break
        else:
            raise FlashError(f"{path} holds no build/firmware.elf or .bin: run `tinygen build --compile` first.")
    if not path.exists():
        raise FlashError(f"There is no image at {path}.")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        return Image(path.read_bytes(), load_address(board), path, "bin")
    if suffix == ".hex":
        from intelhex import IntelHex, HexReaderError

        try:
            ih = IntelHex(str(path))
        except (HexReaderError, ValueError) as e:
            raise FlashError(f"{path} is not a valid Intel HEX file ({e}).") from None
        start = ih.minaddr()
        return Image(bytes(ih.tobinarray(start=start)), start, path, "hex")
    if suffix == ".elf":
        return _load_elf(path)
    if suffix == ".uf2":
        from .uf2 import uf2_to_image

        return uf2_to_image(path)
    raise FlashError(f"{path.name}: tinygen flashes .bin, .hex, .elf or .uf2 images, or a build directory.")


def _load_elf(path: Path) -> Image:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            segs = [(s["p_paddr"], s.data()) for s in elf.iter_segments()
                    if s["p_type"] == "PT_LOAD" and s["p_filesz"] > 0]
    except ELFError as e:
        raise FlashError(f"{path} is not a readable ELF file ({e}).") from None
    if not segs:
        raise FlashError(f"{path} has nothing to load.")
    segs.sort()
    start = segs[0][0]
    end = max(a + len(d) for a, d in segs)
    if end - start > 64 * 1024 * 1024:
        raise FlashError(f"{path}'s segments span {end - start:,} bytes; is it linked for flash at all?")
    buf = bytearray(b"\xff" * (end - start))
    for a, d in segs:
        buf[a - start:a - start + len(d)] = d
    return Image(bytes(buf), start, path, "elf")


def load_address(board: Board) -> int:
    """Where the board's loader writes an image: flash_tool.load_address, else after the bootloader."""
    return int(board.raw.get("flash_tool", {}).get("load_address", board.app_flash_origin))


def check_image(image: Image, board: Board) -> None:
    """Refuse, before touching the board, an image that cannot be right for it."""
    if image.address != load_address(board):
        raise FlashError(
            f"{image.source.name} is linked at 0x{image.address:X}, but {board.id}'s loader puts applications at "
            f"0x{load_address(board):X}; rebuild it for {board.id}.")
    room = board.flash_origin + board.flash_size - image.address
    if len(image.data) > room:
        raise FlashError(
            f"{image.source.name} is {len(image.data):,} bytes; {board.id} has {room:,} bytes of flash from "
            f"0x{image.address:X} (over by {len(image.data) - room:,}).")


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
