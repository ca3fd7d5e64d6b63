"""Clustering in the search (`shrink --auto`) and `build --compress`: post-training k-means on the
int8 candidate, scored by the fit check's flash and the accuracy on held-out data. A tiny dense
network (1024 -> 64 -> 10, 66 K weights in few channels, so per-channel k-means is quick), large
enough that TFLM's compressed tensors save more flash than TFLM's DECODE kernel costs; no training."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from tinygen.boards import load_board
from tinygen.errors import TinygenError
from tinygen.model.data import Dataset

SHORT = 8_000   # flash the test board lacks for the int8 model: 4-bit tables fit, 5-bit ones do not


@pytest.fixture(scope="module")
def dense_net():
    """(teacher, train, val): the teacher's own top-1 labels the samples, so its int8 model
    scores near 100% and clustering's losses show."""
    from tinymodels import _model, _seed_weights

    from tinygen.model.tf import keras, quiet

    L = keras().layers
    _seed_weights(7)
    teacher = _model((1024,), L.Dense(64, activation="relu"), L.Dense(10))
    x = np.random.default_rng(0).normal(size=(300, 1024)).astype(np.float32)
    with quiet():
        y = teacher.predict(x, verbose=0).argmax(1)
    return teacher, Dataset(x[:200], y[:200], "train"), Dataset(x[200:], y[200:], "val")


@pytest.fixture(scope="module")
def int8_search(dense_net):
    """The int8 candidate and its .tflite (calibrated on the training samples)."""
    from tinygen.shrink.search import search

    teacher, train, val = dense_net
    result = search(load_board("sparkfun-edge"), teacher, "t", train, val, widths=(1.0,), sparsities=(0.0,), qat_when_drop=1.0)
    assert len(result.candidates) == 1 and result.candidates[0].fits    # it fits: nothing clustered
    return result.candidates[0], result.models[0][1]


@pytest.fixture(scope="module")
def int8_candidate(int8_search):
    return int8_search[0]


def _short_board(int8):
    edge = load_board("sparkfun-edge")
    return replace(edge, flash_size=edge.flash_reserved + int8.flash_bytes - SHORT)


def test_the_search_picks_a_clustered_candidate_when_only_that_fits(dense_net, int8_candidate):
    from tinygen.model.graph import parse
    from tinygen.shrink.search import search
    from tinygen.tflm.compress import DECODE_OP, table_axis, values, weight_tensors

    teacher, train, val = dense_net
    int8, board = int8_candidate, _short_board(int8_candidate)
    result = search(board, teacher, "t", train, val, widths=(1.0,), sparsities=(0.0,), max_drop=5.0, bits=(5, 4, 3),
                    qat_when_drop=1.0)
    c = result.chosen
    assert int8.storage == "dense" and not result.candidates[0].fits
    assert c is not None and c.storage == "lut" and c.fits and c.cluster_bits == 4
    assert c.flash_bytes <= board.app_flash_bytes < int8.flash_bytes
    five = [x for x in result.candidates if x.cluster_bits == 5]
    assert five and not any(x.fits for x in five)                    # tried first, too big
    assert not any(x.cluster_bits == 3 for x in result.candidates if x.cluster_granularity == c.cluster_granularity)
    assert c.accuracy_int8 >= int8.accuracy_int8 - 0.05
    assert c.accuracy_int8 == max(x.accuracy_int8 for x in result.candidates if x.fits)
    j = json.loads(json.dumps(result.to_json()))         # plain JSON values, for search.json and the cache
    assert j["chosen"]["cluster_bits"] == 4 and j["runtime"] == "tflm"
    _, clustered, compressed = result.models[result.chosen_index]
    g = parse(clustered)
    for i in weight_tensors(g):
        w = values(clustered, g, i)
        per = [w] if c.cluster_granularity == "tensor" or table_axis(g, i) is None else list(w)
        assert max(len(np.unique(s)) for s in per) <= 16
    assert DECODE_OP in parse(compressed).ops


def test_the_search_refuses_clustering_that_loses_too_much(dense_net, int8_candidate, tmp_path):
    from tinygen.shrink.search import run_search, search

    teacher, train, val = dense_net
    int8, board = int8_candidate, _short_board(int8_candidate)
    result = search(board, teacher, "t", train, val, widths=(1.0,), sparsities=(0.0,), max_drop=1.0, bits=(2,),
                    qat_when_drop=1.0)
    two = [x for x in result.candidates if x.cluster_bits == 2]
    assert two and all(x.fits for x in two)                          # 2-bit tables fit...
    assert all(x.accuracy_int8 < int8.accuracy_int8 - 0.01 for x in two)   # ...but lose more than a point
    assert result.chosen is None
    keras_path = tmp_path / "m.keras"
    teacher.save(keras_path)
    with pytest.raises(TinygenError, match=r"^No candidate that fits meets the accuracy floor of .*width 1 ptq "
                                           r"clustered to 2 bits per \w+, reached .* points short\.$"):
        run_search(board, teacher, keras_path, train, val, 1.0, None, 1, tmp_path / "s", widths=(1.0,),
                   sparsities=(0.0,), bits=(2,), qat_when_drop=1.0)
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def dense_tflite(dense_net, int8_search, tmp_path_factory):
    d = tmp_path_factory.mktemp("compress")
    (d / "m.tflite").write_bytes(int8_search[1])
    np.savez(d / "val.npz", x=dense_net[2].x, y=dense_net[2].y)
    return d


def test_build_compress_auto_json_has_the_compression_table(dense_tflite):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "build", "--board", "sparkfun-edge", "--model",
                        dense_tflite / "m.tflite", "--val", dense_tflite / "val.npz", "--compress", "auto", "--max-accuracy-drop", "5",
                        "--no-project", "--out", dense_tflite / "out", "--json"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    c, table = j["compress"], j["compression"]
    assert c["asked"] == "auto" and 2 <= c["bits"] <= 7 and c["measured_by"].startswith("labels")
    assert c["flash_bytes"] == j["flash"]["total_bytes"] < c["int8_flash_bytes"]
    assert c["max_accuracy_drop"] == 5 and c["score"] >= c["int8_score"] - 0.05 and c["bit_exact"]["identical"]
    kept = [t for t in c["tried"] if t["kept"]]
    assert kept and min(t["flash_bytes"] for t in kept) == c["flash_bytes"]
    # the table counts the model's bytes: int8 as given, clustered as TFLM compressed tensors
    assert table["int8_bytes"] == (dense_tflite / "m.tflite").stat().st_size
    assert table["clustered_bytes"] == j["flash"]["model_bytes"] < table["int8_bytes"]
    assert table["coded_bytes"] <= table["clustered_bytes"] and table["float32_bytes"] is None
    assert {"model.tflite", "model.compressed.tflite", "fit.json"} <= set(j["files"])


@pytest.mark.parametrize("args, sentence", [
    (["--compress", "9"], "--compress takes off, auto or index bits from 2 to 7"),
    (["--compress", "lots"], "--compress takes off, auto or index bits from 2 to 7"),
    (["--compress", "4", "--max-accuracy-drop", "1"], "--max-accuracy-drop limits what --compress auto"),
    (["--compress", "auto", "--max-accuracy-drop", "-3"], "--max-accuracy-drop is in accuracy points"),
])
def test_bad_compress_values_get_one_sentence(args, sentence, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "build", "--board", "sparkfun-edge", *args,
                        "--out", tmp_path / "o"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and sentence in r.stderr and r.stderr.count(".") <= 3
    assert not (tmp_path / "o").exists()


def test_the_aot_search_picks_weights_pruned_post_training_when_only_that_fits(dense_net):
    """With --runtime aot the search also zeroes each weight's smallest share (no training) and
    measures the flash of the AOT runtime's sparse forms: on a board short of the dense int8 model
    it picks the least pruned model that fits, and that model's weights are zeros where it says."""
    from tinygen import aot
    from tinygen.model.graph import parse
    from tinygen.shrink.search import WEIGHT_SPARSITIES, search
    from tinygen.tflm.compress import values, weight_tensors

    teacher, train, val = dense_net
    opts = dict(widths=(1.0,), sparsities=(0.0,), qat_when_drop=1.0, runtime="aot", bits=())
    dense = search(load_board("sparkfun-edge"), teacher, "t", train, val, **opts).candidates[0]
    edge = load_board("sparkfun-edge")
    board = replace(edge, flash_size=edge.flash_reserved + dense.flash_bytes - 20_000)
    result = search(board, teacher, "t", train, val, max_drop=50.0, **opts)
    c = result.chosen
    assert not result.candidates[0].fits and c is not None and c.fits
    assert c.storage == "sparse" and c.weight_sparsity in WEIGHT_SPARSITIES and c.flash_bytes < dense.flash_bytes
    tried = [x.weight_sparsity for x in result.candidates if x.storage == "sparse"]
    assert tried == sorted(tried) and tried[-1] == c.weight_sparsity      # least pruned first, stopped once one fit
    _, pruned, _ = result.models[result.chosen_index]
    g = parse(pruned)
    for i in weight_tensors(g):
        w = values(pruned, g, i)
        assert np.count_nonzero(w == 0) >= int(c.weight_sparsity * w.size)
    assert any(k.startswith("tg_sparse") for k in aot.compile(g, pruned).program.kernels)
