"""Power monitors, one class per monitor, registered by name (as the flash runners are): energy
per inference measured, not estimated."""

from __future__ import annotations

from . import joulescope_monitor, lpm01a, ppk2  # noqa: F401  (registration)
from .core import (Chunk, PowerError, PowerMonitor, PowerSession, Window, monitor_names,  # noqa: F401
                   open_monitor, parse_spec, register)
