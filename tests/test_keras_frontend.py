"""frontends/keras.py against Keras itself and against an independent h5py reader.

The real networks come from ``../shared/data`` (skipped with the path shown when it is absent).
TensorFlow is imported once, by the module-scoped ``keras`` fixture, and only by the tests
that build models or call ``predict``; the frontend itself must never import it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from frontends.keras import load_keras
from common.errors import FrontendError
from ir.layers import AvgPool2D, Conv2D, MaxPool2D, Pad2D, Scale, Transpose
from ir.network import Linear, ReLU

ROOT = Path(__file__).resolve().parents[1]

# Each shared network with the data set it classifies (paths relative to the shared folder).
SHARED_NETWORKS = {
    "mnist_784-8-16-10.h5": "mnist/mnist_aigent_500.npz",
    "mnist_784-50x6-10.h5": "mnist/mnist_aigent_500.npz",
    "cifar_3072-100-50-25-10.h5": "cifar10/cifar10_test_100.npz",
    "cifar_3072-50x5-10.h5": "cifar10/cifar10_test_100.npz",
}
N_IMAGES = 100
PREDICT_TOLERANCE = 1e-5  # float32 Keras against the float64 IR
# The shared CNNs: data set and the accuracy the data README reports for each.
SHARED_CNNS = {
    "mnist_cnn_4conv.h5": ("mnist/mnist_aigent_500.npz", 0.978),
    "cifar_cnn_4conv.h5": ("cifar10/cifar10_test_100.npz", 0.60),
}
CNN_IMAGES = 20
CNN_LOAD_SECONDS = 1.0
ACAS_JSON = "acasxu/ACASXU_2_9.json"
ACAS_WEIGHTS = "acasxu/ACASXU_2_9.weights.h5"
ACAS_ROW0_ADVISORY = 3  # argmin of the outputs on inputs.csv row 0 (data README)


# ---- fixtures and helpers -------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    """Keras 3 on TensorFlow, imported once for the whole module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("tensorflow")
    import keras as keras_module
    return keras_module


def _seeded_weights(model, seed: int = 0) -> None:
    """Replace every weight (biases too, which Keras initialises to zero) by seeded normals."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, size=w.shape).astype(np.float32)
                       for w in model.get_weights()])


def _save(model, path: Path) -> Path:
    model.save(path)
    return path


def _predict(model, x: np.ndarray) -> np.ndarray:
    return model.predict(x.astype(np.float32), verbose=0)


def _inputs(n_values: int, count: int = 25, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(count, n_values))


def _load_error(path, **kwargs) -> FrontendError:
    with pytest.raises(FrontendError) as info:
        load_keras(path, **kwargs)
    return info.value


def _forward_from_weights_file(weights_path: Path, x: np.ndarray) -> np.ndarray:
    """An independent ACAS Xu forward pass: each layer group of the weights file (in its
    ``layer_names`` order) that holds a kernel and a bias is ``a @ kernel + bias``, with ReLU
    on all but the last (the data README: six Dense 50 relu, a linear output)."""
    params = []
    with h5py.File(weights_path, "r") as f:
        for name in f.attrs["layer_names"]:
            found = {}
            f[name.decode()].visititems(
                lambda key, obj: found.__setitem__(key.rsplit("/", 1)[-1], obj[()])
                if isinstance(obj, h5py.Dataset) else None)
            if found:
                params.append((found["kernel:0"], found["bias:0"]))
    a = x
    for i, (kernel, bias) in enumerate(params):
        a = a @ kernel + bias
        if i < len(params) - 1:
            a = np.maximum(a, 0.0)
    return a


# ---- the shared networks --------------------------------------------------------------------

@pytest.mark.parametrize("model_name, data_name", SHARED_NETWORKS.items())
def test_shared_network_matches_keras_predict(keras, shared_data, model_name, data_name):
    path = shared_data / "models" / model_name
    x = np.load(shared_data / data_name)["x"][:N_IMAGES]
    expected = _predict(keras.models.load_model(path, compile=False), x)
    net = load_keras(path)
    np.testing.assert_allclose(net(x), expected, rtol=0, atol=PREDICT_TOLERANCE)


def test_shared_network_structure_name_and_domain(shared_data):
    net = load_keras(shared_data / "models" / "mnist_784-50x6-10.h5")
    assert net.name == "mnist_784-50x6-10"
    assert net.widths() == [784] + [50] * 6 + [10]
    assert [e.relu for e in net.edges] == [True] * 6 + [False]
    assert net.input_shape == (784,)
    assert net.domain is None   # a Keras file holds no domain: the task (--domain) gives it


def test_acasxu_pair_matches_independent_forward_pass(shared_data):
    x = np.loadtxt(shared_data / "acasxu" / "inputs.csv", delimiter=",", ndmin=2)
    net = load_keras(shared_data / ACAS_JSON)
    assert net.name == "ACASXU_2_9"
    assert net.widths() == [5] + [50] * 6 + [5]
    expected = _forward_from_weights_file(shared_data / ACAS_WEIGHTS, x)
    np.testing.assert_allclose(net(x), expected, rtol=1e-12, atol=1e-12)
    assert int(np.argmin(net(x[0]))) == ACAS_ROW0_ADVISORY


def test_acasxu_explicit_weights_path(shared_data, tmp_path):
    alone = tmp_path / "architecture.json"
    shutil.copy(shared_data / ACAS_JSON, alone)
    net = load_keras(alone, weights=shared_data / ACAS_WEIGHTS)
    reference = load_keras(shared_data / ACAS_JSON)
    for ours, theirs in zip(net.edges, reference.edges):
        np.testing.assert_array_equal(ours.linear.weight, theirs.linear.weight)
        np.testing.assert_array_equal(ours.linear.bias, theirs.linear.bias)


def test_loading_does_not_import_tensorflow_and_cnns_load_fast(shared_data):
    code = ("import json, sys, time\n"
            "from frontends.keras import load_keras\n"
            "seconds = {}\n"
            "for path in sys.argv[1:]:\n"
            "    start = time.perf_counter()\n"
            "    load_keras(path)\n"
            "    seconds[path] = time.perf_counter() - start\n"
            "print(json.dumps(seconds))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    cnns = [shared_data / "models" / name for name in SHARED_CNNS]
    paths = [shared_data / "models" / "mnist_784-8-16-10.h5", shared_data / ACAS_JSON, *cnns]
    result = subprocess.run([sys.executable, "-c", code, *map(str, paths)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    seconds, modules = result.stdout.strip().splitlines()
    assert modules == "[]"
    for path in cnns:
        assert json.loads(seconds)[str(path)] < CNN_LOAD_SECONDS, path.name


# ---- the shared CNNs ------------------------------------------------------------------------

def _cnn_forward_from_hdf5(model_path: Path, images: np.ndarray) -> np.ndarray:
    """An independent forward pass of the shared CNNs, from the data README's architecture:
    Conv2D 3x3 'same' relu twice, MaxPooling2D 2x2, the same again, Flatten, Dense relu, Dense
    (the final softmax not applied), on HWC images ``(B, H, W, C)``.

    The arrays are read with h5py in the file's ``layer_names`` order: each layer group that
    holds a ``kernel:0`` and a ``bias:0`` somewhere below it (names with '/' nest groups)."""
    params = []
    with h5py.File(model_path, "r") as f:
        weights = f["model_weights"]
        for name in weights.attrs["layer_names"]:
            found = {}
            weights[name.decode() if isinstance(name, bytes) else name].visititems(
                lambda key, obj: found.__setitem__(key.rsplit("/", 1)[-1], obj[()])
                if isinstance(obj, h5py.Dataset) else None)
            if found:
                params.append((found["kernel:0"].astype(np.float64),
                               found["bias:0"].astype(np.float64)))
    assert [kernel.ndim for kernel, _ in params] == [4, 4, 4, 4, 2, 2]

    def conv_same_relu(a, kernel, bias):
        kh, kw = kernel.shape[:2]          # odd: 'same' pads (k - 1) / 2 on every side
        padded = np.pad(a, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))   # (B, H, W, C, kh, kw)
        return np.maximum(np.einsum("bhwcij,ijcf->bhwf", windows, kernel) + bias, 0.0)

    def max_pool_2x2(a):
        b, h, w, c = a.shape
        return a.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    a = images
    for block in (params[0:2], params[2:4]):
        for kernel, bias in block:
            a = conv_same_relu(a, kernel, bias)
        a = max_pool_2x2(a)
    (k1, b1), (k2, b2) = params[4:]
    return np.maximum(a.reshape(len(a), -1) @ k1 + b1, 0.0) @ k2 + b2


@pytest.mark.parametrize("model_name", SHARED_CNNS)
def test_shared_cnn_matches_an_independent_forward_pass(shared_data, model_name):
    data_name, accuracy = SHARED_CNNS[model_name]
    data = np.load(shared_data / data_name)
    x, y = data["x"], data["y"]
    net = load_keras(shared_data / "models" / model_name)
    assert net.name == model_name.removesuffix(".h5")
    assert [type(layer) for layer in net.layers] == (
        [Conv2D, ReLU, Conv2D, ReLU, MaxPool2D] * 2 + [Linear, ReLU, Linear])
    assert all(layer.padding == (1, 1, 1, 1) and layer.layout == "NHWC"
               for layer in net.layers if isinstance(layer, Conv2D))
    assert net.notes == ("final softmax of layer 'clf_output' dropped: properties are stated "
                         "over the logits (the argmax is unchanged)",)
    images = x[:CNN_IMAGES].astype(np.float64).reshape(-1, *net.input_shape)
    np.testing.assert_allclose(net(x[:CNN_IMAGES]), _cnn_forward_from_hdf5(
        shared_data / "models" / model_name, images), rtol=0, atol=PREDICT_TOLERANCE)
    assert np.mean(np.argmax(net(x), axis=1) == y) == pytest.approx(accuracy, abs=1e-9)


def test_shared_cnn_input_shapes(shared_data):
    assert load_keras(shared_data / "models" / "mnist_cnn_4conv.h5").input_shape == (28, 28, 1)
    assert load_keras(shared_data / "models" / "cifar_cnn_4conv.h5").input_shape == (32, 32, 3)


def test_flat_layer_groups_are_read_too(shared_data, tmp_path):
    """A legacy file whose arrays sit directly in their layer's group (``dense/kernel:0``
    stored as ``kernel:0``) reads the same as the nested original."""
    original = shared_data / "models" / "mnist_784-8-16-10.h5"
    flat = tmp_path / "flat.h5"
    shutil.copy(original, flat)
    with h5py.File(flat, "r+") as f:
        for name in f["model_weights"].attrs["layer_names"]:
            group = f["model_weights"][name]
            for weight_name in group.attrs["weight_names"]:
                group.move(weight_name, weight_name.rsplit("/", 1)[-1])
            assert all(isinstance(item, h5py.Dataset) or len(item) == 0
                       for item in group.values())
    ours, reference = load_keras(flat), load_keras(original)
    for a, b in zip(ours.layers, reference.layers):
        if isinstance(a, Linear):
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(a.bias, b.bias)


def test_cnn_whose_input_channels_do_not_fit_the_kernel(shared_data, tmp_path):
    """The declared kernel shape is compared with the stored one before anything is read."""
    wrong = tmp_path / "three_channels.h5"
    shutil.copy(shared_data / "models" / "mnist_cnn_4conv.h5", wrong)
    with h5py.File(wrong, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][0]["config"]["batch_input_shape"] = [None, 28, 28, 3]
        f.attrs["model_config"] = json.dumps(config)
    message = str(_load_error(wrong))
    assert "three_channels.h5" in message and "'clf/c1' (Conv2D)" in message
    assert "(3, 3, 1, 16)" in message and "(3, 3, 3, 16)" in message
    assert "\n" not in message


# ---- models built here with Keras -----------------------------------------------------------

def _flatten_dropout_sequential(keras):
    layers = keras.layers
    model = keras.Sequential([keras.Input((4, 3)), layers.Flatten(), layers.Dropout(0.5),
                              layers.Dense(6, activation="relu"), layers.ReLU(), layers.Dense(3)])
    _seeded_weights(model)
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_built_sequential_matches_keras_predict(keras, tmp_path, suffix):
    model = _flatten_dropout_sequential(keras)
    net = load_keras(_save(model, tmp_path / f"small{suffix}"))
    assert net.input_shape == (4, 3)
    assert [type(layer) for layer in net.layers] == [Linear, ReLU, Linear]  # ReLUs collapsed
    x = _inputs(12)
    np.testing.assert_allclose(net(x), _predict(model, x.reshape(-1, 4, 3)),
                               rtol=0, atol=PREDICT_TOLERANCE)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_built_functional_chain_matches_keras_predict(keras, tmp_path, suffix):
    """Layer names that sort against their order, no bias on one layer, a final relu: Keras 3
    stores weights by class and position (dense, dense_1, ...), not by name."""
    layers = keras.layers
    inputs = keras.Input((6,), name="features")
    hidden = layers.Dense(5, activation="relu", use_bias=False, name="zeta")(inputs)
    hidden = layers.Activation("relu", name="again")(layers.Dense(4, name="alpha")(hidden))
    outputs = layers.Dense(3, activation="relu", name="middle")(hidden)
    model = keras.Model(inputs, outputs)
    _seeded_weights(model, seed=3)
    net = load_keras(_save(model, tmp_path / f"chain{suffix}"))
    assert [e.relu for e in net.edges] == [True, True, True]
    np.testing.assert_array_equal(net.edge(1).linear.bias, np.zeros(5))
    x = _inputs(6)
    np.testing.assert_allclose(net(x), _predict(model, x), rtol=0, atol=PREDICT_TOLERANCE)


def test_keras3_json_and_weights_match_keras_predict(keras, tmp_path):
    """``to_json()`` plus ``save_weights`` from Keras 3: the weights file has the Keras 3
    ``layers/.../vars`` layout, found beside the JSON by its default name."""
    model = _flatten_dropout_sequential(keras)
    (tmp_path / "pair.json").write_text(model.to_json())
    model.save_weights(tmp_path / "pair.weights.h5")
    net = load_keras(tmp_path / "pair.json")
    x = _inputs(12)
    np.testing.assert_allclose(net(x), _predict(model, x.reshape(-1, 4, 3)),
                               rtol=0, atol=PREDICT_TOLERANCE)


def test_branching_functional_model_is_refused(keras, tmp_path):
    layers = keras.layers
    inputs = keras.Input((4,))
    summed = layers.Add(name="merge")([layers.Dense(3)(inputs), layers.Dense(3)(inputs)])
    path = _save(keras.Model(inputs, summed), tmp_path / "branching.keras")
    message = str(_load_error(path))
    assert "branching.keras" in message and "'merge' (Add)" in message
    assert "single chain" in message


# ---- convolutional models built here with Keras ---------------------------------------------

def _seed_batch_norms(model, seed: int) -> None:
    """Non-trivial moving statistics: gamma, beta and moving_mean normal, moving_variance in
    [0.5, 2] (``_seeded_weights`` would make some variances negative)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            arrays = [rng.normal(0.0, 0.5, size=w.shape) for w in layer.get_weights()]
            arrays[-1] = rng.uniform(0.5, 2.0, size=arrays[-1].shape)
            layer.set_weights([a.astype(np.float32) for a in arrays])


def _channels_last_cnn(keras):
    """Odd sizes, so that every 'same' padding below is asymmetric (TensorFlow puts the extra
    row and column at the bottom and right); each line notes its output shape."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((9, 7, 2)),
        layers.ZeroPadding2D(((1, 0), (2, 1))),                               # 10, 10, 2
        layers.Conv2D(3, 3, strides=2, padding="same", name="same_s2"),       # 5, 5, 3
        layers.BatchNormalization(name="bn_after_conv"),
        layers.ReLU(),
        layers.Conv2D(4, (3, 2), padding="valid", activation="relu"),         # 3, 4, 4
        layers.BatchNormalization(name="bn_after_relu"),
        layers.MaxPooling2D(2, padding="same"),                               # 2, 2, 4
        layers.Conv2D(5, 2, padding="same", name="same_s1"),                  # 2, 2, 5
        layers.AveragePooling2D(2, strides=1, padding="same"),                # 2, 2, 5
        layers.ZeroPadding2D(1),                                              # 4, 4, 5
        layers.AveragePooling2D(2),                                           # 2, 2, 5
        layers.MaxPooling2D((2, 1), strides=1),                               # 1, 2, 5
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(6, name="hidden"),
        layers.BatchNormalization(center=False, name="bn_after_dense"),
        layers.Reshape((2, 3)),
        layers.Flatten(),
        layers.Dense(3, name="logits"),
    ])
    _seeded_weights(model, seed=5)
    _seed_batch_norms(model, seed=6)
    return model


def _channels_first_cnn(keras):
    """A functional chain in channels_first: the input is (C, H, W), the flatten moves the
    channels last first."""
    layers = keras.layers
    cf = {"data_format": "channels_first"}
    inputs = keras.Input((2, 9, 7))
    x = layers.Conv2D(3, 3, strides=2, padding="valid", **cf)(inputs)          # 3, 4, 3
    x = layers.ReLU()(layers.BatchNormalization(axis=1)(x))
    x = layers.ZeroPadding2D(((0, 1), (1, 0)), **cf)(x)                       # 3, 5, 4
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", **cf)(x)  # 4, 3, 2
    x = layers.MaxPooling2D(2, padding="same", **cf)(x)                       # 4, 2, 1
    x = layers.AveragePooling2D((2, 1), strides=1, padding="same", **cf)(x)   # 4, 2, 1
    outputs = layers.Dense(3)(layers.Flatten(**cf)(x))
    model = keras.Model(inputs, outputs)
    _seeded_weights(model, seed=7)
    _seed_batch_norms(model, seed=8)
    return model


@pytest.fixture(scope="module")
def built_cnns(keras, tmp_path_factory):
    """Both CNNs, each saved as .h5 and .keras: ``{name: (model, {suffix: path})}``."""
    folder = tmp_path_factory.mktemp("cnns")
    built = {}
    for name, build in (("channels_last", _channels_last_cnn),
                        ("channels_first", _channels_first_cnn)):
        model = build(keras)
        built[name] = (model, {suffix: _save(model, folder / f"{name}{suffix}")
                               for suffix in (".h5", ".keras")})
    return built


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_channels_last_cnn_matches_keras_predict(built_cnns, suffix):
    model, paths = built_cnns["channels_last"]
    net = load_keras(paths[suffix])
    assert net.input_shape == (9, 7, 2)
    # The zero padding and the batch normalizations after the conv and the dense layer are
    # folded; the one after a ReLU is a Scale; the padding before a pooling stays.
    assert [type(layer) for layer in net.layers] == [
        Conv2D, ReLU, Conv2D, ReLU, Scale, MaxPool2D, Conv2D, AvgPool2D, Pad2D, AvgPool2D,
        MaxPool2D, Linear, Linear]
    first, _, valid, _, _, max_same, same_s1, avg_same, pad, avg_valid, _, _, _ = net.layers
    assert (first.stride, first.padding) == ((2, 2), (1 + 0, 2 + 0, 0 + 1, 1 + 1))
    assert valid.padding == (0, 0, 0, 0) and max_same.padding == (0, 0, 1, 0)
    assert same_s1.padding == (0, 0, 1, 1)
    assert (avg_same.padding, avg_same.count_include_pad) == ((0, 0, 1, 1), False)
    assert pad.padding == (1, 1, 1, 1) and avg_valid.padding == (0, 0, 0, 0)
    assert net.output_shape == (3,) and net.notes == ()
    x = _inputs(9 * 7 * 2, count=20)
    np.testing.assert_allclose(net(x), _predict(model, x.reshape(-1, 9, 7, 2)),
                               rtol=0, atol=PREDICT_TOLERANCE)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_channels_first_cnn_matches_keras_predict(built_cnns, suffix):
    model, paths = built_cnns["channels_first"]
    net = load_keras(paths[suffix])
    assert net.input_shape == (2, 9, 7)
    assert [type(layer) for layer in net.layers] == [
        Conv2D, ReLU, Conv2D, ReLU, MaxPool2D, AvgPool2D, Transpose, Linear]
    assert all(layer.layout == "NCHW" for layer in net.layers[:6] if hasattr(layer, "layout"))
    assert net.layers[2].padding == (0 + 1, 1 + 0, 1 + 1, 0 + 1)
    x = _inputs(2 * 9 * 7, count=20)
    np.testing.assert_allclose(net(x), _predict(model, x.reshape(-1, 2, 9, 7)),
                               rtol=0, atol=PREDICT_TOLERANCE)


def test_final_softmax_is_dropped_with_a_note(keras, tmp_path):
    layers = keras.layers
    model = keras.Sequential([keras.Input((5,)), layers.Dense(4, activation="relu"),
                              layers.Dense(3, activation="softmax", name="probs")])
    _seeded_weights(model, seed=9)
    net = load_keras(_save(model, tmp_path / "classifier.keras"))
    assert net.notes == ("final softmax of layer 'probs' dropped: properties are stated over "
                         "the logits (the argmax is unchanged)",)
    x = _inputs(5)
    logits = net(x)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), _predict(model, x),
                               rtol=0, atol=PREDICT_TOLERANCE)


def _refused_models(keras):
    """Models with one layer named ``odd`` that the frontend refuses, and what the error says."""
    layers = keras.layers
    return {
        "dilation": ([keras.Input((7, 7, 2)), layers.Conv2D(2, 3, dilation_rate=2, name="odd"),
                      layers.Flatten(), layers.Dense(2)], "'odd' (Conv2D) has dilation_rate="),
        "groups": ([keras.Input((6, 6, 4)), layers.Conv2D(2, 3, groups=2, name="odd"),
                    layers.Flatten(), layers.Dense(2)], "'odd' (Conv2D) has groups=2"),
        "softmax_dense": ([keras.Input((4,)), layers.Dense(3, activation="softmax", name="odd"),
                           layers.Dense(2)], "'odd' (Dense) has a softmax activation and is "
                                             "not the last layer"),
        "softmax_activation": ([keras.Input((4,)), layers.Dense(3),
                                layers.Activation("softmax", name="odd"), layers.Dense(2)],
                               "'odd' (Activation) has a softmax activation and is not the "
                               "last layer"),
        "batch_norm_axis": ([keras.Input((6, 6, 2)), layers.Conv2D(2, 3),
                             layers.BatchNormalization(axis=1, name="odd"), layers.Flatten(),
                             layers.Dense(2)], "'odd' (BatchNormalization) normalizes axis 1"),
    }


@pytest.mark.parametrize("case", ["dilation", "groups", "softmax_dense", "softmax_activation",
                                  "batch_norm_axis"])
def test_refused_layer_options_name_the_layer(keras, tmp_path, case):
    model_layers, expected = _refused_models(keras)[case]
    path = _save(keras.Sequential(model_layers), tmp_path / f"{case}.keras")
    message = str(_load_error(path))
    assert f"{case}.keras" in message and expected in message
    assert "\n" not in message


# ---- errors ---------------------------------------------------------------------------------

def test_missing_file_is_named(tmp_path):
    error = _load_error(tmp_path / "absent.h5")
    assert error.path == str(tmp_path / "absent.h5")
    assert "no such file" in str(error)


def test_truncated_hdf5_is_a_frontend_error(shared_data, tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((shared_data / "models" / "mnist_784-8-16-10.h5").read_bytes()[:1000])
    message = str(_load_error(truncated))
    assert "truncated.h5" in message and "HDF5" in message


def test_truncated_keras_archive_is_a_frontend_error(keras, tmp_path):
    whole = _save(_flatten_dropout_sequential(keras), tmp_path / "whole.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(whole.read_bytes()[:1000])
    message = str(_load_error(truncated))
    assert "truncated.keras" in message and "zip" in message


@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2]", '{"class_name": "Dense", "config": {}}',
                                  "not json at all"])
def test_json_that_is_not_a_keras_model(tmp_path, text):
    path = tmp_path / "other.json"
    path.write_text(text)
    message = str(_load_error(path))
    assert "other.json" in message
    assert "not a Keras model" in message or "not valid JSON" in message


def test_json_without_weights_beside_it(shared_data, tmp_path):
    alone = tmp_path / "architecture.json"
    shutil.copy(shared_data / ACAS_JSON, alone)
    message = str(_load_error(alone))
    assert "architecture.weights.h5" in message and "architecture.h5" in message
    assert "--weights" in message


def test_weights_only_hdf5_given_as_a_model(shared_data):
    message = str(_load_error(shared_data / ACAS_WEIGHTS))
    assert "ACASXU_2_9.weights.h5" in message and "weights only" in message
    assert "--weights" in message


def test_weights_file_missing_a_layer(shared_data, tmp_path):
    weights = tmp_path / "partial.weights.h5"
    shutil.copy(shared_data / ACAS_WEIGHTS, weights)
    with h5py.File(weights, "r+") as f:
        del f["hidden3"]
    message = str(_load_error(shared_data / ACAS_JSON, weights=weights))
    assert "partial.weights.h5" in message and "'hidden3' (Dense)" in message


def test_weight_shape_that_does_not_fit_the_architecture(shared_data, tmp_path):
    model = json.loads((shared_data / ACAS_JSON).read_text())
    hidden2 = next(layer for layer in model["config"]["layers"] if layer["name"] == "hidden2")
    hidden2["config"]["units"] = 40
    path = tmp_path / "narrow.json"
    path.write_text(json.dumps(model))
    message = str(_load_error(path, weights=shared_data / ACAS_WEIGHTS))
    assert "'hidden2' (Dense)" in message
    assert "(50, 50)" in message and "(50, 40)" in message


def test_weights_argument_with_a_full_model_file(shared_data):
    message = str(_load_error(shared_data / "models" / "mnist_784-8-16-10.h5",
                              weights=shared_data / ACAS_WEIGHTS))
    assert "mnist_784-8-16-10.h5" in message and ".json" in message


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_nan_weight_names_file_and_layer(keras, tmp_path, suffix):
    layers = keras.layers
    model = keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu", name="first"),
                              layers.Dense(2, name="second")])
    weights = model.get_weights()
    weights[2][1, 0] = np.nan  # kernel of "second"
    model.set_weights(weights)
    message = str(_load_error(_save(model, tmp_path / f"poisoned{suffix}")))
    assert "poisoned" in message and "nan" in message and "'second'" in message


def _unsupported_models(keras):
    """Models whose one unsupported layer is named ``odd``, with the class named in the error."""
    layers = keras.layers
    return {
        "Conv1D": [keras.Input((6, 1)), layers.Conv1D(2, 3, name="odd"), layers.Flatten(),
                   layers.Dense(2)],
        "Lambda": [keras.Input((4,)), layers.Lambda(lambda t: 2.0 * t, name="odd"),
                   layers.Dense(2)],
        "LayerNormalization": [keras.Input((4,)), layers.Dense(3),
                               layers.LayerNormalization(name="odd"), layers.Dense(2)],
    }


@pytest.mark.parametrize("class_name", ["Conv1D", "Lambda", "LayerNormalization"])
def test_unsupported_layer_is_named_with_its_class(keras, tmp_path, class_name):
    model = keras.Sequential(_unsupported_models(keras)[class_name])
    message = str(_load_error(_save(model, tmp_path / "unsupported.keras")))
    assert "unsupported.keras" in message
    assert f"layer 'odd' ({class_name}) is not supported" in message
    assert "supported: Dense, Conv2D" in message


def test_capped_relu_is_refused(keras, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.ReLU(max_value=6.0, name="relu6"),
                              keras.layers.Dense(2)])
    message = str(_load_error(_save(model, tmp_path / "capped.keras")))
    assert "capped.keras" in message and "'relu6' (ReLU)" in message and "max_value=6.0" in message


def test_dense_on_an_unflattened_input_is_refused(keras, tmp_path):
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(2, name="per_row")])
    message = str(_load_error(_save(model, tmp_path / "rows.keras")))
    assert "'per_row' (Dense)" in message and "Flatten" in message
