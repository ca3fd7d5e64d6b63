"""`tinygen run`: build a model's firmware, run it where no board is needed (QEMU's
mps2-an386, or this machine), and compare every output with the host's interpreter."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TinygenError
from .build import BuildOptions, build

Progress = Callable[[str, int | None, int | None], None]
HOST = "host"
# Under -icount shift=0 QEMU advances its clock 1 ns per instruction, so a tick of a counter at
# tick_hz (the port's) is 1e9 / tick_hz instructions: 40 for mps2's 25 MHz SysTick.
QEMU_INSTRUCTIONS_PER_SECOND = 1_000_000_000


@dataclass
class RunReport:
    board: str
    runtime: str
    vectors: int
    mismatches: int
    arena_bytes: int
    flash_bytes: int | None
    ticks: list[int]
    tick_unit: str
    reference: str
    stack_used_bytes: int | None = None
    sram_bytes: int | None = None            # arm-none-eabi-size data + bss
    estimate: dict = field(default_factory=dict)   # what the fit check predicted
    out_dir: Path | None = None
    other_mismatches: int | None = None      # host: against the interpreter not matched
    warnings: list[str] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)   # with --layers: op index, op, ticks, for the first input
    tick_hz: int | None = None               # QEMU: the rate of the port's counter

    @property
    def ticks_per_inference(self) -> int | None:
        return int(np.median(self.ticks)) if self.ticks else None

    @property
    def instructions_per_inference(self) -> int | None:
        if self.board == HOST or not self.ticks or not self.tick_hz:
            return None
        return round(self.ticks_per_inference * QEMU_INSTRUCTIONS_PER_SECOND / self.tick_hz)

    def to_json(self) -> dict:
        return {
            "board": self.board, "runtime": self.runtime, "vectors": self.vectors, "mismatches": self.mismatches,
            "reference": self.reference, "other_reference_mismatches": self.other_mismatches,
            "arena_bytes": self.arena_bytes, "flash_bytes": self.flash_bytes, "sram_bytes": self.sram_bytes,
            "stack_used_bytes": self.stack_used_bytes,
            "ticks_per_inference": self.ticks_per_inference, "tick_unit": self.tick_unit,
            "instructions_per_inference": self.instructions_per_inference,
            "ticks": self.ticks, "estimate": self.estimate,
            "out": str(self.out_dir) if self.out_dir else None, "warnings": self.warnings,
            **({"layers": self.layers} if self.layers else {}),
        }


def _noop(step: str, done: int | None = None, total: int | None = None) -> None:
    pass


def run(board_id: str, model_path: Path | None, data_path: Path | None = None, runtime: str = "aot",
        vectors: int = 10, out_dir: Path | None = None, tflm_root: Path | None = None,
        progress: Progress = _noop, timeout: float = 900.0, layers: bool = False, match: str = "tflm",
        force: bool = False) -> RunReport:
    if runtime not in ("aot", "tflm"):
        raise TinygenError(f"--runtime must be aot or tflm, not '{runtime}'.")
    if board_id == HOST:
        if layers:
            raise TinygenError("--layers times each layer from the firmware's cycle counter in QEMU; use "
                               "--board mps2-an386.")
        if runtime != "aot":
            raise TinygenError("--board host runs tinygen's AOT C on this machine; TFLM firmware needs "
                               "--board mps2-an386 (or a real board).")
        return _run_host(model_path, data_path, vectors, progress, match)
    if match != "tflm" and runtime != "aot":
        raise TinygenError("--match picks the arithmetic of tinygen's AOT C; TFLM firmware is TFLM's.")
    return _run_qemu(board_id, model_path, data_path, runtime, vectors, out_dir, tflm_root, progress, timeout, layers,
                     match, force)


@dataclass
class LayerComparison:
    """The same model as AOT and as TFLM firmware, timed layer by layer in the same QEMU."""
    aot: RunReport
    tflm: RunReport

    def layers(self) -> list[dict]:
        """Per operator: ticks under each runtime and AOT / TFLM (an op AOT runs as no kernel call,
        such as a RESHAPE that only renames a buffer, has 0 AOT ticks). An op AOT runs inside
        another op's call (a ring's second convolution, a fused ADD) is compared there: its row
        has `runs_in` and no ratio, and that op's row lists it in `with_ops` and takes its ratio
        against the TFLM ticks of them all."""
        def by_op(report: RunReport) -> dict[int, int]:
            ticks: dict[int, int] = {}
            for layer in report.layers:
                ticks[layer["op_index"]] = ticks.get(layer["op_index"], 0) + layer["ticks"]
            return ticks

        aot, tflm = by_op(self.aot), by_op(self.tflm)
        runs_in = {l["op_index"]: l["runs_in"] for l in self.aot.layers if "runs_in" in l}
        with_inside = dict(tflm)
        for i, host in runs_in.items():
            with_inside[host] = with_inside.get(host, 0) + tflm.get(i, 0)
        names = {l["op_index"]: l["op"] for l in self.tflm.layers + self.aot.layers}
        rows = []
        for i in sorted(set(aot) | set(tflm)):
            row = {"op_index": i, "op": names[i], "aot_ticks": aot.get(i, 0), "tflm_ticks": tflm.get(i, 0)}
            if i in runs_in:
                row.update(ratio=None, runs_in=runs_in[i])
            else:
                t = with_inside.get(i, 0)
                row["ratio"] = round(aot.get(i, 0) / t, 3) if t else None
                inside = sorted(j for j, h in runs_in.items() if h == i)
                if inside:
                    row["with_ops"] = inside
            rows.append(row)
        return rows

    @property
    def ratio(self) -> float | None:
        a, t = self.aot.ticks_per_inference, self.tflm.ticks_per_inference
        return round(a / t, 3) if a and t else None

    def to_json(self) -> dict:
        return {"aot": self.aot.to_json(), "tflm": self.tflm.to_json(), "ratio": self.ratio, "layers": self.layers()}


def compare_layers(board_id: str, model_path: Path | None, data_path: Path | None = None, vectors: int = 10,
                   out_dir: Path | None = None, tflm_root: Path | None = None, progress: Progress = _noop,
                   timeout: float = 900.0, force: bool = False) -> LayerComparison:
    """Run the model as AOT and as TFLM firmware with per-layer timing, in the same emulator, so
    that a user sees layer by layer where one runtime is slower (TFLM's ticks cover each operator's
    Invoke, AOT's each kernel call; both from the port's counter)."""
    if board_id == HOST:
        raise TinygenError("--compare times both runtimes in QEMU; use --board mps2-an386.")
    if tflm_root is None:   # said before the AOT firmware is built, not after
        raise TinygenError("--compare builds TFLM firmware too: set TFLM_ROOT (or pass --tflm-root) to a tflite-micro "
                           "checkout (git clone https://github.com/tensorflow/tflite-micro).")
    reports = {}
    for runtime in ("aot", "tflm"):
        progress(f"The {runtime.upper()} firmware", None, None)
        reports[runtime] = _run_qemu(board_id, model_path, data_path, runtime, vectors,
                                     Path(out_dir) / runtime if out_dir is not None else None, tflm_root, progress,
                                     timeout, layers=True, force=force)
    return LayerComparison(reports["aot"], reports["tflm"])


def _run_qemu(board_id, model_path, data_path, runtime, vectors, out_dir, tflm_root, progress, timeout,
              layers=False, match="tflm", force=False) -> RunReport:
    from ..boards import load_board
    from ..device import qemu
    from ..ports import port_for
    from ..project.make import compile_project

    board = load_board(board_id)
    port = port_for(board)
    if port.qemu_machine is None:
        raise TinygenError(f"{board.id} cannot be emulated; `tinygen run` boots mps2-an386 or bbc-microbit in QEMU, "
                           "or runs on --board host. Flash a real board with `tinygen flash`.")
    keep = out_dir is not None
    out_dir = Path(out_dir) if keep else Path(tempfile.mkdtemp(prefix="tinygen-run-"))
    try:
        result = build(board, model_path, data_path, out_dir, progress=progress,
                       opts=BuildOptions(vector_count=vectors, runtime=runtime, match=match, force=force))
        if not result.report.fits:
            raise TinygenError(f"The model does not fit {board.id}: {result.report.advice()}")
        progress("Compiling the firmware" + ("" if runtime == "aot" else " (TFLM's first build takes minutes)"), None, None)
        size = compile_project(out_dir, port, tflm_root, needs_tflm=runtime == "tflm",
                               make_args=["PROFILE_LAYERS=1"] if layers else None)
        progress("Running in QEMU (-icount shift=0)", None, None)
        rr = qemu.run(out_dir / "build" / "firmware.elf", port.qemu_machine, timeout)
    finally:
        if not keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    r = result.report
    ops = {o.index: o.op for o in r.graph.operators}
    runs_in = {}        # AOT: an op that runs inside another op's call is timed in that op's
    if r.compiled is not None:
        steps = r.compiled.program.steps
        runs_in = {steps[j].op_index: steps[h].op_index for j, h in r.compiled.arena.runs_in.items()}
    return RunReport(
        board=board.id, runtime=runtime, vectors=rr.vectors, mismatches=rr.mismatches,
        arena_bytes=rr.arena_used_bytes or 0, flash_bytes=size.text + size.data, ticks=rr.cycles,
        tick_unit=f"{port.tick_source} at {port.tick_hz:,} Hz under QEMU -icount shift=0 (1 ns per instruction): "
                  "deterministic, not a real chip's cycles", tick_hz=port.tick_hz,
        reference="tflite" if match == "tflite" else "tflite-micro", stack_used_bytes=rr.stack_used_bytes, sram_bytes=size.data + size.bss,
        estimate={"flash_bytes": r.flash.total_bytes, "arena_bytes": r.arena_bytes, "sram_bytes": r.sram.total_bytes},
        out_dir=out_dir if keep else None, warnings=result.warnings,
        layers=[{"op_index": i, "op": ops.get(i, "?"), "ticks": c, **({"runs_in": runs_in[i]} if i in runs_in else {})}
                for i, c in rr.layers],
    )


def sample_inputs(graph, data_path: Path | None, count: int) -> tuple[np.ndarray, str]:
    """int8 inputs: the first `count` samples of --data, or generated ones."""
    from ..model import data as data_mod
    from ..model.data import quantize_samples

    shape = graph.tensors[graph.inputs[0]].shape
    if data_path is not None:
        classes = data_mod.output_classes(graph.tensors[graph.outputs[0]].shape)
        ds = data_mod.conform(data_mod.load_data(data_path, "input samples"), shape, "input samples", classes)
    else:
        ds = data_mod.generated(shape, count=count)
    return quantize_samples(graph, np.asarray(ds.x[:count])), ds.source


def _run_host(model_path, data_path, vectors, progress, match="tflm") -> RunReport:
    from ..aot.host import build_host
    from ..boards import load_board
    from ..model.evaluate import tflite_reference
    from ..tflm.interpreter import int8_predict

    # The quantization is the board's business only through the fit check; any board will do.
    result = build(load_board("mps2-an386"), model_path, data_path, None, progress=progress,
                   opts=BuildOptions(runtime="aot", match=match))
    model_bytes, graph, compiled = result.model_bytes, result.report.graph, result.report.compiled
    inputs, source = sample_inputs(graph, data_path, vectors)
    progress("Compiling for this machine", None, None)
    workdir = Path(tempfile.mkdtemp(prefix="tinygen-host-"))
    try:
        hm = build_host(compiled.files, compiled.program, workdir)
        progress("Running", None, None)
        out, ns = hm.run(inputs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    progress("Reference outputs (TFLite Micro, TFLite)", None, None)
    micro = int8_predict(model_bytes, graph, inputs).reshape(out.shape)
    differs = lambda a, b: int((a != b).reshape(len(a), -1).any(axis=1).sum())  # noqa: E731
    tfl = tflite_reference(model_bytes, inputs)
    if match == "tflite" and tfl is None:
        raise TinygenError("TFLite's interpreter rejects this model, so there is nothing to --match tflite against.")
    other = micro if match == "tflite" else tfl
    return RunReport(
        board=HOST, runtime="aot", vectors=len(inputs),
        mismatches=differs(out, tfl.reshape(out.shape) if match == "tflite" else micro), arena_bytes=compiled.arena.size,
        flash_bytes=None, ticks=[int(round(ns))], tick_unit="nanoseconds of wall clock on this machine (mean)",
        reference="tflite" if match == "tflite" else "tflite-micro",
        other_mismatches=None if other is None else differs(out, other.reshape(out.shape)),
        estimate={"arena_bytes": result.report.arena_bytes}, warnings=result.warnings + [f"inputs: {source}"],
    )
