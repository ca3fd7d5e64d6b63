"""The command line as a user meets it: exit codes, one-sentence errors, files written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINYGEN = [sys.executable, "-m", "tinygen.cli"]


def run(*args, cwd=None):
    env = dict(os.environ, COLUMNS="120")
    return subprocess.run(TINYGEN + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def assert_one_sentence_error(r, code=1):
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_help_is_worth_reading():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("build", "fit", "boards"):
        assert cmd in r.stdout
    r = run("build", "--help")
    for opt in ("--board", "--model", "--data", "--val", "--out", "--json"):
        assert opt in r.stdout


def test_boards_list_and_show():
    r = run("boards")
    assert r.returncode == 0 and "sparkfun-edge" in r.stdout and "nucleo-l4r5zi" in r.stdout
    r = run("boards", "--json")
    assert {b["id"] for b in json.loads(r.stdout)} >= {"sparkfun-edge", "mps2-an386"}
    r = run("boards", "show", "sparkfun-edge")
    assert r.returncode == 0 and "0xC000" in r.stdout and "datasheet" in r.stdout


def test_default_build_end_to_end(tmp_path):
    out = tmp_path / "edge"
    r = run("build", "--board", "sparkfun-edge", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["board"] == "sparkfun-edge" and report["fits"] is True
    for key in ("arena_bytes", "total_bytes", "budget_bytes", "fits"):
        assert key in report["sram"]
    for key in ("model_bytes", "runtime_bytes", "total_bytes", "budget_bytes", "fits"):
        assert key in report["flash"]
    assert report["model"]["sha256"] and report["model"]["ops"]
    assert report["accuracy"]["measured_by"] == "labels"
    assert report["accuracy"]["int8"] > 0.9 and report["accuracy"]["float"] > 0.9
    assert sorted(p.name for p in out.iterdir()) == [".tinygen-manifest.json", "CMakeLists.txt", "Makefile", "README.md", "fit.json", "model.tflite", "port", "src"]
    assert json.loads((out / "fit.json").read_text())["sram"] == report["sram"]
    src = (out / "src" / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_model[]" in src
    assert report["model"]["sha256"] in src.splitlines()[1]
    assert report["flash"]["model_bytes"] == (out / "model.tflite").stat().st_size
    # ten 8x8 digits and their ten int8 scores are compiled in, and counted in flash
    assert report["flash"]["test_vector_bytes"] == 10 * (64 + 10)


def test_fit_of_an_int8_model(shared_models):
    r = run("fit", "--board", "nucleo-l4r5zi", "--model", shared_models / "kws_ref_model.tflite", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    # measured: arena_used_bytes() of TFLM (90b983c2, CMSIS-NN) for this model on a Cortex-M4 in QEMU
    assert report["sram"]["arena_bytes"] == 22820
    assert report["kernels"] == "cmsis-nn"


@pytest.fixture
def bad_inputs(tmp_path, shared_models):
    import numpy as np

    (tmp_path / "trunc.h5").write_bytes((shared_models / "pretrainedResnet.h5").read_bytes()[:50000])
    (tmp_path / "trunc.tflite").write_bytes((shared_models / "kws_ref_model.tflite").read_bytes()[:30000])
    (tmp_path / "notes.tflite").write_text("not a model\n")
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 28, 28), np.float32))
    (tmp_path / "bad.toml").write_text((Path(__file__).parents[1] / "boards" / "nucleo-l4r5zi.toml").read_text().replace("hz = 120_000_000", "hz = -5"))
    return tmp_path


@pytest.mark.parametrize("args, says", [
    (["--model", "trunc.h5"], "corrupt, truncated"),
    (["--model", "trunc.tflite"], "corrupt or truncated"),
    (["--model", "notes.tflite"], "does not start like a .tflite"),
    (["--model", "missing.h5"], "There is no model"),
    (["--model", "{shared}/kws_ref_model.tflite", "--data", "wrong.npz"], "shape (28, 28)"),
    (["--board", "sparkfun-egde"], "Did you mean 'sparkfun-edge'"),
    (["--board", "bad.toml"], "'clock.hz'"),
])
def test_bad_input_gets_one_sentence(bad_inputs, shared_models, args, says):
    args = [a.replace("{shared}", str(shared_models)) for a in args]
    if "--board" not in args:
        args = ["--board", "sparkfun-edge"] + args
    r = run("build", *args, "--out", "out", cwd=bad_inputs)
    line = assert_one_sentence_error(r)
    assert says in line
    assert not (bad_inputs / "out").exists()
    assert not [p for p in bad_inputs.iterdir() if p.name.startswith(".out")]


def test_model_that_does_not_fit(tmp_path, shared_models):
    board = (Path(__file__).parents[1] / "boards" / "raspberry-pi-pico.toml").read_text()
    board = board.replace('id = "raspberry-pi-pico"', 'id = "tiny"').replace("size = 270_336", "size = 16_384", 1)
    (tmp_path / "tiny.toml").write_text(board)
    r = run("fit", "--board", tmp_path / "tiny.toml", "--model", shared_models / "kws_ref_model.tflite")
    assert r.returncode == 2
    assert "does not fit tiny: SRAM is over by" in r.stderr
    assert "--shrink auto" in r.stderr
    assert "Traceback" not in r.stderr


def test_op_the_runtime_lacks_is_named(tmp_path):
    from tinymodels import int8
    from tinygen.model.tf import keras

    k = keras()
    inp = k.layers.Input((5, 12))  # a dynamic batch makes the converter emit REDUCE_PROD
    model = k.Model(inp, k.layers.Dense(4)(inp))
    (tmp_path / "m.tflite").write_bytes(int8(model))
    r = run("fit", "--board", "sparkfun-edge", "--model", tmp_path / "m.tflite")
    line = assert_one_sentence_error(r)
    assert "REDUCE_PROD" in line and "TensorFlow Lite Micro does not implement" in line


def test_fit_writes_a_layer_memory_png(shared_models, tmp_path):
    png = tmp_path / "mem.png"
    r = run("fit", "--board", "sparkfun-edge", "--model", shared_models / "kws_ref_model.tflite", "--plot", png)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow
def test_the_bundled_example_is_shrunk_to_fit_a_small_part(tmp_path):
    """The digits CNN with TFLM misses a micro:bit-like part with 10 KB of SRAM (a user's own board
    file); --shrink auto finds a thinner one that fits."""
    text = (Path(__file__).parents[1] / "boards" / "bbc-microbit.toml").read_text()
    text = text.replace('id = "bbc-microbit"', 'id = "small-m0"').replace("size = 16_384", "size = 10_240", 1)
    assert "size = 10_240" in text
    (tmp_path / "small-m0.toml").write_text(text)
    board = str(tmp_path / "small-m0.toml")
    r = run("build", "--board", board, cwd=tmp_path)
    assert r.returncode == 2 and "SRAM is over by" in r.stderr and "--shrink auto" in r.stderr
    r = run("build", "--board", board, "--shrink", "auto", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["fits"] and report["accuracy"]["int8"] > 0.9
    search = json.loads((tmp_path / "build" / "small-m0-shrunk" / "search.json").read_text())
    assert not search["candidates"][0]["fits"]
    assert search["chosen"]["width"] < 1.0 or search["chosen"]["sparsity"] > 0
