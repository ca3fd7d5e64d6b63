"""The fit check as a library function: check_fit(graph, board, ...) -> FitReport, for both
runtimes, its budgets adding up, its verdict and advice, and the AOT compile it carries."""

import pytest

from tinygen import aot
from tinygen.boards import load_board
from tinygen.errors import UnsupportedOpError
from tinygen.fit import ARENA_MARGIN_BYTES, check_fit
from tinygen.model.graph import parse
from tinygen.ports import application_flash_bytes


@pytest.fixture(scope="module")
def kws(shared_models):
    model_bytes = (shared_models / "kws_ref_model.tflite").read_bytes()
    return model_bytes, parse(model_bytes, "kws_ref_model.tflite")


def test_tflm_budget_adds_up(kws):
    model_bytes, g = kws
    board = load_board("sparkfun-edge")
    r = check_fit(g, board, "kws_ref_model.tflite", test_vectors=3)
    assert r.runtime == "tflm" and r.compiled is None and r.aot is None
    assert r.arena_reserved_bytes == (r.arena_bytes + 15) // 16 * 16 + ARENA_MARGIN_BYTES
    assert r.sram.total_bytes == r.arena_reserved_bytes + board.stack_bytes + board.heap_bytes + r.static_ram_bytes
    vectors = 3 * (g.tensors[g.inputs[0]].nbytes + g.tensors[g.outputs[0]].nbytes)
    assert r.test_vector_bytes == vectors == 3 * (490 + 12)
    assert r.app_bytes == application_flash_bytes(board) == 10240           # the apollo3 port's manifest
    assert r.flash.total_bytes == g.model_bytes + r.runtime_bytes + r.app_bytes + vectors
    assert r.fits and r.sram.headroom_bytes == board.sram_size - r.sram.total_bytes
    assert r.to_json()["sram"]["arena_bytes"] == r.arena_bytes


def test_aot_report_carries_the_one_compile(kws):
    model_bytes, g = kws
    r = check_fit(g, load_board("mps2-an386"), "kws", runtime="aot", model_bytes=model_bytes)
    c = r.compiled
    assert isinstance(c, aot.Compiled)
    assert r.arena_bytes == c.arena.size == 8640    # below KWS's live-set bound (16,000): convolutions in place
    assert r.model_bytes == c.weight_bytes + c.param_bytes
    assert {"tg_model.c", "tg_model.h", "tg_conv.c"} <= set(c.files)
    j = r.to_json()["aot"]
    assert j["steps"] == c.kernel_calls and j["weight_bytes"] == c.weight_bytes
    assert j["kernels"] == c.program.kernels and j["kernel_code_bytes"] == r.runtime_bytes


def test_aot_is_smaller_than_tflm(kws):
    model_bytes, g = kws
    board = load_board("mps2-an386")
    tflm = check_fit(g, board)
    aot_r = check_fit(g, board, runtime="aot", model_bytes=model_bytes)
    assert aot_r.arena_bytes < tflm.arena_bytes and aot_r.flash.total_bytes < tflm.flash.total_bytes


def test_a_model_that_does_not_fit_says_by_how_much(shared_models):
    g = parse((shared_models / "vww_96_int8.tflite").read_bytes())
    r = check_fit(g, load_board("bbc-microbit"))
    assert not r.fits and not r.sram.fits and not r.flash.fits
    advice = r.advice()
    assert f"SRAM is over by {-r.sram.headroom_bytes:,} bytes" in advice
    assert f"flash is over by {-r.flash.headroom_bytes:,} bytes" in advice
    assert "--shrink auto" in advice and "largest activations are at layer" in advice


def test_an_op_tflm_lacks_is_named(kws):
    import copy

    g = copy.deepcopy(kws[1])
    g.operators[0].op = "NOT_AN_OP"
    with pytest.raises(UnsupportedOpError, match="NOT_AN_OP, which TensorFlow Lite Micro does not implement") as e:
        check_fit(g, load_board("mps2-an386"))
    assert e.value.ops == ["NOT_AN_OP"]


def test_unknown_runtime(kws):
    from tinygen.errors import TinygenError

    with pytest.raises(TinygenError, match="--runtime must be one of tflm, aot"):
        check_fit(kws[1], load_board("mps2-an386"), runtime="tvm")
