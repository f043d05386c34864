"""Branch and bound on ReLU phases (attacks.relu_split): a hand-derived proof that no bound of
the box gives, proofs and counterexamples that agree with a dense grid on small networks (as
input splitting's do), and on the shared 6x50 MNIST network a robustness box its LP bounds
leave open, proved (the MILP needed 19 s).  The domains' LP: tests/test_domain_lp.py."""
from __future__ import annotations

import time

import numpy as np
import pytest

from attacks.input_split import spec_network
from attacks.relu_split import relu_split_search
from compiler.analysis.bounds import layer_bounds
from compiler.analysis.domain_lp import DomainLP
from compiler.analysis.input_sets import Box
from ir.layers import Linear, ReLU
from ir.network import Network
from tests.test_input_split import (LOWER, UPPER, agrees_with_a_dense_grid, at_least, grid_max,
                                    two_input_net)


def tent() -> Network:
    """``f(x) = relu(x) - 2 relu(x - 0.5)`` on ``[-1, 1]``: 0 up to x = 0, then up to 0.5 at
    x = 0.5 and down to 0 at x = 1; its maximum is 0.5."""
    return Network((Linear([[1.0], [1.0]], [0.0, -0.5]), ReLU(), Linear([[1.0, -2.0]], [0.0])),
                   None, (1,), "tent")


def test_the_tent_needs_splits_and_gets_its_hand_derived_answer():
    net, lo, hi = tent(), -np.ones(1), np.ones(1)
    above = at_least(0.6)
    spec, _ = spec_network(net, [above])
    # By hand: the LP (triangle) relaxation's best is x = 0.5 with relu(x) on its chord
    # (x + 1) / 2 = 0.75 and relu(x - 0.5) at 0: margin 0.75 - 0.6 = 0.15; the symbolic
    # bound is the chord's value at x = 1 (relu(x - 0.5) >= 0 there): 1 - 0.6 = 0.4.
    assert layer_bounds(spec, Box(lo, hi), "lp").upper[spec.depth][0] == pytest.approx(0.15,
                                                                                         abs=1e-6)
    assert layer_bounds(spec, Box(lo, hi), "symbolic").upper[spec.depth][0] == \
        pytest.approx(0.4)
    # Fixing relu(x) inactive leaves f <= 0; active, x >= 0 and then fixing
    # relu(x - 0.5) gives f <= 1 - x on x >= 0.5 and f <= x on x <= 0.5: at most 0.5.
    for bounds in ("symbolic", "lp"):
        outcome, domains = relu_split_search(net, lo, hi, [above], None, 1e-6, bounds)
        assert outcome == "proved" and 1 < domains <= 7, (bounds, outcome, domains)
    outcome, x = relu_split_search(net, lo, hi, [at_least(0.45)], None, 1e-6, "symbolic")
    assert outcome == "sat" and -1 <= x[0] <= 1 and net(x)[0] >= 0.45


@pytest.mark.parametrize("seed", range(5))
def test_proofs_and_counterexamples_agree_with_a_dense_grid(seed):
    # more than one domain each: the LP bounds alone prove none of these
    agrees_with_a_dense_grid(
        lambda net, conj: relu_split_search(net, LOWER, UPPER, conj, None, 1e-6, "lp"), seed)


def test_a_deadline_is_a_timeout_not_a_proof():
    net = two_input_net(0)
    outcome, _ = relu_split_search(net, LOWER, UPPER, [at_least(grid_max(net) + 0.02)],
                                   time.perf_counter() - 1, 1e-6, "lp")
    assert outcome == "timeout"


def test_a_disjunction_is_proved_only_when_every_conjunction_is():
    net = two_input_net(1)
    top = grid_max(net)
    outcome, x = relu_split_search(net, LOWER, UPPER, [at_least(top + 1), at_least(top - 0.05)],
                                   None, 1e-6, "symbolic")
    assert outcome == "sat" and net(x)[0] >= top - 0.05
    outcome, _ = relu_split_search(net, LOWER, UPPER, [at_least(top + 1), at_least(top + 0.05)],
                                   None, 1e-6, "symbolic")
    assert outcome == "proved"


def test_a_box_too_large_is_refused_before_any_split():
    net = two_input_net(2)
    outcome, domains = relu_split_search(net, LOWER, UPPER, [at_least(grid_max(net) + 0.02)],
                                         None, 1e-6, "symbolic", max_free=0)
    assert outcome.startswith("too large for ReLU splitting") and domains == 0


def test_a_box_the_lp_bounds_leave_open_on_the_6x50_network_is_proved(shared_data):
    from frontends import load_network
    from frontends.data import load_dataset
    from ir.vnnlib import robustness_cases
    net = load_network(shared_data / "models" / "mnist_784-50x6-10.h5")
    x, y = load_dataset(shared_data / "mnist" / "mnist_aigent_500.npz")
    keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)
    i = keep[8]        # the ninth correctly classified image, eps 0.02: LP margins up to 0.05
    case = robustness_cases(x[i], 0.02, int(y[i]), net.n_outputs)[0]
    outcome, domains = relu_split_search(net, case.lower, case.upper, case.output, None, 1e-6,
                                         "lp")
    assert outcome == "proved" and domains > 1     # more than one: the LP bounds left it open
    # nothing the proof excludes is reached by samples of the box
    rng = np.random.default_rng(0)
    points = Box(case.lower, case.upper).sample(3000, rng)
    assert np.all(np.argmax(net(points), axis=1) == y[i])


def test_open_domains_stop_at_the_memory_limit_undecided(monkeypatch):
    import attacks.relu_split as relu_split
    net = two_input_net(0)                 # about 140 domains to prove from LP bounds
    spec, _ = spec_network(net, [at_least(0.0)])
    box = Box(LOWER, UPPER)
    root = layer_bounds(spec, box, "lp")
    per_domain = relu_split._domain_bytes(spec, DomainLP(spec, box, root.lower, root.upper))
    monkeypatch.setattr(relu_split, "DOMAIN_MEMORY", 5 * per_domain)
    outcome, domains = relu_split_search(net, LOWER, UPPER, [at_least(grid_max(net) + 0.02)],
                                         None, 1e-6, "lp")
    assert outcome == "more than 5 open domains (the memory limit)" and domains > 5


def wide_tent(threshold: float, n: int = 20):
    """``(network, property)``: the tent of the mean of ``n`` inputs in [-1, 1] and "the
    output reaches ``threshold``" (its maximum is 0.5, at mean 0.5)."""
    from ir.vnnlib import parse_vnnlib
    net = Network((Linear(np.full((2, n), 1.0 / n), [0.0, -0.5]), ReLU(),
                   Linear([[1.0, -2.0]], [0.0])), None, (n,), "wide tent")
    box = "".join(f"(declare-const X_{i} Real)\n(assert (>= X_{i} -1.0))\n"
                  f"(assert (<= X_{i} 1.0))\n" for i in range(n))
    return net, parse_vnnlib(box + f"(declare-const Y_0 Real)\n(assert (>= Y_0 {threshold}))\n",
                             n, 1)


def test_verify_proves_a_wide_box_by_relu_splitting():
    """The wide tent: too many inputs for input splitting, a margin the bounds leave open (LP
    0.15 above, as for the tent), and no input reaching 0.6; 0.45 is reached (at mean 0.45)."""
    from attacks.verify import verify
    net, spec = wide_tent(0.6)
    verdict = verify(net, spec, timeout=60, strategy="exact")
    assert (verdict.result, verdict.stage) == ("unsat", "ReLU splitting"), verdict
    net, spec = wide_tent(0.45)
    verdict = verify(net, spec, timeout=60, strategy="exact")
    assert verdict.result == "sat" and net(verdict.x)[0] >= 0.45
    assert np.all(np.abs(verdict.x) <= 1.0)
