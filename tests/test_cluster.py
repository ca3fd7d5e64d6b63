"""Weight clustering (tinygen/shrink/cluster.py): optimal 1-D k-means on int8 weights, the
post-training path on a model without data, and the digits CNN through the whole Deep
Compression recipe (slow)."""

import numpy as np
import pytest


def digits_cnn_3m(train, epochs: int = 12, seed: int = 0):
    """The issue's digits CNN: two convolutions and a 4096x768 dense layer (3.2 M parameters),
    trained on scikit-learn's digits."""
    from tinygen.model.tf import keras, tf

    k = keras()
    tf().random.set_seed(seed)
    model = k.Sequential([
        k.layers.Input((8, 8, 1)),
        k.layers.Conv2D(32, 3, padding="same", activation="relu"),
        k.layers.Conv2D(64, 3, padding="same", activation="relu"),
        k.layers.Flatten(),
        k.layers.Dense(768, activation="relu"),
        k.layers.Dense(10, activation="softmax"),
    ])
    model.compile(k.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train.x, train.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def _brute_force_sse(pts, wts, k):
    """The least weighted squared error over every split of sorted values into k runs."""
    from itertools import combinations

    best = np.inf
    for cuts in combinations(range(1, len(pts)), k - 1):
        bounds = (0,) + cuts + (len(pts),)
        sse = 0.0
        for a, b in zip(bounds, bounds[1:]):
            mean = np.average(pts[a:b], weights=wts[a:b])
            sse += float(np.sum(wts[a:b] * (pts[a:b] - mean) ** 2))
        best = min(best, sse)
    return best


def test_optimal_1d_kmeans_matches_brute_force():
    from tinygen.shrink.cluster import _optimal_1d

    rng = np.random.default_rng(3)
    for _ in range(20):
        n, k = int(rng.integers(4, 11)), int(rng.integers(2, 5))
        pts = np.sort(rng.choice(np.arange(-128, 128), n, replace=False)).astype(np.float64)
        wts = rng.integers(1, 50, n).astype(np.float64)
        c = _optimal_1d(pts, wts, k)
        assigned = c[np.abs(pts[:, None] - c[None, :]).argmin(1)]
        assert len(c) == k
        assert np.isclose(np.sum(wts * (pts - assigned) ** 2), _brute_force_sse(pts, wts, k))


def test_kmeans_int8_bounds_values_and_keeps_pruned_zeros():
    from tinygen.shrink.cluster import cluster_tensor, kmeans_int8

    rng = np.random.default_rng(0)
    w = np.clip(np.round(rng.normal(0, 30, (64, 200))), -127, 127).astype(np.int8)
    w[rng.random(w.shape) < 0.8] = 0                       # 80% pruned
    for n in (2, 4, 16, 128):
        c = kmeans_int8(w, n)
        assert c.dtype == np.int8 and c.shape == w.shape
        assert len(np.unique(c)) <= n
        assert np.all(c[w == 0] == 0)                     # pruned weights stay pruned
        # nearest centroid: nothing is moved further than to a neighbouring centroid would take it
        centroids = np.unique(c)
        assert np.array_equal(c, centroids[np.abs(w[..., None].astype(int) - centroids).argmin(-1)])
    assert np.array_equal(kmeans_int8(w[:, :1], 128), w[:, :1])      # few values already: unchanged
    per_channel = cluster_tensor(w, 4, 0)
    assert max(len(np.unique(row)) for row in per_channel) <= 4
    err = lambda c: float(np.mean((c.astype(int) - w) ** 2))  # noqa: E731
    assert err(per_channel) <= err(kmeans_int8(w, 4))         # per channel is never worse
    assert err(kmeans_int8(w, 16)) < err(kmeans_int8(w, 4))


def test_cluster_command_refuses_bad_input_in_one_sentence(tmp_path):
    from test_cli import assert_one_sentence_error, run

    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a model at all")
    for args, words in ((("--cluster", "1"), "2 to 128"), (("--cluster", "200"), "2 to 128"),
                        (("--cluster", "16", "--width", "0.5"), "--width"),
                        (("--cluster", "16", "--prune", "0.5"), "--unstructured")):
        r = run("shrink", "--board", "nucleo-l4r5zi", "--model", model, *args)
        assert words in assert_one_sentence_error(r)
    r = run("shrink", "--board", "nucleo-l4r5zi", "--model", model, "--cluster", "16")
    assert_one_sentence_error(r)          # the damaged .tflite itself


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("TINYGEN_LONG_TESTS"),
                    reason="trains a 3.2 M-parameter CNN for 20 epochs (about 4 minutes on 2 cores), which would be a "
                           "fifth of the suite: set TINYGEN_LONG_TESTS=1 to run it")
def test_digits_cnn_compresses_35x_within_a_point(tmp_path):
    """The issue's target: the 3.2 M-parameter digits CNN pruned (95%, tfmot), clustered (16
    centroids, sparsity-preserving tfmot, distilled), int8, TFLM compressed tensors and a coded
    image: >= 35x smaller than float32, int8 top-1 within 1 point of the float model."""
    import json

    from tinygen.boards import load_board
    from tinygen.model.examples import digits_splits
    from tinygen.shrink.cluster import cluster_keras

    train, val = digits_splits()
    model = digits_cnn_3m(train)
    assert 3_100_000 <= model.count_params() <= 3_300_000
    r = cluster_keras(load_board("nucleo-l4r5zi"), model, train, val, 16, prune=0.95, epochs=20, out_dir=tmp_path)
    print(json.dumps({"compression": r.compression, "agreement": r.to_json()["agreement"],
                      "accuracy_float": r.accuracy_float, "sparsity": r.sparsity, "bit_exact": r.to_json()["bit_exact"]}))
    c = r.compression
    assert c["float32_bytes"] > 12_000_000 and c["int8_bytes"] > 3_000_000
    assert c["clustered_bytes"] < c["int8_bytes"] / 1.9           # 4-bit indices for every weight
    assert c["ratio"] >= 35 and c["coded_bytes"] == len((tmp_path / "model.coded").read_bytes())
    assert r.sparsity >= 0.9
    assert r.agreement.accuracy_after >= r.accuracy_float - 0.01
    assert r.bit_exact.identical and r.bit_exact.samples == len(val)


def test_a_clustered_int8_model_is_the_same_flatbuffer_with_its_weights_shared(shared_models):
    """Post-training clustering overwrites the weights in place: every other byte as it was, each
    weight at most n values per tensor (per channel where quantized so), and TFLite's interpreter
    and tflite-micro's both load it and agree on the outputs."""
    from tinygen.model.evaluate import tflite_reference
    from tinygen.model.graph import parse
    from tinygen.shrink.cluster import cluster_int8
    from tinygen.tflm.compress import table_axis, weight_tensors
    from tinygen.tflm.interpreter import int8_predict

    model = (shared_models / "kws_ref_model.tflite").read_bytes()
    g = parse(model)
    clustered = cluster_int8(model, g, 8, per_channel=True)
    c = parse(clustered)
    a, b = np.frombuffer(model, np.uint8), np.frombuffer(clustered, np.uint8)
    changed = np.flatnonzero(a != b)
    weights = weight_tensors(g)
    assert len(clustered) == len(model) and 0 < changed.size < sum(g.tensors[i].nbytes for i in weights)
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(clustered), 0)
    for i in weights:
        w = np.asarray(m.buffers[c.tensors[i].buffer].data, np.uint8).view(np.int8).reshape(g.tensors[i].shape)
        axis = table_axis(g, i)
        rows = [w] if axis is None else list(np.moveaxis(w, axis, 0))
        assert max(len(np.unique(r)) for r in rows) <= 8
    x = np.random.default_rng(3).integers(-128, 128, size=(8,) + tuple(g.tensors[g.inputs[0]].shape[1:]), dtype=np.int8)
    lite = tflite_reference(clustered, x)
    assert lite is not None
    assert np.array_equal(np.asarray(lite).reshape(8, -1), np.asarray(int8_predict(clustered, c, x)).reshape(8, -1))
