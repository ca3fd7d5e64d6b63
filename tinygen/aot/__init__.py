"""tinygen's ahead-of-time runtime: an int8 .tflite graph compiled to plain C99.

`compile()` is the one entry point: lowering (each op a call of a hand-written kernel in
firmware/aot/ with constants worked out on the host, bit-exact with TFLite Micro or TFLite),
the static arena plan (checked for overlaps), and the C files. No flatbuffer, interpreter or
allocator is left on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.graph import Graph
from . import lut, sparse
from .lower import ALIAS_OPS, KERNEL_DIR, KERNELS, MATCHES, AotError, Program, Step, lower, quantize_multiplier  # noqa: F401
from .plan import InPlace, MemoryPlan, check_plan, plan  # noqa: F401
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
        return param_bytes(self.program, self.arena)

    @property
    def sources(self) -> list[str]:
        """The kernel .c files the model calls (under firmware/aot/)."""
        return self.program.sources


# the kernel a convolution calls when it runs backwards, to write over its input from above
BACKWARDS = {"tg_conv2d": "tg_conv2d_backwards", "tg_conv2d_1x1": "tg_conv2d_1x1_backwards",
             "tg_depthwise_conv2d": "tg_depthwise_conv2d_backwards"}


def use_forms(program: Program, arena: MemoryPlan) -> None:
    """The kernels the plan's in-place forms call: a convolution streamed backwards, or fused
    with the ADD after it (whose parameters then take the skip as in1, the convolution's
    output as in2: ADD sums the two rescaled inputs as integers, so the order is free)."""
    for i, f in arena.forms.items():
        s = program.steps[i]
        if f.form == "streamed backwards":
            s.kernel = BACKWARDS[s.kernel]
        elif f.form.startswith("ring"):
            # the second convolution's call is the ring's (tg_ring.c, which calls both kernels)
            b = program.steps[f.fused]
            b.kernel, b.source = ("tg_conv_ring_add" if f.also else "tg_conv_ring"), "tg_ring.c"
            if f.also:
                _skip_first(program.steps[f.also[0]], b.output)
        elif f.form == "conv+add":
            s.kernel = "tg_conv2d_add"
            _skip_first(program.steps[f.fused], s.output)


def _skip_first(add: Step, y: int) -> None:
    """The ADD's parameters with the skip as in1 and the convolution's output `y` as in2."""
    if add.inputs[0] == y:
        p = dict(add.params)
        for a, b in (("in1_strides", "in2_strides"), ("in1_offset", "in2_offset"),
                     ("in1_multiplier", "in2_multiplier"), ("in1_shift", "in2_shift")):
            p[a], p[b] = add.params[b], add.params[a]
        add.params = p
        add.inputs = add.inputs[::-1]


def compile(graph: Graph, model_bytes: bytes, match: str = "tflm", model_name: str = "model",  # noqa: A001
            lut_bits: int | None = None) -> Compiled:
    """Lower, plan and render `graph`; weights with few values per tensor or channel are stored as
    look-up-table indices of up to `lut_bits` bits (aot/lut.py; None: lut.AUTO_BITS, or every
    width for a model in TFLM's compressed format). An AotError names the first
    thing the runtime cannot run."""
    folded = lut.fold_decode(model_bytes) if any(o.op == lut.DECODE_OP for o in graph.operators) else None
    if folded is not None:      # TFLM's compressed tensors: their DECODE ops folded into dense weights
        from ..model.graph import parse

        graph, model_bytes = parse(folded, model_name), folded
        lut_bits = lut.MAX_BITS if lut_bits is None else lut_bits
    program = lower(graph, model_bytes, match)
    chosen = lut.choose(program, lut.AUTO_BITS if lut_bits is None else lut_bits, extra=sparse.candidates)
    arena = plan(program)
    arena.stack_bytes = max(arena.stack_bytes, lut.stack_bytes(program, chosen))
    check_plan(program, arena)
    use_forms(program, arena)
    files = render(program, arena, model_name)
    files.update(kernel_sources(program))
    return Compiled(program, arena, files)
