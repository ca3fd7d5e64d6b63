"""Flash runners, one per loader, registered by name (after Zephyr's west runners)."""

from .core import FlashError, Image, IO, Runner, get_runner, load_image, runner_names  # noqa: F401
from . import ambiq_uart, bossac, pyocd_runner, uf2  # noqa: F401  (registration)
