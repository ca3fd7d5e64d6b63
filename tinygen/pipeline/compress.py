"""`tinygen build --compress off|auto|<bits>`: after int8, the weights clustered post-training
(k-means on the int8 weights, tables following the weights' quantization: tflm.compress.table_axis)
and stored as the runtime stores them: TFLM compressed tensors, or for tinygen's AOT runtime the
clustered int8 model, whose lowering picks how each layer's weights are stored.

With `auto` each index width from 7 bits down is tried and the smallest flash kept whose score
stays within the accuracy drop: top-1 accuracy where the samples have labels, else top-1
agreement with the unclustered int8 model (said so); and only where the fit check's flash drops."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..errors import TinygenError
from ..model.evaluate import Accuracy, top1
from ..model.graph import parse
from ..shrink import cluster as cl
from ..tflm.interpreter import int8_predict

COMPRESS = ("off", "auto")
COMPRESS_MAX_DROP = 1.0     # accuracy points --compress auto may lose when --max-accuracy-drop is not given


def parse_compress(value: str) -> str | int:
    """"off", "auto", or index bits (2-7); one sentence for anything else."""
    v = str(value).strip().lower()
    if v in COMPRESS:
        return v
    try:
        bits = int(v)
    except ValueError:
        raise TinygenError(f"--compress takes off, auto or index bits from {min(cl.INDEX_BITS)} to "
                           f"{max(cl.INDEX_BITS)}, not '{value}'.") from None
    cl.check_bits(bits)
    return bits


def check_compress_options(compress: str, max_drop: float | None) -> None:
    """The refusals of --compress and --max-accuracy-drop, before any work."""
    asked = parse_compress(compress)
    if max_drop is not None and asked != "auto":
        raise TinygenError("--max-accuracy-drop limits what --compress auto (or --shrink auto) may lose; "
                           "give it with one of those.")
    if max_drop is not None and not 0 <= max_drop <= 100:
        raise TinygenError(f"--max-accuracy-drop is in accuracy points, 0 to 100, not {max_drop:g}.")


@dataclass
class Tried:
    bits: int
    flash_bytes: int | None        # None: no weight gets smaller as a TFLM look-up table
    score: float | None            # None: not measured (the flash did not drop)
    kept: bool
    why: str

    def to_json(self) -> dict:
        return {"bits": self.bits, "flash_bytes": self.flash_bytes, "score": self.score, "kept": self.kept,
                "why": self.why}


@dataclass
class CompressChoice:
    asked: str                     # off, auto, or the bits given
    bits: int | None               # what was kept; None: the int8 model as it was
    measured_by: str               # labels, or agreement with the unclustered int8 model
    samples: int
    int8_score: float | None       # the unclustered int8 model's score on the same samples
    score: float | None            # the kept model's
    max_drop_points: float | None  # auto's limit
    int8_flash_bytes: int
    flash_bytes: int
    tried: list[Tried] = field(default_factory=list)
    bit_exact: object | None = None   # tflm.compress.BitExact: the compressed model against the clustered one
    reason: str = ""

    def to_json(self) -> dict:
        return {"asked": self.asked, "bits": self.bits, "granularity": "as quantized (per channel where the weight is)",
                "measured_by": self.measured_by, "samples": self.samples, "int8_score": self.int8_score,
                "score": self.score, "max_accuracy_drop": self.max_drop_points,
                "int8_flash_bytes": self.int8_flash_bytes, "flash_bytes": self.flash_bytes,
                "tried": [t.to_json() for t in self.tried],
                "bit_exact": None if self.bit_exact is None else vars(self.bit_exact), "reason": self.reason}


def _scorer(q, eval_limit: int):
    """(score(model, graph), what it measures, samples, the int8 model's score): top-1 accuracy on
    labelled samples, else top-1 agreement with the unclustered int8 model."""
    xs = np.asarray(q.samples.x[:eval_limit])
    labelled = q.samples.y is not None and q.accuracy.kind == "labels"
    if labelled:
        ys = np.asarray(q.samples.y[:eval_limit])
        return ((lambda m, g: float(np.mean(top1(int8_predict(m, g, xs)) == ys))),
                f"labels ({q.samples.source})", len(xs), q.accuracy.int8_top1)
    ref = top1(int8_predict(q.model_bytes, q.graph, xs))
    return ((lambda m, g: float(np.mean(top1(int8_predict(m, g, xs)) == ref))),
            f"top-1 agreement with the unclustered int8 model on {len(xs)} samples of {q.samples.source} (no labels)",
            len(xs), 1.0)


def compress_weights(q, runtime: str, asked: str | int, max_drop: float | None, fit: Callable,
                     keras_model=None, eval_limit: int = 1000,
                     progress: Callable = lambda *a: None):
    """Cluster q's int8 model (`asked`: bits, or "auto"). `fit(quantized) -> FitReport` is the
    build's fit check. Returns (the Quantized the build goes on with: for TFLM the compressed
    model, its clustered int8 model in `uncompressed`; for AOT the clustered int8 model), the
    CompressChoice and the Deep Compression table (None when nothing was kept)."""
    from ..model import coded
    from ..tflm import compress as tflm_compress

    progress("Measuring the int8 model for compression", None, None)
    base_flash = fit(q).flash.total_bytes
    score, measured_by, samples, base_score = _scorer(q, eval_limit)
    limit = drop = None
    if asked == "auto":
        drop = COMPRESS_MAX_DROP if max_drop is None else max_drop
        limit = None if base_score is None else base_score - drop / 100.0
    choice = CompressChoice(str(asked), None, measured_by, samples, base_score, base_score,
                            drop, base_flash, base_flash)
    kept = None
    for bits in (cl.INDEX_BITS if asked == "auto" else (asked,)):
        progress(f"Clustering the weights to {bits} bits", None, None)
        c = cl.cluster_bits(q.model_bytes, q.graph, bits, per_channel=True)
        stored = c.stored(runtime)
        if stored is None:
            if asked != "auto":
                raise TinygenError(f"At {bits} index bits no weight of the model is smaller as a TFLM look-up table "
                                   f"than as int8; try fewer bits (--compress {max(bits - 1, min(cl.INDEX_BITS))}).")
            choice.tried.append(Tried(bits, None, None, False, "no weight is smaller as a look-up table"))
            continue
        g = parse(stored, "the compressed model")
        candidate = replace(q, model_bytes=stored, graph=g, memory_plan=None, lut_bits=bits)
        flash = fit(candidate).flash.total_bytes
        if asked == "auto" and flash >= base_flash:
            choice.tried.append(Tried(bits, flash, None, False, "the flash does not drop"))
            continue
        s = score(c.model, c.graph)
        ok = asked != "auto" or limit is None or s >= limit - 1e-12
        choice.tried.append(Tried(bits, flash, s, ok, "asked" if asked != "auto" else
                                  ("within the accuracy drop" if ok else "loses more than the accuracy drop")))
        if not ok:
            break            # fewer bits would lose more
        if kept is None or flash <= kept[2]:
            kept = (c, candidate, flash, s)
    if kept is None:
        scored = [t for t in choice.tried if t.score is not None]
        if scored:
            choice.reason = (f"at {scored[0].bits} bits, the most that makes the flash smaller, the score already "
                             f"drops by more than {drop:g} point{'' if drop == 1 else 's'}")
        else:
            choice.reason = f"no index width makes the flash smaller with --runtime {runtime}"
        return q, choice, None
    c, candidate, flash, s = kept
    choice.bits, choice.score, choice.flash_bytes = c.bits, s, flash
    choice.reason = "asked" if asked != "auto" else "the smallest flash within the accuracy drop"
    table = None
    if c.compressed is not None:
        progress("Checking the compressed model in the tflite-micro interpreter", None, None)
        choice.bit_exact = tflm_compress.check_bit_exact(
            c.model, c.compressed.model, tflm_compress.synthetic_inputs(c.graph, 16))
        if not choice.bit_exact.identical:
            raise TinygenError(f"TFLM's compressed model differs from the clustered int8 one by up to "
                               f"{choice.bit_exact.max_abs_diff} steps in the tflite-micro interpreter; build "
                               "with --compress off.")
        float32 = cl.float_tflite_bytes(keras_model) if keras_model is not None else None
        table = cl.compression_table(float32, len(q.model_bytes), None, len(c.compressed.model),
                                     coded.code(c.compressed.model))
    accuracy = (Accuracy(q.accuracy.float_top1, s, samples, q.accuracy.kind) if q.accuracy.kind == "labels"
                else q.accuracy)
    if runtime == "tflm":
        candidate = replace(candidate, accuracy=accuracy, uncompressed=c.model)
    else:
        candidate = replace(candidate, accuracy=accuracy)
    return candidate, choice, table
