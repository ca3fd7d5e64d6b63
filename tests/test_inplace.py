"""The AOT planner's in-place forms: a convolution streamed over its input (forwards or
backwards), fused with the ADD after it into the skip tensor, and element-wise ops over either
input. Each form is run on this machine with its output really overlapping its input, and
compared byte for byte with the tflite-micro interpreter; the overlap checker is shown to be
tight (one step past the planned shift, it refuses the plan)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import needs
from test_aot import _differ, _inputs, _tflm

from tinygen import aot
from tinygen.aot import host as hostrun
from tinygen.aot.plan import CONV_ADD_STACK_BYTES, stream_safe, stream_shift
from tinygen.model import graph as analyze


@pytest.fixture(scope="module")
def inplace_models() -> dict[str, bytes]:
    """Small int8 models shaped like the ones the forms are for: a DS-CNN / MobileNet chain
    (depthwise, widening and narrowing 1x1, strides, a dilation, a depth multiplier) and
    ResNet blocks (the residual ADD with the skip as its first or second input)."""
    from tinymodels import _seed_weights, int8

    from tinygen.model.tf import keras

    k = keras()
    L = k.layers
    _seed_weights(12)
    out = {}
    inp = L.Input((15, 11, 2), batch_size=1)
    x = L.Conv2D(8, (4, 3), strides=2, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(24, 1, activation="relu")(x)                                   # widening 1x1
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)
    x = L.Conv2D(12, 1, activation="relu")(x)                                   # narrowing 1x1
    x = L.DepthwiseConv2D(3, dilation_rate=2, padding="same", depth_multiplier=2)(x)
    x = L.Conv2D(16, 3, padding="valid")(x)
    x = L.GlobalAveragePooling2D()(x)
    out["ds_chain"] = int8(k.Model(inp, L.Dense(5)(x)))
    for order in ("skip_first", "skip_second"):
        inp = L.Input((40, 37, 3), batch_size=1)   # large enough that a fused form repays its stack
        s = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
        y = L.Conv2D(8, 3, padding="same", activation="relu")(s)
        y = L.Conv2D(8, 3, padding="same")(y)
        s = L.Add()([s, y] if order == "skip_first" else [y, s])
        y = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(s)
        y = L.Conv2D(16, 3, padding="same")(y)
        s = L.Add()([L.Conv2D(16, 1, strides=2)(s), y])
        x = L.GlobalAveragePooling2D()(L.ReLU()(s))
        out[f"residual_{order}"] = int8(k.Model(inp, L.Dense(4)(x)))
    return out


def _forms(compiled) -> set[str]:
    return {f.form for f in compiled.arena.forms.values()}


@needs("cc")
@pytest.mark.parametrize("dsp", [False, True], ids=["plain-c", "dsp-emulated"])
def test_every_in_place_form_is_bit_exact_with_tflite_micro(inplace_models, dsp, tmp_path):
    seen: set[str] = set()
    for name, model in inplace_models.items():
        hm, compiled = hostrun.compile_model(model, name, tmp_path / name, emulate_dsp=dsp)
        xs = _inputs(hm, 60, seed=3)
        out, _ = hm.run(xs)
        assert _differ(out, _tflm(model, xs)) == 0, f"{name}: {sorted(_forms(compiled))}"
        program = compiled.program
        bound = aot.plan(analyze_program(model, name), in_place=False).size
        assert compiled.arena.size < bound, name
        # the forms whose output really overlaps its input: exercised, not planned around
        for f in compiled.arena.forms.values():
            if f.src is None:    # a ring whose output is apart from its input
                continue
            a, b = compiled.arena.offsets[f.src], compiled.arena.offsets[f.dst]
            if a < b + program.buffers[f.dst].nbytes and b < a + program.buffers[f.src].nbytes:
                seen.add(f.form)
    assert seen >= {"streamed", "streamed backwards", "element-wise"}
    # the residual blocks now take the ring with the ADD (tests/test_families.py) where it needs less SRAM
    assert seen & {"conv+add", "ring+add"}


def analyze_program(model: bytes, name: str):
    return aot.lower(analyze.parse(model, name), model)


@pytest.mark.parametrize("name", ["vww_96_int8", "kws_ref_model", "pretrainedResnet_quant", "ad01_int8"])
def test_shared_models_plan_below_the_live_set_bound(shared_models, name):
    """The issue's targets (TFLM's arena x 0.6, VWW's stretch x 0.5), and every overlap proven."""
    from tinygen.tflm.arena import Target, plan_arena

    model = (shared_models / f"{name}.tflite").read_bytes()
    graph = analyze.parse(model, name)
    program = aot.lower(graph, model)
    arena = aot.plan(program)
    aot.check_plan(program, arena)
    bound = aot.plan(program, in_place=False).size
    tflm = plan_arena(graph, Target("arm", "cmsis-nn", True)).used_bytes
    target = {"vww_96_int8": 0.5, "kws_ref_model": 0.5, "pretrainedResnet_quant": 0.6, "ad01_int8": 0.6}[name]
    assert arena.size <= target * tflm
    assert arena.size < bound or name == "ad01_int8"   # AD's dense layers read all of their input


def test_the_streamed_shift_is_tight(shared_models):
    """One byte further over its input than the plan's shift, a streamed convolution would
    overwrite input it has yet to read: the checker refuses that plan."""
    model = (shared_models / "kws_ref_model.tflite").read_bytes()
    program = analyze_program(model, "kws")
    arena = aot.plan(program)
    aot.check_plan(program, arena)
    streamed = [f for f in arena.forms.values() if f.form.startswith("streamed")]
    assert streamed
    for f in streamed:
        step = program.steps[f.step]
        back = f.form == "streamed backwards"
        shift = stream_shift(step, back)
        assert stream_safe(step, 1000, 1000 + shift, back)
        assert not stream_safe(step, 1000, 1000 + shift + (-1 if back else 1), back)
        moved = dataclasses.replace(arena, offsets={**arena.offsets, f.dst: arena.offsets[f.dst] + (-1 if back else 1)})
        with pytest.raises(aot.AotError):
            aot.check_plan(program, moved)


def test_stream_geometry_matches_a_brute_force_walk():
    """stream_shift against the kernels' order written out pixel by pixel in Python: for each
    pixel (pairs where the kernel takes two), the input bytes its window and every later window
    read, and the output bytes it writes."""
    from tinygen.aot.lower import Step

    rng = np.random.default_rng(4)
    for _ in range(40):
        k_h, k_w = rng.integers(1, 5, 2)
        s_h, s_w = rng.integers(1, 3, 2)
        d_h, d_w = rng.integers(1, 3, 2)
        in_h, in_w = rng.integers(k_h * d_h, 12), rng.integers(k_w * d_w, 12)
        in_c, out_c = rng.integers(1, 9, 2)
        pad_h, pad_w = rng.integers(0, k_h), rng.integers(0, k_w)
        out_h = (in_h + 2 * pad_h - (k_h - 1) * d_h - 1) // s_h + 1
        out_w = (in_w + 2 * pad_w - (k_w - 1) * d_w - 1) // s_w + 1
        p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                 stride_h=s_h, stride_w=s_w, dilation_h=d_h, dilation_w=d_w, pad_h=pad_h, pad_w=pad_w)
        step = Step(0, "CONV_2D", "tg_conv2d", "tg_conv.c", "tg_conv_params", p, [], [0], 1)

        def reads(i):
            oy, ox = divmod(i, out_w)
            got = []
            for ky in range(k_h):
                for kx in range(k_w):
                    y, x = oy * s_h - pad_h + ky * d_h, ox * s_w - pad_w + kx * d_w
                    if 0 <= y < in_h and 0 <= x < in_w:
                        got.append(((y * in_w + x) * in_c, (y * in_w + x + 1) * in_c))
            return got

        n = out_h * out_w
        for back in (False, True):
            order = range(n - 1, -1, -1) if back else range(n)
            later = [i2 for i2 in order]
            worst = None
            for pos, i in enumerate(order):
                pending = [r for j in later[pos:] for r in reads(j)]
                written = ([(i - 1) * out_c, (i + 1) * out_c] if back else [i * out_c, min(i + 2, n) * out_c])
                written[0] = max(written[0], 0)
                if not pending:
                    continue
                if back:   # output above: its lowest written byte at or past the highest pending one
                    need = max(hi for _, hi in pending) - written[0]
                    worst = need if worst is None else max(worst, need)
                else:      # output below: its highest written byte at or before the lowest pending one
                    need = min(lo for lo, _ in pending) - written[1]
                    worst = need if worst is None else min(worst, need)
            if worst is not None:
                assert stream_shift(step, back) == worst, (p, back)


def test_fit_counts_the_fused_kernels_stack_buffer(shared_models):
    from test_cli import run as cli
    import json

    r = cli("fit", "--board", "mps2-an386", "--model", shared_models / "pretrainedResnet_quant.tflite",
            "--runtime", "aot", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    # ResNet-8's first block runs as a ring fused with its residual ADD: the window of rows, B's
    # row, the ADD's tables and the ring's frames are on the stack, more than conv+add's buffer
    assert "ring+add" in j["aot"]["in_place_forms"].values()
    model = (shared_models / "pretrainedResnet_quant.tflite").read_bytes()
    plan = aot.compile(analyze.parse(model), model).arena
    stack = max(f.stack_bytes for f in plan.forms.values())
    assert j["aot"]["kernel_stack_bytes"] == plan.stack_bytes == stack > CONV_ADD_STACK_BYTES
    s = j["sram"]
    assert s["total_bytes"] >= s["arena_bytes"] + stack + s["stack_bytes"]


@needs("arm-none-eabi-gcc")
@needs("qemu-system-arm")
def test_per_layer_times_put_a_fused_op_with_the_call_that_runs_it(shared_models):
    """ResNet-8's rings run two convolutions (and an ADD) in one call: the AOT firmware's per-layer
    ticks say which op's call ran them, and --compare takes that call's ratio against the TFLM
    ticks of all of them, not of its first op alone (which read 1.68 and 2.39 before)."""
    import json

    from test_cli import run as cli

    from tinygen.pipeline.run import LayerComparison, RunReport

    r = cli("run", "--board", "mps2-an386", "--model", shared_models / "pretrainedResnet_quant.tflite",
            "--runtime", "aot", "--layers", "--vectors", "1", "--json")
    assert r.returncode == 0, r.stderr
    layers = json.loads(r.stdout)["layers"]
    runs_in = {l["op_index"]: l["runs_in"] for l in layers if "runs_in" in l}
    assert runs_in == {2: 1, 3: 1, 5: 4}
    assert all(l["ticks"] <= 1 for l in layers if "runs_in" in l)

    def report(runtime, ticks):
        return RunReport("mps2-an386", runtime, 1, 0, 0, 0, [sum(t for _, t in ticks)], "", "",
                         layers=[{"op_index": i, "op": "CONV_2D", "ticks": t, **({"runs_in": runs_in[i]}
                                  if runtime == "aot" and i in runs_in else {})} for i, t in ticks])

    aot = report("aot", [(1, 300), (2, 1), (3, 0), (4, 100), (5, 0)])
    tflm = report("tflm", [(1, 100), (2, 100), (3, 50), (4, 60), (5, 40)])
    rows = {l["op_index"]: l for l in LayerComparison(aot, tflm).layers()}
    assert rows[1]["ratio"] == 1.2 and rows[1]["with_ops"] == [2, 3] and rows[1]["tflm_ticks"] == 100
    assert rows[4]["ratio"] == 1.0 and rows[4]["with_ops"] == [5]
    assert rows[2]["ratio"] is None and rows[2]["runs_in"] == 1
