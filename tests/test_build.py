"""`build` as named stages, each called on its own: inputs, int8 and accuracy, the fit, the
outputs; and the pipeline that runs them in order."""

import json

import numpy as np
import pytest

from tinygen.boards import load_board
from tinygen.errors import DataError, TinygenError
from tinygen.pipeline.build import (BuildOptions, BuildResult, build, check, quantize_and_score, resolve_inputs,
                                    test_vectors as make_vectors, write_outputs)


@pytest.fixture(scope="module")
def digits():
    """The bundled example through the first two stages, once."""
    inputs = resolve_inputs(None)
    return inputs, quantize_and_score(inputs, eval_limit=200)


def test_inputs_of_the_bundled_example(digits):
    inputs, _ = digits
    assert inputs.source.kind == "keras" and inputs.keras_model is not None
    assert inputs.calibration.source == "scikit-learn digits (train split)"
    assert inputs.validation.source == "scikit-learn digits (test split)" and inputs.warnings == []


def test_inputs_without_data_are_generated_and_say_so(shared_models):
    inputs = resolve_inputs(shared_models / "kws_ref_model.tflite")
    assert inputs.calibration.generated and inputs.validation is None
    assert inputs.calibration.x.shape[1:] == (49, 10, 1)
    assert "accuracy is not measured" in inputs.warnings[0]


def test_inputs_of_the_wrong_shape_are_refused_before_any_work(shared_models, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 7, 7), np.float32))
    with pytest.raises(DataError, match=r"samples of shape \(7, 7\), but the model takes \(49, 10, 1\)"):
        resolve_inputs(shared_models / "kws_ref_model.tflite", tmp_path / "d.npz")


def test_quantize_and_score(digits):
    _, q = digits
    assert q.graph.is_full_int8() == (True, None)
    a = q.accuracy
    assert a.kind == "labels" and a.samples == 200
    assert a.int8_top1 > 0.9 and abs(a.float_top1 - a.int8_top1) < 0.05
    assert q.samples.source == "scikit-learn digits (test split)"


def test_int8_tflite_passes_through_unscored(shared_models):
    q = quantize_and_score(resolve_inputs(shared_models / "ad01_int8.tflite"))
    assert q.model_bytes == (shared_models / "ad01_int8.tflite").read_bytes()
    assert q.accuracy.samples == 0 and q.accuracy.kind == "none"


def test_check_counts_the_test_vectors_only_where_they_go(digits, portless_board):
    _, q = digits
    board = load_board("mps2-an386")
    per = q.graph.tensors[q.graph.inputs[0]].nbytes + q.graph.tensors[q.graph.outputs[0]].nbytes
    assert check(board, q, "m", BuildOptions(vector_count=4), writes_project=True).test_vector_bytes == 4 * per
    assert check(board, q, "m", BuildOptions(vector_count=4), writes_project=False).test_vector_bytes == 0
    assert check(board, q, "m", BuildOptions(input_source="serial"), writes_project=True).test_vector_bytes == 0
    no_port = load_board(portless_board)
    assert check(no_port, q, "m", BuildOptions(), writes_project=True).test_vector_bytes == 0


def test_test_vectors_are_the_interpreters_outputs(digits):
    from tinygen.tflm.interpreter import int8_predict

    _, q = digits
    vin, expected = make_vectors(q, 3)
    assert vin.dtype == np.int8 and len(vin) == 3
    assert np.array_equal(expected, int8_predict(q.model_bytes, q.graph, vin))


@pytest.mark.parametrize("board,runtime,expect", [
    ("mps2-an386", "tflm", {"src/main.cc", "src/model_data.cc", "src/test_vectors.cc", "Makefile", "port/harness.c"}),
    ("mps2-an386", "aot", {"src/main.c", "aot/tg_model.c", "aot/tg_conv.c", "src/test_vectors.c", "Makefile"}),
    ("portless", "aot", {"aot/tg_model.c", "aot/tg_model.h"}),       # no port: the portable C only
    ("portless", "tflm", {"model_data.cc", "model_data.h"}),
])
def test_write_outputs(digits, tmp_path, board, runtime, expect, portless_board):
    _, q = digits
    opts = BuildOptions(vector_count=2, runtime=runtime)
    report = check(load_board(portless_board if board == "portless" else board), q, "model.h5", opts, writes_project=True)
    result = write_outputs(BuildResult(report, q.model_bytes, q.accuracy, "test"), q, "model.h5", tmp_path / "o", opts)
    written = {str(p.relative_to(tmp_path / "o")) for p in (tmp_path / "o").rglob("*") if p.is_file()}
    assert written == set(result.files) | {".tinygen-manifest.json"} and expect <= written and {"model.tflite", "fit.json"} <= written
    assert result.project == (board == "mps2-an386")
    assert json.loads((tmp_path / "o" / "fit.json").read_text())["runtime"] == runtime
    project = json.loads((tmp_path / "o" / "fit.json").read_text())["project"]
    if board == "portless":
        assert "no firmware port for my-board (myfamily)" in result.warnings[-1]
        assert project is None and "no firmware port" in result.to_json()["project_reason"]
    else:
        assert project == {"port": "mps2", "runtime": runtime, "files": sorted(set(result.files) - {"model.tflite", "fit.json"})}
        assert expect - {"model.tflite"} <= set(project["files"])


def test_build_is_the_stages_in_order(tmp_path):
    result = build(load_board("sparkfun-edge"), None, None, tmp_path / "edge", opts=BuildOptions(eval_limit=100))
    assert result.report.fits and result.project and result.accuracy.samples == 100
    assert (tmp_path / "edge" / "src" / "main.cc").exists()


def test_match_needs_the_aot_runtime():
    with pytest.raises(TinygenError, match="--match picks the arithmetic of tinygen's AOT C"):
        build(load_board("mps2-an386"), None, None, None, opts=BuildOptions(match="tflite"))
