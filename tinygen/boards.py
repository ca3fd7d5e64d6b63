"""Board profiles: one TOML file per board in boards/, validated on load.

A board is data, never code: everything tinygen needs to know about a board (core,
memories, clock, power, serial, how it is flashed) is a field here. A user's own
board file is accepted by path wherever a board name is.
"""

from __future__ import annotations

import difflib
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

# (dotted field, python type(s), required, check or None, what the check wants)
_POSITIVE = (lambda v: v > 0, "a positive number")
_NON_NEGATIVE = (lambda v: v >= 0, "zero or more")
_SCHEMA: list[tuple[str, tuple[type, ...], bool, tuple | None]] = [
    ("id", (str,), True, None),
    ("name", (str,), True, None),
    ("mcu", (str,), True, None),
    ("family", (str,), True, None),
    ("core.cpu", (str,), True, (lambda v: v in CPUS, "one of " + ", ".join(sorted(CPUS)))),
    ("core.fpu", (str,), True, None),
    ("core.float_abi", (str,), True, (lambda v: v in {"soft", "softfp", "hard"}, "soft, softfp or hard")),
    ("core.cycle_counter", (str,), True, (lambda v: v in {"dwt", "systick"}, "dwt or systick")),
    ("core.kernels", (str,), True, (lambda v: v in {"cmsis-nn", "reference"}, "cmsis-nn or reference")),
    ("core.tflm_target_arch", (str,), True, None),
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
    ("flash_tool.runner", (str,), True, None),
    ("build.cflags", (list,), True, None),
]


def _lookup(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
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
        except KeyError:
            return default


def _validate(data: dict, where: str) -> None:
    for dotted, types, required, check in _SCHEMA:
        try:
            value = _lookup(data, dotted)
        except KeyError:
            if required:
                raise BoardError(f"{where}: the field '{dotted}' is missing.") from None
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise BoardError(f"{where}: the field '{dotted}' should be {wanted}, not {value!r}.")
        if check is not None and not check[0](value):
            raise BoardError(f"{where}: the field '{dotted}' should be {check[1]}, not {value!r}.")
    if data["flash"]["reserved_bytes"] >= data["flash"]["size"]:
        raise BoardError(f"{where}: the field 'flash.reserved_bytes' leaves no flash for the application.")
    if data["sram"]["stack_bytes"] + data["sram"]["heap_bytes"] >= data["sram"]["size"]:
        raise BoardError(f"{where}: 'sram.stack_bytes' and 'sram.heap_bytes' take all of the SRAM.")


def load_board_file(path: Path) -> Board:
    """Read and validate one board file."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BoardError(f"There is no board file at {path}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BoardError(f"{path.name} is not valid TOML: {e}.") from None
    _validate(data, path.name)
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
    if candidate.suffix == ".toml" or candidate.exists():
        return load_board_file(candidate)
    path = boards_dir() / f"{name_or_path}.toml"
    if path.exists():
        return load_board_file(path)
    ids = board_ids()
    near = difflib.get_close_matches(name_or_path, ids, n=1, cutoff=0.4)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    raise BoardError(
        f"Unknown board '{name_or_path}'.{hint} `tinygen boards` lists the {len(ids)} bundled boards; "
        "a board file of your own can be given by path."
    )
