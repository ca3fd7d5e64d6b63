"""`tinygen build`: quantize, analyze, check the fit, write the outputs. The CLI renders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import analyze, codegen, data as data_mod, examples, models, project as project_mod, quantize
from .boards import Board
from .evaluate import Accuracy, accuracy, int8_predict, quantize_samples
from .fit import FitReport, check_fit
from .outputs import write_tree

Progress = Callable[[str, int | None, int | None], None]   # (step, done, total)


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
    size: object | None = None       # firmware.ImageSize, with --compile
    run: object | None = None        # firmware.RunResult, with --run

    def to_json(self) -> dict:
        j = self.report.to_json()
        a = self.accuracy
        j["accuracy"] = {
            "float": a.float_top1, "int8": a.int8_top1, "samples": a.samples, "measured_by": a.kind,
        }
        j["calibration"] = self.calibration_source
        j["warnings"] = self.warnings
        if self.out_dir is not None:
            j["out"] = str(self.out_dir)
            j["files"] = self.files
        if self.size is not None:
            j["size"] = {"text": self.size.text, "data": self.size.data, "bss": self.size.bss}
        if self.run is not None:
            j["run"] = {"arena_used_bytes": self.run.arena_used_bytes, "vectors": self.run.vectors,
                        "mismatches": self.run.mismatches, "cycles": self.run.cycles}
        return j


def _noop(step: str, done: int | None = None, total: int | None = None) -> None:
    pass


def build(board: Board, model_path: Path | None, data_path: Path | None, out_dir: Path | None,
          val_path: Path | None = None, eval_limit: int = 1000, progress: Progress = _noop,
          input_source: str = "test-vectors", vector_count: int = 10, project: bool = True,
          harness: str = "tinygen", raw_output: bool = False, runtime: str = "tflm",
          match: str = "tflm") -> BuildResult:
    warnings: list[str] = []
    validation = None
    if match != "tflm" and runtime != "aot":
        from .errors import TinygenError

        raise TinygenError("--match picks the arithmetic of tinygen's AOT C; it needs --runtime aot.")
    if model_path is None:
        model_path = examples.digits_model_path()
        train, test = examples.digits_splits()
        calibration = train if data_path is None else None
        validation = test
    else:
        calibration = None

    progress("Reading the model", None, None)
    src = models.detect(model_path)
    keras_model = models.load_keras(src) if src.kind == "keras" else None

    if src.kind == "tflite":
        source_bytes = src.path.read_bytes()
        g0 = analyze.parse(source_bytes, src.name)
        in_shape = g0.tensors[g0.inputs[0]].shape
    else:
        in_shape = models.input_shape(src, keras_model)

    if data_path is not None:
        calibration = data_mod.conform(data_mod.load_data(data_path), in_shape)
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
        calibration = data_mod.conform(calibration, in_shape)
    if val_path is not None:
        validation = data_mod.conform(data_mod.load_data(val_path), in_shape, "validation data")
    elif validation is not None:
        validation = data_mod.conform(validation, in_shape, "validation data")
    elif calibration.y is not None:
        validation = calibration
        warnings.append("Accuracy is measured on the calibration data; pass --val for held-out data.")

    progress("Quantizing to int8", None, None)
    from ._tf import quiet

    with quiet():
        model_bytes = quantize.quantize(src, calibration, keras_model)
    graph = analyze.parse(model_bytes, src.name)

    acc = Accuracy(None, None, 0, "none")
    # Without labels, int8-vs-float agreement still says what quantization cost.
    eval_set = validation if validation is not None else (calibration if src.kind != "tflite" else None)
    if eval_set is not None:
        xs = eval_set.x[:eval_limit]
        ys = eval_set.y[:eval_limit] if eval_set.y is not None else None
        float_out = None
        if src.kind != "tflite":
            progress("Float accuracy", None, None)
            with quiet():
                float_out = models.float_predict(src, xs, keras_model)
        total = len(xs)
        int8_out = int8_predict(model_bytes, graph, xs, lambda n: progress("Int8 accuracy (TFLite Micro)", n, total))
        acc = accuracy(float_out, int8_out, ys)

    progress("Checking the fit", None, None)
    pool = eval_set if eval_set is not None else calibration   # where test vectors come from
    n_vectors = min(vector_count, len(pool))
    vectors_in_flash = (out_dir is not None and project and input_source == "test-vectors"
                        and harness == "tinygen" and project_mod.has_port(board))
    camera_flash, camera_sram = (project_mod.camera_cost(board)
                                 if out_dir is not None and project and input_source == "camera" and harness == "tinygen"
                                 else (0, 0))
    report = check_fit(graph, board, str(model_path), n_vectors if vectors_in_flash else 0, camera_sram, camera_flash,
                       runtime=runtime, model_bytes=model_bytes)
    result = BuildResult(report, model_bytes, acc, calibration.source, warnings)

    if out_dir is not None:
        progress("Writing outputs", None, None)
        symbol = "g_model"
        files: dict[str, str | bytes] = {"model.tflite": model_bytes}
        has_port = project and project_mod.has_port(board)
        src_dir = "src/" if has_port else ""
        if runtime == "tflm":
            files[f"{src_dir}model_data.h"] = codegen.model_header(symbol, src.name, graph.sha256, len(model_bytes))
            files[f"{src_dir}model_data.cc"] = codegen.model_source(model_bytes, symbol, src.name, graph.sha256)
        if has_port and runtime == "aot":
            vectors = None
            reference = "TFLite" if match == "tflite" else "TFLite Micro"
            if input_source == "test-vectors":
                vin = quantize_samples(graph, np.asarray(pool.x[:n_vectors]))
                progress(f"Test vectors ({reference})", None, None)
                if match == "tflite":
                    from .run import tflite_reference

                    expected = tflite_reference(model_bytes, vin)
                    if expected is None:
                        raise project_mod.ProjectError("TFLite's interpreter rejects this model; use --match tflm.")
                else:
                    expected = int8_predict(model_bytes, graph, vin)
                vectors = (vin, expected)
            files.update(project_mod.render_aot_project(report, model_bytes, src.name, input_source, vectors,
                                                        pool.source if vectors is not None else "",
                                                        raw_output=raw_output, harness=harness, match=match,
                                                        reference=reference))
            result.project = True
        elif has_port:
            vectors = None
            if input_source == "test-vectors" and harness == "tinygen":
                vin = quantize_samples(graph, np.asarray(pool.x[:n_vectors]))
                progress("Test vectors (TFLite Micro)", None, None)
                vectors = (vin, int8_predict(model_bytes, graph, vin))
            files.update(project_mod.render_project(report, src.name, input_source, vectors,
                                                    pool.source if vectors is not None else "", harness=harness,
                                                    raw_output=raw_output))
            result.project = True
        elif project and runtime == "aot":
            # No board port, but the model as C is portable: aot/ drops into any C99 project.
            from . import aot

            program = aot.lower(graph, model_bytes, match)
            arena = aot.plan(program)
            aot.check_plan(program, arena)
            files.update({f"aot/{k}": v for k, v in aot.render(program, arena, src.name).items()})
            files.update({f"aot/{k}": v for k, v in aot.kernel_sources(program).items()})
            warnings.append(f"tinygen has no firmware port for {board.id} ({board.family}) yet: wrote the model as "
                            "C (aot/: add tg_model.c and the tg_*.c kernels to your project; tg_model.h says how "
                            "to call it) and the fit report, not a firmware project.")
        elif project:
            warnings.append(f"tinygen has no firmware port for {board.id} ({board.family}) yet: wrote the model "
                            "and the fit report, not a firmware project.")
        result.out_dir = out_dir
        result.files = sorted(list(files) + ["fit.json"])
        files["fit.json"] = json.dumps(result.to_json(), indent=2) + "\n"
        write_tree(out_dir, files)
    return result


def compile_and_run(result: BuildResult, tflm_root: Path | None, sdk_roots: dict[str, Path | None],
                    run: bool = False, progress: Progress = _noop) -> BuildResult:
    """`make` the project written by build(); with run, boot it in QEMU. fit.json is updated."""
    from . import firmware

    board = result.report.board
    if result.out_dir is None or not result.project:
        raise firmware.FirmwareError(f"There is no firmware project to compile for {board.id}.")
    port = project_mod.load_port(board)
    if run and not port.run:
        raise firmware.FirmwareError(
            f"--run boots the image in an emulator, and {board.id} has none; flash build/firmware.bin instead "
            "(see the project's README.md), or use --board mps2-an386.")
    sdk_root = sdk_roots.get(port.sdk["variable"]) if port.sdk else None
    aot = result.report.runtime == "aot"
    progress("Compiling the firmware" + ("" if aot else " (TFLM's first build takes minutes)"), None, None)
    result.size = firmware.compile_project(result.out_dir, None if aot else tflm_root, port.sdk, sdk_root,
                                           needs_tflm=not aot)
    if run:
        progress("Running in QEMU", None, None)
        result.run = firmware.run_in_qemu(port.run, result.out_dir / "build" / "firmware.elf")
    fit_json = result.out_dir / "fit.json"
    tmp = fit_json.with_name(".fit.json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    tmp.replace(fit_json)
    return result
