"""The model as C: tg_model.h / tg_model.c calling tinygen's kernels in order, each layer's
constants in flash, every activation at its planned offset in one static arena."""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..resources import resource_dir, template_env
from .lower import KERNEL_DIR, Program, Step
from .plan import MemoryPlan, ring_rows
from .size import param_bytes


def _c_array_body(values: np.ndarray, per_line: int) -> str:
    flat = [str(v) for v in np.asarray(values).reshape(-1).tolist()]
    return "\n".join("    " + ", ".join(flat[i:i + per_line]) + "," for i in range(0, len(flat), per_line))


def _call(s: Step, arena: MemoryPlan, steps: list[Step], i: int) -> str:
    def at(t: int, ctype: str, const: bool) -> str:
        return f"({'const ' if const else ''}{ctype}*)ARENA({arena.offsets[t]})"
    p = f"&op{s.op_index}_params"
    ring = _ring_call(s, arena, steps, i, at)
    if ring:
        return ring
    if i in arena.fused_steps:
        conv = next(steps[f.step] for f in arena.forms.values() if f.fused == i)
        return f"// op {s.op_index}'s ADD runs inside op {conv.op_index}'s tg_conv2d_add"
    if s.kernel == "tg_conv2d_add":
        f = arena.forms[i]
        return (f"tg_conv2d_add({p}, &op{steps[f.fused].op_index}_params, {at(s.inputs[0], 'int8_t', True)}, "
                f"{at(f.src, 'int8_t', False)});")
    activations = iter(s.inputs)
    operands = [s.const_operands[k] if k in s.const_operands else next(activations)
                for k in range(len(s.inputs) + len(s.const_operands))]
    if s.kernel == "tg_concatenation":
        ins = ", ".join(o if isinstance(o, str) else f"ARENA({arena.offsets[o]})" for o in operands)
        return f"{{ const void* const ins[] = {{{ins}}}; tg_concatenation({p}, ins, ARENA({arena.offsets[s.output]})); }}"
    if s.kernel == "tg_pad":
        return f"tg_pad({p}, ARENA({arena.offsets[s.inputs[0]]}), ARENA({arena.offsets[s.output]}));"
    in_type = "float" if s.kernel == "tg_quantize_f32" else "int8_t"
    out_type = "float" if s.kernel == "tg_dequantize" else "int8_t"
    args = ", ".join(o if isinstance(o, str) else at(o, in_type, True) for o in operands)
    return f"{s.kernel}({p}, {args}, {at(s.output, out_type, False)});"


def _ring_call(s: Step, arena: MemoryPlan, steps: list[Step], i: int, at) -> str | None:
    """A ring form's call, at its first convolution (the steps inside it: a comment), or None."""
    host = next((f for f in arena.forms.values() if f.form.startswith("ring") and i in (f.step, f.fused, *f.also)), None)
    if host is None:
        return None
    a, b = steps[host.step], steps[host.fused]
    if i != host.step:
        return f"// op {s.op_index} runs inside op {a.op_index}'s {b.kernel}"
    window = ring_rows(b) * a.params["out_w"] * a.params["out_c"]
    head = (f"{{ static const tg_ring_params ring = {{&op{a.op_index}_params, &op{b.op_index}_params, "
            f"{host.kinds[0]}, {host.kinds[1]}, {ring_rows(b)}}}; int8_t window[{window}]; ")
    if host.also:
        add = steps[host.also[0]]
        return (head + f"int8_t line[{b.params['out_w'] * b.params['out_c']}]; tg_conv_ring_add(&ring, "
                f"&op{add.op_index}_params, window, line, {at(a.inputs[0], 'int8_t', True)}, "
                f"{at(host.src, 'int8_t', False)}); }}")
    return head + f"tg_conv_ring(&ring, window, {at(a.inputs[0], 'int8_t', True)}, {at(b.output, 'int8_t', False)}); }}"


def _io(program: Program, arena: MemoryPlan, t: int) -> dict:
    tt = program.graph.tensors[t]
    scale, zp = tt.first_scale, tt.first_zero_point
    return {"ctype": "float" if tt.dtype == "FLOAT32" else "int8_t", "shape": list(tt.shape), "nbytes": tt.nbytes,
            "scale": f"{scale:.9e}f", "zero_point": zp, "offset": arena.offsets[t], "elements": tt.elements,
            "dtype": tt.dtype}


def render(program: Program, arena: MemoryPlan, model_name: str) -> dict[str, str]:
    """{"tg_model.h": ..., "tg_model.c": ...}: the model as C, for tinygen's kernels."""

    steps = []
    for i, s in enumerate(program.steps):
        if s.kernel is None:
            continue
        arrays = [{"name": n, "ctype": ct, "count": len(np.asarray(v).reshape(-1)),
                   "body": _c_array_body(v, 16 if ct == "int8_t" else 8)} for n, ct, v in s.arrays]
        steps.append({"op_index": s.op_index, "op": s.op, "comment": s.comment, "arrays": arrays,
                      "params_type": s.params_type, "params": s.params, "call": _call(s, arena, program.steps, i)})
    ctx = {"version": __version__, "model_name": model_name, "sha256": program.graph.sha256, "steps": steps,
           "weight_bytes": program.weight_bytes + param_bytes(program, arena), "arena_bytes": arena.size, "arena_heuristic": arena.heuristic,
           "reference": "TFLite's int8 reference kernels" if program.match == "tflite"
           else "TFLite Micro's int8 reference kernels",
           "input": _io(program, arena, program.inputs[0]), "output": _io(program, arena, program.outputs[0]),
           "inputs": [_io(program, arena, t) for t in program.inputs],
           "outputs": [_io(program, arena, t) for t in program.outputs]}
    env = template_env()
    return {"tg_model.h": env.get_template("aot/model.h.j2").render(ctx),
            "tg_model.c": env.get_template("aot/model.c.j2").render(ctx)}


def kernel_sources(program: Program) -> dict[str, str]:
    """The hand-written kernel files the program calls, by name."""
    d = resource_dir("firmware") / KERNEL_DIR
    names = ["tg_kernels.h", "tg_fixedpoint.h", "tg_dot.h", "tg_add.h", "tg_lut.h", "tg_sparse.h"] + program.sources
    return {n: (d / n).read_text() for n in names}
