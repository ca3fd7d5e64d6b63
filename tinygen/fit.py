"""The fit check: does an int8 model, with the runtime that runs it, fit a board's flash and SRAM?"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from .analyze import Graph
from .arena import ArenaPlan, Target, plan_arena
from .boards import Board
from .errors import UnsupportedOpError
from .resources import resource_dir

# The application around the TFLM runtime (startup, board port, harness, main loop) comes
# from the board port's manifest, measured on linked firmware; a board without a port gets
# this allowance (the mps2 port with newlib-nano printf, tests/firmware/hello.c, is 7,280 B).
APP_FLASH_BYTES = 8 * 1024


def application_flash_bytes(board: Board) -> int:
    manifest = resource_dir("firmware") / "boards" / board.family / "port.toml"
    if manifest.exists():
        return int(tomllib.loads(manifest.read_text()).get("app_flash_bytes", APP_FLASH_BYTES))
    return APP_FLASH_BYTES
# The generated firmware reserves the arena rounded up to 16 bytes plus this margin, for a
# TFLM newer than the one tinygen's tables were measured on.
ARENA_MARGIN_BYTES = 1024
IO_BUFFER_BYTES = 256            # an allowance for the firmware's serial output buffer


@lru_cache(maxsize=None)
def _flash_table() -> dict:
    return json.loads((Path(__file__).parent / "data" / "tflm_flash.json").read_text())


# The core whose measured table stands in for one that was not measured.
_MEASURED_CORE = {"cortex-m0": "cortex-m0plus", "cortex-m0plus": "cortex-m0plus", "cortex-m3": "cortex-m4", "cortex-m4": "cortex-m4",
                  "cortex-m7": "cortex-m7", "cortex-m33": "cortex-m4"}
# Alignment and literal pools that symbol sizes do not show. Against real links of five op
# sets per core the symbol union was -0.7% to +3.0% of the linked .text (Thumb-1 code on
# the M0+ runs under); 1% on top keeps every one of those at or above the real size.
_LINK_SLACK = 0.01


@lru_cache(maxsize=None)
def tflm_ops() -> dict[str, str]:
    """Builtin op -> the MicroMutableOpResolver method that registers it."""
    return tomllib.loads((Path(__file__).parent / "data" / "tflm_ops.toml").read_text())["ops"]


def check_ops(graph: Graph) -> None:
    """Refuse a model that uses an op TFLM does not implement, naming it."""
    missing = [op for op in graph.ops if op not in tflm_ops()]
    if missing:
        names = ", ".join(missing)
        raise UnsupportedOpError(
            f"The model uses {names}, which TensorFlow Lite Micro does not implement; "
            "rebuild the model without it (or register a custom kernel of your own).", missing)


def runtime_flash(ops: list[str], cpu: str) -> tuple[int, int, str]:
    """(flash bytes, static RAM bytes, measured core) of the TFLM runtime with exactly these ops:
    the base interpreter plus the union of the code each op's kernel pulls in."""
    tables = _flash_table()
    core = _MEASURED_CORE.get(cpu, "cortex-m4")
    core = core if core in tables else "cortex-m4"
    table = tables[core]
    sizes = table["symbol_bytes"]
    kept: set[int] = set()
    for op in ops:
        kept.update(table["ops"][op])
    code = sum((sizes[i] + 3) // 4 * 4 for i in kept)
    total = table["base_text"] + code
    return total + math.ceil(total * _LINK_SLACK), table["base_ram"], core


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
    aot: dict | None = None          # with runtime "aot": what the AOT compiler planned

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
                tips.append(f"the compiled-in test vectors take {self.test_vector_bytes:,} of them (fewer with --vectors)")
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
                "total_bytes": self.flash.total_bytes,
                "budget_bytes": self.flash.budget_bytes,
                "headroom_bytes": self.flash.headroom_bytes,
                "fits": self.flash.fits,
            },
            "fits": self.fits,
        }


RUNTIMES = ("tflm", "aot")
# What the AOT firmware keeps in RAM besides the arena and the stack: the board port's and
# harness's statics. Measured (data + bss - arena): mps2-an386 16 B, SparkFun Edge 272 B
# (Ambiq HAL state); this plus IO_BUFFER_BYTES covers both.
AOT_STATIC_RAM_BYTES = 64


def check_fit(graph: Graph, board: Board, model_path: str = "", test_vectors: int = 0,
              input_sram_bytes: int = 0, input_flash_bytes: int = 0, runtime: str = "tflm",
              model_bytes: bytes | None = None) -> FitReport:
    """Flash and SRAM of `graph` on `board`, with the runtime (TFLM, or tinygen's AOT C;
    that one needs `model_bytes`) and the kernels the firmware will use.
    `test_vectors` compiled into the firmware cost their inputs and expected outputs in flash;
    an input device (a camera) costs its driver's flash and its frame buffer and state in SRAM."""
    if runtime == "aot":
        return _check_fit_aot(graph, board, model_path, test_vectors, input_sram_bytes, input_flash_bytes, model_bytes)
    if runtime != "tflm":
        from .errors import TinygenError

        raise TinygenError(f"--runtime must be one of {', '.join(RUNTIMES)}, not '{runtime}'.")
    check_ops(graph)
    target = Target.for_board(board)
    plan = plan_arena(graph, target)
    # The firmware declares the arena rounded up to 16 bytes, so its end is aligned as TFLM assumes.
    arena = plan.used_bytes
    runtime, runtime_ram, measured_core = runtime_flash(graph.ops, board.cpu)
    static_ram = runtime_ram + IO_BUFFER_BYTES + input_sram_bytes
    reserved = (arena + 15) // 16 * 16 + ARENA_MARGIN_BYTES
    sram_total = reserved + board.stack_bytes + board.heap_bytes + static_ram
    vector_bytes = test_vectors * (graph.tensors[graph.inputs[0]].nbytes + graph.tensors[graph.outputs[0]].nbytes)
    app = application_flash_bytes(board) + input_flash_bytes
    flash_total = graph.model_bytes + runtime + app + vector_bytes
    notes = [] if measured_core == board.cpu else [
        f"TFLM's code size was measured for {measured_core}, not {board.cpu}; the flash figure uses it."]
    return FitReport(
        board=board, graph=graph, model_path=model_path, kernels=target.kernels, plan=plan,
        arena_bytes=arena, arena_reserved_bytes=reserved,
        sram=Budget(sram_total, board.sram_size),
        flash=Budget(flash_total, board.app_flash_bytes),
        model_bytes=graph.model_bytes, runtime_bytes=runtime, app_bytes=app,
        test_vector_bytes=vector_bytes,
        stack_bytes=board.stack_bytes, static_ram_bytes=static_ram, runtime_core=measured_core,
        runtime_note=notes,
    )


def _check_fit_aot(graph: Graph, board: Board, model_path: str, test_vectors: int, input_sram_bytes: int,
                   input_flash_bytes: int, model_bytes: bytes | None) -> FitReport:
    """SRAM: the planned arena, the stack, the port's statics. Flash: weights and parameter
    blocks, the code of the kernels used (measured per core), the application."""
    from . import aot, aot_size

    program = aot.lower(graph, model_bytes)
    arena = aot.plan(program)
    aot.check_plan(program, arena)
    code, core = aot_size.kernel_flash(program.kernels, board.cpu)
    params = sum(aot_size.PARAM_BYTES[s.params_type] for s in program.steps if s.kernel)
    weights = sum((a[2].nbytes if a[1] == "int8_t" else 4 * a[2].size) for s in program.steps for a in s.arrays)
    plan = ArenaPlan(head_bytes=arena.size, tail_bytes=0, scratch_bytes=[], tail=[],
                     buffer_offsets={f"tensor {t}": o for t, o in arena.offsets.items()}, exact=True)
    static_ram = AOT_STATIC_RAM_BYTES + IO_BUFFER_BYTES + input_sram_bytes
    sram_total = arena.size + board.stack_bytes + board.heap_bytes + static_ram
    vector_bytes = test_vectors * (graph.tensors[graph.inputs[0]].nbytes + graph.tensors[graph.outputs[0]].nbytes)
    app = application_flash_bytes(board) + input_flash_bytes
    flash_total = weights + params + code + app + vector_bytes
    notes = [] if core == board.cpu else [
        f"The AOT kernels' code size was measured for {core}, not {board.cpu}; the flash figure uses it."]
    detail = {"steps": len([s for s in program.steps if s.kernel]), "kernels": program.kernels,
              "kernel_code_bytes": code, "weight_bytes": weights, "param_bytes": params,
              "arena_heuristic": arena.heuristic, "in_place_ops": [program.steps[i].op_index for i in arena.in_place]}
    return FitReport(
        board=board, graph=graph, model_path=model_path, kernels="aot", plan=plan,
        arena_bytes=arena.size, arena_reserved_bytes=arena.size,
        sram=Budget(sram_total, board.sram_size), flash=Budget(flash_total, board.app_flash_bytes),
        model_bytes=weights + params, runtime_bytes=code, app_bytes=app, test_vector_bytes=vector_bytes,
        stack_bytes=board.stack_bytes, static_ram_bytes=static_ram, runtime_core=core, runtime_note=notes,
        runtime="aot", aot=detail,
    )
