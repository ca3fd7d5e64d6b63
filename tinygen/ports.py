"""Firmware ports: tinygen's hand-written C for a board family (firmware/boards/<family>/),
described by its manifest, port.toml. One Port object owns that manifest: the fit check asks
it for the application's flash and the camera's cost, the project renderer for sources,
defines and SDK paths, the builder for its SDK variable, the runner for its emulator."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .boards import Board
from .errors import TinygenError
from .resources import resource_dir

# The application around the runtime (startup, port, harness, main loop) for a board without a
# port; a port's manifest gives its own, measured on linked firmware (the mps2 port with
# newlib-nano printf, tests/firmware/hello.c, is 7,280 B).
DEFAULT_APP_FLASH_BYTES = 8 * 1024


class PortError(TinygenError):
    """A firmware project cannot be made for this board or input."""


@dataclass(frozen=True)
class Port:
    family: str
    directory: Path
    sources: tuple[str, ...]
    linker_script: str
    defines: tuple[str, ...]
    app_flash_bytes: int
    sdk: dict | None = field(default=None, hash=False, compare=False)     # variable, name, check, includes, sources, libs
    run: tuple[str, ...] | None = None                                    # the emulator command, where there is one
    camera: dict | None = field(default=None, hash=False, compare=False)  # --input camera: driver, sources, frame size, cost
    tick_source: str | None = None                                        # what the firmware's cycle count counts (SysTick, TIMER0)
    tick_hz: int | None = None                                            # and at what rate
    # Every SDK the port needs, in order (`[[sdk]]` in port.toml; a single `[sdk]` table is the
    # one-element case); `sdk` above is the first, for callers that know of one.
    sdks: tuple[dict, ...] = field(default=(), hash=False, compare=False)
    headers: tuple[str, ...] = ()      # the port's own headers, copied into port/ beside its sources
    static_ram_bytes: int = 0          # RAM the port keeps beyond the harness's (a USB stack's state), measured
    make_include: str | None = None    # a make fragment among the port's files that the Makefile includes (boot2, UF2)

    @property
    def sdk_variable(self) -> str | None:
        return self.sdk["variable"] if self.sdk else None

    @property
    def sdk_variables(self) -> tuple[str, ...]:
        return tuple(s["variable"] for s in self.sdks)

    @property
    def qemu_machine(self) -> str | None:
        """The QEMU machine (-M) the port's image boots on, or None."""
        if not self.run or "-M" not in self.run:
            return None
        return self.run[self.run.index("-M") + 1]

    def camera_cost(self) -> tuple[int, int]:
        """(flash, SRAM) bytes the camera input adds: driver code, frame buffer, driver state."""
        if not self.camera:
            return 0, 0
        cam = self.camera
        return int(cam.get("flash_bytes", 0)), cam["width"] * cam["height"] + int(cam.get("sram_bytes", 0))


def _ports_dir() -> Path:
    return resource_dir("firmware") / "boards"


def port_families() -> list[str]:
    return sorted(p.parent.name for p in _ports_dir().glob("*/port.toml"))


@lru_cache(maxsize=None)
def _load(family: str) -> Port | None:
    directory = _ports_dir() / family
    manifest = directory / "port.toml"
    if not manifest.exists():
        return None
    data = tomllib.loads(manifest.read_text())
    sdk = data.get("sdk") or None
    # `[[sdk]]` (several) or `[sdk]` (one); a table without a variable (mps2's empty `[sdk]`) is none
    sdks = tuple(s for s in ([sdk] if isinstance(sdk, dict) else sdk or []) if s.get("variable"))
    run = data.get("run")
    tick_hz = data.get("tick_hz")
    # An emulated run converts the firmware's ticks to instructions, so it needs their rate.
    if run and not (isinstance(tick_hz, int) and tick_hz > 0 and data.get("tick_source")):
        raise PortError(f"{manifest} names an emulator (run) but not the rate of the ticks its firmware counts: "
                        "give tick_source and tick_hz (a positive integer).")
    return Port(family, directory, tuple(data["sources"]), data["linker_script"], tuple(data.get("defines", [])),
                int(data.get("app_flash_bytes", DEFAULT_APP_FLASH_BYTES)),
                sdks[0] if sdks else None, tuple(run) if run else None, data.get("camera"),
                data.get("tick_source"), tick_hz, sdks=sdks, headers=tuple(data.get("headers", [])),
                static_ram_bytes=int(data.get("static_ram_bytes", 0)), make_include=data.get("make_include"))


def find_port(board: Board) -> Port | None:
    """The board's firmware port, or None where tinygen has none for its family."""
    return _load(board.family)


def port_for(board: Board) -> Port:
    """The board's firmware port; a PortError naming the ports there are if it has none."""
    port = find_port(board)
    if port is None:
        raise PortError(
            f"tinygen has no firmware port for the {board.family} family ({board.id}) yet; ports exist for "
            f"{', '.join(port_families())}. Use --no-project to write the model and fit report only.")
    return port


def application_flash_bytes(board: Board) -> int:
    port = find_port(board)
    return port.app_flash_bytes if port else DEFAULT_APP_FLASH_BYTES


def port_static_ram_bytes(board: Board) -> int:
    """RAM the board's port keeps for itself beyond what the fit check counts for every port."""
    port = find_port(board)
    return port.static_ram_bytes if port else 0
