"""The fit check: does an int8 model, with the runtime that runs it, fit a board's flash and SRAM?"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..boards import Board
from ..errors import TinygenError
from ..model.graph import Graph
from ..ports import application_flash_bytes, port_static_ram_bytes
from ..tflm.arena import ArenaPlan, Target
from ..tflm.compress import DECODE_OP
from ..tflm.flash import check_ops, runtime_flash
from ..tflm.offline_plan import PlanChoice, arena_plans

if TYPE_CHECKING:
    from ..aot import Compiled

# The generated firmware reserves the arena rounded up to 16 bytes plus this margin, for a
# TFLM newer than the one tinygen's tables were measured on.
ARENA_MARGIN_BYTES = 1024
# What a compressed model costs beyond its bytes.
DECODE_NOTE = ("The model has TFLM compressed tensors: flash counts the compressed model and the code of TFLM's "
               "DECODE kernel (~19 KB: every decoder it links), SRAM the weights DECODE expands into the arena.")
IO_BUFFER_BYTES = 256            # an allowance for the firmware's serial output buffer


@dataclass
class Budget:
    total_bytes: int
    budget_bytes: int

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.budget_bytes - self.total_bytes


@dataclass
class FitReport:
    board: Board
    graph: Graph
    model_path: str
    kernels: str
    plan: ArenaPlan
    arena_bytes: int
    arena_reserved_bytes: int
    sram: Budget
    flash: Budget
    model_bytes: int
    runtime_bytes: int
    app_bytes: int
    test_vector_bytes: int
    stack_bytes: int
    static_ram_bytes: int
    runtime_core: str = ""
    runtime_note: list[str] = field(default_factory=list)
    runtime: str = "tflm"
    compiled: Compiled | None = None     # with runtime "aot": the model compiled ahead of time
    test_vectors: int = 0                # how many test vectors test_vector_bytes counts
    compression: dict | None = None      # the Deep Compression table, when the model was compressed
    memory_plan: PlanChoice | None = None   # with runtime "tflm": which memory plan the model carries
    tflm_plans: dict[str, ArenaPlan] = field(default_factory=dict)   # TFLM's greedy plan, tinygen's offline plan

    def with_test_vectors(self, count: int) -> FitReport:
        """The same report with `count` compiled-in test vectors instead."""
        from dataclasses import replace

        per = self.test_vector_bytes // self.test_vectors if self.test_vectors else 0
        vector_bytes = count * per
        flash = Budget(self.flash.total_bytes - self.test_vector_bytes + vector_bytes, self.flash.budget_bytes)
        return replace(self, test_vectors=count, test_vector_bytes=vector_bytes, flash=flash)

    @property
    def aot(self) -> dict | None:
        """With runtime "aot": what the AOT compiler made, as the report's JSON gives it."""
        c = self.compiled
        if c is None:
            return None
        return {"steps": c.kernel_calls, "kernels": c.program.kernels, "kernel_code_bytes": self.runtime_bytes,
                "weight_bytes": c.weight_bytes, "param_bytes": c.param_bytes, "arena_heuristic": c.arena.heuristic,
                "in_place_ops": [c.program.steps[i].op_index for i in c.arena.in_place],
                "in_place_forms": {c.program.steps[i].op_index: f.form for i, f in c.arena.forms.items()},
                "kernel_stack_bytes": c.arena.stack_bytes}

    @property
    def runtime_label(self) -> str:
        return "tinygen AOT" if self.runtime == "aot" else "TFLM"

    @property
    def fits(self) -> bool:
        return self.sram.fits and self.flash.fits

    def advice(self) -> str:
        """What to try when the model does not fit."""
        tips = []
        if not self.flash.fits:
            tips.append(f"flash is over by {-self.flash.headroom_bytes:,} bytes")
            if self.test_vector_bytes:
                tips.append(f"the {self.test_vectors} compiled-in test vectors take {self.test_vector_bytes:,} of them "
                            "(fewer with --vectors, or none with --input serial)")
        if not self.sram.fits:
            tips.append(f"SRAM is over by {-self.sram.headroom_bytes:,} bytes")
        largest = max(self.graph.layers, key=lambda l: l.activation_bytes, default=None)
        hint = (
            "make the network thinner: `tinygen build ... --shrink auto` searches width multipliers "
            "(and `tinygen shrink --width 0.75` or `--prune 0.3` try one), or lower the input resolution"
        )
        if largest is not None and not self.sram.fits:
            hint += f"; the largest activations are at layer {largest.index} ({largest.op}, {largest.activation_bytes:,} bytes)"
        return "; ".join(tips) + ". To fit, " + hint + "."

    def to_json(self) -> dict:
        g = self.graph
        return {
            "board": self.board.id,
            "model": {
                "path": self.model_path,
                "sha256": g.sha256,
                "ops": g.ops,
                "params": g.params,
                "macs": g.macs,
                "layers": [asdict(l) for l in g.layers],
            },
            "runtime": self.runtime,
            "kernels": self.kernels,
            **({"aot": self.aot} if self.aot is not None else {}),
            "sram": {
                "arena_bytes": self.arena_bytes,
                "arena_head_bytes": self.plan.head_bytes,
                "arena_tail_bytes": self.plan.tail_bytes,
                "arena_exact": self.plan.exact,
                **({"tflm_required_bytes": self.plan.required_bytes, "tflm_required_phase": self.plan.required_phase}
                   if self.runtime == "tflm" else {}),
                **({"tflm_plan": self.memory_plan.to_json()} if self.memory_plan is not None else {}),
                "arena_reserved_bytes": self.arena_reserved_bytes,
                "stack_bytes": self.stack_bytes,
                "static_bytes": self.static_ram_bytes,
                "total_bytes": self.sram.total_bytes,
                "budget_bytes": self.sram.budget_bytes,
                "headroom_bytes": self.sram.headroom_bytes,
                "fits": self.sram.fits,
            },
            "flash": {
                "model_bytes": self.model_bytes,
                "runtime_bytes": self.runtime_bytes,
                "runtime_measured_for": self.runtime_core,
                "app_bytes": self.app_bytes,
                "test_vector_bytes": self.test_vector_bytes,
                "test_vectors": self.test_vectors,
                "total_without_test_vectors_bytes": self.flash.total_bytes - self.test_vector_bytes,
                "total_bytes": self.flash.total_bytes,
                "budget_bytes": self.flash.budget_bytes,
                "headroom_bytes": self.flash.headroom_bytes,
                "fits": self.flash.fits,
            },
            "fits": self.fits,
            **({"compression": self.compression} if self.compression is not None else {}),
        }


RUNTIMES = ("tflm", "aot")
# What the AOT firmware keeps in RAM besides the arena and the stack: the board port's and
# harness's statics. Measured (data + bss - arena): mps2-an386 16 B, SparkFun Edge 272 B
# (Ambiq HAL state); this plus IO_BUFFER_BYTES covers both.
AOT_STATIC_RAM_BYTES = 64


def check_fit(graph: Graph, board: Board, model_path: str = "", test_vectors: int = 0,
              input_sram_bytes: int = 0, input_flash_bytes: int = 0, runtime: str = "tflm",
              model_bytes: bytes | None = None, match: str = "tflm", model_name: str = "model",
              memory_plan: PlanChoice | None = None, lut_bits: int | None = None) -> FitReport:
    """Flash and SRAM of `graph` on `board`, with the runtime (TFLM, or tinygen's AOT C;
    that one needs `model_bytes`, and compiles the model once, kept in the report with `match`'s
    arithmetic) and the kernels the firmware will use.
    `test_vectors` compiled into the firmware cost their inputs and expected outputs in flash;
    an input device (a camera) costs its driver's flash and its frame buffer and state in SRAM."""
    if runtime == "aot":
        return _check_fit_aot(graph, board, model_path, test_vectors, input_sram_bytes, input_flash_bytes, model_bytes,
                              match, model_name, lut_bits)
    if runtime != "tflm":
        raise TinygenError(f"--runtime must be one of {', '.join(RUNTIMES)}, not '{runtime}'.")
    # A model in TFLM's compressed-tensor format: its bytes (graph.model_bytes) are what flash
    # holds; its DECODE ops expand the tensors in the arena, which the replay counts as tensors.
    check_ops(graph)
    target = Target.for_board(board)
    # with the offline memory plan the model carries, if any (tflm.offline_plan)
    plan, tflm_plans = arena_plans(graph, target, model_bytes, memory_plan)
    # The firmware declares the arena rounded up to 16 bytes, so its end is aligned as TFLM assumes.
    arena = plan.used_bytes
    runtime, runtime_ram, measured_core = runtime_flash(graph.ops, board.cpu)
    static_ram = runtime_ram + IO_BUFFER_BYTES + input_sram_bytes + port_static_ram_bytes(board)
    # AllocateTensors needs more than it leaves in use while it prepares ops and plans memory
    # (plan.required_bytes): the firmware reserves that, or it stops at boot in allocate-tensors.
    reserved = (plan.required_bytes + 15) // 16 * 16 + ARENA_MARGIN_BYTES
    sram_total = reserved + board.stack_bytes + board.heap_bytes + static_ram
    vector_bytes = _vector_bytes(graph, test_vectors)
    app = application_flash_bytes(board) + input_flash_bytes
    flash_total = graph.model_bytes + runtime + app + vector_bytes
    notes = [] if measured_core == board.cpu else [
        f"TFLM's code size was measured for {measured_core}, not {board.cpu}; the flash figure uses it."]
    if DECODE_OP in graph.ops:
        notes.append(DECODE_NOTE)
    return FitReport(
        board=board, graph=graph, model_path=model_path, kernels=target.kernels, plan=plan,
        arena_bytes=arena, arena_reserved_bytes=reserved,
        sram=Budget(sram_total, board.sram_size),
        flash=Budget(flash_total, board.app_flash_bytes),
        model_bytes=graph.model_bytes, runtime_bytes=runtime, app_bytes=app,
        test_vector_bytes=vector_bytes, test_vectors=test_vectors,
        stack_bytes=board.stack_bytes, static_ram_bytes=static_ram, runtime_core=measured_core,
        runtime_note=notes, memory_plan=memory_plan, tflm_plans=tflm_plans,
    )


def _check_fit_aot(graph: Graph, board: Board, model_path: str, test_vectors: int, input_sram_bytes: int,
                   input_flash_bytes: int, model_bytes: bytes | None, match: str, model_name: str,
                   lut_bits: int | None = None) -> FitReport:
    """SRAM: the planned arena, the stack, the port's statics. Flash: weights and parameter
    blocks, the code of the kernels used (measured per core), the application."""
    from .. import aot
    from ..aot.size import kernel_flash

    if model_bytes is None:
        raise TinygenError("internal: the AOT fit check compiles the model, so it needs its bytes.")
    compiled = aot.compile(graph, model_bytes, match, model_name, lut_bits)
    arena = compiled.arena
    code, core = kernel_flash(compiled.program.kernels, board.cpu)
    weights, params = compiled.weight_bytes, compiled.param_bytes
    plan = ArenaPlan(head_bytes=arena.size, tail_bytes=0, scratch_bytes=[], tail=[],
                     buffer_offsets={f"tensor {t}": o for t, o in arena.offsets.items()}, exact=True)
    static_ram = AOT_STATIC_RAM_BYTES + IO_BUFFER_BYTES + input_sram_bytes + port_static_ram_bytes(board)
    # an in-place form's stack buffer (tg_conv2d_add's run of pixels) comes on top of the port's stack
    sram_total = arena.size + arena.stack_bytes + board.stack_bytes + board.heap_bytes + static_ram
    vector_bytes = _vector_bytes(graph, test_vectors)
    app = application_flash_bytes(board) + input_flash_bytes
    flash_total = weights + params + code + app + vector_bytes
    notes = [] if core == board.cpu else [
        f"The AOT kernels' code size was measured for {core}, not {board.cpu}; the flash figure uses it."]
    return FitReport(
        board=board, graph=graph, model_path=model_path, kernels="aot", plan=plan,
        arena_bytes=arena.size, arena_reserved_bytes=arena.size,
        sram=Budget(sram_total, board.sram_size), flash=Budget(flash_total, board.app_flash_bytes),
        model_bytes=weights + params, runtime_bytes=code, app_bytes=app, test_vector_bytes=vector_bytes,
        stack_bytes=board.stack_bytes, static_ram_bytes=static_ram, runtime_core=core, runtime_note=notes,
        runtime="aot", compiled=compiled, test_vectors=test_vectors,
        tflm_plans=arena_plans(graph, Target.for_board(board), None)[1],   # for the memory timeline
    )


def _vector_bytes(graph: Graph, count: int) -> int:
    """Flash of `count` compiled-in test vectors: each an input and its expected output."""
    return count * (graph.tensors[graph.inputs[0]].nbytes + graph.tensors[graph.outputs[0]].nbytes)
