"""Width multipliers: the rebuilt network keeps input and output shapes, residual Adds stay
consistent, the kept filters carry the original's weights, and distillation recovers accuracy."""

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


def test_structured_pruning_ranks_filters_across_layers(resnet):
    from tinygen.shrink.width import prune_filters

    thin = prune_filters(resnet, 0.3)
    filters = {l.name: l.filters for l in thin.layers if type(l).__name__ == "Conv2D"}
    assert len(set(filters.values())) > 3                      # layers lose different shares
    assert filters["conv2d"] == filters["conv2d_2"]           # tied by the first residual Add
    assert filters["conv2d_4"] == filters["conv2d_5"] and filters["conv2d_7"] == filters["conv2d_8"]
    assert thin.count_params() < resnet.count_params() and thin.output_shape == resnet.output_shape
    assert prune_filters(resnet, 0.0).count_params() == resnet.count_params()
