"""Forward symbolic bounds over many small input sets (compiler.analysis.forward_symbolic) and
the batched input splitting built on them (attacks.input_split.split_many): bounds by hand on
the paper's network, exact on a single point, soundness against sampled points on a small CNN
and the MNIST networks, and verdicts against one-box-at-a-time input splitting."""
from __future__ import annotations

import numpy as np
import pytest

import attacks.input_split as input_split
from attacks.input_split import spec_network, split_many, split_search
from compiler.analysis.bounds import input_box, layer_bounds
from compiler.analysis.forward_symbolic import set_bounds
from compiler.analysis.input_sets import Box
from conftest import load_shared_network, small_cnn
from frontends.data import load_dataset
from ir.network import Domain, Linear, Network, ReLU
from ir.property import ArgmaxIsNot, targeted_candidates

TOLERANCE = 1e-6


def paper_network() -> Network:
    """METHOD.md worked example 1 (rows are target neurons, no biases)."""
    return Network((Linear([[1, 1], [-1, 2]], [0, 0]), ReLU(),
                    Linear([[2, 3], [1, 1]], [0, 0]), ReLU(),
                    Linear([[2, -8], [-4, 5]], [0, 0])), Domain.box(2))


def test_paper_network_by_hand():
    """Both inputs move in [0, 1] from 0.  Layer 1 is exact: z = (d0 + d1, -d0 + 2 d1),
    ranges [0, 2] and [-1, 2].  The second ReLU is unstable: U = 2/3 (-d0 + 2 d1 + 1) (the
    chord), L = -d0 + 2 d1 (u > -l).  Layer 2: L = (-d0 + 8 d1, 3 d1), U = (6 d1 + 2,
    d0/3 + 7 d1/3 + 2/3): ranges [-1, 8] and [0, 10/3], and the interval step [0, 10],
    [0, 4] lifts the first to [0, 8].  Layer 3 (both ReLUs active): z_1 >= 2 L_1 - 8 U_2 =
    -14 d0/3 - 8 d1/3 - 16/3 >= -38/3 and z_1 <= 2 U_1 - 8 L_2 = 4 - 12 d1 <= 4; z_2 >=
    -4 U_1 + 5 L_2 = -9 d1 - 8 >= -17 and z_2 <= -4 L_1 + 5 U_2 = 17 d0/3 - 61 d1/3 + 10/3
    <= 9 (the interval step gives [-80/3, 16] and [-32, 50/3])."""
    lower, upper = set_bounds(paper_network(), np.zeros(2), [[0, 1]], [[0, 0]], [[1, 1]],
                              every_layer=True)
    expected = {1: ([0, -1], [2, 2]), 2: ([0, 0], [8, 10 / 3]), 3: ([-38 / 3, -17], [4, 9])}
    for k, (lo, hi) in expected.items():
        np.testing.assert_allclose(lower[k][0], lo, atol=1e-12)
        np.testing.assert_allclose(upper[k][0], hi, atol=1e-12)


def test_one_moved_input_and_padding_by_hand():
    """Only d0 moves in [0, 1] (the second slot pads): z_1 = (d0, -d0), the second ReLU is
    dead, and everything above is linear in d0: z_2 = (2 d0, d0), z_3 = (-4 d0, -3 d0)."""
    lower, upper = set_bounds(paper_network(), np.zeros(2), [[0, -1]], [[0, 5]], [[1, 7]])
    np.testing.assert_allclose(lower[0], [-4, -3], atol=1e-12)
    np.testing.assert_allclose(upper[0], [0, 0], atol=1e-12)


def test_a_point_gives_the_network_itself():
    net = small_cnn(3)
    rng = np.random.default_rng(0)
    center = rng.uniform(size=net.n_inputs)
    coords = rng.choice(net.n_inputs, size=(5, 3), replace=False)
    moves = rng.uniform(-center[coords], 1 - center[coords])
    lower, upper = set_bounds(net, center, coords, moves, moves, every_layer=True)
    points = np.tile(center, (5, 1))
    np.put_along_axis(points, coords, center[coords] + moves, axis=1)
    trace = net.simulate(points)
    for k in lower:
        np.testing.assert_allclose(lower[k], trace.pre[k], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(upper[k], trace.pre[k], rtol=1e-9, atol=1e-9)


def random_sets(rng, n_inputs: int, count: int, moved: int, center: np.ndarray,
                lower: np.ndarray, upper: np.ndarray):
    """``count`` sets of ``moved`` inputs (some padded), each moving within a random
    sub-range of ``[lower, upper]``."""
    coords = np.array([rng.choice(n_inputs, moved, replace=False) for _ in range(count)])
    coords[::4, -1] = -1
    index = np.maximum(coords, 0)
    a = rng.uniform(lower[index], upper[index])
    b = rng.uniform(lower[index], upper[index])
    whole = rng.uniform(size=coords.shape) < 0.5
    a, b = np.where(whole, lower[index], a), np.where(whole, upper[index], b)
    return coords, np.minimum(a, b) - center[index], np.maximum(a, b) - center[index]


def sampled_points(rng, center, coords, d_lo, d_hi, per_set: int):
    """Points of each set: corners (every moved input at an end) and uniform ones."""
    count, moved = coords.shape
    t = rng.uniform(size=(count, per_set, moved))
    t[:, :per_set // 2] = rng.integers(0, 2, size=(count, per_set // 2, moved))
    moves = d_lo[:, None] + (d_hi - d_lo)[:, None] * t
    points = np.tile(center, (count, per_set, 1))
    real = coords >= 0
    for slot in range(moved):
        rows = np.flatnonzero(real[:, slot])
        points[rows, :, coords[rows, slot]] = center[coords[rows, slot]][:, None] + \
            moves[rows, :, slot]
    return points


def assert_sound(net, center, coords, d_lo, d_hi, rng, per_set: int):
    """Every pre-activation of ``per_set`` sampled points of each set lies inside the set's
    bounds, which lie inside interval bounds of the set's box (checked on the first sets)."""
    lower, upper = set_bounds(net, center, coords, d_lo, d_hi, every_layer=True)
    points = sampled_points(rng, center, coords, d_lo, d_hi, per_set)
    trace = net.simulate(points.reshape(-1, net.n_inputs))
    for k in lower:
        values = trace.pre[k].reshape(len(coords), per_set, -1)
        slack_lo = 1e-9 * (1 + np.abs(lower[k]))[:, None]
        slack_hi = 1e-9 * (1 + np.abs(upper[k]))[:, None]
        below = values < lower[k][:, None] - slack_lo
        above = values > upper[k][:, None] + slack_hi
        assert not below.any() and not above.any(), (net.name, k, below.sum(), above.sum())
    for b in range(5):
        lo, hi = center.copy(), center.copy()
        real = coords[b] >= 0
        lo[coords[b][real]] += d_lo[b][real]
        hi[coords[b][real]] += d_hi[b][real]
        interval = layer_bounds(net, Box(lo, hi), "interval")
        for k in lower:
            assert np.all(lower[k][b] >= interval.lower[k] - 1e-9)
            assert np.all(upper[k][b] <= interval.upper[k] + 1e-9)
    return lower, upper


def test_sound_on_a_small_cnn():
    """Sparse convolutions and max pooling: 200 sets of 3 inputs, 50 points each."""
    net = small_cnn()
    rng = np.random.default_rng(1)
    center = rng.uniform(size=net.n_inputs)
    zeros, ones = np.zeros(net.n_inputs), np.ones(net.n_inputs)
    lower, upper = assert_sound(net, center, *random_sets(rng, net.n_inputs, 200, 3, center,
                                                          zeros, ones), rng, 50)
    assert np.any((lower[1] < 0) & (upper[1] > 0))        # the relaxations were exercised


@pytest.fixture(scope="module")
def mnist(shared_data):
    x, y = load_dataset(shared_data / "mnist" / "mnist_aigent_500.npz")
    return {"x": x, "y": y,
            "8-16": load_shared_network(shared_data / "models" / "mnist_784-8-16-10.h5"),
            "6x50": load_shared_network(shared_data / "models" / "mnist_784-50x6-10.h5")}


@pytest.mark.parametrize("name", ["8-16", "6x50"])
def test_sound_on_mnist(mnist, name):
    """200 sets of 2 or 3 pixels at L-inf 1 around an image, 50 points each."""
    net, rng = mnist[name], np.random.default_rng(2)
    x = mnist["x"][4]
    lo, hi = input_box(x, net.domain.lower, net.domain.upper, 1.0)
    for moved in (2, 3):
        assert_sound(net, x, *random_sets(rng, net.n_inputs, 100, moved, x, lo, hi), rng, 50)


def margins_of(net, x, label):
    candidates = targeted_candidates(ArgmaxIsNot(label, 0.0), net(x))
    conjunctions = [conj for _, conj in candidates]
    return conjunctions, spec_network(net, conjunctions)


def one_pixel_verdicts(net, x, conjunctions, spec):
    """Per pixel, ``split_search``'s verdict on the box of that pixel alone (the reference)."""
    lo, hi = input_box(x, net.domain.lower, net.domain.upper, 1.0)
    verdicts = {}
    for p in np.flatnonzero(hi > lo):
        moved = np.arange(net.n_inputs) == p
        verdicts[int(p)] = split_search(net, np.where(moved, lo, x), np.where(moved, hi, x),
                                        conjunctions, None, TOLERANCE, spec=spec)[0]
    return verdicts, lo, hi


@pytest.mark.parametrize("image", [10, 17, 4])
def test_split_many_agrees_with_split_search_pixel_by_pixel(mnist, image):
    """8-16, one-pixel boxes at L-inf 1: image 10 has 17 pixels with an attack, image 17 two,
    image 4 none.  Each pixel alone gets split_many's verdict, which must be
    split_search's; a counterexample moves only its pixel and meets a target."""
    net = mnist["8-16"]
    x, label = mnist["x"][image].ravel().astype(float), int(mnist["y"][image])
    conjunctions, spec = margins_of(net, x, label)
    reference, lo, hi = one_pixel_verdicts(net, x, conjunctions, spec)
    attacked = set()
    for p in reference:
        outcome, detail = split_many(spec, x, [[p]], [[lo[p] - x[p]]], [[hi[p] - x[p]]], None,
                                     TOLERANCE)
        assert outcome in ("proved", "sat"), (p, outcome)
        if outcome == "sat":
            box, x_adv = detail
            assert box == 0
            assert set(np.flatnonzero(x_adv != x)) <= {p}
            assert lo[p] <= x_adv[p] <= hi[p]
            assert any(conj.holds(net(x_adv)) for conj in conjunctions)
            attacked.add(p)
    assert attacked == {p for p, verdict in reference.items() if verdict == "sat"}
    assert len(attacked) == {10: 17, 17: 2, 4: 0}[image]
    every = np.array(sorted(reference))[:, None]
    outcome, detail = split_many(spec, x, every, lo[every] - x[every], hi[every] - x[every],
                                 None, TOLERANCE)
    assert outcome == ("sat" if attacked else "proved")
    if attacked:
        assert int(every[detail[0], 0]) in attacked


def test_split_many_hands_back_what_it_could_not_close(mnist, monkeypatch):
    """With no halving allowed, the pieces left open come back whole, and ``split_search``
    on each agrees with the batched search given its rounds (6x50, pairs of pixels)."""
    net = mnist["6x50"]
    x, label = mnist["x"][0].ravel().astype(float), int(mnist["y"][0])
    conjunctions, spec = margins_of(net, x, label)
    lo, hi = input_box(x, net.domain.lower, net.domain.upper, 1.0)
    rng = np.random.default_rng(3)
    coords = np.array([rng.choice(np.flatnonzero(hi > lo), 2, replace=False)
                       for _ in range(300)])
    d_lo, d_hi = lo[coords] - x[coords], hi[coords] - x[coords]
    full = split_many(spec, x, coords, d_lo, d_hi, None, TOLERANCE)
    monkeypatch.setattr(input_split, "MAX_ROUNDS", 0)
    outcome, (boxes, left_lo, left_hi) = split_many(spec, x, coords, d_lo, d_hi, None,
                                                    TOLERANCE)
    assert outcome == "left" and 0 < len(boxes) < len(coords)
    np.testing.assert_array_equal(left_lo, d_lo[boxes])
    np.testing.assert_array_equal(left_hi, d_hi[boxes])
    verdicts = set()
    for box in boxes:
        moved = np.isin(np.arange(net.n_inputs), coords[box])
        verdicts.add(split_search(net, np.where(moved, lo, x), np.where(moved, hi, x),
                                  conjunctions, None, TOLERANCE, spec=spec)[0])
    assert full[0] == "proved" and verdicts == {"proved"}


def test_split_many_decides_a_point_by_its_centre(mnist):
    """Boxes of zero width cannot be halved: the network is constant on them, so the centre
    decides.  With a tolerance no bound can meet, a point that is not a counterexample is
    still proved, and one that is comes back as ``sat``."""
    net = mnist["8-16"]
    x, label = mnist["x"][10].ravel().astype(float), int(mnist["y"][10])
    conjunctions, spec = margins_of(net, x, label)
    reference, lo, hi = one_pixel_verdicts(net, x, conjunctions, spec)
    attacked = next(p for p, verdict in reference.items() if verdict == "sat")
    found = split_search(net, np.where(np.arange(net.n_inputs) == attacked, lo, x),
                         np.where(np.arange(net.n_inputs) == attacked, hi, x), conjunctions,
                         None, TOLERANCE, spec=spec)[1]
    point = [[found[attacked] - x[attacked]]]
    assert split_many(spec, x, [[attacked]], point, point, None, 1e3)[0] == "sat"
    zero = [[0.0]]
    assert split_many(spec, x, [[attacked]], zero, zero, None, 1e3) == ("proved", None)
