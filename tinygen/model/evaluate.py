"""Accuracy measured, never assumed: float through the source model, int8 through an
interpreter (tflite-micro's in tinygen.tflm.interpreter, TFLite's reference kernels here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Graph


@dataclass
class Accuracy:
    float_top1: float | None
    int8_top1: float | None
    samples: int
    kind: str          # "labels" or "agreement with the float model"


def top1(outputs: np.ndarray) -> np.ndarray:
    return outputs.reshape(len(outputs), -1).argmax(axis=1)


def accuracy(float_out: np.ndarray | None, int8_out: np.ndarray, labels: np.ndarray | None) -> Accuracy:
    n = len(int8_out)
    if labels is not None:
        f = float(np.mean(top1(float_out) == labels)) if float_out is not None else None
        return Accuracy(f, float(np.mean(top1(int8_out) == labels)), n, "labels")
    if float_out is not None:
        return Accuracy(None, float(np.mean(top1(int8_out) == top1(float_out))), n, "agreement with the float model")
    return Accuracy(None, None, n, "none")


def tflite_reference(model_bytes: bytes, inputs) -> np.ndarray | None:
    """Output 0 of TFLite's interpreter with its reference kernels for a batch of inputs (an
    array, or one array per model input); None if TFLite rejects the model."""
    from .tf import quiet, tf

    try:
        with quiet():
            it = tf().lite.Interpreter(model_content=model_bytes,
                                       experimental_op_resolver_type=tf().lite.experimental.OpResolverType.BUILTIN_REF)
            it.allocate_tensors()
    except Exception:
        return None
    batches = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    details, o = it.get_input_details(), it.get_output_details()[0]
    if len(details) != len(batches):
        return None
    outs = []
    for xs in zip(*batches):
        for d, x in zip(details, xs):
            it.set_tensor(d["index"], np.asarray(x).reshape(d["shape"]))
        it.invoke()
        outs.append(it.get_tensor(o["index"]).copy())
    return np.stack(outs)
