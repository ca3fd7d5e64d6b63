"""tinygen's memory plan inside TFLM (the OfflineMemoryAllocation metadata): the arena it gives,
replayed, against the tflite-micro interpreter's recording allocator byte for byte; the outputs
unchanged; the live-set bound reached on every shared model; the model rewritten whole.
(The same against real TFLM with CMSIS-NN in QEMU: test_firmware_tflm.py, with TFLM_ROOT.)"""

import numpy as np
import pytest
from test_arena import HOST, recorded
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinygen.errors import ModelError, TinygenError
from tinygen.model import graph as analyze
from tinygen.tflm import arena, offline_plan

SHARED_INT8 = ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite", "kws_ref_model.tflite"]
M4 = arena.Target("arm", "cmsis-nn", dsp=True)


def outputs(model_bytes: bytes, seed: int = 0, count: int = 3) -> list[np.ndarray]:
    it = runtime.Interpreter.from_bytes(model_bytes, arena_size=8 * 1024 * 1024)
    d = it.get_input_details(0)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        it.set_input(rng.integers(-128, 128, size=d["shape"]).astype(d["dtype"]), 0)
        it.invoke()
        out.append(it.get_output(0).copy())
    return out


def planned(model_bytes: bytes, target=HOST) -> tuple[bytes, offline_plan.OfflinePlan]:
    plan = offline_plan.plan_offline(analyze.parse(model_bytes), target)
    return offline_plan.write_offsets(model_bytes, plan.offsets), plan


def check_against_tflm(model_bytes: bytes, capfd) -> arena.ArenaPlan:
    """Plan, write, and compare the replay with the recording allocator; outputs must not change."""
    new, plan = planned(model_bytes)
    g = analyze.parse(new)
    assert g.has_offline_plan and offline_plan.read_offsets(new) == plan.offsets
    replay = arena.plan_arena(g, HOST, offline_plan.read_offsets(new))
    offline_plan.check_offsets(replay)
    rec = recorded(new, capfd)
    assert replay.exact and replay.offline
    assert (replay.head_bytes, replay.tail_bytes, replay.used_bytes) == (rec["head"], rec["tail"], rec["total"])
    assert replay.head_bytes == plan.head_bytes
    for a, b in zip(outputs(new), outputs(model_bytes)):
        assert np.array_equal(a, b)
    return replay


@pytest.mark.parametrize("name", SHARED_INT8)
def test_shared_models_reach_the_live_set_bound_in_tflm(shared_models, name, capfd):
    model_bytes = (shared_models / name).read_bytes()
    replay = check_against_tflm(model_bytes, capfd)
    greedy = arena.plan_arena(analyze.parse(model_bytes), HOST)
    assert replay.head_bytes == max(replay.live_bytes())          # the bound: nothing buffer-per-tensor goes lower
    assert replay.head_bytes <= greedy.head_bytes
    assert replay.tail_bytes == greedy.tail_bytes                  # the plan lives in flash, not in the arena
    # on the Cortex-M4 with CMSIS-NN's scratch buffers too
    m4 = offline_plan.plan_offline(analyze.parse(model_bytes), M4)
    assert m4.head_bytes == m4.bound_bytes


def test_vww_head_drops_to_its_bound(shared_models, capfd):
    replay = check_against_tflm((shared_models / "vww_96_int8.tflite").read_bytes(), capfd)
    assert (replay.head_bytes, replay.used_bytes) == (55_296, 85_248)   # TFLM's greedy plan: 73,728 and 103,680


def test_tiny_models_match_the_recording_allocator(tiny_models, capfd):
    for name, model_bytes in tiny_models.items():
        if not arena.plan_arena(analyze.parse(model_bytes), HOST).exact:
            continue        # an op whose allocations are not modelled (test_arena names it)
        try:
            check_against_tflm(model_bytes, capfd)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


def test_fixed_buffers_come_first_and_the_rest_fit_around_them():
    # GreedyMemoryPlanner: offline buffers keep their offsets; online ones take the first gap
    b = arena.Buffer
    buffers = [b("tensor 0", 160, 0, 1, offline=320), b("tensor 1", 320, 1, 2), b("tensor 2", 96, 2, 3, offline=0),
               b("scratch 0", 64, 2, 2)]
    head, offsets = arena._greedy_offsets(buffers)
    assert offsets["tensor 0"] == 320 and offsets["tensor 2"] == 0
    assert offsets == {"tensor 0": 320, "tensor 2": 0, "tensor 1": 480, "scratch 0": 96}
    assert head == 800


def test_the_rewritten_model_keeps_its_buffers_aligned_and_its_plan_replaceable(shared_models):
    model_bytes = (shared_models / "kws_ref_model.tflite").read_bytes()
    new, plan = planned(model_bytes)
    m = schema.Model.GetRootAs(new, 0)
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        o = buf._tab.Offset(4)
        if o and buf.DataLength():
            assert buf._tab.Vector(o) % 16 == 0, f"buffer {i} is not 16-aligned"
    # planning again replaces the metadata, it does not add a second one
    again = offline_plan.write_offsets(new, [offline_plan.ONLINE] * len(plan.offsets))
    m2 = schema.Model.GetRootAs(again, 0)
    assert [m2.Metadata(i).Name() for i in range(m2.MetadataLength())].count(b"OfflineMemoryAllocation") == 1
    assert m2.BuffersLength() == m.BuffersLength()
    stripped = offline_plan.write_offsets(new, None)
    assert offline_plan.read_offsets(stripped) is None and not analyze.parse(stripped).has_offline_plan


def test_all_online_offsets_are_tflms_greedy_plan(shared_models, capfd):
    model_bytes = (shared_models / "pretrainedResnet_quant.tflite").read_bytes()
    g = analyze.parse(model_bytes)
    online = offline_plan.write_offsets(model_bytes, [offline_plan.ONLINE] * len(g.tensors))
    replay = arena.plan_arena(g, HOST, offline_plan.read_offsets(online))
    assert replay.used_bytes == arena.plan_arena(g, HOST).used_bytes == recorded(online, capfd)["total"]


def test_a_plan_for_the_wrong_tensor_count_is_one_sentence(shared_models):
    model_bytes = (shared_models / "ad01_int8.tflite").read_bytes()
    g = analyze.parse(model_bytes)
    with pytest.raises(ModelError, match="offsets and the model"):
        arena.plan_arena(g, HOST, [offline_plan.ONLINE] * (len(g.tensors) - 1))


def test_choose_takes_the_smaller_arena_on_the_board(shared_models):
    vww = (shared_models / "vww_96_int8.tflite").read_bytes()
    new, g, choice = offline_plan.choose(vww, analyze.parse(vww), M4, "auto")
    assert choice.used == "offline" and g.has_offline_plan
    assert (choice.greedy_arena_bytes, choice.offline_arena_bytes) == (100_708, 82_276)
    assert arena.plan_arena(g, M4, offline_plan.read_offsets(new)).used_bytes == 82_276
    # greedy: the planned model loses its plan again; a tie keeps TFLM's own plan and the model as it was
    stripped, g2, c2 = offline_plan.choose(new, g, M4, "greedy")
    assert c2.used == "greedy" and not g2.has_offline_plan
    ad = (shared_models / "ad01_int8.tflite").read_bytes()
    same, _, c3 = offline_plan.choose(ad, analyze.parse(ad), M4, "auto")
    assert c3.used == "greedy" and same == ad and c3.offline_arena_bytes == c3.greedy_arena_bytes
    with pytest.raises(TinygenError, match="--tflm-plan"):
        offline_plan.choose(ad, analyze.parse(ad), M4, "best")


def test_fit_report_and_timeline(shared_models, tmp_path):
    from tinygen.boards import load_board
    from tinygen.fit import check_fit
    from tinygen.plots import layer_memory_png, memory_timeline

    vww = (shared_models / "vww_96_int8.tflite").read_bytes()
    new, g, choice = offline_plan.choose(vww, analyze.parse(vww), M4, "auto")
    report = check_fit(g, load_board("mps2-an386"), "vww.tflite", model_bytes=new, memory_plan=choice)
    assert report.arena_bytes == 82_276 and report.plan.exact
    assert report.to_json()["sram"]["tflm_plan"]["greedy_arena_bytes"] == 100_708
    series = memory_timeline(report)
    assert max(series["TFLM greedy"]) == 73_728 and max(series["tinygen offline"]) == 55_296
    assert max(series["alive"]) == 55_296 and len(series["alive"]) == len(g.operators)
    png = tmp_path / "vww.png"
    layer_memory_png(report, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
