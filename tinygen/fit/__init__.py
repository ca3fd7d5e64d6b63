"""The fit check: an int8 model with the runtime that runs it (TFLM or tinygen's AOT C),
against a board's flash and SRAM, exact, with the headroom or the overage."""

from .check import ARENA_MARGIN_BYTES, IO_BUFFER_BYTES, RUNTIMES, Budget, FitReport, check_fit  # noqa: F401
