"""The LP of a box's sub-domains (compiler.analysis.domain_lp): hand-derived optima and chord
costs on the tent, a proved-empty domain, and soundness by sampling on random networks with
phases fixed."""
from __future__ import annotations

import numpy as np
import pytest

from compiler.analysis.bounds import layer_bounds
from compiler.analysis.domain_lp import DomainLP
from compiler.analysis.input_sets import Box
from ir.layers import Linear, ReLU
from ir.network import Network


def tent() -> Network:
    """``f(x) = relu(x) - 2 relu(x - 0.5)`` on ``[-1, 1]``: z = (x, x - 0.5)."""
    return Network((Linear([[1.0], [1.0]], [0.0, -0.5]), ReLU(), Linear([[1.0, -2.0]], [0.0])),
                   None, (1,), "tent")


def tent_lp():
    box = Box(-np.ones(1), np.ones(1))
    root = layer_bounds(tent(), box, "lp")
    return DomainLP(tent(), box, root.lower, root.upper), root


def domain(root, z_lower, z_upper):
    lower, upper = dict(root.lower), dict(root.upper)
    lower[1], upper[1] = np.array(z_lower, float), np.array(z_upper, float)
    return lower, upper


def test_the_tent_root_optimum_and_chord_costs_are_the_hand_derived_ones():
    # By hand: a_0 <= (x + 1) / 2 (z_0 in [-1, 1]), a_1 >= max(0, x - 0.5); f rises as
    # (x + 1) / 2 up to x = 0.5 (0.75) and falls as 1.5 - 1.5 x after.  The chord of z_0 binds
    # with multiplier 1 and intercept -u l / (u - l) = 0.5; a_1's chord does not bind.
    lp, root = tent_lp()
    bound, x = lp.maximize(0)
    assert bound == pytest.approx(0.75, abs=1e-6) and x[0] == pytest.approx(0.5, abs=1e-6)
    costs = lp.chord_costs(root.lower, root.upper)
    assert costs[1] == pytest.approx([0.5, 0.0], abs=1e-6)


@pytest.mark.parametrize("z_lower, z_upper, best, at", [
    ((0.0, -1.5), (1.0, 0.0), 0.5, 0.5),      # relu(x) active, relu(x - 0.5) inactive: f = x
    ((0.0, 0.0), (1.0, 0.5), 0.5, 0.5),       # both active: f = 1 - x on [0.5, 1]
    ((-1.0, -1.5), (0.0, 0.0), 0.0, None),    # relu(x) inactive: f = 0
])
def test_a_domain_with_every_phase_fixed_is_solved_exactly(z_lower, z_upper, best, at):
    lp, root = tent_lp()
    lp.restrict(*domain(root, z_lower, z_upper))
    bound, x = lp.maximize(0)
    assert bound == pytest.approx(best, abs=1e-6)
    assert tent()(x)[0] == pytest.approx(best, abs=1e-6)       # the network reaches it
    if at is not None:
        assert x[0] == pytest.approx(at, abs=1e-6)
    lp.restrict(root.lower, root.upper)                           # and back to the box
    assert lp.maximize(0)[0] == pytest.approx(0.75, abs=1e-6)


def test_a_domain_no_input_reaches_is_proved_empty():
    lp, root = tent_lp()
    lp.restrict(*domain(root, (-1.0, 0.0), (0.0, 0.5)))       # x <= 0 and x >= 0.5
    assert lp.maximize(0) is None


@pytest.mark.parametrize("seed", range(4))
def test_domain_bounds_hold_on_10000_samples_with_phases_fixed(seed):
    rng = np.random.default_rng(seed)
    net = Network((Linear(rng.normal(size=(6, 3)), rng.normal(size=6) * 0.3), ReLU(),
                   Linear(rng.normal(size=(6, 6)), rng.normal(size=6) * 0.3), ReLU(),
                   Linear(rng.normal(size=(2, 6)), [0.0, 0.0])), None, (3,), f"net{seed}")
    box = Box(-np.ones(3), np.ones(3))
    root = layer_bounds(net, box, "lp")
    lp = DomainLP(net, box, root.lower, root.upper)
    points = rng.uniform(-1, 1, size=(10_000, 3))
    z1 = points @ net.edge(1).linear.weight.T + net.edge(1).linear.bias
    unstable = np.flatnonzero((root.lower[1] < 0) & (root.upper[1] > 0))[:2]
    assert len(unstable) == 2
    for signs in ((True, True), (True, False), (False, True), (False, False)):
        lower, upper = dict(root.lower), dict(root.upper)
        lower[1], upper[1] = root.lower[1].copy(), root.upper[1].copy()
        inside = np.ones(len(points), bool)
        for j, active in zip(unstable, signs):
            if active:
                lower[1][j] = 0.0
            else:
                upper[1][j] = 0.0
            inside &= (z1[:, j] >= 0) if active else (z1[:, j] <= 0)
        lp.restrict(lower, upper)
        outputs = net(points[inside])
        for j in range(2):
            reached = lp.maximize(j)
            if reached is None:
                assert not inside.any()
                continue
            bound, x = reached
            assert np.all(outputs[:, j] <= bound + 1e-9)
            assert bound <= root.upper[net.depth][j] + 1e-6
            assert np.all(x >= -1) and np.all(x <= 1)
