"""CMSIS-DAP and ST-LINK boards through pyocd, used as a library: program, read back, reset."""

from __future__ import annotations

import time
from io import BytesIO
from typing import Callable

from .core import FlashError, FlashResult, Image, Progress, Runner, check_image, register


def _default_session(target: str, unique_id: str | None):
    from pyocd.core.helpers import ConnectHelper

    session = ConnectHelper.session_with_chosen_probe(
        blocking=False, unique_id=unique_id, target_override=target, options={"frequency": 4_000_000})
    if session is None:
        raise FlashError("No debug probe answered: plug the board's USB (the ST-LINK/CMSIS-DAP port) in, and check "
                         "that no other debugger holds it.")
    return session


@register
class PyocdRunner(Runner):
    name = "pyocd"
    # pyocd's session is opened only when flashing for real; tests put a fake probe and target here
    session_factory: Callable = staticmethod(_default_session)

    def flash(self, image: Image, progress: Progress) -> FlashResult:
        check_image(image, self.board)
        target = self.board.raw.get("flash_tool", {}).get("target")
        if not target:
            raise FlashError(f"{self.board.id}'s board file names no pyocd target (flash_tool.target).")
        self.io.note(f"pyocd: connect to {target}, program {len(image.data):,} bytes at 0x{image.address:X}, "
                     "read back, reset")
        if self.io.dry_run:
            return FlashResult(self.name, 0, 0.0, "dry run")
        from pyocd.flash.file_programmer import FileProgrammer

        started = time.monotonic()
        try:
            session = self.session_factory(target, self.options.get("probe"))
            with session:
                from_progress = lambda fraction: progress(int(fraction * len(image.data)), len(image.data))  # noqa: E731
                # FileProgrammer takes a path or a binary file object (it seeks and reads it), not bytes
                FileProgrammer(session, progress=from_progress).program(
                    BytesIO(image.data), file_format="bin", base_address=image.address)
                back = bytes(session.target.read_memory_block8(image.address, len(image.data)))
                if back != image.data:
                    first = next(i for i, (a, b) in enumerate(zip(back, image.data)) if a != b)
                    raise FlashError(f"Read-back differs from the image at 0x{image.address + first:X}; the flash "
                                     "may be protected or worn: try again, or erase the chip with pyocd erase --chip.")
                session.target.reset()
        except FlashError:
            raise
        except Exception as e:  # pyocd raises many kinds for probe and target trouble
            raise FlashError(f"pyocd could not program {target}: {e}.") from None
        return FlashResult(self.name, len(image.data), time.monotonic() - started,
                           "read back and compared byte for byte", [f"programmed and reset {target}"])
