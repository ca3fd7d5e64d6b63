"""`tinygen build` (and `fit`), as named stages a test can call one by one:

    resolve_inputs -> quantize_and_score -> plan_memory -> check -> write_outputs -> compile_and_run

`build()` runs them in order; the CLI only parses options, calls it and renders the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..boards import Board
from ..errors import FirmwareError, TinygenError
from ..files import add_to_tree, check_out_dir, write_tree
from ..fit import FitReport, check_fit
from ..model import data as data_mod, quantize
from ..model.data import Dataset
from ..model.data import quantize_samples
from ..model.evaluate import Accuracy, accuracy, tflite_reference
from ..model.examples import digits_model_path, digits_splits
from ..model.graph import Graph, parse
from ..model.source import ModelSource, detect, float_predict, input_shape, load_keras, output_shape
from ..ports import find_port, port_for
from ..project import codegen
from ..project.render import ProjectError, render_aot_project, render_project
from ..tflm.interpreter import check_runs, int8_predict

Progress = Callable[[str, int | None, int | None], None]   # (step, done, total)


def _noop(step: str, done: int | None = None, total: int | None = None) -> None:
    pass


@dataclass
class BuildOptions:
    """What the firmware gets, beyond the model: the options of `tinygen build`."""
    input_source: str = "test-vectors"
    vector_count: int = 10
    project: bool = True
    harness: str = "tinygen"
    raw_output: bool = False
    runtime: str = "tflm"
    match: str = "tflm"
    eval_limit: int = 1000
    force: bool = False          # write into an --out that holds the user's files, beside them
    tflm_plan: str = "auto"      # TFLM's memory plan: tinygen's offline plan, TFLM's greedy one, or the smaller
    mlperf_model: str | None = None      # --harness mlperf: the benchmark id to report, when the model is not recognised
    mlperf_mode: str = "performance"     # --harness mlperf: "energy" pulses the board's timestamp pin instead of laps
    dense: str = "auto"          # FULLY_CONNECTED weights per-channel, per-tensor, or per-tensor where it costs <= 0.1 point
    compress: str = "off"        # weights clustered post-training: off, auto, or index bits 2-7 (pipeline/compress.py)
    max_accuracy_drop: float | None = None   # --compress auto's limit, in points (default compress.COMPRESS_MAX_DROP)


@dataclass
class Inputs:
    """The model and data a build starts from, checked against each other."""
    source: ModelSource
    keras_model: object | None
    calibration: Dataset
    validation: Dataset | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Quantized:
    model_bytes: bytes
    graph: Graph
    accuracy: Accuracy
    samples: Dataset           # where test vectors come from: the evaluation set, else the calibration set
    dense: quantize.DenseChoice | None = None   # how dense layers were quantized, for a float model with any
    memory_plan: object | None = None   # tflm.offline_plan.PlanChoice, once plan_memory chose
    uncompressed: bytes | None = None   # model_bytes are TFLM compressed tensors: the clustered int8 model
    lut_bits: int | None = None         # the weights clustered to this many index bits: --runtime aot stores them so


@dataclass
class BuildResult:
    report: FitReport
    model_bytes: bytes
    accuracy: Accuracy
    calibration_source: str
    warnings: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)
    project: bool = False
    project_port: str | None = None      # the firmware port that made the project
    project_files: list[str] = field(default_factory=list)
    project_reason: str | None = None    # why there is no project, where there is none
    size: object | None = None       # project.make.ImageSize, with --compile
    run: object | None = None        # device.qemu.RunResult, with --run
    dense: quantize.DenseChoice | None = None
    compress: object | None = None   # pipeline.compress.CompressChoice, with --compress

    def to_json(self) -> dict:
        j = self.report.to_json()
        a = self.accuracy
        j["accuracy"] = {
            "float": a.float_top1, "int8": a.int8_top1, "samples": a.samples, "measured_by": a.kind,
        }
        if self.dense is not None:
            j["accuracy"]["dense_layers"] = self.dense.to_json()
        j["calibration"] = self.calibration_source
        if self.compress is not None:
            j["compress"] = self.compress.to_json()
        j["warnings"] = self.warnings
        if self.out_dir is not None:
            j["out"] = str(self.out_dir)
            j["files"] = self.files
            j["project"] = ({"port": self.project_port, "runtime": self.report.runtime, "files": self.project_files}
                            if self.project else None)
            if not self.project:
                j["project_reason"] = self.project_reason
        if self.size is not None:
            j["size"] = {"text": self.size.text, "data": self.size.data, "bss": self.size.bss}
        if self.run is not None:
            j["run"] = {"arena_used_bytes": self.run.arena_used_bytes, "vectors": self.run.vectors,
                        "mismatches": self.run.mismatches, "cycles": self.run.cycles}
        return j


# --- stage 1: inputs ----------------------------------------------------------------------

def resolve_inputs(model_path: Path | None, data_path: Path | None = None, val_path: Path | None = None,
                   calibration: Dataset | None = None, validation: Dataset | None = None) -> Inputs:
    """The model (default: the bundled digits example, with its own split) and its calibration and
    validation samples (paths, or data sets already in memory), each checked against the model's
    input. Without data, generated samples and a warning."""
    warnings: list[str] = []
    bundled = model_path is None
    src = detect(digits_model_path() if bundled else model_path)
    # The files before the model: a damaged file or a NaN is refused before TensorFlow (or
    # scikit-learn, for the bundled digits) loads, which takes seconds.
    data_file = data_mod.load_data(data_path, "calibration data") if data_path is not None else None
    val_file = data_mod.load_data(val_path, "validation data") if val_path is not None else None
    if bundled and ((calibration is None and data_file is None) or (validation is None and val_file is None)):
        train, test = digits_splits()
        calibration = calibration if calibration is not None or data_file is not None else train
        validation = validation if validation is not None else test
    keras_model = load_keras(src) if src.kind == "keras" else None
    if src.kind == "tflite":
        g0 = parse(src.path.read_bytes(), src.name)
        in_shape, out_shape = g0.tensors[g0.inputs[0]].shape, g0.tensors[g0.outputs[0]].shape
    else:
        in_shape, out_shape = input_shape(src, keras_model), output_shape(src, keras_model)
    classes = data_mod.output_classes(out_shape)

    if data_file is not None:
        calibration = data_mod.conform(data_file, in_shape, "calibration data", classes)
    elif calibration is None:
        calibration = data_mod.generated(in_shape)
        if src.kind == "tflite":
            warnings.append("No --data given: the model is already int8, but its accuracy is not measured.")
        else:
            warnings.append(
                "No --data given: calibrated on generated samples, so the int8 accuracy is unknown; "
                "pass real samples with --data for a quantization you can trust."
            )
    else:
        calibration = data_mod.conform(calibration, in_shape, "calibration data", classes)
    if val_file is not None or validation is not None:
        validation = data_mod.conform(val_file if val_file is not None else validation, in_shape,
                                      "validation data", classes)
    elif calibration.y is not None:
        validation = calibration
        warnings.append("Accuracy is measured on the calibration data; pass --val for held-out data.")
    return Inputs(src, keras_model, calibration, validation, warnings)


# --- stage 2: int8, and what it cost -------------------------------------------------------

def quantize_and_score(inputs: Inputs, eval_limit: int = 1000, progress: Progress = _noop,
                       dense: str = "auto") -> Quantized:
    """Full-integer int8 (an int8 .tflite passes through), then accuracy: float through the source
    model, int8 through the tflite-micro interpreter; without labels, int8-vs-float agreement.
    Dense layers per channel, per tensor, or ("auto") per tensor where that scores within 0.1 point."""
    from ..model.tf import quiet

    src = inputs.source
    progress("Quantizing to int8", None, None)
    with quiet():
        model_bytes = quantize.quantize(src, inputs.calibration, inputs.keras_model,
                                        dense="per-tensor" if dense == "per-tensor" else "per-channel")
    graph = parse(model_bytes, src.name)
    progress("Running it once in TFLite Micro", None, None)
    check_runs(model_bytes, graph, src.name)   # TFLM allocates and runs it, in a child process it may crash
    acc = Accuracy(None, None, 0, "none")
    eval_set = inputs.validation if inputs.validation is not None else (
        inputs.calibration if src.kind != "tflite" else None)
    if eval_set is not None:
        xs = eval_set.x[:eval_limit]
        ys = eval_set.y[:eval_limit] if eval_set.y is not None else None
        float_out = None
        if src.kind != "tflite":
            progress("Float accuracy", None, None)
            with quiet():
                float_out = float_predict(src, xs, inputs.keras_model)
        total = len(xs)
        int8_out = int8_predict(model_bytes, graph, xs, lambda n: progress("Int8 accuracy (TFLite Micro)", n, total))
        acc = accuracy(float_out, int8_out, ys)
    choice = None
    if src.kind != "tflite" and dense != "per-tensor" and quantize.per_channel_dense(graph):
        choice = quantize.DenseChoice("per-channel", dense, acc.int8_top1, None, acc.kind, acc.samples)
        if dense == "auto" and eval_set is not None:
            choice, pt = _per_tensor_if_free(inputs, acc, float_out, xs, ys, choice, progress)
            if pt is not None:
                model_bytes, graph, acc = pt
    elif src.kind != "tflite" and dense == "per-tensor" and "FULLY_CONNECTED" in graph.ops:
        choice = quantize.DenseChoice("per-tensor", dense, None, acc.int8_top1, acc.kind, acc.samples)
    return Quantized(model_bytes, graph, acc, eval_set if eval_set is not None else inputs.calibration, dense=choice)


def _per_tensor_if_free(inputs: Inputs, acc: Accuracy, float_out, xs, ys, per_channel: quantize.DenseChoice,
                        progress: Progress):
    """The model again with per-tensor dense layers, scored on the same samples; kept where it is
    within 0.1 point of per-channel (quantize.choose_dense). Returns the choice, and the per-tensor
    (bytes, graph, accuracy) where it is chosen, else None."""
    from dataclasses import replace

    from ..model.tf import quiet

    src = inputs.source
    progress("Quantizing dense layers per tensor", None, None)
    with quiet():
        pt_bytes = quantize.quantize(src, inputs.calibration, inputs.keras_model, dense="per-tensor")
    pt_graph = parse(pt_bytes, src.name)
    check_runs(pt_bytes, pt_graph, src.name)
    total = len(xs)
    pt_out = int8_predict(pt_bytes, pt_graph, xs,
                          lambda n: progress("Int8 accuracy, per-tensor dense (TFLite Micro)", n, total))
    pt_acc = accuracy(float_out, pt_out, ys)
    chosen = quantize.choose_dense(acc.int8_top1, pt_acc.int8_top1)
    choice = replace(per_channel, chosen=chosen, per_tensor=pt_acc.int8_top1)
    return choice, ((pt_bytes, pt_graph, pt_acc) if chosen == "per-tensor" else None)


# --- stage 3: the memory plan, and the fit ---------------------------------------------------

def plan_memory(board: Board, q: Quantized, opts: BuildOptions) -> Quantized:
    """For TFLM: the model with tinygen's offline memory plan in its metadata, or without, as
    opts.tflm_plan asks ("auto": whichever arena is smaller on the board). Outputs are unchanged."""
    if opts.runtime != "tflm":
        return q
    from dataclasses import replace

    from ..tflm.arena import Target
    from ..tflm.offline_plan import choose

    model_bytes, graph, choice = choose(q.model_bytes, q.graph, Target.for_board(board), opts.tflm_plan)
    return replace(q, model_bytes=model_bytes, graph=graph, memory_plan=choice)


# What the MLPerf Tiny DUT (firmware/common/mlperf_dut.c) adds to the firmware beyond the tinygen
# harness's serial loop: its code and the libc it pulls in. Measured on KWS firmware, linked
# text + data with --harness mlperf against --input serial: AOT +6,200 B on mps2-an386's
# Cortex-M4F, +12,260 B on the micro:bit's M0 (its float printing and arithmetic in software);
# TFLM +2,640 B (M4F) and +2,720 B (the Pico's M0+), its main loop already linking more of libc.
# Rounded up to 512 B. In SRAM: the runner's payload buffer, the float32 inputs staged for
# quantization (ad01) and the DUT's statics (KWS: payload 490 B, +528 B measured).
MLPERF_DUT_FLASH_BYTES = {("aot", True): 6656, ("aot", False): 12288, ("tflm", True): 3072, ("tflm", False): 3072}
MLPERF_DUT_STATIC_BYTES = 64


def mlperf_dut_cost(board: Board, graph, model_path: str, opts: BuildOptions) -> tuple[int, int]:
    """(flash, SRAM) bytes the MLPerf Tiny DUT adds for this model's benchmark."""
    from ..model.mlperf_tiny import benchmark_for

    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    b = benchmark_for(Path(model_path).name, graph.sha256, t_in.shape, t_out.elements, opts.mlperf_model)
    staged = b.input_elements if b.input_kind == "float32" else 0
    flash = MLPERF_DUT_FLASH_BYTES[(opts.runtime, board.fpu != "none")]
    return flash, b.payload_bytes + staged + MLPERF_DUT_STATIC_BYTES


def check(board: Board, q: Quantized, model_path: str, opts: BuildOptions, writes_project: bool) -> FitReport:
    """The fit check, counting what the firmware will hold besides the model: compiled-in test
    vectors, a camera's driver and frame buffer."""
    port = find_port(board) if writes_project and opts.project else None
    vectors_in_flash = port is not None and opts.input_source == "test-vectors" and opts.harness == "tinygen"
    camera_flash, camera_sram = (port.camera_cost() if port is not None and opts.input_source == "camera"
                                 and opts.harness == "tinygen" else (0, 0))
    n_vectors = min(opts.vector_count, len(q.samples)) if vectors_in_flash else 0
    if port is not None and opts.harness == "mlperf":
        camera_flash, camera_sram = mlperf_dut_cost(board, q.graph, model_path, opts)
    report = check_fit(q.graph, board, model_path, n_vectors, camera_sram, camera_flash,
                       runtime=opts.runtime, model_bytes=q.model_bytes, match=opts.match,
                       model_name=Path(model_path).name, memory_plan=q.memory_plan, lut_bits=q.lut_bits)
    return fit_test_vectors(report)


def fit_test_vectors(report: FitReport) -> FitReport:
    """Test vectors are a check, not the product: where all of them would push the firmware over
    the board's flash but the model fits, as many as fit are compiled in (see vectors_note)."""
    n = report.test_vectors
    if not n or report.flash.fits:
        return report
    per = report.test_vector_bytes // n
    room = report.flash.headroom_bytes + report.test_vector_bytes    # headroom without any vectors
    k = min(n, room // per) if per and room > 0 else 0
    return report.with_test_vectors(k) if k else report


def vectors_note(report: FitReport, asked: int) -> str | None:
    """What to tell the user when fewer test vectors went in than were asked for."""
    if report.test_vectors and report.test_vectors < asked:
        per = report.test_vector_bytes // report.test_vectors
        return (f"Only {report.test_vectors} of the {asked} test vectors fit in flash ({per:,} bytes each): the "
                f"firmware checks {report.test_vectors}. Pass --vectors to choose, or --input serial to send inputs.")
    return None


# --- stage 4: the outputs, one writer per kind ---------------------------------------------

def test_vectors(q: Quantized, count: int, reference: str = "tflm") -> tuple[np.ndarray, np.ndarray]:
    """(int8 inputs, expected outputs) from the evaluation samples, the outputs from the host's
    interpreter: tflite-micro's, or TFLite's reference kernels' with reference "tflite"."""
    vin = quantize_samples(q.graph, np.asarray(q.samples.x[:count]))
    if reference == "tflite":
        expected = tflite_reference(q.model_bytes, vin)
        if expected is None:
            raise ProjectError("TFLite's interpreter rejects this model; use --match tflm.")
        return vin, expected
    return vin, int8_predict(q.model_bytes, q.graph, vin)


def model_files(q: Quantized, model_name: str, in_src: bool) -> dict[str, str | bytes]:
    """model.tflite, and the flatbuffer as a C array for TFLM (model_data.h/.cc)."""
    d = "src/" if in_src else ""
    return {f"{d}model_data.h": codegen.model_header("g_model", model_name, q.graph.sha256, len(q.model_bytes)),
            f"{d}model_data.cc": codegen.model_source(q.model_bytes, "g_model", model_name, q.graph.sha256)}


def tflm_project_files(report: FitReport, q: Quantized, model_name: str, opts: BuildOptions,
                       progress: Progress = _noop) -> dict[str, str | bytes]:
    vectors = None
    if opts.input_source == "test-vectors" and opts.harness == "tinygen":
        progress("Test vectors (TFLite Micro)", None, None)
        vectors = test_vectors(q, report.test_vectors)
    return render_project(report, model_name, opts.input_source, vectors,
                          q.samples.source if vectors is not None else "", harness=opts.harness,
                          raw_output=opts.raw_output, mlperf_model=opts.mlperf_model, mlperf_mode=opts.mlperf_mode)


def aot_project_files(report: FitReport, q: Quantized, model_name: str, opts: BuildOptions,
                      progress: Progress = _noop) -> dict[str, str | bytes]:
    vectors = None
    reference = "TFLite" if opts.match == "tflite" else "TFLite Micro"
    if opts.input_source == "test-vectors" and opts.harness == "tinygen":
        progress(f"Test vectors ({reference})", None, None)
        vectors = test_vectors(q, report.test_vectors, opts.match)
    return render_aot_project(report, model_name, opts.input_source, vectors,
                              q.samples.source if vectors is not None else "", raw_output=opts.raw_output,
                              harness=opts.harness, reference=reference, mlperf_model=opts.mlperf_model,
                              mlperf_mode=opts.mlperf_mode)


def write_outputs(result: BuildResult, q: Quantized, model_name: str, out_dir: Path, opts: BuildOptions,
                  progress: Progress = _noop) -> BuildResult:
    """Everything `build` writes, all at once (files.write_tree): model.tflite, fit.json, and the
    firmware project where the board has a port (TFLM or AOT), or the AOT C alone where it has none."""
    progress("Writing outputs", None, None)
    report, board = result.report, result.report.board
    has_port = opts.project and find_port(board) is not None
    files: dict[str, str | bytes] = {"model.tflite": q.model_bytes}
    if q.uncompressed is not None:   # --compress: the clustered int8 model, and as TFLM compressed tensors
        files = {"model.tflite": q.uncompressed, "model.compressed.tflite": q.model_bytes}
    if opts.runtime == "tflm":
        files.update(model_files(q, model_name, in_src=has_port))
    if has_port:
        maker = aot_project_files if opts.runtime == "aot" else tflm_project_files
        files.update(maker(report, q, model_name, opts, progress))
        result.project, result.project_port = True, find_port(board).family
        result.project_files = sorted(set(files) - {"model.tflite", "model.compressed.tflite"})
    elif not opts.project:
        result.project_reason = "--no-project: the model and the fit report only"
    else:
        result.project_reason = f"tinygen has no firmware port for {board.id} ({board.family}) yet"
        if opts.runtime == "aot":
            # No board port, but the model as C is portable: aot/ drops into any C99 project.
            files.update({f"aot/{k}": v for k, v in report.compiled.files.items()})
            result.warnings.append(f"{result.project_reason}: wrote the model as C (aot/: add tg_model.c and the "
                                   "tg_*.c kernels to your project; tg_model.h says how to call it) and the fit "
                                   "report, not a firmware project.")
        else:
            result.warnings.append(f"{result.project_reason}: wrote the model and the fit report, not a firmware "
                                   "project.")
    result.out_dir = out_dir
    result.files = sorted(list(files) + ["fit.json"])
    files["fit.json"] = json.dumps(result.to_json(), indent=2) + "\n"
    # build/ is where the project's Makefile puts objects and image: tinygen's (emptied on the next
    # write, so no stale firmware outlives its model) whether tinygen or the user ran make.
    write_tree(out_dir, files, force=opts.force, trees=("build",) if "Makefile" in files else ())
    return result


# --- the pipeline -----------------------------------------------------------------------

def build(board: Board, model_path: Path | None, data_path: Path | None, out_dir: Path | None,
          val_path: Path | None = None, opts: BuildOptions | None = None, progress: Progress = _noop,
          calibration: Dataset | None = None, validation: Dataset | None = None) -> BuildResult:
    """Inputs, int8 and accuracy, the fit, and (with out_dir) the outputs. Without out_dir it is
    `tinygen fit`: nothing is written."""
    opts = opts or BuildOptions()
    if opts.match != "tflm" and opts.runtime != "aot":
        raise TinygenError("--match picks the arithmetic of tinygen's AOT C; it needs --runtime aot.")
    if opts.dense not in quantize.DENSE:
        raise TinygenError(f"--dense must be auto, per-channel or per-tensor, not '{opts.dense}'.")
    if opts.tflm_plan not in ("auto", "offline", "greedy"):
        raise TinygenError(f"--tflm-plan must be auto, offline or greedy, not '{opts.tflm_plan}'.")
    if opts.tflm_plan != "auto" and opts.runtime != "tflm":
        raise TinygenError("--tflm-plan picks TFLM's memory plan; it needs --runtime tflm.")
    if (opts.mlperf_model is not None or opts.mlperf_mode != "performance") and opts.harness != "mlperf":
        raise TinygenError("--mlperf-model and --mlperf-mode describe the MLPerf Tiny DUT; they need --harness mlperf.")
    if opts.mlperf_mode not in ("performance", "energy"):
        raise TinygenError(f"--mlperf-mode must be one of performance, energy, not '{opts.mlperf_mode}'.")
    if opts.compress != "off" or opts.max_accuracy_drop is not None:
        from .compress import check_compress_options

        check_compress_options(opts.compress, opts.max_accuracy_drop)
    if out_dir is not None:
        check_out_dir(out_dir, opts.force)    # a folder of the user's is refused before any work, not after
    progress("Reading the model", None, None)
    inputs = resolve_inputs(model_path, data_path, val_path, calibration, validation)
    q = quantize_and_score(inputs, opts.eval_limit, progress, opts.dense)
    choice = table = None
    if opts.compress != "off":
        q, choice, table = compress_stage(board, q, inputs, opts, str(model_path or inputs.source.path),
                                          out_dir is not None, progress)
    q = plan_memory(board, q, opts)
    progress("Checking the fit", None, None)
    model_name = inputs.source.name
    report = check(board, q, str(model_path or inputs.source.path), opts, writes_project=out_dir is not None)
    if table is not None:
        report.compression = table
    result = BuildResult(report, q.model_bytes, q.accuracy, inputs.calibration.source, inputs.warnings)
    result.dense, result.compress = q.dense, choice
    note = vectors_note(report, min(opts.vector_count, len(q.samples)))
    if note:
        result.warnings.append(note)
    if out_dir is not None:
        write_outputs(result, q, model_name, out_dir, opts, progress)
    return result


def compress_stage(board: Board, q: Quantized, inputs: Inputs, opts: BuildOptions, model_path: str,
                   writes_project: bool, progress: Progress = _noop):
    """`--compress`: the int8 weights clustered post-training (pipeline/compress.py), each try
    scored by this build's own fit check. Returns (Quantized, CompressChoice, compression table)."""
    from . import compress

    asked = compress.parse_compress(opts.compress)
    fit = lambda qq: check(board, plan_memory(board, qq, opts), model_path, opts, writes_project)  # noqa: E731
    q, choice, table = compress.compress_weights(q, opts.runtime, asked, opts.max_accuracy_drop, fit,
                                                 inputs.keras_model, opts.eval_limit, progress)
    if choice.bits is not None and q.accuracy.kind != "labels":
        inputs.warnings.append(f"The accuracy shown is the unclustered int8 model's; the {choice.bits}-bit clustered "
                               f"one is measured by {choice.measured_by}: {choice.score:.2%}.")
    return q, choice, table


def compile_and_run(result: BuildResult, tflm_root: Path | None, sdk_roots: dict[str, Path | None],
                    run: bool = False, progress: Progress = _noop) -> BuildResult:
    """`make` the project written by build(); with run, boot it in QEMU. fit.json is updated."""
    from ..device import qemu
    from ..project.make import compile_project

    board = result.report.board
    if result.out_dir is None or not result.project:
        raise FirmwareError(f"There is no firmware project to compile for {board.id}.")
    port = port_for(board)
    if run and port.qemu_machine is None:
        raise FirmwareError(
            f"--run boots the image in an emulator, and {board.id} has none; flash build/firmware.bin instead "
            "(see the project's README.md), or use --board mps2-an386.")
    aot = result.report.runtime == "aot"
    progress("Compiling the firmware" + ("" if aot else " (TFLM's first build takes minutes)"), None, None)
    add_to_tree(result.out_dir, trees=("build",))   # refuses a build/ that is not tinygen's
    result.size = compile_project(result.out_dir, port, None if aot else tflm_root, needs_tflm=not aot, sdk_roots=sdk_roots)
    if run:
        progress("Running in QEMU", None, None)
        result.run = qemu.run(result.out_dir / "build" / "firmware.elf", port.qemu_machine)
    add_to_tree(result.out_dir, {"fit.json": json.dumps(result.to_json(), indent=2) + "\n"})
    return result


def shrink_first(board: Board, model_path: Path | None, data_path: Path | None, val_path: Path | None,
                 max_drop: float | None, progress: Progress = _noop, runtime: str = "tflm"):
    """`build --shrink auto`'s first half: the search for the most accurate thinner model that fits
    (measured for `runtime`). Returns the search result and the shrink inputs, whose data the build
    then uses."""
    from ..shrink.recipe import shrink_inputs
    from ..shrink.search import run_search

    inputs = shrink_inputs(model_path, data_path, val_path)
    result = run_search(board, inputs.teacher, inputs.source.path, inputs.train, inputs.val, max_drop, None, 10,
                        Path("build") / f"{board.id}-shrunk", progress, runtime=runtime)
    return result, inputs
