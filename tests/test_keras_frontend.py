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

from frontends.keras import load_keras
from common.errors import FrontendError
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
    np.testing.assert_array_equal(net.domain.lower, np.zeros(784))
    np.testing.assert_array_equal(net.domain.upper, np.ones(784))


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


def test_loading_does_not_import_tensorflow(shared_data):
    code = ("import sys\n"
            "from frontends.keras import load_keras\n"
            "for path in sys.argv[1:]:\n"
            "    load_keras(path)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    paths = [shared_data / "models" / "mnist_784-8-16-10.h5", shared_data / ACAS_JSON]
    result = subprocess.run([sys.executable, "-c", code, *map(str, paths)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


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
        "Conv2D": [keras.Input((6, 6, 1)), layers.Conv2D(2, 3, name="odd"), layers.Flatten(),
                   layers.Dense(2)],
        "Lambda": [keras.Input((4,)), layers.Lambda(lambda t: 2.0 * t, name="odd"),
                   layers.Dense(2)],
        "BatchNormalization": [keras.Input((4,)), layers.Dense(3),
                               layers.BatchNormalization(name="odd"), layers.Dense(2)],
    }


@pytest.mark.parametrize("class_name", ["Conv2D", "Lambda", "BatchNormalization"])
def test_unsupported_layer_is_named_with_its_class(keras, tmp_path, class_name):
    model = keras.Sequential(_unsupported_models(keras)[class_name])
    message = str(_load_error(_save(model, tmp_path / "unsupported.keras")))
    assert "unsupported.keras" in message
    assert f"layer 'odd' ({class_name}) is not supported" in message
    assert "supported: Dense" in message


def test_softmax_output_is_refused_with_the_reason(keras, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2, activation="softmax", name="probs")])
    message = str(_load_error(_save(model, tmp_path / "classifier.h5")))
    assert "classifier.h5" in message and "'probs' (Dense)" in message
    assert "softmax" in message and "linear last layer" in message


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
