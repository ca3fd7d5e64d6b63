"""`tinygen build`: quantize, analyze, check the fit, write the outputs. The CLI renders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import analyze, codegen, data as data_mod, examples, models, quantize
from .boards import Board
from .evaluate import Accuracy, accuracy, int8_predict
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
        return j


def _noop(step: str, done: int | None = None, total: int | None = None) -> None:
    pass


def build(board: Board, model_path: Path | None, data_path: Path | None, out_dir: Path | None,
          val_path: Path | None = None, eval_limit: int = 1000, progress: Progress = _noop) -> BuildResult:
    warnings: list[str] = []
    validation = None
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
    report = check_fit(graph, board, str(model_path))
    result = BuildResult(report, model_bytes, acc, calibration.source, warnings)

    if out_dir is not None:
        progress("Writing outputs", None, None)
        symbol = "g_model"
        files = {
            "model.tflite": model_bytes,
            "model_data.h": codegen.model_header(symbol, src.name, graph.sha256, len(model_bytes)),
            "model_data.cc": codegen.model_source(model_bytes, symbol, src.name, graph.sha256),
        }
        result.out_dir = out_dir
        result.files = sorted(list(files) + ["fit.json"])
        files["fit.json"] = json.dumps(result.to_json(), indent=2) + "\n"
        write_tree(out_dir, files)
    return result
