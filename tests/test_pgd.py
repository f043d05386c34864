"""Gradient ascent on a property's slack (attacks.pgd): its gradients equal the network's
linear model at the point (an independent computation, compiler.analysis.pullback), and what
it returns is a point of the box where the float64 network meets the property."""
from __future__ import annotations

import numpy as np
import pytest

from attacks.pgd import input_gradients, pgd, slack_rows
from compiler.analysis.pullback import input_function
from conftest import MNIST_6X50, correctly_classified, load_mnist, load_shared_network, small_cnn
from ir.layers import Linear
from ir.network import Network
from ir.property import Conjunction, Constraint
from ir.vnnlib import robustness_cases


def beats(winner: int, loser: int) -> Constraint:
    return Constraint(((winner, 1.0), (loser, -1.0)), ">=", 0.0)


def test_slack_rows_give_each_constraints_margin():
    conj = Conjunction((Constraint(((0, 2.0),), ">=", 1.0), Constraint(((1, 1.0),), "<=", 3.0),
                        Constraint(((0, 1.0), (1, -1.0)), "==", 0.5)))
    rows, offsets = slack_rows(conj, 2)
    y = np.array([1.5, 0.25])
    assert np.allclose(rows @ y + offsets, [2.0, 2.75, 0.75, -0.75])
    assert min(rows @ y + offsets) == pytest.approx(conj.slack(y))


def test_gradients_equal_the_linear_model_through_convolutions_and_max_pooling():
    net = small_cnn()
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(4, net.n_inputs))
    rows = rng.normal(size=(4, net.n_outputs))
    grads = input_gradients(net, net.simulate(x), rows)
    for b in range(4):
        conj = Conjunction((Constraint(tuple((i, float(c)) for i, c in enumerate(rows[b])),
                                       ">=", 0.0),))
        gains, _ = input_function(net, conj, net.phases(x[b]))
        np.testing.assert_allclose(grads[b], gains[0], rtol=1e-9, atol=1e-12)


def test_finds_a_corner_that_sampling_misses():
    """y0 = sum(x) over [0, 1]^20 reaches 19.9 only within 0.1 of the all-ones corner (a
    uniform sample lands there with probability ~1e-15); the gradient points straight at it."""
    net = Network((Linear(np.ones((1, 20)), [0.0]),), None, (20,), "sum")
    conj = Conjunction((Constraint(((0, 1.0),), ">=", 19.9),))
    found = pgd(net, np.zeros(20), np.ones(20), [conj], np.random.default_rng(0))
    assert found is not None and found[1] == 0
    x = found[0]
    assert np.all((x >= 0) & (x <= 1)) and net(x)[0] >= 19.9


def test_nothing_where_the_property_cannot_hold():
    net = Network((Linear(np.ones((1, 20)), [0.0]),), None, (20,), "sum")
    conj = Conjunction((Constraint(((0, 1.0),), ">=", 20.001),))
    assert pgd(net, np.zeros(20), np.ones(20), [conj], np.random.default_rng(0), steps=20) is None


def test_counterexamples_on_the_6x50_network_are_real():
    """Robustness boxes of eps 0.03 around MNIST images: what pgd returns lies in the box and
    the original network, in float64, gives it the class of the conjunction it met."""
    net = load_shared_network(MNIST_6X50)
    x, y = load_mnist()
    found = 0
    for i in correctly_classified(net, x, y, 10):
        case = robustness_cases(x[i], 0.03, int(y[i]), net.n_outputs)[0]
        answer = pgd(net, case.lower, case.upper, list(case.output), np.random.default_rng(0))
        if answer is None:
            continue
        point, which = answer
        assert np.all(point >= case.lower) and np.all(point <= case.upper)
        assert case.output[which].holds(net(point)) and np.argmax(net(point)) != y[i]
        found += 1
    assert found >= 3    # 4 of these 10 measured
