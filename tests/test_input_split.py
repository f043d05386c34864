"""Branch and bound on the input box (attacks.input_split): proofs agree with a dense grid of
the network's outputs on small networks whose root bounds prove nothing, counterexamples are
real points of the box, and on ACAS Xu network 2_9 property 1's box is proved (its MILP did not
finish in 60 s) while property 2 has a counterexample."""
from __future__ import annotations

import time

import numpy as np
import pytest

from attacks.input_split import spec_network, split_search
from attacks.verify import verify
from compiler.analysis.bounds import layer_bounds
from compiler.analysis.input_sets import Box
from ir.layers import Linear, ReLU
from ir.network import Network
from ir.property import Conjunction, Constraint
from ir.vnnlib import parse_vnnlib

LOWER, UPPER = -np.ones(2), np.ones(2)


def two_input_net(seed: int) -> Network:
    rng = np.random.default_rng(seed)
    return Network((Linear(rng.normal(size=(8, 2)), rng.normal(size=8) * 0.3), ReLU(),
                    Linear(rng.normal(size=(8, 8)), rng.normal(size=8) * 0.3), ReLU(),
                    Linear(rng.normal(size=(1, 8)), [0.0])), None, (2,), f"net{seed}")


def at_least(t: float) -> Conjunction:
    return Conjunction((Constraint(((0, 1.0),), ">=", float(t)),))


def grid_max(net) -> float:
    axis = np.linspace(-1, 1, 801)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    return float(net(grid)[:, 0].max())


def agrees_with_a_dense_grid(search, seed: int) -> None:
    """``search(net, conjunctions)`` (a branch and bound on the box [-1, 1]^2) proves that no
    input reaches 0.02 above the grid's best output, after more than one split, and finds
    an input of the box reaching 0.02 below it."""
    net = two_input_net(seed)
    top = grid_max(net)
    outcome, count = search(net, [at_least(top + 0.02)])
    assert outcome == "proved" and count > 1, (outcome, count)
    outcome, x = search(net, [at_least(top - 0.02)])
    assert outcome == "sat"
    assert np.all(x >= LOWER) and np.all(x <= UPPER) and net(x)[0] >= top - 0.02


@pytest.mark.parametrize("seed", range(5))
def test_proofs_and_counterexamples_agree_with_a_dense_grid(seed):
    net = two_input_net(seed)
    spec, _ = spec_network(net, [at_least(grid_max(net) + 0.02)])
    root = layer_bounds(spec, Box(LOWER, UPPER), "symbolic").upper[spec.depth]
    assert root[0] > 0                  # the root bounds alone prove nothing: splitting must
    agrees_with_a_dense_grid(lambda net, conj: split_search(net, LOWER, UPPER, conj, None, 1e-6),
                             seed)


def test_a_disjunction_is_open_until_every_conjunction_is_blocked():
    net = two_input_net(0)
    top = grid_max(net)
    outcome, x = split_search(net, LOWER, UPPER, [at_least(top + 1), at_least(top - 0.05)],
                              None, 1e-6)
    assert outcome == "sat" and net(x)[0] >= top - 0.05


def test_a_deadline_is_a_timeout_not_a_proof():
    net = two_input_net(0)
    outcome, _ = split_search(net, LOWER, UPPER, [at_least(grid_max(net) + 0.02)],
                              time.perf_counter() - 1, 1e-6)
    assert outcome == "timeout"


ACAS_PROPERTY_1 = ([0.6, -0.5, -0.5, 0.45, -0.5], [0.6798577687, 0.5, 0.5, 0.5, -0.45])


def acas_spec(outputs: list[str]):
    lower, upper = ACAS_PROPERTY_1
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(5))
    text += "".join(f"(declare-const Y_{j} Real)\n" for j in range(5))
    text += "".join(f"(assert (>= X_{i} {lower[i]!r}))\n(assert (<= X_{i} {upper[i]!r}))\n"
                    for i in range(5))
    return parse_vnnlib(text + "\n".join(outputs) + "\n", 5, 5)


def test_acas_xu_property_1_proved_and_property_2_falsified(shared_data):
    from frontends import load_network
    net = load_network(shared_data / "acasxu" / "ACASXU_2_9.json")
    lower, upper = map(np.array, ACAS_PROPERTY_1)
    proved = verify(net, acas_spec(["(assert (>= Y_0 3.991125645861615))"]), 60, "exact")
    assert proved.result == "unsat" and proved.stage == "input splitting"
    points = lower + np.random.default_rng(0).uniform(size=(20000, 5)) * (upper - lower)
    assert net(points)[:, 0].max() < 3.991125645861615
    found = verify(net, acas_spec([f"(assert (>= Y_0 Y_{j}))" for j in range(1, 5)]), 60,
                   "exact")
    assert found.result == "sat"
    assert np.all(found.x >= lower) and np.all(found.x <= upper)
    assert np.argmax(net(found.x)) == 0
