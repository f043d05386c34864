"""The .nnir text form: golden text, bit-exact round trips, the .npz pair, and parse errors."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from common.errors import ParseError
from ir.layers import AvgPool2D, Conv2D, MaxPool2D, Pad2D, Reshape, Scale, Transpose
from ir.network import Domain, Linear, Network, ReLU
from ir.text import dump_nnir, format_network, load_nnir, parse_network

PAPER_TEXT = """\
netpatch-ir 1
network "paper_2222"
input shape (2) domain box [0.0, 1.0]
linear 1: 2 -> 2
  weight [[1.0, 1.0],
          [-1.0, 2.0]]
  bias [0.0, 0.0]
relu
linear 2: 2 -> 2
  weight [[2.0, 3.0],
          [1.0, 1.0]]
  bias [0.0, 0.0]
relu
linear 3: 2 -> 2
  weight [[2.0, -8.0],
          [-4.0, 5.0]]
  bias [0.0, 0.0]
"""

# Every statement of version 2 once.  Shapes: (3, 3, 1) -> pad2d (4, 4, 1) -> conv2d (3, 3, 2)
# -> maxpool2d (2, 2, 2) -> avgpool2d (1, 1, 2) -> transpose (2, 1, 1) -> reshape (2) -> linear
# (1).  Edge-layers: 1 = pad2d conv2d relu, 2 = maxpool2d, 3 = avgpool2d ... linear.
TINY_CNN_TEXT = """\
netpatch-ir 2
network "tiny_cnn"
input shape (3, 3, 1) domain box [0.0, 1.0]
pad2d (0, 0, 1, 1) layout NHWC
conv2d 1: (4, 4, 1) -> (3, 3, 2) stride (1, 1) pad (0, 0, 0, 0) layout NHWC
  weight [[[[1.0, -1.0],
            [0.5, 0.25]]],
          [[[0.0, 2.0],
            [-3.0, 1.0]]]]
  bias [0.5, -0.5]
relu
maxpool2d kernel (2, 2) stride (1, 1) pad (0, 0, 0, 0) layout NHWC
avgpool2d kernel (2, 2) stride (2, 2) pad (0, 0, 1, 1) count_include_pad false layout NHWC
transpose (2, 0, 1)
reshape (2)
scale
  mul [1.0, 2.0]
  add [0.0, -0.5]
linear 3: 2 -> 1
  weight [[1.0, 1.0]]
  bias [0.0]
"""

AWKWARD = [1e-300, -0.0, 0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -2.5e-17, 123456789.125]


def paper_network() -> Network:
    zero = np.zeros(2)
    return Network((Linear([[1, 1], [-1, 2]], zero), ReLU(),
                    Linear([[2, 3], [1, 1]], zero), ReLU(),
                    Linear([[2, -8], [-4, 5]], zero)), Domain.box(2), name="paper_2222")


def random_network(seed: int, widths: list[int], input_shape: tuple[int, ...] = ()) -> Network:
    """Float64 weights with awkward values planted, a non-uniform domain, a ReLU on top."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        weight = rng.normal(size=(n_out, n_in)) * 10.0 ** rng.integers(-8, 8, size=(n_out, n_in))
        bias = rng.normal(size=n_out)
        weight.flat[rng.choice(weight.size, min(len(AWKWARD), weight.size), replace=False)] = \
            AWKWARD[:weight.size]
        bias[0] = -0.0
        layers += [Linear(weight, bias), ReLU()]
    lower = -rng.random(widths[0])
    lower[0] = -0.0
    domain = Domain(lower, lower + rng.random(widths[0]) + 1e-300)
    return Network(tuple(layers), domain, input_shape, name=f"random \"{seed}\" caf\u00e9")


def assert_identical(a: Network, b: Network) -> None:
    """Same layers (kinds and every attribute), name and shape; every float64 bit-identical."""
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    assert (a.name, a.input_shape) == (b.name, b.input_shape)
    assert type(b.name) is str and all(type(d) is int for d in b.input_shape)
    assert (a.domain is None) == (b.domain is None)
    pairs = [] if a.domain is None else [(a.domain.lower, b.domain.lower),
                                         (a.domain.upper, b.domain.upper)]
    for la, lb in zip(a.layers, b.layers):
        for f in dataclasses.fields(la):
            x, y = getattr(la, f.name), getattr(lb, f.name)
            if isinstance(x, np.ndarray):
                pairs.append((x, y))
            else:
                assert x == y and type(x) is type(y), (type(la).__name__, f.name, x, y)
                if isinstance(y, tuple):
                    assert all(type(v) is int for v in y), (type(lb).__name__, f.name, y)
    for x, y in pairs:
        assert type(y) is np.ndarray and y.dtype == np.float64
        assert np.array_equal(x, y) and x.shape == y.shape and x.tobytes() == y.tobytes()


def tiny_cnn() -> Network:
    weight = np.array([[[[1.0, -1.0], [0.5, 0.25]]], [[[0.0, 2.0], [-3.0, 1.0]]]])
    return Network((Pad2D((0, 0, 1, 1)), Conv2D(weight, np.array([0.5, -0.5])), ReLU(),
                    MaxPool2D((2, 2), (1, 1)), AvgPool2D((2, 2), (2, 2), (0, 0, 1, 1)),
                    Transpose((2, 0, 1)), Reshape((2,)), Scale(np.array([1.0, 2.0]),
                                                               np.array([0.0, -0.5])),
                    Linear(np.ones((1, 2)), np.zeros(1))),
                   Domain.box(9), (3, 3, 1), name="tiny_cnn")


def awkward_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values over many magnitudes, with the AWKWARD ones planted."""
    values = rng.normal(size=shape) * 10.0 ** rng.integers(-8, 8, size=shape)
    count = min(len(AWKWARD), values.size)
    values.flat[rng.choice(values.size, count, replace=False)] = AWKWARD[:count]
    return values


def every_kind_network(layout: str, seed: int) -> Network:
    """Every layer kind, in ``layout``, with asymmetric pads, both count_include_pad values, two
    convolutions and a linear layer in one edge-layer, and a trailing reshape.

    Shapes (H, W, C): (5, 6, 2) -> pad2d (8, 7, 2) -> conv2d (4, 7, 3) -> maxpool2d (2, 4, 3)
    -> avgpool2d (2, 4, 3) -> avgpool2d (2, 2, 3) -> conv2d (2, 2, 4) -> transpose -> reshape
    (16) -> linear (3) -> linear (2) -> reshape (1, 2)."""
    rng = np.random.default_rng(seed)

    def image(height, width, channels):
        return (height, width, channels) if layout == "NHWC" else (channels, height, width)

    layers = (Pad2D((1, 0, 2, 1), layout),
              Conv2D(awkward_values(rng, (3, 2, 3, 2)), awkward_values(rng, (3,)), (2, 1),
                     (0, 1, 1, 0), layout),
              Scale(awkward_values(rng, (4 * 7 * 3,)), awkward_values(rng, (4 * 7 * 3,))),
              ReLU(),
              MaxPool2D((2, 2), (2, 2), (0, 1, 0, 0), layout),
              AvgPool2D((2, 1), (1, 1), (1, 0, 0, 0), layout, count_include_pad=True),
              AvgPool2D((1, 2), (1, 2), (0, 0, 0, 1), layout, count_include_pad=False),
              Conv2D(awkward_values(rng, (4, 3, 1, 1)), awkward_values(rng, (4,)), (1, 1),
                     (0, 0, 0, 0), layout),
              Transpose((2, 0, 1) if layout == "NHWC" else (1, 2, 0)),
              Reshape((16,)),
              Linear(awkward_values(rng, (3, 16)), awkward_values(rng, (3,))),
              ReLU(),
              Linear(awkward_values(rng, (2, 3)), awkward_values(rng, (2,))),
              Reshape((1, 2)))
    lower = -rng.random(5 * 6 * 2)
    return Network(layers, Domain(lower, lower + rng.random(5 * 6 * 2)), image(5, 6, 2),
                   name=f"every kind {layout}")


def parse_error(text: str, arrays: dict | None = None) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_network(text, arrays)
    return info.value


def assert_points_at(err: ParseError, text: str, line: int, column: int | None = None) -> None:
    """The error names ``line`` (and ``column``) and shows that source line with a caret."""
    assert err.line == line
    if column is not None:
        assert err.column == column
    shown = text.splitlines()[line - 1]
    assert f"\n  {shown}\n  {' ' * (err.column - 1)}^" in str(err)
    assert str(err).startswith(f"<text>:{line}:{err.column}: ")


# ---- printing and round trips -----------------------------------------------------------

def test_paper_network_prints_the_golden_text():
    assert format_network(paper_network()) == PAPER_TEXT


def test_paper_text_round_trips():
    net = parse_network(PAPER_TEXT)
    assert format_network(net) == PAPER_TEXT
    assert_identical(net, paper_network())
    assert net(np.array([0.5, 0.5])).tolist() == [-5.0, -6.5]


@pytest.mark.parametrize("seed, widths, input_shape", [
    (0, [3, 4, 2], ()),
    (1, [6, 5, 5, 3], (2, 3)),
    (2, [8, 1, 9], (8,)),
])
def test_random_networks_round_trip_bit_exactly_inline(seed, widths, input_shape):
    net = random_network(seed, widths, input_shape)
    text = format_network(net)
    assert "@" not in text and "domain box" not in text
    again = parse_network(text)
    assert format_network(again) == text
    assert_identical(net, again)


def test_external_arrays_round_trip_through_the_dict():
    net = random_network(3, [10, 12, 4])
    arrays: dict[str, np.ndarray] = {}
    text = format_network(net, arrays, inline_limit=9)
    assert sorted(arrays) == ["W1", "W2", "b1", "lower", "upper"]
    assert "weight @W1" in text and "bias @b1" in text and "lower @lower" in text
    assert "bias [" in text  # b2 has 4 values: inline
    again = parse_network(text, arrays)
    assert format_network(again, {}, inline_limit=9) == text
    assert_identical(net, again)


def test_without_an_arrays_dict_everything_is_inline():
    net = random_network(4, [70, 2])
    assert "@" not in format_network(net, inline_limit=1)


def test_box_domain_keeps_negative_zero_and_mixed_zeros_are_per_input():
    layer = Linear(np.eye(2), np.zeros(2))
    box = Network((layer,), Domain(np.array([-0.0, -0.0]), np.array([1.0, 1.0])))
    assert "domain box [-0.0, 1.0]" in format_network(box)
    assert_identical(box, parse_network(format_network(box)))
    mixed = Network((layer,), Domain(np.array([0.0, -0.0]), np.array([1.0, 1.0])))
    assert "lower [0.0, -0.0]" in format_network(mixed)
    assert_identical(mixed, parse_network(format_network(mixed)))


def test_comments_and_free_layout_parse_to_the_same_network():
    text = ("# the paper's network\nnetpatch-ir 1 network \"paper_2222\"\n"
            "input shape (2) domain box [0, 1]   # inputs in [0, 1]\n"
            "linear 1: 2->2 weight [[1, 1], [-1, 2]] bias [0, 0] relu\n"
            "linear 2: 2 -> 2 weight [[2, 3], [1, 1.0]] bias [0, 0] relu\n"
            "linear 3: 2 -> 2 weight [[2, -8], [-4, 5e0]] bias [0, .0]\n")
    assert format_network(parse_network(text)) == PAPER_TEXT


def test_dump_and_load_keep_large_arrays_in_the_npz(tmp_path):
    net = random_network(5, [80, 10, 3])
    path = tmp_path / "net.nnir"
    dump_nnir(net, path)
    text = path.read_text()
    assert (tmp_path / "net.npz").exists()
    assert 'arrays "net.npz"' in text.splitlines()
    assert "weight @W1" in text and "lower @lower" in text
    assert "weight [[" in text  # W2 has 30 values: inline
    with np.load(tmp_path / "net.npz") as npz:
        assert sorted(npz.files) == ["W1", "lower", "upper"]  # b1 has 10 values: inline
    again = load_nnir(path)
    assert_identical(net, again)
    dump_nnir(again, tmp_path / "again.nnir")
    assert (tmp_path / "again.nnir").read_text() == text.replace("net.npz", "again.npz")


def test_dump_of_a_small_network_writes_no_npz(tmp_path):
    dump_nnir(paper_network(), tmp_path / "paper.nnir")
    assert (tmp_path / "paper.nnir").read_text() == PAPER_TEXT
    assert not (tmp_path / "paper.npz").exists()
    assert_identical(load_nnir(tmp_path / "paper.nnir"), paper_network())


# ---- every layer kind (version 2) --------------------------------------------------------

def test_tiny_cnn_prints_the_golden_text_and_round_trips():
    assert format_network(tiny_cnn()) == TINY_CNN_TEXT
    again = parse_network(TINY_CNN_TEXT)
    assert format_network(again) == TINY_CNN_TEXT
    assert_identical(again, tiny_cnn())
    x = np.random.default_rng(0).random((4, 9))
    assert again(x).tobytes() == tiny_cnn()(x).tobytes()


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_every_layer_kind_round_trips_bit_exactly_inline(layout):
    net = every_kind_network(layout, seed=10 if layout == "NHWC" else 11)
    text = format_network(net)
    assert text.startswith("netpatch-ir 2\n") and "@" not in text
    assert "count_include_pad true" in text and "count_include_pad false" in text
    numbered = [line.split(":")[0] for line in text.splitlines()
                if line.startswith(("linear", "conv2d"))]
    assert numbered == ["conv2d 1", "conv2d 3", "linear 3", "linear 4"]   # by edge-layer
    again = parse_network(text)
    assert format_network(again) == text
    assert_identical(net, again)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_every_layer_kind_round_trips_through_the_arrays_dict(layout):
    net = every_kind_network(layout, seed=12)
    arrays: dict[str, np.ndarray] = {}
    text = format_network(net, arrays, inline_limit=8)
    # Edge-layer 3 holds a convolution and a linear layer: the second W3 is W3_2.
    assert sorted(arrays) == ["W1", "W3", "W3_2", "add1", "lower", "mul1", "upper"]
    assert arrays["W1"].shape == (3, 2, 3, 2) and arrays["W3"].shape == (4, 3, 1, 1)
    assert "weight @W3\n" in text and "weight @W3_2\n" in text
    again = parse_network(text, arrays)
    assert format_network(again, {}, inline_limit=8) == text
    assert_identical(net, again)
    # An inline array keeps its name: the linear weight stays W3_2 when W3 (12 values) is inline.
    arrays = {}
    text = format_network(net, arrays, inline_limit=12)
    assert "W3" not in arrays and "weight @W3_2\n" in text and "  weight [[[[" in text
    assert_identical(net, parse_network(text, arrays))


def test_every_layer_kind_round_trips_through_files(tmp_path):
    net = every_kind_network("NCHW", seed=13)
    dump_nnir(net, tmp_path / "net.nnir")
    assert (tmp_path / "net.npz").exists()
    again = load_nnir(tmp_path / "net.nnir")
    assert_identical(net, again)
    dump_nnir(again, tmp_path / "again.nnir")
    assert (tmp_path / "again.nnir").read_text() == \
        (tmp_path / "net.nnir").read_text().replace("net.npz", "again.npz")


def test_dense_layers_in_one_edge_layer_share_its_number():
    rng = np.random.default_rng(14)
    net = Network((Linear(rng.normal(size=(3, 2)), np.zeros(3)),
                   Linear(rng.normal(size=(2, 3)), np.ones(2)), ReLU(),
                   Linear(rng.normal(size=(1, 2)), np.zeros(1))), Domain.box(2))
    text = format_network(net)
    assert text.startswith("netpatch-ir 1\n")
    assert [line for line in text.splitlines() if line.startswith("linear")] == \
        ["linear 1: 2 -> 3", "linear 1: 3 -> 2", "linear 2: 2 -> 1"]
    assert_identical(net, parse_network(text))


def test_version_2_with_dense_layers_only_reads_and_prints_as_version_1():
    net = parse_network(PAPER_TEXT.replace("netpatch-ir 1", "netpatch-ir 2"))
    assert format_network(net) == PAPER_TEXT


# ---- real networks through the Keras frontend --------------------------------------------

def shared_models() -> list[str]:
    from conftest import SHARED_DATA
    return sorted(p.name for p in (SHARED_DATA / "models").glob("*.h5"))


@pytest.fixture
def load_network():
    pytest.importorskip("frontends.keras", reason="frontends/keras.py does not import yet",
                        exc_type=ImportError)
    from frontends import load_network
    return load_network


def assert_nnir_round_trip(net: Network, folder: Path, load_network) -> None:
    path = folder / f"{net.name}.nnir"
    dump_nnir(net, path)
    assert path.with_suffix(".npz").exists()
    again = load_network(path)
    assert_identical(net, again)
    dump_nnir(again, folder / "again.nnir")
    assert (folder / "again.nnir").read_text() == path.read_text().replace(
        f"{net.name}.npz", "again.npz")


@pytest.mark.parametrize("model", shared_models() or ["(no models found)"])
def test_shared_models_round_trip(model, shared_data, load_network, tmp_path):
    net = load_network(shared_data / "models" / model)
    assert_nnir_round_trip(net, tmp_path, load_network)


def test_acasxu_round_trips(shared_data, load_network, tmp_path):
    folder = shared_data / "acasxu"
    net = load_network(folder / "ACASXU_2_9.json", weights=folder / "ACASXU_2_9.weights.h5")
    assert_nnir_round_trip(net, tmp_path, load_network)


# ---- parse errors -----------------------------------------------------------------------

def test_misspelled_keyword():
    text = PAPER_TEXT.replace("relu\nlinear 2", "relux\nlinear 2")
    err = parse_error(text)
    assert_points_at(err, text, 8, 1)
    assert "unexpected 'relux'" in str(err) and "'relu'" in str(err)


def test_misspelled_attribute():
    text = PAPER_TEXT.replace("  bias [0.0, 0.0]\nrelu\nlinear 2",
                              "  bais [0.0, 0.0]\nrelu\nlinear 2")
    err = parse_error(text)
    assert_points_at(err, text, 7, 3)
    assert "expected 'bias'" in str(err)


def test_header_that_does_not_match_the_weight_shape():
    text = PAPER_TEXT.replace("linear 2: 2 -> 2", "linear 2: 3 -> 2")
    err = parse_error(text)
    assert_points_at(err, text, 9, 11)  # at n_in
    assert "shape (2, 3)" in str(err) and "shape (2, 2)" in str(err)


def test_bias_that_does_not_match_the_header():
    text = PAPER_TEXT.replace("  bias [0.0, 0.0]\n", "  bias [0.0]\n", 1)
    assert_points_at(parse_error(text), text, 4, 16)  # at n_out


def test_layers_that_do_not_chain_name_the_layer_line():
    text = PAPER_TEXT.replace("linear 3: 2 -> 2\n  weight [[2.0, -8.0],\n          [-4.0, 5.0]]",
                              "linear 3: 1 -> 2\n  weight [[2.0],\n          [-4.0]]")
    err = parse_error(text)
    assert_points_at(err, text, 14, 1)
    assert "layer 3: weight takes 1 inputs" in str(err)


def test_input_shape_that_does_not_match_layer_1():
    text = PAPER_TEXT.replace("shape (2)", "shape (3)")
    assert_points_at(parse_error(text), text, 3, 1)


def test_ragged_matrix():
    text = PAPER_TEXT.replace("[-1.0, 2.0]]", "[-1.0]]", 1)
    err = parse_error(text)
    assert_points_at(err, text, 6, 12)
    assert "row 2 has 1 values, row 1 has 2" in str(err)


def test_truncated_file():
    text = PAPER_TEXT[:PAPER_TEXT.index("[-4.0")]
    err = parse_error(text)
    assert_points_at(err, text, 15, 23)  # just after the last comma
    assert "unexpected end of file" in str(err)


def test_file_without_layers():
    text = "\n".join(PAPER_TEXT.splitlines()[:3]) + "\n"
    err = parse_error(text)
    assert_points_at(err, text, 3, 38)
    assert "expected 'arrays', " in str(err)
    assert all(f"'{word}'" in str(err) for word in ("linear", "relu", "conv2d", "scale"))


@pytest.mark.parametrize("bad, message", [("-inf", "non-finite number '-inf'"),
                                          ("nan", "non-finite number 'nan'"),
                                          ("1e999", "number 1e999 is out of the float64 range")])
def test_non_finite_numbers(bad, message):
    text = PAPER_TEXT.replace("[-4.0, 5.0]", f"[-4.0, {bad}]")
    err = parse_error(text)
    assert_points_at(err, text, 16, 18)
    assert message in str(err)


def test_layers_out_of_order():
    text = PAPER_TEXT.replace("linear 2:", "linear 3:")
    assert_points_at(parse_error(text), text, 9, 8)
    text = PAPER_TEXT.replace("relu\nlinear 2", "relu\nrelu\nlinear 2")
    assert_points_at(parse_error(text), text, 9, 1)


def test_unknown_version():
    text = PAPER_TEXT.replace("netpatch-ir 1", "netpatch-ir 3")
    err = parse_error(text)
    assert_points_at(err, text, 1, 13)
    assert "netpatch-ir 1 and netpatch-ir 2" in str(err)


def test_reference_without_arrays_and_missing_array():
    arrays: dict[str, np.ndarray] = {}
    text = format_network(random_network(6, [70, 2]), arrays)
    err = parse_error(text)
    assert_points_at(err, text, 4, 9)
    assert "array @lower is referenced, but no arrays were given" in str(err)
    del arrays["W1"]
    err = parse_error(text, arrays)
    assert_points_at(err, text, text.splitlines().index("  weight @W1") + 1, 10)
    assert "array @W1 not found; the arrays hold: lower, upper" in str(err)


def test_load_with_a_missing_npz_array(tmp_path):
    path = tmp_path / "net.nnir"
    dump_nnir(random_network(7, [70, 2]), path)
    with np.load(tmp_path / "net.npz") as npz:
        kept = {name: npz[name] for name in npz.files if name != "W1"}
    np.savez(tmp_path / "net.npz", **kept)
    text = path.read_text()
    with pytest.raises(ParseError) as info:
        load_nnir(path)
    assert info.value.line == text.splitlines().index("  weight @W1") + 1
    assert "array @W1 not found" in str(info.value)
    assert str(info.value).startswith(f"{path}:")


def test_load_with_a_missing_npz_file(tmp_path):
    path = tmp_path / "net.nnir"
    dump_nnir(random_network(8, [70, 2]), path)
    (tmp_path / "net.npz").unlink()
    text = path.read_text()
    with pytest.raises(ParseError) as info:
        load_nnir(path)
    assert info.value.line == text.splitlines().index('arrays "net.npz"') + 1
    assert "'net.npz'" in str(info.value) and '^' in str(info.value)


# ---- parse errors in version 2 statements ------------------------------------------------

def at(text: str, line: int, fragment: str) -> int:
    """The 1-based column where ``fragment`` starts on ``line``."""
    return text.splitlines()[line - 1].index(fragment) + 1


@pytest.mark.parametrize("old, new, line, fragment, message", [
    # version 1 holds linear and relu only
    ("netpatch-ir 2", "netpatch-ir 1", 4, "pad2d", "pad2d needs netpatch-ir 2"),
    # numbers by edge-layer
    ("conv2d 1:", "conv2d 2:", 5, "2:", "this conv2d belongs to edge-layer 1, but it is "
                                        "numbered 2"),
    ("linear 3:", "linear 2:", 19, "2:", "this linear belongs to edge-layer 3, but it is "
                                         "numbered 2"),
    # declared shapes
    ("1: (4, 4, 1)", "1: (4, 5, 1)", 5, "(4, 5, 1)", "conv2d 1 declares input shape (4, 5, 1), "
                                                    "but the layer before gives (4, 4, 1)"),
    ("-> (3, 3, 2)", "-> (3, 2, 2)", 5, "(3, 2, 2)", "conv2d 1 declares output shape (3, 2, 2), "
                                                    "but it computes (3, 3, 2)"),
    ("-> (3, 3, 2)", "-> (3, 3, 3)", 5, "(3, 3, 3)", "conv2d 1 declares 3 output channels"),
    ("1: (4, 4, 1)", "1: (4, 4)", 5, "(4, 4)", "conv2d 1: input shape needs 3 values "
                                              "(height, width, channels), got 2"),
    # attribute values
    ("0) layout NHWC\n  weight", "0) layout NHCW\n  weight", 5, "NHCW",
     "conv2d 1: unknown layout 'NHCW'; use NHWC or NCHW"),
    ("pad2d (0, 0, 1, 1)", "pad2d (0, -1, 1, 1)", 4, "-1",
     "pad2d: pad must hold whole numbers >= 0, got -1"),
    ("stride (1, 1) pad (0, 0, 0, 0) layout NHWC\n  weight",
     "stride (1) pad (0, 0, 0, 0) layout NHWC\n  weight", 5, "(1)",
     "conv2d 1: stride needs 2 values (height, width), got 1"),
    ("kernel (2, 2) stride (1, 1)", "kernel (2, 2.5) stride (1, 1)", 12, "2.5",
     "maxpool2d: kernel must hold whole numbers >= 0, got 2.5"),
    ("count_include_pad false", "count_include_pad no", 13, "no",
     "avgpool2d: count_include_pad must be true or false, got 'no'"),
    # arrays
    ("[[[[1.0, -1.0],\n            [0.5, 0.25]]],\n          [[[0.0, 2.0],\n"
     "            [-3.0, 1.0]]]]", "[[[1.0, -1.0]]]", 6, "[[[", "conv2d 1: weight must be 4-D "
                                                              "(c_out, c_in, kh, kw)"),
    ("[-3.0, 1.0]", "[-3.0]", 9, "[-3.0]", "ragged array: item 2 is a list of shape (1,), item "
                                           "1 is a list of shape (2,)"),
    ("[[[0.0, 2.0]", "[[[0.0, [2.0]]", 8, "[2.0]", "ragged array: item 2 is a list of shape "
                                                  "(1,), item 1 is a number"),
    ("bias [0.5, -0.5]", "bias [0.5]", 10, "[0.5]", "conv2d 1: bias must have shape (2,)"),
    # shapes that do not chain: the statement of the layer at fault
    ("reshape (2)", "reshape (3)", 15, "reshape", "layer 7 (Reshape): reshape: (2, 1, 1) "
                                                  "(2 values) cannot become (3,)"),
    ("transpose (2, 0, 1)", "transpose (2, 0, 0)", 14, "transpose", "is not a permutation"),
    ("mul [1.0, 2.0]", "mul [1.0, 2.0, 3.0]", 16, "scale", "scale: mul and add need shape (2,)"),
    ("maxpool2d kernel (2, 2)", "maxpool2d kernel (4, 4)", 12, "maxpool2d",
     "a kernel of 4 does not fit an input of 3"),
    ("stride (1, 1) pad (0, 0, 0, 0) layout NHWC\navg",
     "stride (0, 1) pad (0, 0, 0, 0) layout NHWC\navg", 12, "maxpool2d", "stride 0"),
    ("input shape (3, 3, 1)", "input shape (3, 3, 2)", 5, "conv2d",
     "kernel takes 1 channels, the input has 2"),
    ("input shape (3, 3, 1)", "input shape (3, 3)", 3, "input", "does not fit layer 1"),
])
def test_version_2_errors_point_at_the_statement(old, new, line, fragment, message):
    assert old in TINY_CNN_TEXT
    text = TINY_CNN_TEXT.replace(old, new, 1)
    err = parse_error(text)
    assert_points_at(err, text, line, at(text, line, fragment))
    assert message in str(err)


def test_two_relus_in_a_row_are_a_syntax_error():
    text = TINY_CNN_TEXT.replace("relu\n", "relu\nrelu\n")
    err = parse_error(text)
    assert_points_at(err, text, 12, 1)
    assert "unexpected 'relu'" in str(err)


@pytest.mark.parametrize("name, replacement, message", [
    ("W1", np.full((2, 1, 2, 2), np.nan), "array @W1 holds a non-finite value nan at (0, 0, 0, 0)"),
    ("W1", np.ones((2, 4)), "conv2d 1: weight must be 4-D (c_out, c_in, kh, kw), but it has "
                            "shape (2, 4)"),
    ("mul3", np.ones((1, 2)), "scale: mul must be 1-D"),
])
def test_bad_referenced_arrays_point_at_the_reference(name, replacement, message):
    arrays: dict[str, np.ndarray] = {}
    text = format_network(tiny_cnn(), arrays, inline_limit=1)
    arrays[name] = replacement
    err = parse_error(text, arrays)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.endswith(f"@{name}"))
    assert_points_at(err, text, line, at(text, line, f"@{name}"))
    assert message in str(err)
