"""The tflite-micro Python interpreter (reference kernels): the ground truth for TFLM's outputs,
and the judge of whether TFLM runs a model at all.

model/verify.py stops what would make TFLM read outside the model, abort or divide by zero;
what is left is what TFLM's kernels refuse in their Prepare (about a hundred kernels, each with
its own checks) and whatever the verifier does not foresee. `check_runs` asks TFLM itself, once
per model, in a child process, so that a crash there is a sentence here and not a dead tinygen."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ModelError
from ..model.data import quantize_input
from ..model.graph import Graph
from ..model.verify import verify
from .arena import Target, plan_arena
from .flash import check_ops

# The most arena tinygen lends the host interpreter. A model that needs more fits no
# microcontroller: the fit check says so (exit 2), without the interpreter.
MAX_HOST_ARENA = 256 * 1024 * 1024
CHECK_TIMEOUT_S = 300.0

# Allocate, then invoke once on zeros; print each phase before it starts, so that a crash
# says where it happened. TFLM's own messages go to stderr.
_CHILD = r"""
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model = sys.stdin.buffer.read()
print("phase allocating", flush=True)
try:
    it = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[1]))
    for i in range(int(sys.argv[2])):
        d = it.get_input_details(i)
        it.set_input(np.zeros(d["shape"], d["dtype"]), i)
    print("phase invoking", flush=True)
    it.invoke()
except Exception as e:
    print("python " + type(e).__name__ + (": " + str(e).splitlines()[0] if str(e) else ""), flush=True)
    sys.exit(3)
print("phase done", flush=True)
"""

_SHORT_OF_MEMORY = re.compile(r"Requested: \d+, available \d+, missing")


@dataclass
class _Checked:
    arena: int                               # the arena TFLM ran it in
    verdict: tuple[str, str] | None = None   # None: TFLM runs it; else (verb, rest of the sentence)


_checked: dict[str, _Checked] = {}   # by the model's sha256: once per model and process


def check_runs(model_bytes: bytes, graph: Graph, name: str = "the model") -> None:
    """Raise ModelError unless the tflite-micro interpreter allocates `model_bytes` and runs
    one inference, in a child process: TFLM's refusal or crash becomes one sentence. An op TFLM
    does not implement is an UnsupportedOpError naming it, without the child."""
    check_ops(graph)
    if hashlib.sha256(model_bytes).hexdigest() != graph.sha256:
        verify(model_bytes, name)   # not the bytes the graph was parsed (and verified) from
    if graph.sha256 not in _checked:
        _checked[graph.sha256] = _run_child(model_bytes, graph)
    verdict = _checked[graph.sha256].verdict
    if verdict is not None:
        verb, rest = verdict
        raise ModelError(f"TensorFlow Lite Micro {verb} {name}{rest}.")


def _run_child(model_bytes: bytes, graph: Graph) -> _Checked:
    arena = host_arena_bytes(graph)
    while arena <= MAX_HOST_ARENA:   # beyond it, no board holds the model: the fit check says so
        try:
            r = subprocess.run([sys.executable, "-c", _CHILD, str(arena), str(len(graph.inputs))], input=model_bytes,
                               capture_output=True, timeout=CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return _Checked(arena, ("did not finish one inference of", f" in {CHECK_TIMEOUT_S:.0f} s"))
        if r.returncode == 0:
            return _Checked(arena)
        log = [line.strip() for line in r.stderr.decode(errors="replace").splitlines() if line.strip()]
        if any(_SHORT_OF_MEMORY.search(line) for line in log):
            arena *= 4   # the replay undercounts an op it does not model; the arena's size is not the model's fault
            continue
        return _Checked(arena, _verdict(r.returncode, r.stdout.decode(errors="replace"), log))
    return _Checked(arena)


def _verdict(code: int, out: str, log: list[str]) -> tuple[str, str]:
    """TFLM's words as the rest of one sentence: which node failed, and the check that failed in it."""
    phases = re.findall(r"^phase (\w+)", out, re.M)
    when = {"allocating": " while allocating its tensors", "invoking": " while running it"}.get(
        phases[-1] if phases else "allocating", "")
    node = next((m for m in (re.search(r"Node (\S+) \(number (\d+)\) failed to (\w+)", line) for line in log) if m),
                None)
    detail = [re.sub(r"^tensorflow/lite/(micro/)?(kernels/)?", "", line.rstrip("."))
              for line in log if not re.match(r"Node \S+ \(number", line)]
    says = f" ({'; '.join(detail[:2])})" if detail else ""
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        at = f" in {node.group(1)} (operator {node.group(2)})" if node else ""
        return f"crashes ({sig}) on", f"{when}{at}{says}"
    if node:
        return "refuses", f": {node.group(1)} (operator {node.group(2)}) fails to {node.group(3)}{says}"
    python = re.search(r"^python (.*)$", out, re.M)
    if python and not detail:
        return "refuses", f"{when}: {python.group(1).rstrip('.')}"
    return "refuses", f"{when}{says}"


def int8_predict(model_bytes: bytes, graph: Graph, x: np.ndarray,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Raw int8 outputs of the TFLite Micro interpreter (reference kernels) for float inputs x."""
    from tflite_micro.python.tflite_micro import runtime

    check_runs(model_bytes, graph)
    arena = _checked[graph.sha256].arena
    if arena > MAX_HOST_ARENA:
        raise ModelError(f"The model needs a tensor arena of over {MAX_HOST_ARENA:,} bytes, more than tinygen runs "
                         "TensorFlow Lite Micro with on this machine; no microcontroller holds it.")
    tin = graph.tensors[graph.inputs[0]]
    scale, zp = tin.first_scale, tin.first_zero_point
    outs = []
    try:
        interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
        for i, sample in enumerate(x):
            q = sample if sample.dtype == np.int8 else quantize_input(sample, scale, zp)
            interp.set_input(q.reshape(tin.shape).astype(np.int8), 0)
            interp.invoke()
            outs.append(interp.get_output(0).copy())
            if progress:
                progress(i + 1)
    except (RuntimeError, ValueError, IndexError) as e:   # check_runs ran the model once: what is left
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"TensorFlow Lite Micro fails on the model: {first.rstrip('.')}.") from None
    return np.stack(outs)


def host_arena_bytes(graph: Graph) -> int:
    """An arena for the host interpreter: the replayed plan for a 64-bit host, doubled, plus
    room for a slightly newer TFLM in the wheel than the one the tables were measured on."""
    plan = plan_arena(graph, Target("host64", "reference", False, recording=True))
    return plan.used_bytes * 2 + 64 * 1024
