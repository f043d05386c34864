"""evaluation.keras_model: the Keras copy of an IR network computes the network (float32,
within 1e-4 of the float64 simulation) for every layer kind, both layouts, asymmetric pads,
and average pooling with and without the padding in the count; ``from_keras`` reads the
weights back exactly and follows weights changed in Keras.

Needs TensorFlow (the test extra); the shared CNNs come from ``../shared/data`` (skipped with
the path in the reason when it is absent).
"""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import NetworkError
from conftest import SHARED_DATA, load_shared_network, require_shared
from frontends.data import load_dataset
from ir.layers import (AvgPool2D, Conv2D, Linear, MaxPool2D, Pad2D, ReLU, Reshape, Scale,
                       Transpose, output_shape)
from ir.network import Domain, Network

keras = pytest.importorskip("keras", reason="to_keras needs the [test] extra (TensorFlow)")
from evaluation.keras_model import from_keras, to_keras  # noqa: E402

TOL = 1e-4
SHARED_CNNS = [("mnist_cnn_4conv.h5", "mnist/mnist_aigent_500.npz"),
               ("cifar_cnn_4conv.h5", "cifar10/cifar10_test_100.npz")]


def keras_outputs(model, x: np.ndarray, shape) -> np.ndarray:
    """``model.predict`` on flat float64 rows, as flat float64 rows."""
    out = model.predict(x.reshape((len(x),) + tuple(shape)).astype(np.float32), verbose=0)
    return np.asarray(out, dtype=np.float64).reshape(len(x), -1)


def spatial(layout: str, height: int, width: int, channels: int) -> tuple[int, int, int]:
    return (height, width, channels) if layout == "NHWC" else (channels, height, width)


def chain(input_shape, *makers) -> tuple:
    """Layers built in order; each maker gets the shape its layer receives (so weights and
    constants fit)."""
    layers, shape = [], tuple(input_shape)
    for make in makers:
        layer = make(shape)
        layers.append(layer)
        shape = output_shape(layer, shape)
    return tuple(layers)


def every_kind_network(layout: str, count_include_pad: bool, seed: int = 0) -> Network:
    """A small random network holding every layer kind in ``layout``: asymmetric padding
    everywhere, strides, a max pooling over mostly negative values (zero padding would win
    there), two average poolings, and in NCHW every transition between spatial and
    non-spatial layers the lowering handles (ReLU kept in the permuted view, Scale and
    Transpose after a spatial layer, a spatial layer after Scale)."""
    rng = np.random.default_rng(seed)

    def scale(shape):
        n = int(np.prod(shape))
        return Scale(rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n))

    def conv(c_out, kernel, stride, padding, bias):
        def make(shape):
            c_in = shape[2] if layout == "NHWC" else shape[0]
            return Conv2D(rng.normal(0, 0.5, (c_out, c_in) + kernel), np.full(c_out, bias),
                          stride, padding, layout)
        return make

    def dense(n_out):
        return lambda shape: Linear(rng.normal(0, 0.3, (n_out, int(np.prod(shape)))),
                                    rng.normal(0, 0.1, n_out))

    input_shape = spatial(layout, 7, 6, 2)
    layers = chain(
        input_shape,
        scale,
        lambda s: Pad2D((1, 0, 2, 1), layout),
        conv(3, (3, 2), (2, 1), (0, 1, 1, 2), bias=-2.0),
        lambda s: MaxPool2D((2, 2), (1, 2), (1, 0, 0, 1), layout),
        lambda s: ReLU(),
        lambda s: AvgPool2D((3, 2), (1, 1), (1, 1, 1, 0), layout, count_include_pad),
        scale,
        lambda s: AvgPool2D((2, 2), (2, 2), (0, 0, 1, 1), layout, not count_include_pad),
        conv(4, (2, 2), (1, 1), (1, 0, 0, 1), bias=0.1),
        lambda s: ReLU(),
        lambda s: MaxPool2D((2, 1), (1, 1), (0, 0, 0, 0), layout),
        lambda s: Transpose((2, 0, 1)),
        lambda s: Reshape((int(np.prod(s)),)),
        dense(8),
        lambda s: ReLU(),
        dense(4))
    n = int(np.prod(input_shape))
    return Network(layers, Domain.box(n), input_shape, name=f"every_kind_{layout.lower()}")


def random_inputs(net: Network, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, net.n_inputs))


@pytest.fixture(scope="module", params=SHARED_CNNS, ids=lambda p: p[0])
def shared_cnn(request, shared_data):
    model_file, data_file = request.param
    net = load_shared_network(SHARED_DATA / "models" / model_file)
    x, _ = load_dataset(require_shared(SHARED_DATA / data_file))
    return net, x[:20]


# ---- to_keras computes the network -------------------------------------------------------
def test_shared_cnn_keras_copy_equals_the_simulation(shared_cnn):
    net, x = shared_cnn
    assert any(isinstance(layer, Conv2D) for layer in net.layers)
    model = to_keras(net)
    assert tuple(model.input_shape[1:]) == net.input_shape
    assert np.max(np.abs(keras_outputs(model, x, net.input_shape) - net(x))) < TOL


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_every_layer_kind_equals_the_simulation(layout, count_include_pad):
    net = every_kind_network(layout, count_include_pad)
    x = random_inputs(net, 16)
    # the cases differ, so each one checks its own lowering
    other = every_kind_network(layout, not count_include_pad)
    assert np.max(np.abs(other(x) - net(x))) > 10 * TOL
    for shape in (net.input_shape, (net.n_inputs,)):      # the IR's shape, and flat
        model = to_keras(net, shape)
        assert np.max(np.abs(keras_outputs(model, x, shape) - net(x))) < TOL


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_float64_copy_agrees_to_rounding(layout):
    net = every_kind_network(layout, count_include_pad=False)
    x = random_inputs(net, 5)
    model = to_keras(net, dtype="float64")
    out = np.asarray(model(x.reshape((len(x),) + net.input_shape))).reshape(len(x), -1)
    assert out.dtype == np.float64
    assert np.max(np.abs(out - net(x))) < 1e-12


def test_max_pooling_padding_never_wins_over_negative_values():
    # All inputs of the pooling are negative: a zero pad would be every padded window's max.
    net = Network((Conv2D(np.ones((1, 1, 1, 1)), np.array([-5.0]), (1, 1), (0, 0, 0, 0)),
                   MaxPool2D((2, 2), (2, 2), (1, 1, 0, 0))), Domain.box(16), (4, 4, 1))
    x = random_inputs(net, 3)
    assert np.all(net(x) < -3.0)
    model = to_keras(net)
    out = keras_outputs(model, x, net.input_shape)
    assert np.max(np.abs(out - net(x))) < TOL


def test_network_ending_in_an_nchw_layer_is_permuted_back():
    rng = np.random.default_rng(3)
    net = Network((Conv2D(rng.normal(size=(3, 2, 2, 2)), rng.normal(size=3), (1, 1),
                          (0, 1, 1, 0), "NCHW"), ReLU()), Domain.box(2 * 5 * 4), (2, 5, 4))
    x = random_inputs(net, 4)
    model = to_keras(net)
    assert tuple(model.output_shape[1:]) == net.output_shape == (3, 5, 4)
    assert np.max(np.abs(keras_outputs(model, x, net.input_shape) - net(x))) < TOL


def test_dense_network_takes_an_image_shape():
    rng = np.random.default_rng(4)
    net = Network((Linear(rng.normal(size=(5, 12)), rng.normal(size=5)), ReLU(),
                   Linear(rng.normal(size=(3, 5)), rng.normal(size=3))), Domain.box(12))
    x = random_inputs(net, 4)
    model = to_keras(net, (2, 3, 2))
    assert np.max(np.abs(keras_outputs(model, x, (2, 3, 2)) - net(x))) < TOL
    with pytest.raises(NetworkError, match="holds 10 values"):
        to_keras(net, (2, 5))


# ---- from_keras reads the weights back -----------------------------------------------------
def weighted(net: Network):
    return [layer for layer in net.layers if isinstance(layer, (Linear, Conv2D))]


def test_round_trip_reproduces_cnn_weights_exactly(shared_data):
    net = load_shared_network(SHARED_DATA / "models" / "mnist_cnn_4conv.h5")
    back = from_keras(to_keras(net), net)
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in net.layers]
    assert back.input_shape == net.input_shape and back.name == f"{net.name}_retrained"
    assert np.array_equal(back.domain.lower, net.domain.lower)
    for mine, theirs in zip(weighted(back), weighted(net), strict=True):
        assert np.array_equal(mine.weight, theirs.weight.astype(np.float32).astype(np.float64))
        assert np.array_equal(mine.bias, theirs.bias.astype(np.float32).astype(np.float64))
        if isinstance(mine, Conv2D):
            assert (mine.stride, mine.padding, mine.layout) == \
                (theirs.stride, theirs.padding, theirs.layout)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_from_keras_follows_weights_changed_in_keras(layout):
    # As after retraining: new Keras weights, and the IR network read back computes the model.
    net = every_kind_network(layout, count_include_pad=False)
    model = to_keras(net, (net.n_inputs,))
    rng = np.random.default_rng(5)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in weights])
    back = from_keras(model, net)
    x = random_inputs(net, 8)
    assert np.max(np.abs(back(x) - net(x))) > 10 * TOL          # the weights did change
    assert np.max(np.abs(keras_outputs(model, x, (net.n_inputs,)) - back(x))) < TOL


def test_retraining_a_cnn_trains_its_convolutions():
    from evaluation.transfer import harden
    net = every_kind_network("NCHW", count_include_pad=True)
    x = random_inputs(net, 64)
    y = np.random.default_rng(6).integers(0, net.n_outputs, len(x))
    hardened = harden(net, x, y, {}, seed=0, epochs=1)
    assert [type(layer) for layer in hardened.layers] == [type(layer) for layer in net.layers]
    for mine, theirs in zip(hardened.layers, net.layers):
        if isinstance(mine, (Linear, Conv2D)):
            assert mine.weight.shape == theirs.weight.shape
            assert not np.allclose(mine.weight, theirs.weight)     # trained
        else:
            assert mine is theirs                                  # everything else kept


# ---- baselines on the Keras copy (evaluation.baselines) ------------------------------------
def check_records(net: Network, x: np.ndarray, y: np.ndarray, records: list[dict]) -> list[dict]:
    """Every record as the baselines promise it: a success re-validates on the IR network in
    float64, inside [0, 1], with exactly the recorded values changed; a failure claims
    nothing.  Returns the successes."""
    assert [r["index"] for r in records] == list(range(len(x)))
    wins = []
    for r, xi, label in zip(records, x, y):
        assert r["label"] == label
        if not r["success"]:
            assert r["adv_label"] is None and r["pixels"] is None and r["changes"] == []
            continue
        wins.append(r)
        x_adv = xi.copy()
        indices = [j for j, _ in r["changes"]]
        assert indices == sorted(set(indices))
        for j, value in r["changes"]:
            assert value != xi[j]             # a recorded change is a change
            x_adv[j] = value
        assert net.domain.contains(x_adv) and np.all((x_adv >= 0) & (x_adv <= 1))
        assert int(np.argmax(net(x_adv))) == r["adv_label"] != label
        assert r["pixels"] == len(indices) == np.count_nonzero(x_adv - xi)
    return wins


def first_correct(net: Network, n: int):
    from conftest import MNIST_DATA
    x, y = load_dataset(require_shared(MNIST_DATA))
    keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)[:n]
    return x[keep], y[keep]


def with_classifier(model_file: str):
    """A shared MNIST network and its ART classifier (built once per module)."""
    pytest.importorskip("art", reason="baselines need the [baselines] extra")
    from evaluation.baselines import classifier
    net = load_shared_network(SHARED_DATA / "models" / model_file)
    return net, classifier(net, (28, 28, 1))


@pytest.fixture(scope="module")
def mnist_mlp(shared_data):
    return with_classifier("mnist_784-8-16-10.h5")


@pytest.fixture(scope="module")
def mnist_cnn(shared_data):
    return with_classifier("mnist_cnn_4conv.h5")


@pytest.mark.parametrize("network", ["mnist_mlp", "mnist_cnn"])
def test_l0fmn_successes_revalidate_and_are_sparse(request, network):
    pytest.importorskip("foolbox", reason="l0fmn needs the [baselines] extra")
    from evaluation.baselines import BaselineConfig, run_baseline
    net, clf = request.getfixturevalue(network)
    x, y = first_correct(net, 4)
    records = run_baseline("l0fmn", net, x, y, BaselineConfig(steps=50), (28, 28, 1), clf=clf)
    wins = check_records(net, x, y, records)
    assert len(wins) >= 3, [r["reason"] for r in records]
    assert max(r["pixels"] for r in wins) < 100          # a sparse attack, not a dense one


def test_l0fmn_survives_an_image_it_cannot_move():
    # Class 0 wins everywhere in [0, 1]^12: the L0 budget grows to all 12 values, where
    # Foolbox 3.3.4's own projection indexes out of range (see _l0fmn_attack_class).
    pytest.importorskip("foolbox", reason="l0fmn needs the [baselines] extra")
    pytest.importorskip("art", reason="baselines need the [baselines] extra")
    from evaluation.baselines import BaselineConfig, run_baseline
    net = Network((Linear(np.vstack([np.full(12, 0.01), np.zeros(12)]), np.array([1.0, 0.0])),),
                  Domain.box(12), (12,))
    x = random_inputs(net, 3)
    y = np.zeros(3, dtype=np.int64)
    records = run_baseline("l0fmn", net, x, y, BaselineConfig(steps=40))
    assert check_records(net, x, y, records) == []
    assert all(r["status"] == "failed" for r in records)


@pytest.mark.parametrize("method", ["fgsm", "jsma"])
def test_art_baselines_run_on_the_mnist_cnn(mnist_cnn, method):
    from evaluation.baselines import BaselineConfig, run_baseline
    net, clf = mnist_cnn
    assert any(isinstance(layer, Conv2D) for layer in net.layers)
    x, y = first_correct(net, 2)
    # FGSM at eps 0.1 does not fool this CNN; at 0.3 it does
    records = run_baseline(method, net, x, y, BaselineConfig(eps=0.3), (28, 28, 1), clf=clf)
    wins = check_records(net, x, y, records)
    assert wins, f"{method} found no adversarial input on 2 images"
    if method == "fgsm":
        assert max(r["linf"] for r in wins) <= 0.3 + 1e-6


def test_art_sees_nchw_networks_channels_first():
    from evaluation.baselines import channels_first
    nchw, nhwc = every_kind_network("NCHW", False), every_kind_network("NHWC", False)
    assert channels_first(nchw, nchw.input_shape)
    assert not channels_first(nhwc, nhwc.input_shape)
    assert not channels_first(nchw, (nchw.n_inputs,))
