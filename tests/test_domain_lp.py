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
from conftest import small_cnn
from tests.test_relu_split import tent


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


def random_dense(seed: int) -> Network:
    rng = np.random.default_rng(seed)
    return Network((Linear(rng.normal(size=(6, 3)), rng.normal(size=6) * 0.3), ReLU(),
                    Linear(rng.normal(size=(6, 6)), rng.normal(size=6) * 0.3), ReLU(),
                    Linear(rng.normal(size=(2, 6)), [0.0, 0.0])), None, (3,), f"net{seed}")


@pytest.mark.parametrize("make, seed, radius", [(random_dense, s, None) for s in range(4)]
                         + [(small_cnn, 0, 0.1), (small_cnn, 1, 0.1)])
def test_domain_bounds_hold_on_10000_samples_with_phases_fixed(make, seed, radius):
    """Two unstable ReLUs in each of the first two ReLU layers fixed as a sampled point has
    them (so the domain is not empty): every sample of the box on that side of all four
    stays under the domain's LP bound, which is no looser than the box's."""
    net = make(seed)
    rng = np.random.default_rng(seed)
    if net.domain is None:
        box = Box(-np.ones(net.n_inputs), np.ones(net.n_inputs))
    else:
        box = Box.around(rng.uniform(size=net.n_inputs), radius, net.domain)
    root = layer_bounds(net, box, "lp")
    lp = DomainLP(net, box, root.lower, root.upper)
    points = box.lower + rng.uniform(size=(10_000, net.n_inputs)) * (box.upper - box.lower)
    trace = net.simulate(points)
    relus = [e.index for e in net.edges if e.relu][:2]
    for anchor in rng.choice(len(points), size=3, replace=False):
        lower, upper = dict(root.lower), dict(root.upper)
        inside, fixed = np.ones(len(points), bool), 0
        for k in relus:
            lower[k], upper[k] = root.lower[k].copy(), root.upper[k].copy()
            for j in np.flatnonzero((root.lower[k] < 0) & (root.upper[k] > 0))[:2]:
                active = trace.pre[k][anchor, j] >= 0
                if active:
                    lower[k][j] = 0.0
                else:
                    upper[k][j] = 0.0
                inside &= (trace.pre[k][:, j] >= 0) if active else (trace.pre[k][:, j] <= 0)
                fixed += 1
        assert inside[anchor] and fixed == 4
        lp.restrict(lower, upper)
        outputs = trace.output[inside]
        for j in range(net.n_outputs):
            bound, x = lp.maximize(j)
            assert np.all(outputs[:, j] <= bound + 1e-9)
            assert bound <= root.upper[net.depth][j] + 1e-6
            assert np.all(x >= box.lower) and np.all(x <= box.upper)


@pytest.mark.parametrize("seed", range(3))
def test_a_domain_started_from_its_parents_basis_has_the_optimum_of_a_fresh_lp(seed):
    """The warm start changes where the simplex starts, not where it ends: each domain with
    one unstable ReLU fixed, started from the box's optimal basis, reaches the optimum a new
    LP of that domain reaches."""
    net = random_dense(seed)
    box = Box(-np.ones(3), np.ones(3))
    root = layer_bounds(net, box, "lp")
    warm = DomainLP(net, box, root.lower, root.upper)
    warm.maximize(0)
    parent = warm.basis()
    k = next(e.index for e in net.edges if e.relu)
    compared = 0
    for j in np.flatnonzero((root.lower[k] < 0) & (root.upper[k] > 0)):
        for side in (0, 1):
            lower, upper = dict(root.lower), dict(root.upper)
            lower[k], upper[k] = root.lower[k].copy(), root.upper[k].copy()
            (lower if side else upper)[k][j] = 0.0
            warm.restrict(lower, upper, parent)
            cold = DomainLP(net, box, root.lower, root.upper)
            cold.restrict(lower, upper)
            for out in range(net.n_outputs):
                expected, started = cold.maximize(out), warm.maximize(out)
                assert (expected is None) == (started is None)
                if expected is not None:
                    assert started[0] == pytest.approx(expected[0], abs=1e-7)
                    compared += 1
    assert compared >= 4


class GivesUpOnce:
    """A HiGHS model whose first solve ends ``kUnknown`` (as HiGHS 1.15 sometimes does on a
    warm start); everything else is the real model's."""

    def __init__(self, h):
        import highspy
        self._h, self._unknown, self.cleared = h, highspy.HighsModelStatus.kUnknown, 0
        self._pending = True

    def __getattr__(self, name):
        return getattr(self._h, name)

    def getModelStatus(self):
        return self._unknown if self._pending else self._h.getModelStatus()

    def clearSolver(self):
        self.cleared += 1
        self._pending = False
        return self._h.clearSolver()


def test_a_solve_that_gives_up_is_run_again_from_scratch():
    lp, _ = tent_lp()
    lp.model.h = flaky = GivesUpOnce(lp.model.h)
    bound, x = lp.maximize(0)
    assert flaky.cleared == 1
    assert bound == pytest.approx(0.75, abs=1e-6) and x[0] == pytest.approx(0.5, abs=1e-6)
