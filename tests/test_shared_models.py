"""Every MLPerf Tiny reference model through `tinygen build`, for sparkfun-edge and nucleo-l4r5zi.

The float models are quantized once (for sparkfun-edge); the nucleo build takes that int8
output, which passes through unchanged, so each conversion runs once."""

import pytest

from tinygen.model import graph as analyze
from tinygen.boards import load_board
from tinygen.pipeline.build import BuildOptions, build

FLOAT = ["vww_96.h5", "pretrainedResnet.h5", "ad01.h5", "kws_ref_model"]
INT8 = ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite", "kws_ref_model.tflite"]


def check(result):
    r = result.report
    # fits, or gets a clear does-not-fit: either way the figures are all there
    assert r.sram.total_bytes > r.arena_bytes > 0 and r.flash.total_bytes > r.model_bytes > 0
    if not r.fits:
        assert "over by" in r.advice()
    assert r.plan.exact


@pytest.mark.parametrize("name", FLOAT)
def test_float_models(shared_models, tmp_path, name):
    edge = build(load_board("sparkfun-edge"), shared_models / name, None, tmp_path / "edge")
    check(edge)
    assert analyze.parse(edge.model_bytes).is_full_int8() == (True, None)
    nucleo = build(load_board("nucleo-l4r5zi"), tmp_path / "edge" / "model.tflite", None, tmp_path / "nucleo")
    check(nucleo)
    assert nucleo.model_bytes == edge.model_bytes


@pytest.mark.parametrize("name", INT8)
@pytest.mark.parametrize("board", ["sparkfun-edge", "nucleo-l4r5zi"])
def test_int8_models_pass_through(shared_models, tmp_path, name, board):
    result = build(load_board(board), shared_models / name, None, tmp_path / "out")
    check(result)
    original = (shared_models / name).read_bytes()
    if result.model_bytes != original:
        # the one change: tinygen's memory plan in the metadata, where it needs less arena than TFLM's
        assert result.report.memory_plan is not None and result.report.memory_plan.used == "offline"
        assert analyze.parse(result.model_bytes).has_offline_plan
        assert build(load_board(board), shared_models / name, None, tmp_path / "greedy",
                     opts=BuildOptions(tflm_plan="greedy")).model_bytes == original
    assert result.report.fits  # all four fit both boards
