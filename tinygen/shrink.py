"""`tinygen shrink`: make a model thinner, fine-tune it from the original, quantize it, and
measure what that cost: accuracy (float and int8, on held-out data) and flash and SRAM
(through the fit check), next to the original."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import analyze, quantize as quantize_mod
from .boards import Board
from .data import Dataset
from .distill import distill
from .errors import TinygenError
from .evaluate import int8_predict, top1
from .fit import check_fit
from .models import ModelSource
from .outputs import write_tree
from .width import scale_width


@dataclass
class Candidate:
    width: float
    sparsity: float
    quantization: str
    accuracy_float: float | None
    accuracy_int8: float | None
    flash_bytes: int
    sram_bytes: int
    macs: int
    params: int
    fits: bool
    train_seconds: float
    accuracy_kind: str


@dataclass
class ShrinkResult:
    board: Board
    original: Candidate
    chosen: Candidate
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"board": self.board.id, "chosen": asdict(self.chosen), "candidates": [asdict(self.original), asdict(self.chosen)],
                "out": str(self.out_dir) if self.out_dir else None, "files": self.files}


def _accuracy(outputs: np.ndarray, labels: np.ndarray | None, teacher_top1: np.ndarray) -> float:
    ref = labels if labels is not None else teacher_top1
    return float(np.mean(top1(outputs) == ref))


def evaluate(model, board: Board, val: Dataset, teacher_top1: np.ndarray, calibration: Dataset,
             width: float, seconds: float) -> tuple[Candidate, bytes]:
    from ._tf import quiet

    with quiet():
        tflite = quantize_mod.quantize(ModelSource(Path("model.keras"), "keras"), calibration, model)
        float_out = model.predict(val.x, batch_size=256, verbose=0)
    g = analyze.parse(tflite)
    report = check_fit(g, board)
    int8_out = int8_predict(tflite, g, val.x)
    kind = "labels" if val.y is not None else "agreement with the original's top-1"
    return Candidate(width, 0.0, "ptq", _accuracy(float_out, val.y, teacher_top1), _accuracy(int8_out, val.y, teacher_top1),
                     report.flash.total_bytes, report.sram.total_bytes, g.macs, g.params, report.fits, round(seconds, 2),
                     kind), tflite


def shrink(board: Board, teacher, train: Dataset, val: Dataset, width: float, epochs: int = 10,
           out_dir: Path | None = None, progress: Callable[[str, int | None, int | None], None] = lambda *a: None
           ) -> ShrinkResult:
    if val is None or len(val) == 0:
        raise TinygenError("Shrinking needs held-out data to measure accuracy on: pass --val (or labelled --data to split).")
    teacher_top1 = top1(teacher.predict(val.x, batch_size=256, verbose=0))
    progress("Measuring the original", None, None)
    original, _ = evaluate(teacher, board, val, teacher_top1, train, 1.0, 0.0)
    progress(f"Rebuilding at width {width:g}", None, None)
    student = scale_width(teacher, width)
    started = time.monotonic()
    distill(teacher, student, train.x, train.y, epochs=epochs,
            progress=lambda e, n, loss: progress(f"Distilling (width {width:g})", e, n))
    seconds = time.monotonic() - started
    progress("Quantizing and measuring", None, None)
    chosen, tflite = evaluate(student, board, val, teacher_top1, train, width, seconds)
    result = ShrinkResult(board, original, chosen)
    if out_dir is not None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            keras_path = Path(tmp) / "model.keras"
            student.save(keras_path)
            files = {"model.keras": keras_path.read_bytes(), "model.tflite": tflite}
        result.out_dir, result.files = out_dir, sorted(list(files) + ["shrink.json"])
        files["shrink.json"] = json.dumps(result.to_json(), indent=2) + "\n"
        write_tree(out_dir, files)
    return result
