"""Board profiles: one TOML file per board in boards/, validated on load.

A board is data, never code: everything tinygen needs to know about a board (core,
memories, clock, power, serial, how it is flashed) is a field here. A user's own
board file is accepted by path wherever a board name is.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BoardError
from .resources import resource_dir

CPUS = {"cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "host"}
# Code sizes (TFLM's and the AOT kernels') are measured on three cores; the one that stands in
# for each core: same instruction set (Thumb-1 for M0/M0+, Thumb-2 with DSP otherwise).
MEASURED_CORE = {"cortex-m0": "cortex-m0plus", "cortex-m0plus": "cortex-m0plus", "cortex-m3": "cortex-m4",
                 "cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7", "cortex-m33": "cortex-m4"}

# A board id names the default output folder (build/<id>) and a family names a port folder, so
# both are names, never paths.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_TOKEN = re.compile(r"[A-Za-z0-9+._-]+")           # goes into the Makefile as it is
_CFLAG = re.compile(r"-[A-Za-z0-9_+=.,:/-]+")       # one compiler flag, nothing make or a shell would expand
_MAX_BYTES = 1024 * 1024                           # a board file is a few KB; /dev/zero is not one
_ADDRESS_SPACE = 1 << 32
_LARGEST = 1 << 64                                 # TOML integers are unbounded; C's are not

# (dotted field, python type(s), required, check or None, what the check wants)
# the comparisons also refuse nan and inf
_POSITIVE = (lambda v: 0 < v < _LARGEST, "a positive number below 2**64")
_NON_NEGATIVE = (lambda v: 0 <= v < _LARGEST, "zero or more, below 2**64")
_A_NAME = (lambda v: NAME.fullmatch(v) is not None,
           "a name of lowercase letters, digits, '-', '_' and '.', not starting with '.', at most 64 characters")
_A_TOKEN = (lambda v: _TOKEN.fullmatch(v) is not None, "letters, digits, '+', '.', '_' and '-' only")
_CFLAGS = (lambda v: all(isinstance(f, str) and _CFLAG.fullmatch(f) for f in v),
           "a list of compiler flags, each starting with '-' (letters, digits and _+=.,:/- only)")
_SCHEMA: list[tuple[str, tuple[type, ...], bool, tuple | None]] = [
    ("id", (str,), True, _A_NAME),
    ("name", (str,), True, None),
    ("mcu", (str,), True, None),
    ("family", (str,), True, _A_NAME),
    ("core.cpu", (str,), True, (lambda v: v in CPUS, "one of " + ", ".join(sorted(CPUS)))),
    ("core.fpu", (str,), True, _A_TOKEN),
    ("core.float_abi", (str,), True, (lambda v: v in {"soft", "softfp", "hard"}, "soft, softfp or hard")),
    ("core.cycle_counter", (str,), True, (lambda v: v in {"dwt", "systick", "timer"}, "dwt, systick or timer")),
    ("core.kernels", (str,), True, (lambda v: v in {"cmsis-nn", "reference"}, "cmsis-nn or reference")),
    ("core.tflm_target_arch", (str,), True, _A_TOKEN),
    ("clock.hz", (int,), True, _POSITIVE),
    ("clock.burst_hz", (int,), False, _POSITIVE),
    ("flash.origin", (int,), True, _NON_NEGATIVE),
    ("flash.size", (int,), True, _POSITIVE),
    ("flash.reserved_bytes", (int,), True, _NON_NEGATIVE),
    ("sram.origin", (int,), True, _NON_NEGATIVE),
    ("sram.size", (int,), True, _POSITIVE),
    ("sram.stack_bytes", (int,), True, _POSITIVE),
    ("sram.heap_bytes", (int,), True, _NON_NEGATIVE),
    ("power.supply_v", (int, float), True, _POSITIVE),
    ("power.active_ma", (int, float), True, _POSITIVE),
    ("serial.baud", (int,), True, _POSITIVE),
    # MLPerf Tiny's energy mode: the free GPIO the firmware pulses for each timestamp (the port's numbering)
    ("serial.timestamp_pin", (int,), False, _NON_NEGATIVE),
    ("flash_tool.runner", (str,), True, _A_NAME),
    ("flash_tool.baud", (int,), False, _POSITIVE),
    ("flash_tool.target", (str,), False, _A_TOKEN),
    ("flash_tool.family_id", (int,), False, _NON_NEGATIVE),
    ("flash_tool.load_address", (int,), False, _NON_NEGATIVE),
    ("flash_tool.stage_address", (int,), False, _NON_NEGATIVE),
    ("flash_tool.ota_descriptor", (int,), False, _NON_NEGATIVE),
    ("build.cflags", (list,), True, _CFLAGS),
]


class _NotATable(Exception):
    def __init__(self, dotted: str, value: Any):
        self.dotted, self.value = dotted, value


def _lookup(data: dict, dotted: str) -> Any:
    """A dotted field: KeyError where it is missing, _NotATable where a table on the way is some
    other value (`core = 5`)."""
    node: Any = data
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            raise _NotATable(".".join(parts[:i]), node)
        if part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


@dataclass(frozen=True)
class Board:
    """One validated board profile. `raw` keeps every field, for dotted look-ups."""

    id: str
    name: str
    mcu: str
    family: str
    cpu: str
    fpu: str
    float_abi: str
    cycle_counter: str
    kernels: str
    tflm_target_arch: str
    clock_hz: int
    flash_origin: int
    flash_size: int
    flash_reserved: int
    sram_origin: int
    sram_size: int
    stack_bytes: int
    heap_bytes: int
    supply_v: float
    active_ma: float
    baud: int
    runner: str
    cflags: tuple[str, ...]
    source: Path
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def app_flash_origin(self) -> int:
        """Where the application is linked: after whatever the bootloader keeps."""
        return self.flash_origin + self.flash_reserved

    @property
    def app_flash_bytes(self) -> int:
        return self.flash_size - self.flash_reserved

    @property
    def pointer_bytes(self) -> int:
        return 8 if self.cpu == "host" else 4

    def get(self, dotted: str, default: Any = None) -> Any:
        try:
            return _lookup(self.raw, dotted)
        except (KeyError, _NotATable):
            return default


def _leaves(node: Any, dotted: str = ""):
    """Every value in the file that is not a table or list, with its field."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{dotted}.{k}" if dotted else k)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v, dotted)
    else:
        yield dotted, node


def _validate(data: dict, where: str) -> None:
    for dotted, types, required, check in _SCHEMA:
        try:
            value = _lookup(data, dotted)
        except KeyError:
            if required:
                raise BoardError(f"{where}: the field '{dotted}' is missing.") from None
            continue
        except _NotATable as e:
            raise BoardError(f"{where}: '{e.dotted}' should be a table of fields ([{e.dotted}]), not "
                             f"{_shown(e.value)}.") from None
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join("a list" if t is list else t.__name__ for t in types)
            raise BoardError(f"{where}: the field '{dotted}' should be {wanted}, not {_shown(value)}.")
        if check is not None and not check[0](value):
            raise BoardError(f"{where}: the field '{dotted}' should be {check[1]}, not {_shown(value)}.")
    for dotted, value in _leaves(data):
        # A newline in a name would end a comment in the generated Makefile and C.
        if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise BoardError(f"{where}: the field '{dotted}' holds a control character (a line break or the like), "
                             f"in {_shown(value)}.")
        # `boards show --json` prints every field; a board has no dates.
        if isinstance(value, (datetime.date, datetime.time)):
            raise BoardError(f"{where}: the field '{dotted}' is a date or time, which no board field is.")
    if data["flash"]["reserved_bytes"] >= data["flash"]["size"]:
        raise BoardError(f"{where}: the field 'flash.reserved_bytes' leaves no flash for the application.")
    if data["sram"]["stack_bytes"] + data["sram"]["heap_bytes"] >= data["sram"]["size"]:
        raise BoardError(f"{where}: 'sram.stack_bytes' and 'sram.heap_bytes' take all of the SRAM.")
    if data["core"]["cpu"] != "host":
        for memory in ("flash", "sram"):
            if data[memory]["origin"] + data[memory]["size"] > _ADDRESS_SPACE:
                raise BoardError(f"{where}: '{memory}.origin' plus '{memory}.size' ends past the 4 GiB a "
                                 f"{data['core']['cpu']} can address.")


def _shown(value: Any) -> str:
    """A value as the error quotes it: a TOML table or a long string cut short."""
    text = "a table" if isinstance(value, dict) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read(path: Path) -> str:
    """The board file's text; a BoardError for anything that is not a readable UTF-8 text file."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise BoardError(f"{path} is a folder, not a board file.")
        if not stat.S_ISREG(st.st_mode):
            raise BoardError(f"{path} is not a regular file, so it is not a board file.")
        if st.st_size > _MAX_BYTES:
            raise BoardError(f"{path} is {st.st_size:,} bytes; a board file is a few kilobytes of TOML.")
        with path.open("rb") as f:
            raw = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise BoardError(f"There is no board file at {path}.") from None
    except (OSError, ValueError) as e:   # ValueError: a NUL byte in the path
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise BoardError(f"The board file {path} cannot be read: {reason}.") from None
    nul = raw.find(b"\0")
    if nul >= 0:
        raise BoardError(f"{path.name} holds a NUL byte at offset {nul}: it is not a TOML text file.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BoardError(f"{path.name} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                         "save it as UTF-8.") from None


def load_board_file(path: Path) -> Board:
    """Read and validate one board file."""
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{path.name} is not valid TOML: {e}.") from None
    except RecursionError:
        raise BoardError(f"{path.name} nests arrays or tables too deeply to be a board file.") from None
    try:
        _validate(data, path.name)
    except RecursionError:   # a deeply nested value in a field of its own
        raise BoardError(f"{path.name} nests arrays or tables too deeply to be a board file.") from None
    c = data["core"]
    return Board(
        id=data["id"], name=data["name"], mcu=data["mcu"], family=data["family"],
        cpu=c["cpu"], fpu=c["fpu"], float_abi=c["float_abi"], cycle_counter=c["cycle_counter"],
        kernels=c["kernels"], tflm_target_arch=c["tflm_target_arch"],
        clock_hz=data["clock"]["hz"],
        flash_origin=data["flash"]["origin"], flash_size=data["flash"]["size"],
        flash_reserved=data["flash"]["reserved_bytes"],
        sram_origin=data["sram"]["origin"], sram_size=data["sram"]["size"],
        stack_bytes=data["sram"]["stack_bytes"], heap_bytes=data["sram"]["heap_bytes"],
        supply_v=float(data["power"]["supply_v"]), active_ma=float(data["power"]["active_ma"]),
        baud=data["serial"]["baud"], runner=data["flash_tool"]["runner"],
        cflags=tuple(data["build"]["cflags"]), source=path, raw=data,
    )


def boards_dir() -> Path:
    return resource_dir("boards")


def board_ids() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.toml"))


def all_boards() -> list[Board]:
    return [load_board_file(p) for p in sorted(boards_dir().glob("*.toml"))]


def load_board(name_or_path: str) -> Board:
    """A bundled board by id, or a user's board file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path or os.sep in name_or_path or _lexists(candidate):
        return load_board_file(candidate)
    if NAME.fullmatch(name_or_path) and (boards_dir() / f"{name_or_path}.toml").is_file():
        return load_board_file(boards_dir() / f"{name_or_path}.toml")
    ids = board_ids()
    near = difflib.get_close_matches(name_or_path, ids, n=1, cutoff=0.4)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    shown = name_or_path if len(name_or_path) <= 80 else name_or_path[:77] + "..."
    raise BoardError(
        f"Unknown board '{shown}'.{hint} `tinygen boards` lists the {len(ids)} bundled boards; "
        "a board file of your own can be given by path."
    )


def _lexists(path: Path) -> bool:
    """Whether anything is at path; a name the OS rejects (too long, a NUL byte) is not there."""
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False
