"""Accuracy measured, never assumed: float through the source model, int8 through TFLM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .analyze import Graph


@dataclass
class Accuracy:
    float_top1: float | None
    int8_top1: float | None
    samples: int
    kind: str          # "labels" or "agreement with the float model"


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    q = np.round(x / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def quantize_samples(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float samples to the model's int8 input, as TFLite quantizes them."""
    if x.dtype == np.int8:
        return x
    tin = graph.tensors[graph.inputs[0]]
    scale = float(tin.scale[0]) if tin.scale is not None and len(tin.scale) else 1.0
    zp = int(tin.zero_point[0]) if tin.zero_point is not None and len(tin.zero_point) else 0
    return quantize_input(x, scale, zp)


def int8_predict(model_bytes: bytes, graph: Graph, x: np.ndarray,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Raw int8 outputs of the TFLite Micro interpreter (reference kernels) for float inputs x."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=_host_arena(graph))
    tin = graph.tensors[graph.inputs[0]]
    scale = float(tin.scale[0]) if tin.scale is not None and len(tin.scale) else 1.0
    zp = int(tin.zero_point[0]) if tin.zero_point is not None and len(tin.zero_point) else 0
    outs = []
    for i, sample in enumerate(x):
        q = sample if sample.dtype == np.int8 else quantize_input(sample, scale, zp)
        interp.set_input(q.reshape(tin.shape).astype(np.int8), 0)
        interp.invoke()
        outs.append(interp.get_output(0).copy())
        if progress:
            progress(i + 1)
    return np.stack(outs)


def _host_arena(graph: Graph) -> int:
    from .arena import Target, plan_arena

    plan = plan_arena(graph, Target("host64", "reference", False, recording=True))
    # the host wheel may be a slightly newer TFLM: leave room
    return plan.used_bytes * 2 + 64 * 1024


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
