"""The tflite-micro Python interpreter (reference kernels): the ground truth for TFLM's outputs."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..model.data import quantize_input
from ..model.graph import Graph
from .arena import Target, plan_arena


def int8_predict(model_bytes: bytes, graph: Graph, x: np.ndarray,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Raw int8 outputs of the TFLite Micro interpreter (reference kernels) for float inputs x."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=host_arena_bytes(graph))
    tin = graph.tensors[graph.inputs[0]]
    scale, zp = tin.first_scale, tin.first_zero_point
    outs = []
    for i, sample in enumerate(x):
        q = sample if sample.dtype == np.int8 else quantize_input(sample, scale, zp)
        interp.set_input(q.reshape(tin.shape).astype(np.int8), 0)
        interp.invoke()
        outs.append(interp.get_output(0).copy())
        if progress:
            progress(i + 1)
    return np.stack(outs)


def host_arena_bytes(graph: Graph) -> int:
    """An arena for the host interpreter: the replayed plan for a 64-bit host, doubled, plus
    room for a slightly newer TFLM in the wheel than the one the tables were measured on."""
    plan = plan_arena(graph, Target("host64", "reference", False, recording=True))
    return plan.used_bytes * 2 + 64 * 1024
