"""The bundled example networks (examples/), read through the project's frontends.

The expected values are written out here from METHOD.md ("Worked examples" 1) and from the
digits script's stated split, not imported from the build scripts, so a wrong script or a
stale file fails.  TensorFlow is used only in the tests that cross-check against Keras.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from frontends import load_network

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "examples" / "paper_2222"
DIGITS = ROOT / "examples" / "digits"

# METHOD.md, rows are target neurons.
PAPER_W = (
    np.array([[1.0, 1.0], [-1.0, 2.0]]),
    np.array([[2.0, 3.0], [1.0, 1.0]]),
    np.array([[2.0, -8.0], [-4.0, 5.0]]),
)
PAPER_X = np.array([0.5, 0.5])
PAPER_LAYERS = ([1.0, 0.5], [3.5, 1.5], [-5.0, -6.5])


def _check_paper_network(net):
    assert net.widths() == [2, 2, 2, 2]
    assert [e.relu for e in net.edges] == [True, True, False]
    for k, w in enumerate(PAPER_W, start=1):
        edge = net.edge(k)
        np.testing.assert_array_equal(edge.linear.weight, w, err_msg=f"W_{k}")
        np.testing.assert_array_equal(edge.linear.bias, np.zeros(2), err_msg=f"b_{k}")
    trace = net.simulate(PAPER_X)
    for k, expected in enumerate(PAPER_LAYERS, start=1):
        np.testing.assert_array_equal(trace.post[k][0], expected, err_msg=f"neuron layer {k}")
    np.testing.assert_array_equal(net(PAPER_X), PAPER_LAYERS[-1])


# ---- (a) the paper's 2-2-2-2 network ----------------------------------------------------------
def test_paper_keras_matches_method():
    _check_paper_network(load_network(PAPER / "paper_2222.keras"))


def test_paper_nnir_matches_method():
    path = PAPER / "paper_2222.nnir"
    if not path.exists():
        pytest.skip(f"{path.name} not built yet (needs ir.text.dump_nnir); "
                    f"run examples/paper_2222/build.py")
    net = load_network(path)
    _check_paper_network(net)
    np.testing.assert_array_equal(net.domain.lower, [0.0, 0.0])
    np.testing.assert_array_equal(net.domain.upper, [1.0, 1.0])


def test_paper_keras_agrees_with_tensorflow():
    keras = pytest.importorskip("tensorflow").keras
    model = keras.models.load_model(PAPER / "paper_2222.keras")
    out = model.predict(PAPER_X.reshape(1, 2).astype(np.float32), verbose=0)
    np.testing.assert_array_equal(out[0], PAPER_LAYERS[-1])


# ---- (b) the digits MLP ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_net():
    return load_network(DIGITS / "digits_mlp.keras")


@pytest.fixture(scope="module")
def digits_data():
    with np.load(DIGITS / "digits_test.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["x", "y"]
        return f["x"], f["y"]


def test_digits_npz_layout(digits_data):
    x, y = digits_data
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.ndim == 2 and x.shape[1] == 64 and y.shape == (len(x),)
    assert len(x) == 360
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert x.min() == 0.0 and x.max() == 1.0  # scaled by 16, not by the data's own max
    assert set(np.unique(y)) == set(range(10))


def test_digits_network_shape(digits_net):
    assert digits_net.widths() == [64, 32, 32, 10]
    assert [e.relu for e in digits_net.edges] == [True, True, False]


def _accuracy(logits, y):
    return float(np.mean(np.argmax(logits, axis=1) == y))


def test_digits_accuracy(digits_net, digits_data):
    x, y = digits_data
    acc = _accuracy(digits_net(x), y)
    assert acc >= 0.9
    # The README states the measured test accuracy as "correct/total".
    stated = re.search(r"test accuracy [0-9.]+ \((\d+)/(\d+)\)", (DIGITS / "README.md").read_text())
    assert stated, "examples/digits/README.md should state 'test accuracy A (k/n)'"
    assert (int(stated.group(1)), int(stated.group(2))) == (int(round(acc * len(y))), len(y))


def test_digits_agrees_with_tensorflow(digits_net, digits_data):
    keras = pytest.importorskip("tensorflow").keras
    x, y = digits_data
    model = keras.models.load_model(DIGITS / "digits_mlp.keras")
    keras_logits = model.predict(x, verbose=0)
    ours = digits_net(x)
    np.testing.assert_allclose(ours, keras_logits, rtol=1e-5, atol=1e-4)
    assert _accuracy(ours, y) == _accuracy(keras_logits, y)


# ---- (c) the npz is the split the script says ------------------------------------------------
def test_digits_npz_is_the_stated_sklearn_split(digits_data):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_all = (digits.data / 16.0).astype(np.float32)
    y_all = digits.target.astype(np.int64)
    _, x_test, _, y_test = train_test_split(x_all, y_all, test_size=360, stratify=y_all,
                                            random_state=0)
    x, y = digits_data
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(y, y_test)
