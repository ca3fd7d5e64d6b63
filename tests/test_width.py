"""Width multipliers: the rebuilt network keeps input and output shapes, residual Adds stay
consistent, the kept filters carry the original's weights, and distillation recovers accuracy."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygen.errors import TinygenError
from tinygen.shrink.width import scale_width


@pytest.fixture(scope="module")
def resnet(shared_models):
    from tinygen.model.tf import keras, tf

    tf()
    return keras().models.load_model(str(shared_models / "pretrainedResnet.h5"), compile=False)


def test_width_one_is_the_same_network(resnet):
    thin = scale_width(resnet, 1.0)
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    assert np.array_equal(thin.predict(x, verbose=0), resnet.predict(x, verbose=0))


@pytest.mark.parametrize("alpha, params", [(0.5, 20_266), (0.25, 5_370)])
def test_resnet_halves_with_consistent_residuals(resnet, alpha, params):
    thin = scale_width(resnet, alpha)
    assert thin.count_params() == params
    assert thin.input_shape == resnet.input_shape and thin.output_shape == resnet.output_shape
    for layer in thin.layers:
        if type(layer).__name__ == "Add":
            shapes = {tuple(t.shape) for t in layer.input}
            assert len(shapes) == 1, layer.name
    conv = [l for l in thin.layers if type(l).__name__ == "Conv2D"]
    assert [l.filters for l in conv] == [max(1, round(alpha * l.filters)) for l in resnet.layers if type(l).__name__ == "Conv2D"]


def test_kept_filters_are_the_largest(resnet):
    thin = scale_width(resnet, 0.5)
    first = resnet.get_layer("conv2d").get_weights()[0]
    l1 = np.abs(first).reshape(-1, 16).sum(0)
    # conv2d feeds a residual Add with conv2d_2, so the choice is on their summed L1 norms
    l1 += np.abs(resnet.get_layer("conv2d_2").get_weights()[0]).reshape(-1, 16).sum(0)
    keep = np.sort(np.argsort(-l1, kind="stable")[:8])
    assert np.array_equal(thin.get_layer("conv2d").get_weights()[0], first[..., keep])


def test_sequential_concat_flatten_and_a_layer_it_cannot_scale():
    from tinygen.model.tf import keras

    k = keras()
    inp = k.layers.Input((8, 8, 2))
    a = k.layers.Conv2D(8, 3, padding="same")(inp)
    b = k.layers.Conv2D(4, 1)(inp)
    c = k.layers.Concatenate()([a, b])
    d = k.layers.DepthwiseConv2D(3, padding="same")(c)
    f = k.layers.Flatten()(k.layers.MaxPooling2D(2)(d))
    out = k.layers.Dense(3, activation="softmax")(k.layers.Dense(16, activation="relu")(f))
    m = k.Model(inp, out)
    thin = scale_width(m, 0.5)
    assert thin.get_layer(thin.layers[-2].name).input_shape[-1] == 16 * (4 + 2)   # 4x4 positions x 6 channels
    x = np.random.default_rng(1).random((2, 8, 8, 2), dtype=np.float32)
    assert thin.predict(x, verbose=0).shape == (2, 3)
    seq = k.Sequential([k.layers.Input((10,)), k.layers.Dense(12), k.layers.Reshape((3, 4)), k.layers.Flatten(), k.layers.Dense(2)])
    with pytest.raises(TinygenError, match="Layer 'reshape.*' \\(Reshape\\) cannot be width-scaled"):
        scale_width(seq, 0.5)


@pytest.mark.slow
def test_shrink_the_bundled_example(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "shrink", "--board", "raspberry-pi-pico", "--width", "0.5",
                        "--epochs", "8", "--out", tmp_path / "s", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    orig, chosen = s["candidates"]
    assert chosen["width"] == 0.5 and chosen["quantization"] == "ptq"
    assert chosen["flash_bytes"] < orig["flash_bytes"] and chosen["sram_bytes"] < orig["sram_bytes"]
    assert chosen["accuracy_int8"] > 0.85          # measured on the 450 held-out digits, with labels
    assert (tmp_path / "s" / "model.keras").exists() and (tmp_path / "s" / "model.tflite").exists()


def small_board(tmp_path, flash_bytes: int):
    text = (Path(__file__).parents[1] / "boards" / "raspberry-pi-pico.toml").read_text()
    text = text.replace('id = "raspberry-pi-pico"', 'id = "small"').replace("size = 2_097_152", f"size = {flash_bytes}", 1)
    (tmp_path / "small.toml").write_text(text)
    return tmp_path / "small.toml"


def test_pareto_front():
    from tinygen.shrink.search import Candidate, pareto_front

    def c(acc, flash, sram):
        return Candidate(1.0, 0.0, "ptq", acc, acc, flash, sram, 0, 0, True, 0.0, "labels")

    cands = [c(0.9, 100, 10), c(0.8, 50, 10), c(0.85, 120, 12), c(0.8, 60, 10)]
    assert pareto_front(cands) == [0, 1]     # 2 is beaten by 0 on all three; 3 by 1


@pytest.mark.slow
def test_auto_search_finds_a_model_that_fits_and_resumes(tmp_path):
    board = small_board(tmp_path, 106_752)   # the digits CNN needs ~114 KB at full width
    args = [sys.executable, "-m", "tinygen.cli", "shrink", "--board", board, "--auto", "--max-accuracy-drop", "5",
            "--epochs", "6", "--out", tmp_path / "s", "--json"]
    import time

    t = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)
    first = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["candidates"][0]["width"] == 1.0 and not s["candidates"][0]["fits"]
    assert s["chosen"]["fits"] and (s["chosen"]["width"] < 1.0 or s["chosen"]["sparsity"] > 0)
    assert any(c["pareto"] for c in s["candidates"])
    assert {p.name for p in (tmp_path / "s").iterdir()} == {"model.keras", "model.tflite", "search.json", "search.png"}
    t = time.monotonic()
    again = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert json.loads(again.stdout)["chosen"] == s["chosen"]          # resumed from the cache
    assert time.monotonic() - t < first


@pytest.mark.slow
def test_an_accuracy_floor_no_candidate_meets(tmp_path):
    board = small_board(tmp_path, 106_752)
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "shrink", "--board", board, "--auto", "--accuracy-floor",
                        "0.999", "--epochs", "2", "--out", tmp_path / "s"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "meets the accuracy floor of 99.90%" in r.stderr and "points short" in r.stderr


def test_structured_pruning_ranks_filters_across_layers(resnet):
    from tinygen.shrink.width import prune_filters

    thin = prune_filters(resnet, 0.3)
    filters = {l.name: l.filters for l in thin.layers if type(l).__name__ == "Conv2D"}
    assert len(set(filters.values())) > 3                      # layers lose different shares
    assert filters["conv2d"] == filters["conv2d_2"]           # tied by the first residual Add
    assert filters["conv2d_4"] == filters["conv2d_5"] and filters["conv2d_7"] == filters["conv2d_8"]
    assert thin.count_params() < resnet.count_params() and thin.output_shape == resnet.output_shape
    assert prune_filters(resnet, 0.0).count_params() == resnet.count_params()


@pytest.mark.slow
def test_unstructured_sparsity_saves_no_flash_structured_does(tmp_path):
    def run(*extra):
        r = subprocess.run([sys.executable, "-m", "tinygen.cli", "shrink", "--board", "raspberry-pi-pico", *extra,
                            "--epochs", "4", "--out", tmp_path / "p", "--json"], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["candidates"]

    orig, unstructured = run("--prune", "0.5", "--unstructured")
    assert unstructured["sparsity"] > 0.4
    assert (unstructured["flash_bytes"], unstructured["sram_bytes"]) == (orig["flash_bytes"], orig["sram_bytes"])
    _, structured = run("--prune", "0.5")
    assert structured["flash_bytes"] < orig["flash_bytes"] and structured["macs"] < orig["macs"]
