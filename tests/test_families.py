"""The AOT arena on whole models of the shapes users bring (MobileNet v1 and v2, DS-CNN, ResNet;
tests/families.py), against TFLM's: at most 0.6x on every one (issue #12), every overlap proven;
and the ring form (two convolutions through a window of rows on the stack), bit-exact with the
tflite-micro interpreter with its output over the first convolution's input or over the skip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import needs
from families import ds_cnn, mobilenet_v1, mobilenet_v2, resnet
from test_aot import _differ, _inputs, _tflm

from tinygen import aot
from tinygen.aot import host as hostrun
from tinygen.aot.plan import RING_FRAME_BYTES, ring_safe, ring_shift
from tinygen.model import graph as analyze

# a spread of each family over resolution, width, depth and head, small enough to plan in seconds
# (tests/families.py's families() is the larger set the note measures)
CASES = {
    "mbv1_96_a0.25": lambda: mobilenet_v1(96, 0.25),
    "mbv1_128_a0.5_b11_c100": lambda: mobilenet_v1(128, 0.5, 11, 100),
    "mbv1_64_a0.25_b6_ch1_mean": lambda: mobilenet_v1(64, 0.25, 6, 10, channels=1, pool="mean"),
    "mbv1_224_a0.25_c1000": lambda: mobilenet_v1(224, 0.25, 13, 1000),
    "mbv2_96_a0.35": lambda: mobilenet_v2(96, 0.35),
    "mbv2_64_a0.35_s4": lambda: mobilenet_v2(64, 0.35, 4, 10),
    "dscnn_49x10_w64": lambda: ds_cnn(49, 10, 64),
    "dscnn_99x40_w96_b3": lambda: ds_cnn(99, 40, 96, 3, first=(10, 8)),
    "dscnn_49x10_w276_s1": lambda: ds_cnn(49, 10, 276, 5, stride=1),
    "dscnn_32x32_w32_mean": lambda: ds_cnn(32, 32, 32, 2, first=(3, 3), stride=1, pool="mean"),
    "resnet_32_w16": lambda: resnet(32, 16),
    "resnet_32_w16_b2": lambda: resnet(32, 16, 3, 2),
    "resnet_64_w16": lambda: resnet(64, 16),
    "resnet_48_w8_s4_ch1": lambda: resnet(48, 8, 4, channels=1),
}


def test_every_family_plans_within_0_6x_of_tflm():
    from tinygen.tflm.arena import Target, plan_arena

    ratios = {}
    for name, build in CASES.items():
        model = build()
        graph = analyze.parse(model, name)
        program = aot.lower(graph, model)
        arena = aot.plan(program)
        aot.check_plan(program, arena)
        ratios[name] = arena.size / plan_arena(graph, Target("arm", "cmsis-nn", True)).used_bytes
    assert max(ratios.values()) <= 0.6, {n: round(r, 3) for n, r in ratios.items() if r > 0.6}


@pytest.fixture(scope="module")
def ring_models() -> dict[str, bytes]:
    """Whole models whose plans take every ring form (output apart, over the first convolution's
    input, fused with the ADD into the skip), ending in their last feature map so that every
    value of the last layers is compared."""
    return {"mbv1": mobilenet_v1(40, 0.25, 4, features=True, seed=1),
            "mbv1_head": mobilenet_v1(40, 0.5, 6, classes=10, seed=2),
            "mbv2": mobilenet_v2(40, 0.35, 4, features=True, seed=3),
            "resnet": resnet(32, 16, 3, features=True, seed=7),
            "resnet_odd": resnet(23, 16, 2, features=True, seed=8)}


@needs("cc")
@pytest.mark.parametrize("dsp", [False, True], ids=["plain-c", "dsp-emulated"])
def test_the_ring_forms_are_bit_exact_with_tflite_micro(ring_models, dsp, tmp_path):
    seen: set[str] = set()
    for name, model in ring_models.items():
        hm, compiled = hostrun.compile_model(model, name, tmp_path / name, emulate_dsp=dsp)
        xs = _inputs(hm, 20, seed=3)
        out, _ = hm.run(xs)
        ref = _tflm(model, xs)
        assert ref.std() > 3, name          # the outputs vary: a wrong value would show
        assert _differ(out, ref) == 0, f"{name}: {sorted(f.form for f in compiled.arena.forms.values())}"
        program, arena = compiled.program, compiled.arena
        for f in arena.forms.values():
            if not f.form.startswith("ring"):
                continue
            x = program.steps[f.step].inputs[0]
            a, b = arena.offsets[x], arena.offsets[f.dst]
            overlaps = a < b + program.buffers[f.dst].nbytes and b < a + program.buffers[x].nbytes
            seen.add(f.form + (" over its input" if overlaps else ""))
    assert seen >= {"ring", "ring streamed over its input", "ring+add over its input"}, seen


def test_the_ring_shift_is_tight():
    """A ring one byte further over its input than its shift would overwrite rows the first
    convolution has yet to read: the checker refuses the plan."""
    model = mobilenet_v1(40, 0.25, 4, features=True, seed=1)
    program = aot.lower(analyze.parse(model, "mbv1"), model)
    arena = aot.plan(program)
    aot.check_plan(program, arena)
    rings = [f for f in arena.forms.values() if f.form == "ring streamed"]
    assert rings
    for f in rings:
        a, b = program.steps[f.step], program.steps[f.fused]
        shift = ring_shift(a, b)
        assert ring_safe(a, b, 1000, 1000 + shift) and not ring_safe(a, b, 1000, 1000 + shift + 1)
        x = a.inputs[0]
        moved = dataclasses.replace(arena, offsets={**arena.offsets, f.dst: arena.offsets[x] + shift + 1})
        with pytest.raises(aot.AotError):
            aot.check_plan(program, moved)


def test_ring_shift_matches_the_kernels_walk():
    """ring_shift against tg_conv_ring's loop written out in Python (the window of rows, its
    compaction, each band of A's rows and the input rows it reads), on random geometries."""
    from tinygen.aot.lower import Step
    from tinygen.aot.plan import _ring_reads, ring_rows

    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(300):
        ka, sa, kb, sb, db = (int(v) for v in (rng.integers(1, 4), rng.integers(1, 3), rng.integers(1, 5),
                                                 rng.integers(1, 3), rng.integers(1, 3)))
        in_h, w, c_in, c_mid, c_out = (int(v) for v in (rng.integers(ka, 14), rng.integers(1, 5), rng.integers(1, 5),
                                                          rng.integers(1, 5), rng.integers(1, 5)))
        pa = int(rng.integers(0, ka))
        mid_h = (in_h + 2 * pa - ka) // sa + 1
        pb = int(rng.integers(0, (kb - 1) * db + 1))
        out_h = (mid_h + 2 * pb - (kb - 1) * db - 1) // sb + 1
        if mid_h < 1 or out_h < 1:
            continue
        geo = dict(in_w=w, out_w=w, k_w=1, stride_w=1, dilation_w=1, pad_w=0)
        a = Step(0, "CONV_2D", "tg_conv2d", "tg_conv.c", "tg_conv_params",
                 dict(geo, in_h=in_h, in_c=c_in, out_h=mid_h, out_c=c_mid, k_h=ka, stride_h=sa, dilation_h=1, pad_h=pa),
                 [], [0], 1)
        b = Step(1, "CONV_2D", "tg_conv2d", "tg_conv.c", "tg_conv_params",
                 dict(geo, in_h=mid_h, in_c=c_mid, out_h=out_h, out_c=c_out, k_h=kb, stride_h=sb, dilation_h=db,
                      pad_h=pb), [], [1], 2)
        if ring_rows(b) > mid_h or _ring_reads(a, b) is None:
            continue
        # the kernel's walk: per output row, the bands A computes, then the row written
        base = end = 0
        events = []    # ("read", first input row) / ("write", output row)
        for y in range(out_h):
            top = y * sb - pb
            lo, hi = max(top, 0), min(top + ring_rows(b), mid_h)
            end = max(end, lo)
            if hi - base > ring_rows(b):
                base = lo
            if end < hi:
                events.append(("read", max(end * sa - pa, 0)))
                end = hi
            events.append(("write", y))
        row_in, row_out = w * c_in, w * c_out
        worst = None
        for k, (kind, y) in enumerate(events):
            if kind != "write":
                continue
            later = [r for kind2, r in events[k + 1:] if kind2 == "read" and r < in_h]
            lowest = min(later) * row_in if later else in_h * row_in
            need = lowest - (y + 1) * row_out
            worst = need if worst is None else min(worst, need)
        assert ring_shift(a, b) == worst, (a.params, b.params)
        checked += 1
    assert checked > 100


def test_the_fit_counts_the_ring_window(shared_models):
    from test_cli import run as cli
    import json

    r = cli("fit", "--board", "mps2-an386", "--model", shared_models / "vww_96_int8.tflite", "--runtime", "aot", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert "ring streamed" in j["aot"]["in_place_forms"].values()
    assert j["aot"]["kernel_stack_bytes"] == 3 * 48 * 16 + RING_FRAME_BYTES  # three rows of the 48 x 48 x 16 pointwise output
    s = j["sram"]
    assert s["total_bytes"] >= s["arena_bytes"] + j["aot"]["kernel_stack_bytes"] + s["stack_bytes"]
