"""Bounds analyses (compiler.analysis.bounds, symbolic, lp_bounds) and input sets: exact
concretization against brute force, hand-derived bounds on the paper's network, and soundness
against 10,000 sampled points per network and set (corners and extreme sparse changes
included)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from compiler.analysis.bounds import (budget_first_layer, input_box, layer_bounds, propagate)
from compiler.analysis.input_sets import Box, SparseBox
from frontends import load_network
from frontends.data import load_dataset
from conftest import load_shared_network, small_cnn
from ir.layers import apply_affine
from ir.network import Domain, Linear, MaxPool2D, Network, ReLU, Reshape

METHODS = ("interval", "symbolic", "lp")
SAMPLES = 10_000


def slack(bound: np.ndarray) -> np.ndarray:
    """Float64 rounding of the simulation and of the bounds, far below any real error."""
    return 1e-9 * (1.0 + np.abs(bound))


def assert_inside(values: np.ndarray, lower: np.ndarray, upper: np.ndarray, what: str) -> None:
    below = values < lower - slack(lower)
    above = values > upper + slack(upper)
    assert not below.any() and not above.any(), (
        f"{what}: {int(below.sum())} values below and {int(above.sum())} above their bounds")


def assert_same(these, those, layers) -> None:
    """The two analyses' bounds are equal on every edge-layer of ``layers``."""
    for k in layers:
        np.testing.assert_array_equal(these.lower[k], those.lower[k])
        np.testing.assert_array_equal(these.upper[k], those.upper[k])


def assert_nested(inner, outer, what: str) -> None:
    for k in outer.lower:
        assert np.all(inner.lower[k] >= outer.lower[k] - 1e-9), (what, k)
        assert np.all(inner.upper[k] <= outer.upper[k] + 1e-9), (what, k)


def paper_network() -> Network:
    """METHOD.md worked example 1 (rows are target neurons, no biases)."""
    return Network((Linear([[1, 1], [-1, 2]], [0, 0]), ReLU(),
                    Linear([[2, 3], [1, 1]], [0, 0]), ReLU(),
                    Linear([[2, -8], [-4, 5]], [0, 0])), Domain.box(2))


def dense_twin(net: Network) -> Network:
    """The same function with every edge-layer's affine map as one dense ``Linear``."""
    layers = []
    for edge in net.edges:
        weight = edge.linear.weight
        layers.append(Linear(weight.toarray() if sp.issparse(weight) else weight, edge.linear.bias))
        if edge.activation == "relu":
            layers.append(ReLU())
        elif edge.activation == "maxpool":
            position = edge.span[1] - 1
            layers += [Reshape(net.shapes[position]), net.layers[position], Reshape((edge.width,))]
    return Network(tuple(layers), net.domain, name=net.name + "_dense")


# ---- input sets --------------------------------------------------------------------------

def brute_force_range(s: SparseBox, C: np.ndarray, d: np.ndarray):
    """min/max of ``C x + d`` over every point with at most k of the budgeted coordinates at
    their ends and the free ones at theirs (a linear function over the box of a fixed support
    peaks at a corner)."""
    values = []
    budgeted = [i for i in range(s.n) if i not in set(s.free.tolist())]
    for size in range(0, s.k + 1):
        for chosen in itertools.combinations(budgeted, size):
            moved = list(chosen) + s.free.tolist()
            for ends in itertools.product((0, 1), repeat=len(moved)):
                x = s.center.copy()
                for i, end in zip(moved, ends):
                    x[i] = s.upper[i] if end else s.lower[i]
                values.append(C @ x + d)
    values = np.array(values)
    return values.min(axis=0), values.max(axis=0)


@pytest.mark.parametrize("k, free", [(0, ()), (1, ()), (2, ()), (3, ()), (6, ()), (0, (2,)),
                                     (1, (0, 4)), (2, (3, 5))])
def test_sparse_box_concretization_is_the_brute_force_range(k, free):
    rng = np.random.default_rng(k)
    n = 6
    lower, upper = rng.uniform(-1, 0, n), rng.uniform(0, 1, n)
    center = rng.uniform(lower, upper)
    center[0], center[1] = lower[0], upper[1]            # no room down / up
    C = rng.normal(size=(5, n)) * (rng.uniform(size=(5, n)) < 0.7)
    d = rng.normal(size=5)
    s = SparseBox(center, lower, upper, k, free)
    expected = brute_force_range(s, C, d)
    for matrix in (C, sp.csr_matrix(C)):
        lo, hi = s.concretize(matrix, d)
        np.testing.assert_allclose(lo, expected[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(hi, expected[1], rtol=0, atol=1e-12)


def test_box_concretization_is_attained_at_corners():
    rng = np.random.default_rng(1)
    box = Box(rng.uniform(-1, 0, 4), rng.uniform(0, 1, 4))
    C, d = rng.normal(size=(3, 4)), rng.normal(size=3)
    corners = np.array([np.where(ends, box.upper, box.lower)
                        for ends in itertools.product((False, True), repeat=4)])
    values = corners @ C.T + d
    for matrix in (C, sp.csr_matrix(C)):
        lo, hi = box.concretize(matrix, d)
        np.testing.assert_allclose(lo, values.min(axis=0), atol=1e-12)
        np.testing.assert_allclose(hi, values.max(axis=0), atol=1e-12)


def test_samples_lie_in_their_sets_and_reach_the_extremes():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=30)
    s = SparseBox.around(x, 0.3, 4, Domain.box(30))
    points = s.sample(600, rng)
    changed = points != s.center
    assert changed.sum(axis=1).max() == 4
    assert np.all((points >= s.lower) & (points <= s.upper))
    at_ends = (points == s.lower) | (points == s.upper)
    assert np.any(np.all(at_ends | ~changed, axis=1) & (changed.sum(axis=1) == 4))
    box = Box.around(x, 0.3, Domain.box(30))
    points = box.sample(600, rng)
    assert np.all((points >= box.lower) & (points <= box.upper))
    assert np.any(np.all((points == box.lower) | (points == box.upper), axis=1))
    free = SparseBox(s.center, s.lower, s.upper, 2, free=(0, 5))
    points = free.sample(600, rng)
    changed = points != free.center
    assert np.all((points >= free.lower) & (points <= free.upper))
    assert np.delete(changed, [0, 5], axis=1).sum(axis=1).max() == 2      # the budget
    assert changed[:, [0, 5]].all(axis=1).mean() > 0.9      # the free ones nearly always move
    at_ends = (points == free.lower) | (points == free.upper)
    assert np.any(np.all(at_ends | ~changed, axis=1) & (changed.sum(axis=1) == 4))


# ---- hand-checked bounds -----------------------------------------------------------------

def test_paper_network_bounds_by_hand():
    """The 2-2-2-2 network on the box [0, 1]^2.

    Interval:
      z1 = (x1 + x2, -x1 + 2 x2): [0, 2] and [-1, 2] (neuron 2 unstable)
      a1 in [0, 2] x [0, 2];  z2 = (2 a11 + 3 a12, a11 + a12): [0, 10] and [0, 4]
      a2 in [0, 10] x [0, 4]; z3 = (2 a21 - 8 a22, -4 a21 + 5 a22): [-32, 20] and [-40, 20]
    Symbolic (neuron 12: l = -1, u = 2; upper chord 2/3 (z + 1); lower slope 1 as u > -l):
      a11 = x1 + x2;  -x1 + 2 x2 <= a12 <= 2/3 (-x1 + 2 x2 + 1)
      z21 <= 2 (x1 + x2) + 2 (-x1 + 2 x2 + 1) = 6 x2 + 2 -> 8
      z21 >= 2 (x1 + x2) + 3 (-x1 + 2 x2) = -x1 + 8 x2 -> -1, interval 0 wins
      z22 <= x1 + x2 + 2/3 (-x1 + 2 x2 + 1) = x1/3 + 7 x2/3 + 2/3 -> 10/3
      z22 >= x1 + x2 - x1 + 2 x2 = 3 x2 -> 0
      layer 2 is stable active, so z3 = W3 W2 a1 = (-4 a11 - 2 a12, -3 a11 - 7 a12):
      z31 <= -4 (x1 + x2) - 2 (-x1 + 2 x2) = -2 x1 - 8 x2 -> 0
      z31 >= -4 (x1 + x2) - 4/3 (-x1 + 2 x2 + 1) = -8/3 x1 - 20/3 x2 - 4/3 -> -32/3
      z32 <= -3 (x1 + x2) - 7 (-x1 + 2 x2) = 4 x1 - 17 x2 -> 4
      z32 >= -3 (x1 + x2) - 14/3 (-x1 + 2 x2 + 1) = 5/3 x1 - 37/3 x2 - 14/3 -> -17
      (the interval step from the symbolic layer 2, [-80/3, 16] and [-32, 50/3], is looser)
    LP: z32 <= 0 (a12 >= 0 in the triangle); the other bounds stay.
    """
    net, box = paper_network(), Box([0, 0], [1, 1])
    interval = layer_bounds(net, box, "interval")
    expected = {1: ([0, -1], [2, 2]), 2: ([0, 0], [10, 4]), 3: ([-32, -40], [20, 20])}
    for k, (lo, hi) in expected.items():
        np.testing.assert_allclose(interval.lower[k], lo, atol=1e-12)
        np.testing.assert_allclose(interval.upper[k], hi, atol=1e-12)
    symbolic = layer_bounds(net, box, "symbolic")
    expected = {1: ([0, -1], [2, 2]), 2: ([0, 0], [8, 10 / 3]), 3: ([-32 / 3, -17], [0, 4])}
    for k, (lo, hi) in expected.items():
        np.testing.assert_allclose(symbolic.lower[k], lo, atol=1e-12)
        np.testing.assert_allclose(symbolic.upper[k], hi, atol=1e-12)
    assert interval.unstable == symbolic.unstable == {1: 1, 2: 0, 3: 0}
    lp = layer_bounds(net, box, "lp")
    np.testing.assert_allclose(lp.lower[3], [-32 / 3, -17], atol=1e-5)
    np.testing.assert_allclose(lp.upper[3], [0, 0], atol=1e-5)
    assert np.all(lp.lower[3] <= [-32 / 3, -17]) and np.all(lp.upper[3] >= 0)
    assert lp.lp_solved == {2: 0, 3: 4}


def test_lp_uses_the_pixel_budget_on_the_paper_network():
    """One of x = (0.5, 0.5) changes, within [0, 1]: z1 = (x1 + x2, -x1 + 2 x2) has
    z11 in [0.5, 1.5] (active) and z12 in [-0.5, 1.5] (unstable); layer 2 is active, so
    z3 = (-4 a11 - 2 a12, -3 a11 - 7 a12).  In the LP z11 >= 0.5 and a12 >= 0, so
    z31 <= -2 and z32 <= -1.5, both attained at x = (0.5, 0) (z12 = -0.5, a12 = 0).
    Symbolic (lower slope 1 for a12, so a12 may go negative) only gets -1 and 2."""
    s = SparseBox([0.5, 0.5], [0, 0], [1, 1], 1)
    symbolic = layer_bounds(paper_network(), s, "symbolic")
    lp = layer_bounds(paper_network(), s, "lp")
    np.testing.assert_allclose(symbolic.upper[3], [-1, 2], atol=1e-12)
    np.testing.assert_allclose(lp.upper[3], [-2, -1.5], atol=1e-6)
    assert np.all(lp.upper[3] >= [-2, -1.5])


@pytest.mark.parametrize("k", [0, 2, 5, 40])
def test_the_lp_encoding_of_a_set_attains_its_exact_range(k):
    """The LP's input variables (lp_bounds module docstring) give the set's exact range for
    a linear function: the convex hull, budget included."""
    from compiler.analysis.lp_bounds import TriangleLP
    rng = np.random.default_rng(k)
    n = 30
    x = rng.uniform(size=n)
    x[:5] = 0.0                                       # no room down
    around = SparseBox.around(x, 0.4, k, Domain.box(n))
    sets = [around, Box.around(x, 0.4, Domain.box(n)),
            SparseBox(x, around.lower, around.upper, k, free=(1, 7, 8))]
    C, d = rng.normal(size=(6, n)), rng.normal(size=6)
    for s in sets:
        model = TriangleLP(s, None)
        E, e = model.entering
        objective = sp.csr_matrix(C @ E)
        lo, hi = s.concretize(C, d)
        for j in range(len(C)):
            row = objective.getrow(j)
            low = model._minimize(row.indices, row.data) + C[j] @ e + d[j]
            high = -model._minimize(row.indices, -row.data) + C[j] @ e + d[j]
            assert low == pytest.approx(lo[j], abs=1e-7) and high == pytest.approx(hi[j], abs=1e-7)


def test_max_pool_bounds_by_hand():
    """x in [0, 1]^2; z1 = (x1, x1, x2, -10) as a 1x2x2 NHWC tensor, max-pooled 1x2 per
    channel: m0 = max(x1, x2) (undecided), m1 = max(x1, -10) = x1 (decided); y = m0 - m1,
    whose true range is [0, 1].
    Interval: m0, m1 in [0, 1], so y in [-1, 1].
    Symbolic: y <= (upper of m0: the constant 1) - (lower of m1: x1) -> 1;
              y >= (lower of m0: x1, the first largest lower bound) - (upper of m1: x1) = 0.
    """
    net = Network((Linear([[1, 0], [1, 0], [0, 1], [0, 0]], [0, 0, 0, -10]), Reshape((1, 2, 2)),
                   MaxPool2D((1, 2), (1, 2)), Reshape((2,)), Linear([[1, -1]], [0])),
                  Domain.box(2))
    box = Box([0, 0], [1, 1])
    interval, symbolic, lp = (layer_bounds(net, box, m) for m in METHODS)
    np.testing.assert_allclose(interval.lower[1], [0, 0, 0, -10], atol=1e-12)
    np.testing.assert_allclose(interval.upper[1], [1, 1, 1, -10], atol=1e-12)
    assert interval.undecided == symbolic.undecided == {1: 1, 2: 0}
    assert (interval.lower[2][0], interval.upper[2][0]) == (-1, 1)
    assert (symbolic.lower[2][0], symbolic.upper[2][0]) == (0, 1)
    assert (lp.lower[2][0], lp.upper[2][0]) == (0, 1)
    assert lp.lp_solved == {2: 2}


def test_parallel_lower_slope_on_the_paper_network():
    """alpha = u / (u - l) = 2/3 for neuron 12: z21 >= 2 (x1 + x2) + 2 (-x1 + 2 x2) = 6 x2
    -> 0, z22 >= x1 + x2 + 2/3 (-x1 + 2 x2) = x1/3 + 7/3 x2 -> 0."""
    bounds = layer_bounds(paper_network(), Box([0, 0], [1, 1]), "symbolic",
                          relu_lower="parallel")
    np.testing.assert_allclose(bounds.lower[2], [0, 0], atol=1e-12)
    np.testing.assert_allclose(bounds.upper[2], [8, 10 / 3], atol=1e-12)


# ---- agreement with the older helpers ----------------------------------------------------

@pytest.fixture(scope="module")
def mnist(shared_data):
    x, y = load_dataset(shared_data / "mnist" / "mnist_aigent_500.npz")
    return {"x": x, "8-16": load_shared_network(shared_data / "models" / "mnist_784-8-16-10.h5"),
            "6x50": load_shared_network(shared_data / "models" / "mnist_784-50x6-10.h5")}


@pytest.mark.parametrize("max_pixels", [15, None])
def test_budget_first_layer_is_the_sparse_box_and_interval_is_todays_propagation(mnist,
                                                                               max_pixels):
    net, x = mnist["8-16"], mnist["x"][0]
    edge = net.edge(1)
    lo_box, hi_box = input_box(x, net.domain.lower, net.domain.upper, 1.0)
    old = budget_first_layer(edge.linear.weight, edge.linear.bias, x, lo_box, hi_box, max_pixels)
    s = (SparseBox(x, lo_box, hi_box, max_pixels) if max_pixels is not None
         else Box(lo_box, hi_box))
    new = s.concretize(edge.linear.weight, edge.linear.bias)
    np.testing.assert_allclose(new[0], old[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new[1], old[1], rtol=1e-12, atol=1e-12)
    lows, highs = propagate(net, 1, *old)
    bounds = layer_bounds(net, s, "interval")
    for k in bounds.lower:
        np.testing.assert_allclose(bounds.lower[k], lows[k - 1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bounds.upper[k], highs[k - 1], rtol=1e-12, atol=1e-12)


# ---- soundness ---------------------------------------------------------------------------

def check_sound(net: Network, s, rng, methods=METHODS):
    results = {m: layer_bounds(net, s, m) for m in methods}
    trace = net.simulate(s.sample(SAMPLES, rng))
    for method, bounds in results.items():
        for k in bounds.lower:
            assert_inside(trace.pre[k], bounds.lower[k], bounds.upper[k],
                          f"{net.name} {type(s).__name__} {method} layer {k}")
    if "symbolic" in results:
        assert_nested(results["symbolic"], results["interval"], "symbolic in interval")
    if "lp" in results:
        assert_nested(results["lp"], results["symbolic"], "lp in symbolic")
    return results


@pytest.mark.parametrize("name", ["8-16", "6x50"])
def test_sound_on_mnist(mnist, name):
    """Every method on two images per set; the 6x50 network gets small sets (its LP stage
    for the 15-pixel set at L-inf 1 takes ~20 s: that set is checked without LP)."""
    net, rng = mnist[name], np.random.default_rng(7)
    radius, pixels = (0.02, (1.0, 15)) if name == "8-16" else (0.005, (0.1, 3))
    for i in (0, 1):
        x = mnist["x"][i]
        check_sound(net, Box.around(x, radius, net.domain), rng)
        results = check_sound(net, SparseBox.around(x, pixels[0], pixels[1], net.domain), rng)
        assert sum(results["lp"].lp_solved.values()) > 0
    check_sound(net, SparseBox.around(mnist["x"][2], 1.0, 15, net.domain), rng,
                ("interval", "symbolic"))
    around = SparseBox.around(mnist["x"][3], 1.0, 1, net.domain)   # exact's pixel sets:
    check_sound(net, SparseBox(around.center, around.lower, around.upper, 1,  # 3 pixels boxed
                               free=(350, 351, 406)), rng)                    # and 1 more


def test_sound_on_acas_xu(shared_data):
    folder = shared_data / "acasxu"
    net = load_network(folder / "ACASXU_2_9.json")
    net = net.with_domain(Domain.box(net.n_inputs, -10.0, 10.0))   # a box around the rows
    x = np.loadtxt(folder / "inputs.csv", delimiter=",")[0]
    rng = np.random.default_rng(9)
    box = Box(x - 0.025, x + 0.025)
    results = check_sound(net, box, rng)
    assert results["symbolic"].unstable[1] + results["interval"].unstable[2] > 0
    check_sound(net, SparseBox(x, box.lower, box.upper, 2), rng)


def test_sound_on_a_small_cnn_and_the_network_is_left_unchanged():
    net = small_cnn()
    weights = [e.linear.weight.copy() for e in net.edges]
    rng = np.random.default_rng(10)
    x = rng.uniform(size=net.n_inputs)
    results = check_sound(net, Box.around(x, 0.1, net.domain), rng)
    assert results["symbolic"].undecided[2] > 0 and results["symbolic"].unstable[1] > 0
    check_sound(net, SparseBox.around(x, 1.0, 5, net.domain), rng)
    around = SparseBox.around(x, 1.0, 2, net.domain)      # two coordinates boxed, 2 more
    check_sound(net, SparseBox(x, around.lower, around.upper, 2, free=(0, 7)), rng)
    for edge, weight in zip(net.edges, weights):
        after = edge.linear.weight
        if sp.issparse(after):
            assert (after != weight).nnz == 0
        else:
            np.testing.assert_array_equal(after, weight)


def test_sparse_back_substitution_equals_the_dense_one():
    net = small_cnn(1)
    twin = dense_twin(net)
    assert net.edge(1).sparse and not twin.edge(1).sparse
    x = np.random.default_rng(11).uniform(size=net.n_inputs)
    for s in (Box.around(x, 0.1, net.domain), SparseBox.around(x, 1.0, 4, net.domain)):
        a, b = layer_bounds(net, s, "symbolic"), layer_bounds(twin, s, "symbolic")
        for k in a.lower:
            np.testing.assert_allclose(a.lower[k], b.lower[k], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(a.upper[k], b.upper[k], rtol=1e-9, atol=1e-9)


def simulate_from(net: Network, start: int, a: np.ndarray) -> dict[int, np.ndarray]:
    """Pre-activations of edge-layers start+1..L for values ``a`` of neuron layer start."""
    pre = {}
    for edge in net.edges[start:]:
        pre[edge.index] = apply_affine(edge.linear.weight, edge.linear.bias, a)
        a = edge.activate(pre[edge.index])
    return pre


def test_sound_from_a_hidden_layer(mnist):
    """A patched layer's output bounded by a box; the layers above get sound bounds."""
    net, start = mnist["6x50"], 3
    post = net.simulate(mnist["x"][2]).post[start][0]
    box = Box(np.maximum(post - 0.3, 0.0), post + 0.3)
    rng = np.random.default_rng(12)
    pre = simulate_from(net, start, box.sample(SAMPLES, rng))
    results = {}
    for method in METHODS:
        results[method] = bounds = layer_bounds(net, box, method, start=start)
        assert sorted(bounds.lower) == list(range(start + 1, net.depth + 1))
        for k in bounds.lower:
            assert_inside(pre[k], bounds.lower[k], bounds.upper[k], f"{method} layer {k}")
    assert_nested(results["symbolic"], results["interval"], "symbolic in interval")
    assert_nested(results["lp"], results["symbolic"], "lp in symbolic")


@pytest.mark.parametrize("which", ["6x50", "small_cnn"])
def test_known_hidden_bounds_are_kept_and_the_layers_above_start_from_them(which, request):
    """Symbolic bounds given the hidden layers' bounds of an earlier analysis: with the
    symbolic ones they are today's symbolic bounds exactly; with the (tighter) LP ones they
    keep those and bound the last layer soundly, no looser than symbolic alone.  The CNN's
    max pools have bounds of their inputs (more values than the layer puts out)."""
    if which == "6x50":
        mnist = request.getfixturevalue("mnist")
        net = mnist["6x50"]
        box = Box.around(mnist["x"][3], 0.01, net.domain)
    else:
        net = small_cnn(0)
        box = Box.around(np.random.default_rng(2).uniform(size=net.n_inputs), 0.1, net.domain)
    hidden = lambda b: tuple({k: side[k] for k in range(1, net.depth)}   # noqa: E731
                             for side in (b.lower, b.upper))
    symbolic, lp = layer_bounds(net, box, "symbolic"), layer_bounds(net, box, "lp")
    again = layer_bounds(net, box, "symbolic", known=hidden(symbolic))
    assert_same(again, symbolic, symbolic.lower)
    started = layer_bounds(net, box, "symbolic", known=hidden(lp))
    assert_same(started, lp, range(1, net.depth))
    trace = net.simulate(box.sample(SAMPLES, np.random.default_rng(14)))
    for k in started.lower:
        assert_inside(trace.pre[k], started.lower[k], started.upper[k], f"layer {k}")
    assert_nested(started, symbolic, "started from LP hidden bounds in symbolic")
    top = net.depth
    assert np.sum(started.upper[top] - started.lower[top]) \
        < np.sum(symbolic.upper[top] - symbolic.lower[top])


# ---- the LP's time budget ----------------------------------------------------------------

def test_lp_without_time_keeps_the_symbolic_bounds(mnist):
    net = mnist["6x50"]
    s = SparseBox.around(mnist["x"][0], 1.0, 15, net.domain)
    symbolic = layer_bounds(net, s, "symbolic")
    lp = layer_bounds(net, s, "lp", time_budget=0.0)
    assert lp.lp_solved == {}
    assert_same(lp, symbolic, symbolic.lower)


def test_lp_stopped_early_is_sound_and_symbolic_above_where_it_stopped(mnist):
    """The full LP stage takes ~20 s here; 1 s reaches edge-layer 2 or 3 at most."""
    net = mnist["6x50"]
    x = mnist["x"][0]
    s = SparseBox.around(x, 1.0, 15, net.domain)
    symbolic = layer_bounds(net, s, "symbolic")
    lp = layer_bounds(net, s, "lp", time_budget=1.0)
    assert lp.seconds < symbolic.seconds + 1.0 + 3.0
    reached = max(lp.lp_solved)
    assert reached < net.depth and lp.lp_solved[2] > 0
    assert_same(lp, symbolic, range(reached + 1, net.depth + 1))
    trace = net.simulate(s.sample(SAMPLES, np.random.default_rng(13)))
    for k in lp.lower:
        assert_inside(trace.pre[k], lp.lower[k], lp.upper[k], f"layer {k}")
    assert_nested(lp, symbolic, "lp in symbolic")


def test_errors_name_the_problem():
    from common.errors import NetworkError
    net = paper_network()
    with pytest.raises(NetworkError, match="unknown bounds method"):
        layer_bounds(net, Box([0, 0], [1, 1]), "octagon")
    with pytest.raises(NetworkError, match="3 values"):
        layer_bounds(net, Box([0, 0, 0], [1, 1, 1]))
    with pytest.raises(NetworkError, match="start"):
        layer_bounds(net, Box([0, 0], [1, 1]), start=3)


def test_sparse_box_contains_by_hand():
    """One budgeted change at most (the third input is free), each inside the box."""
    changes = SparseBox(np.zeros(3), -np.ones(3), np.ones(3), 1, free=[2])
    points = np.array([[0.5, 0, 1], [0, 0, 0], [0.5, 0.5, 0], [2, 0, 0], [0, -1, -1]])
    assert changes.contains(points).tolist() == [True, True, False, False, True]
