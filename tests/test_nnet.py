"""frontends/nnet.py: the ACAS Xu ``.nnet`` format.

The test file is written here from the shared ACAS Xu network 2_9 (``../shared/data/acasxu``,
skipped with the path shown when absent) with the real ACAS Xu input ranges, means and ranges
(non-trivial: every input is clipped, shifted and scaled, the output scaled and shifted), and
checked against an evaluation of the text written independently in this file."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import FrontendError
from frontends import load_network
from frontends.nnet import load_nnet, save_nnet
from ir.network import Conv2D, Domain, Linear, Network, ReLU, Reshape

MINS = [0.0, -3.141593, -3.141593, 100.0, 0.0]
MAXS = [60760.0, 3.141593, 3.141593, 1200.0, 1200.0]
MEANS = [19791.091, 0.0, 0.0, 650.0, 600.0, 7.5188840201005975]
RANGES = [60261.0, 6.28318530718, 6.28318530718, 1100.0, 1200.0, 373.94992]
TOLERANCE = 1e-9


# ---- an independent reader and evaluator -----------------------------------------------------

def nnet_text(weights, biases, mins, maxs, means, ranges) -> str:
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    lines = ["// ACAS Xu network 2_9 with the ACAS Xu normalization", "// for netpatch tests",
             f"{len(weights)},{sizes[0]},{sizes[-1]},{max(sizes)},",
             ",".join(map(str, sizes)) + ",", "0,"]
    lines += [",".join(repr(float(v)) for v in row) + "," for row in (mins, maxs, means, ranges)]
    for w, b in zip(weights, biases):
        lines += [",".join(repr(float(v)) for v in row) + "," for row in w]
        lines += [repr(float(v)) + "," for v in b]
    return "\n".join(lines) + "\n"


def evaluate_text(text: str, x: np.ndarray) -> np.ndarray:
    """The network in ``text`` on a batch, as the NNet reference code computes it."""
    rows = [[float(f) for f in line.split(",") if f.strip()]
            for line in text.splitlines() if line.strip() and not line.startswith("//")]
    n_layers = int(rows[0][0])
    sizes = [int(v) for v in rows[1]]
    mins, maxs, means, ranges = (np.array(r) for r in rows[3:7])
    position, layers = 7, []
    for k in range(n_layers):
        w = np.array(rows[position:position + sizes[k + 1]])
        position += sizes[k + 1]
        b = np.array([r[0] for r in rows[position:position + sizes[k + 1]]])
        position += sizes[k + 1]
        layers.append((w, b))
    a = (np.clip(x, mins, maxs) - means[:-1]) / ranges[:-1]
    for k, (w, b) in enumerate(layers):
        a = a @ w.T + b
        if k < n_layers - 1:
            a = np.maximum(a, 0.0)
    return a * ranges[-1] + means[-1]


# ---- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def acas_text(shared_data) -> str:
    net = load_network(shared_data / "acasxu" / "ACASXU_2_9.json")
    dense = [layer for layer in net.layers if isinstance(layer, Linear)]
    return nnet_text([d.weight for d in dense], [d.bias for d in dense], MINS, MAXS, MEANS,
                     RANGES)


@pytest.fixture
def acas_file(tmp_path, acas_text):
    path = tmp_path / "ACASXU_2_9.nnet"
    path.write_text(acas_text)
    return path


def random_inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(MINS, MAXS, (n, len(MINS)))


def assert_close(expected: np.ndarray, got: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(expected - got).max() <= TOLERANCE * scale


def assert_bit_identical(a: Network, b: Network) -> None:
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    for x, y in zip(a.layers, b.layers):
        if isinstance(x, Linear):
            assert x.weight.tobytes() == y.weight.tobytes()
            assert x.bias.tobytes() == y.bias.tobytes()
    assert a.domain.lower.tobytes() == b.domain.lower.tobytes()
    assert a.domain.upper.tobytes() == b.domain.upper.tobytes()


# ---- reading ---------------------------------------------------------------------------------

def test_load_equals_independent_evaluation(acas_file, acas_text):
    net = load_nnet(acas_file)
    assert net.name == "ACASXU_2_9" and net.input_shape == (5,) and net.n_outputs == 5
    assert [type(layer) for layer in net.layers] == [Linear, ReLU] * 6 + [Linear]
    assert np.array_equal(net.domain.lower, MINS) and np.array_equal(net.domain.upper, MAXS)
    x = random_inputs(200)
    assert_close(evaluate_text(acas_text, x), net(x))
    corners = np.array([MINS, MAXS])
    assert_close(evaluate_text(acas_text, corners), net(corners))


def test_one_layer_network_folds_both_ends(tmp_path):
    w, b = np.array([[1.5, -2.0], [0.25, 4.0], [3.0, 1.0]]), np.array([0.5, -1.0, 2.0])
    text = nnet_text([w], [b], [-1.0, 0.0], [2.0, 5.0], [0.5, 1.0, -3.0], [2.0, 4.0, 10.0])
    path = tmp_path / "one.nnet"
    path.write_text(text)
    net = load_network(path)
    assert [type(layer) for layer in net.layers] == [Linear]
    x = np.random.default_rng(1).uniform([-1.0, 0.0], [2.0, 5.0], (50, 2))
    assert_close(evaluate_text(text, x), net(x))


def test_round_trip_is_bit_identical(tmp_path, acas_file):
    net = load_nnet(acas_file)
    saved = tmp_path / "saved.nnet"
    save_nnet(net, saved)
    text = saved.read_text()
    assert "\n0.0,0.0,0.0,0.0,0.0,0.0,\n1.0,1.0,1.0,1.0,1.0,1.0,\n" in text    # means, ranges
    back = load_nnet(saved)
    assert_bit_identical(net, back)
    x = random_inputs(50, seed=2)
    assert_close(evaluate_text(text, x), back(x))
    save_nnet(back, tmp_path / "again.nnet")
    again = (tmp_path / "again.nnet").read_text()
    assert again.splitlines()[1:] == text.splitlines()[1:]      # the first names the network


def test_save_refuses_a_non_dense_network(tmp_path):
    rng = np.random.default_rng(3)
    conv = Network((Conv2D(rng.normal(size=(2, 1, 3, 3)), np.zeros(2), layout="NCHW"), ReLU(),
                    Reshape((8,)), Linear(rng.normal(size=(2, 8)), np.zeros(2))),
                   Domain.box(16), (1, 4, 4))
    with pytest.raises(FrontendError, match=r"bad\.nnet: \.nnet holds dense networks only .*"
                                            r"conv2d \+ relu \+ reshape \+ linear"):
        save_nnet(conv, tmp_path / "bad.nnet")
    relu_last = Network((Linear(rng.normal(size=(2, 3)), np.zeros(2)), ReLU()), Domain.box(3))
    with pytest.raises(FrontendError, match="dense networks only"):
        save_nnet(relu_last, tmp_path / "bad.nnet")


# ---- parse errors ----------------------------------------------------------------------------

def data_line(text: str, index: int) -> int:
    """The 1-based line number of the ``index``-th (0-based) non-comment line."""
    numbers = [i for i, line in enumerate(text.splitlines(), start=1)
               if line.strip() and not line.startswith("//")]
    return numbers[index]


def replace_line(text: str, number: int, new: str) -> str:
    lines = text.splitlines()
    lines[number - 1] = new
    return "\n".join(lines) + "\n"


def test_parse_errors_name_the_line(tmp_path, acas_text):
    path = tmp_path / "broken.nnet"
    cases = [
        (replace_line(acas_text, data_line(acas_text, 3), "0.0,abc,0.0,0.0,0.0,"),
         f"line {data_line(acas_text, 3)}: 5 input minimums: could not convert"),
        (replace_line(acas_text, data_line(acas_text, 7), "1.0,2.0,"),
         f"line {data_line(acas_text, 7)}: expected a row of 5 weights of layer 1 (5 values), "
         f"found 2"),
        (replace_line(acas_text, data_line(acas_text, 6), "1.0,1.0,1.0,0.0,1.0,1.0,"),
         f"line {data_line(acas_text, 6)}: range 4 is 0"),
        ("\n".join(acas_text.splitlines()[:-1]) + "\n",
         f"line {len(acas_text.splitlines())}: the file ends where a bias of layer 7 should be"),
        (acas_text + "1.0,\n",
         f"line {len(acas_text.splitlines()) + 1}: unexpected data after the last layer"),
        (replace_line(acas_text, data_line(acas_text, 1), "5,50,50,50,50,50,50,50,"),
         f"line {data_line(acas_text, 1)}: layer sizes"),
    ]
    for text, expected in cases:
        path.write_text(text)
        with pytest.raises(FrontendError) as info:
            load_nnet(path)
        assert str(info.value).startswith(f"{path}: {expected}"), str(info.value)
