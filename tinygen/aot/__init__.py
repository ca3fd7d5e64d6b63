"""tinygen's ahead-of-time runtime: an int8 .tflite graph compiled to plain C99.

`compile()` is the one entry point: lowering (each op a call of a hand-written kernel in
firmware/aot/ with constants worked out on the host, bit-exact with TFLite Micro or TFLite),
the static arena plan (checked for overlaps), and the C files. No flatbuffer, interpreter or
allocator is left on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.graph import Graph
from .lower import ALIAS_OPS, KERNEL_DIR, KERNELS, MATCHES, AotError, Program, lower, quantize_multiplier  # noqa: F401
from .plan import MemoryPlan, check_plan, plan
from .render import kernel_sources, render
from .size import param_bytes


@dataclass
class Compiled:
    """A model compiled ahead of time: the lowered program, its arena plan, and the C."""
    program: Program
    arena: MemoryPlan
    files: dict[str, str] = field(repr=False)    # tg_model.h, tg_model.c and the kernel sources it calls

    @property
    def kernel_calls(self) -> int:
        return sum(1 for s in self.program.steps if s.kernel)

    @property
    def weight_bytes(self) -> int:
        return self.program.weight_bytes

    @property
    def param_bytes(self) -> int:
        """The const parameter blocks, one per kernel call, as sizeof() on a 32-bit core."""
        return param_bytes(self.program)

    @property
    def sources(self) -> list[str]:
        """The kernel .c files the model calls (under firmware/aot/)."""
        return self.program.sources


def compile(graph: Graph, model_bytes: bytes, match: str = "tflm", model_name: str = "model") -> Compiled:  # noqa: A001
    """Lower, plan and render `graph`. An AotError names the first thing the runtime cannot run."""
    program = lower(graph, model_bytes, match)
    arena = plan(program)
    check_plan(program, arena)
    files = render(program, arena, model_name)
    files.update(kernel_sources(program))
    return Compiled(program, arena, files)
