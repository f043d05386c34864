"""The .nnir text form: golden text, bit-exact round trips, the .npz pair, and parse errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.errors import ParseError
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
    """Same structure, name and shape; every float64 bit-identical."""
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    assert (a.name, a.input_shape) == (b.name, b.input_shape)
    assert type(b.name) is str and all(type(d) is int for d in b.input_shape)
    pairs = [(a.domain.lower, b.domain.lower), (a.domain.upper, b.domain.upper)]
    pairs += [(ea.linear.weight, eb.linear.weight) for ea, eb in zip(a.edges, b.edges)]
    pairs += [(ea.linear.bias, eb.linear.bias) for ea, eb in zip(a.edges, b.edges)]
    for x, y in pairs:
        assert type(y) is np.ndarray and y.dtype == np.float64
        assert np.array_equal(x, y) and x.shape == y.shape and x.tobytes() == y.tobytes()


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
    assert "expected 'arrays' or 'linear'" in str(err)


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
    text = PAPER_TEXT.replace("netpatch-ir 1", "netpatch-ir 2")
    assert_points_at(parse_error(text), text, 1, 13)


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
