"""The closed-form input recovery (compiler.analysis.knapsack) against hand-derived answers and HiGHS."""
from __future__ import annotations

import numpy as np
import pytest

from compiler.analysis.knapsack import fewest_inputs, stronger_changes
from compiler.analysis.pullback import pull_back
from attacks import AttackConfig, DncConfig, RecoveryConfig, StageFailure, attack
from attacks.dnc import cut_schedules, patch_tiers
from attacks.recovery import mod2adv
from attacks.shrink import shrink
from ir.property import ArgmaxIsNot, Conjunction, Constraint, targeted_candidates
from conftest import MNIST_8_16, load_mnist, load_shared_network


def test_fewest_inputs_hand_example():
    # reach = |gain| * room = (1, 2, 3): two inputs (3 + 2 >= 4); L1 spends the steepest first
    delta = fewest_inputs(np.array([1.0, 2.0, -3.0]), 4.0, np.ones(3), np.ones(3))
    np.testing.assert_allclose(delta, [0.0, 0.5, -1.0])
    assert fewest_inputs(np.array([1.0, 2.0, -3.0]), 4.0, np.ones(3), np.ones(3), budget=1) is None


def test_fewest_inputs_respects_the_room_in_each_direction():
    # input 2 may only move up (down room 0), so its negative gain is useless
    delta = fewest_inputs(np.array([1.0, 2.0, -3.0]), 2.5, np.ones(3), np.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(delta, [0.5, 1.0, 0.0])
    assert fewest_inputs(np.array([1.0, 2.0, -3.0]), 3.5, np.ones(3), np.array([1, 1, 0.0])) is None


def test_fewest_inputs_nothing_to_do_and_unreachable():
    np.testing.assert_array_equal(fewest_inputs(np.ones(2), -1.0, np.ones(2), np.ones(2)), 0.0)
    assert fewest_inputs(np.ones(2), 5.0, np.ones(2), np.ones(2)) is None


def test_closed_form_recovery_matches_the_milp_on_mnist():
    """The pixel count of the sort equals HiGHS's MILP optimum on the same mod2adv query."""
    net = load_shared_network(MNIST_8_16)
    x, _ = load_mnist()
    rng = np.random.default_rng(3)
    first = net.prefix(1)
    checked = 0
    for i in range(6):
        z = first(x[i])
        w = rng.normal(size=len(z))
        lift = float(rng.uniform(0.5, 4.0))
        target = Conjunction((Constraint(tuple((j, float(w[j])) for j in range(len(z))), ">=",
                                         float(w @ z + lift)),))
        counts = {}
        for recovery in ("sort", "milp"):
            config = AttackConfig(linf=1.0, max_pixels=15, recovery=RecoveryConfig(recovery))
            try:
                x_adv = mod2adv(net, x[i], target, config)
            except StageFailure as failure:
                assert failure.status == "infeasible"
                counts[recovery] = None
                continue
            assert target.holds(first(x_adv), tol=1e-6)
            assert net.domain.contains(x_adv) and np.max(np.abs(x_adv - x[i])) <= 1.0
            counts[recovery] = int(np.count_nonzero(x_adv - x[i]))
        assert counts["sort"] == counts["milp"], (i, counts)
        checked += counts["sort"] is not None
    assert checked >= 3


def test_pull_back_of_the_first_layer_is_the_identity_on_z1():
    net = load_shared_network(MNIST_8_16).prefix(1)
    target = Conjunction((Constraint(((0, 1.0), (3, -2.0)), ">=", 0.5),))
    phases = [np.zeros(net.edge(1).linear.n_out, bool)]
    assert pull_back(net, 1, target, phases) == target


@pytest.mark.parametrize("depth, expected", [
    (7, [[4, 2, 1], [6, 3, 2, 1], [5, 3, 2, 1], [3, 2, 1], [2, 1], [1], []]),
    (3, [[2, 1], [1], []]),
    (1, [[1], []]),
])
def test_cut_schedules(depth, expected):
    assert cut_schedules(depth, "all") == expected
    assert cut_schedules(depth, "halving") == [expected[0]]


def test_stronger_changes_push_harder_with_more_inputs():
    gain, room = np.array([1.0, 2.0, -3.0, 0.5]), np.ones(4)
    changes = list(stronger_changes(gain, 4.0, room, room, budget=3))
    np.testing.assert_allclose(changes[0], [0.0, 0.5, -1.0, 0.0])          # the smallest
    np.testing.assert_allclose(changes[1], [0.0, 1.0, -1.0, 0.0])          # same inputs, full
    np.testing.assert_allclose(changes[2], [1.0, 1.0, -1.0, 0.0])          # one more input
    assert len(changes) == 3                                               # budget 3
    pushes = [gain @ d for d in changes]
    assert pushes[0] >= 4.0 - 1e-12 and pushes == sorted(pushes)
    assert list(stronger_changes(gain, 7.0, room, room, budget=3)) == []   # 6 is the most


def test_dnc_escalates_from_linf_to_l1_to_free_phase_patches():
    assert [name for name, _ in patch_tiers(DncConfig(escalate=True))] == \
        ["linf", "l1", "linf-free"]
    assert [name for name, _ in patch_tiers(DncConfig())] == ["linf"]      # the default
    tiers = patch_tiers(DncConfig(patch_objective="l1", escalate=True))
    assert [name for name, _ in tiers] == ["l1", "linf-free"]
    assert tiers[1][1].free_patched_phases and tiers[1][1].patch_objective == "linf"


def test_shrink_keeps_only_needed_inputs_and_stays_adversarial():
    net = load_shared_network(MNIST_8_16)
    x, y = load_mnist()
    shrunk_any = False
    for i in range(8):
        if int(np.argmax(net(x[i]))) != y[i]:
            continue
        loose = attack(net, x[i], int(y[i]), AttackConfig(linf=1.0, max_pixels=15, shrink=False))
        if not loose.success:
            continue
        conj = next(c for t, c in targeted_candidates(ArgmaxIsNot(int(y[i])), net(x[i]))
                    if t == loose.target_class)
        tight = shrink(net, x[i], loose.x_adv, conj)
        changed = np.flatnonzero(tight != x[i])
        assert set(changed) <= set(np.flatnonzero(loose.x_adv != x[i]))
        assert conj.holds(net(tight)) and int(np.argmax(net(tight))) != y[i]
        for j in changed:                    # every remaining change is needed
            back = tight.copy()
            back[j] = x[i][j]
            assert not conj.holds(net(back))
        shrunk_any |= len(changed) < np.count_nonzero(loose.x_adv != x[i])
    assert shrunk_any
