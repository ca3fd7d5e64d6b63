"""The uf2 runner: the image as UF2 blocks (image.to_uf2), copied onto the RP2040's BOOTSEL
mass-storage drive (RPI-RP2)."""

from __future__ import annotations

import time
from pathlib import Path

from .core import FlashError, FlashResult, Image, Progress, Runner, check_image, register
from .image import BLOCK, to_uf2, uf2_to_image  # noqa: F401  (uf2_to_image: for callers)


def find_drive() -> Path | None:
    for root in (Path("/media"), Path("/run/media"), Path("/Volumes"), Path("/mnt")):
        for info in root.glob("**/INFO_UF2.TXT") if root.exists() else []:
            if "RPI-RP2" in info.read_text(errors="replace") or info.parent.name == "RPI-RP2":
                return info.parent
    return None


@register
class Uf2Runner(Runner):
    name = "uf2"

    def flash(self, image: Image, progress: Progress) -> FlashResult:
        check_image(image, self.board)
        family = int(self.board.raw.get("flash_tool", {}).get("family_id", 0))
        uf2 = to_uf2(image.data, image.address, family)
        drive = Path(self.options["drive"]) if self.options.get("drive") else find_drive()
        if drive is None:
            raise FlashError("No RPI-RP2 drive is mounted: hold BOOTSEL while plugging the Pico in, then run "
                             "tinygen flash again (or pass --drive with its mount point).")
        started = time.monotonic()
        self.io.write_file(drive / "firmware.uf2", uf2)
        progress(len(uf2), len(uf2))
        return FlashResult(self.name, len(uf2), time.monotonic() - started,
                           "the boot ROM checks each block's magic numbers and address",
                           [f"copied {len(uf2) // BLOCK} UF2 blocks (family 0x{family:08X}) at 0x{image.address:X} to {drive}"])
