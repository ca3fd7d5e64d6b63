"""One shrinking recipe (`tinygen shrink --width/--prune`): make a model thinner, fine-tune it from the original, quantize it, and
measure what that cost: accuracy (float and int8, on held-out data) and flash and SRAM
(through the fit check), next to the original."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..boards import Board
from ..errors import TinygenError
from ..files import check_out_dir, write_tree
from ..fit import check_fit
from ..model import quantize as quantize_mod
from ..model.data import Dataset, conform, load_data, output_classes
from ..model.evaluate import top1
from ..model.examples import digits_model_path, digits_splits
from ..model.graph import parse
from ..model.source import ModelSource, detect, input_shape, load_keras, output_shape
from ..tflm.interpreter import int8_predict
from .distill import distill, magnitude_prune, weight_sparsity
from .width import prune_filters, scale_width


SHRINK_FILES = ("model.keras", "model.tflite", "shrink.json")


@dataclass
class ShrinkInputs:
    """What shrinking starts from: the Keras original and the data to train and measure on."""
    source: ModelSource
    teacher: object
    train: Dataset
    val: Dataset
    bundled: bool        # the bundled digits example and its own split


def shrink_inputs(model: Path | None, data: Path | None, val: Path | None) -> ShrinkInputs:
    """The original model (default: the bundled example, with its digits) and its data, each checked:
    shrinking rebuilds and trains the network, so it needs the Keras model, training samples and
    held-out samples."""
    bundled = model is None
    src = detect(model or digits_model_path())
    if src.kind != "keras":
        raise TinygenError(f"Shrinking rebuilds the network, so it needs the Keras model, not a "
                           f"{src.kind.replace('_', ' ')}.")
    if bundled and data is None:
        train_ds, val_ds = digits_splits()
    elif data is None:
        raise TinygenError("Shrinking trains: pass --data with training samples (and --val with held-out ones).")
    else:
        # The files before the model: a damaged file or a NaN is refused before TensorFlow loads.
        train_ds = load_data(data, "training data")
        val_ds = load_data(val, "validation data") if val is not None else None
    if val_ds is None:
        raise TinygenError("Shrinking needs held-out data to measure accuracy on: pass --val.")
    teacher = load_keras(src)
    shape = input_shape(src, teacher)
    classes = output_classes(output_shape(src, teacher))
    return ShrinkInputs(src, teacher, conform(train_ds, shape, "training data", classes),
                        conform(val_ds, shape, "validation data", classes), bundled)


def keras_bytes(model) -> bytes:
    """A Keras model as the bytes of its .keras file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


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
    # how the weights are stored: "dense" int8, "lut" (clustered post-training to 2^cluster_bits
    # values per cluster_granularity, "tensor" or "channel": TFLM compressed tensors, or the AOT
    # runtime's packed indices), or "sparse" (weight_sparsity of each weight zeroed post-training:
    # the AOT runtime stores mostly-zero layers without their zeros).
    # Plain JSON values: search.json and the search's cache hold them.
    storage: str = "dense"
    cluster_bits: int | None = None
    cluster_granularity: str | None = None
    weight_sparsity: float | None = None


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


def top1_score(outputs: np.ndarray, labels: np.ndarray | None, teacher_top1: np.ndarray) -> float:
    ref = labels if labels is not None else teacher_top1
    return float(np.mean(top1(outputs) == ref))


def fit_as_built(tflite: bytes, board: Board, runtime: str = "tflm"):
    """The fit check the build makes of this model (for TFLM, with the memory plan `--tflm-plan auto`
    picks), so that a candidate judged to fit is one whose firmware fits."""
    from ..tflm.arena import Target
    from ..tflm.offline_plan import choose

    if runtime == "aot":
        return check_fit(parse(tflite), board, runtime="aot", model_bytes=tflite)
    model_bytes, graph, choice = choose(tflite, parse(tflite), Target.for_board(board), "auto")
    return check_fit(graph, board, model_bytes=model_bytes, memory_plan=choice)


def evaluate(model, board: Board, val: Dataset, teacher_top1: np.ndarray, calibration: Dataset,
             width: float, seconds: float, quantization: str = "ptq", float_model=None,
             runtime: str = "tflm") -> tuple[Candidate, bytes]:
    """Quantize `model` (PTQ, or convert a QAT model) and measure it (the fit check for `runtime`).
    `float_model` is the float network a QAT model was made from, for the float accuracy."""
    from ..model.tf import quiet

    with quiet():
        tflite = quantize_mod.quantize(ModelSource(Path("model.keras"), "keras"), calibration, model)
        float_out = (float_model or model).predict(val.x, batch_size=256, verbose=0)
    g = parse(tflite)
    report = fit_as_built(tflite, board, runtime)
    int8_out = int8_predict(tflite, g, val.x)
    kind = "labels" if val.y is not None else "agreement with the original's top-1"
    return Candidate(width, 0.0, quantization, top1_score(float_out, val.y, teacher_top1),
                     top1_score(int8_out, val.y, teacher_top1), report.flash.total_bytes, report.sram.total_bytes,
                     g.macs, g.params, report.fits, round(seconds, 2), kind), tflite


def qat(teacher, student, train: Dataset, epochs: int = 3):
    """Quantization-aware training: tfmot's quantize_model, fine-tuned by distillation."""
    import tensorflow_model_optimization as tfmot

    q = tfmot.quantization.keras.quantize_model(student)
    distill(teacher, q, train.x, train.y, epochs=epochs, learning_rate=3e-4, training=True)
    return q


def shrink(board: Board, teacher, train: Dataset, val: Dataset, width: float | None, epochs: int = 10,
           out_dir: Path | None = None, progress: Callable[[str, int | None, int | None], None] = lambda *a: None,
           prune: float | None = None, unstructured: bool = False, force: bool = False) -> ShrinkResult:
    """One recipe: a width multiplier, or structured filter pruning (`prune`), or unstructured
    magnitude pruning (`prune` with `unstructured`), then distillation and int8. With out_dir, its
    files go there (files.write_tree; `force` writes them beside a user's own)."""
    if out_dir is not None:   # refuse before minutes of training, not after
        check_out_dir(out_dir, force, SHRINK_FILES)
    if val is None or len(val) == 0:
        raise TinygenError("Shrinking needs held-out data to measure accuracy on: pass --val (or labelled --data to split).")
    teacher_top1 = top1(teacher.predict(val.x, batch_size=256, verbose=0))
    progress("Measuring the original", None, None)
    original, _ = evaluate(teacher, board, val, teacher_top1, train, 1.0, 0.0)
    started = time.monotonic()
    if prune is not None and unstructured:
        progress(f"Magnitude pruning to {prune:.0%} (tensorflow-model-optimization)", None, None)
        from ..model.tf import keras

        student = keras().models.clone_model(teacher)
        student.set_weights(teacher.get_weights())
        student = magnitude_prune(teacher, student, train.x, prune, epochs=epochs)
    else:
        if prune is not None:
            progress(f"Removing {prune:.0%} of the filters", None, None)
            student = prune_filters(teacher, prune)
        else:
            progress(f"Rebuilding at width {width:g}", None, None)
            student = scale_width(teacher, width)
        distill(teacher, student, train.x, train.y, epochs=epochs,
                progress=lambda e, n, loss: progress("Distilling", e, n))
    seconds = time.monotonic() - started
    progress("Quantizing and measuring", None, None)
    chosen, tflite = evaluate(student, board, val, teacher_top1, train, width or 1.0, seconds)
    if prune is not None:
        chosen.sparsity = round(weight_sparsity(student), 4) if unstructured else prune
        chosen.quantization = "ptq, " + ("unstructured" if unstructured else "structured")
    result = ShrinkResult(board, original, chosen)
    if out_dir is not None:
        files = {"model.keras": keras_bytes(student), "model.tflite": tflite}
        result.out_dir, result.files = out_dir, sorted(list(files) + ["shrink.json"])
        files["shrink.json"] = json.dumps(result.to_json(), indent=2) + "\n"
        write_tree(out_dir, files, force=force)
    return result
