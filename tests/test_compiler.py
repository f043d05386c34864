"""The patch compiler against hand-derived optima (METHOD.md's worked examples), replayed on
every backend, and the passes' effect on the optimum."""
from __future__ import annotations

import numpy as np
import pytest

from attacks.patching import PatchRequest, patch_layer
from attacks.solving import solve_query
from compiler.passes import PassOptions, build_chain, compile_problem
from compiler.queries import NeuronTargets, input_query, patch_query
from ir.property import Conjunction, as_conjunction, beats, parse_property

from conftest import SHARED_DATA, paper_network, require_backend

BACKENDS = ["highs", "pyomo-highs", "gurobi", "z3"]


def patch(net, k, x, target, backend="highs", options=PassOptions(), **request):
    return patch_layer(PatchRequest(net, k, x, target, backend, options, **request))


X = np.array([0.5, 0.5])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("margin", [0.0, 0.1])
@pytest.mark.parametrize("pruning", [True, False])
@pytest.mark.parametrize("reduced", [True, False])
def test_paper_edge_layer_2_linf_optimum(backend, margin, pruning, reduced):
    require_backend(backend)
    prop = Conjunction((beats(1, 0, margin),))
    outcome = patch(paper_network(), 2, X, prop, backend, PassOptions(sign_pruning=pruning),
                    objective="linf", reduced=reduced)
    assert outcome.status.value == "optimal"
    assert outcome.objective == pytest.approx((1.5 + margin) / 28.5, abs=1e-9)
    assert outcome.eps_linf == pytest.approx((1.5 + margin) / 28.5, abs=1e-9)
    assert outcome.validated
    y = paper_network().with_patch(2, outcome.eps)(X)
    assert y[1] >= y[0] + margin - 1e-9


def test_paper_illustrative_patch_is_feasible_but_not_minimal():
    eps = np.array([[-9 / 8, -17 / 4], [-5 / 4, -1 / 4]])
    y = paper_network().with_patch(2, eps)(X)
    assert y[1] >= y[0]
    assert np.max(np.abs(eps)) > 1.5 / 28.5


def test_paper_constraint_is_the_documented_row():
    """-1.5 + 13 e21 + 6.5 e22 - 6 e11 - 3 e12 >= m, with phases fixed."""
    rng = np.random.default_rng(0)
    net = paper_network()
    for _ in range(20):
        eps = rng.uniform(-0.05, 0.05, (2, 2))
        y = net.with_patch(2, eps)(X)
        predicted = -1.5 + 13 * eps[1, 0] + 6.5 * eps[1, 1] - 6 * eps[0, 0] - 3 * eps[0, 1]
        assert y[1] - y[0] == pytest.approx(predicted, abs=1e-12)


def acas():
    from frontends import load_network
    path = SHARED_DATA / "acasxu" / "ACASXU_2_9.json"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    net = load_network(path)
    x = np.loadtxt(SHARED_DATA / "acasxu" / "inputs.csv", delimiter=",")[0]
    return net, x, as_conjunction(parse_property("argmin(y) == 0 by 0.001", 5), 5)


@pytest.mark.parametrize("backend", ["highs", "pyomo-highs", "gurobi"])
@pytest.mark.parametrize("objective,optimum", [("l1", 0.0010340), ("linf", 0.00016694)])
@pytest.mark.parametrize("reduced", [True, False])
def test_acas_last_layer_optimum(backend, objective, optimum, reduced):
    require_backend(backend)
    net, x, prop = acas()
    outcome = patch(net, net.depth, x, prop, backend, objective=objective, reduced=reduced)
    assert outcome.status.value == "optimal"
    assert outcome.objective == pytest.approx(optimum, abs=1e-6)
    assert outcome.validated
    assert int(np.argmin(net.with_patch(net.depth, outcome.eps)(x))) == 0
    assert int(np.argmin(net(x))) != 0


def mnist_cases(n_images=4):
    from frontends import load_network
    from frontends.data import load_dataset
    path = SHARED_DATA / "models" / "mnist_784-8-16-10.h5"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    net = load_network(path)
    x, _ = load_dataset(SHARED_DATA / "mnist" / "mnist_aigent_500.npz")
    cases = []
    for i in range(n_images):
        y = net(x[i])
        t = int(np.argmax(y))
        j = int(np.argsort(y)[-2])
        cases.append((x[i], Conjunction((beats(j, t, 0.01),))))
    return net, cases


def optimum(net, k, x, prop, options, objective="l1"):
    """The optimum of ONE query (no re-linearization rounds, which would change the query)."""
    outcome = patch(net, k, x, prop, "highs", options, objective=objective, relinearize=0)
    return outcome.objective if outcome.eps is not None else np.inf, outcome


@pytest.mark.parametrize("objective", ["l1", "linf"])
@pytest.mark.parametrize("mode", ["linearized", "region"])
def test_disabling_sign_pruning_never_worsens_the_optimum(objective, mode):
    net, cases = mnist_cases()
    solved = 0
    for x, prop in cases:
        for k in (1, 2, 3):
            pruned, a = optimum(net, k, x, prop, PassOptions(mode, sign_pruning=True), objective)
            free, b = optimum(net, k, x, prop, PassOptions(mode, sign_pruning=False), objective)
            assert free <= pruned + 1e-7, (k, free, pruned)
            for outcome in (a, b):
                if outcome.eps is not None:
                    solved += 1
                    if mode == "region":   # sound: the real network must agree
                        assert outcome.validated
    assert solved > 0


@pytest.mark.parametrize("objective", ["l1", "linf"])
def test_patch_reduction_is_exact(objective):
    """Same optimum and same feasibility verdict as the full formulation, on every layer."""
    net, cases = mnist_cases(3)
    for x, prop in cases:
        for k in range(1, net.depth + 1):
            for options in (PassOptions(sign_pruning=False), PassOptions(phase_fixing="region")):
                full = patch(net, k, x, prop, "highs", options, objective=objective,
                             relinearize=0, reduced=False)
                small = patch(net, k, x, prop, "highs", options, objective=objective,
                              relinearize=0, reduced=True)
                assert (full.eps is None) == (small.eps is None), (k, full.status, small.status)
                if full.eps is None:
                    continue
                assert small.objective == pytest.approx(full.objective, rel=1e-6, abs=1e-9)
                size = small.eps_linf if objective == "linf" else small.eps_l1
                assert size == pytest.approx(small.objective, rel=1e-6, abs=1e-9)
                assert small.validated == full.validated or options.phase_fixing == "linearized"


def test_dropping_inert_weights_is_exact():
    net, cases = mnist_cases()
    for x, prop in cases:
        for k in (1, 2):
            on, _ = optimum(net, k, x, prop, PassOptions(drop_inert=True, sign_pruning=False))
            off, _ = optimum(net, k, x, prop, PassOptions(drop_inert=False, sign_pruning=False))
            assert on == pytest.approx(off, rel=1e-7, abs=1e-9)


def test_free_phases_never_worse_than_region_phase_fixing():
    """Region phase fixing restricts the exact (big-M) problem; switching it off cannot hurt."""
    net, cases = mnist_cases(2)
    for x, prop in cases:
        region, a = optimum(net, 2, x, prop, PassOptions(phase_fixing="region", sign_pruning=False))
        free, b = optimum(net, 2, x, prop, PassOptions(phase_fixing=None, sign_pruning=False))
        assert free <= region + 1e-7
        if b.eps is not None:
            assert b.validated  # free phases are exact: the patch must hold on the real network


def test_relaxation_never_worsens_the_optimum():
    """Relaxation widens the targets: with it on the optimum is at most the one without."""
    net = paper_network()
    trace = net.simulate(X)
    targets = NeuronTargets(trace.pre[2][0] + np.array([0.3, -0.2]), np.array([1, -1]),
                            np.array([False, False]))
    first = net.prefix(2)
    relaxed, _ = optimum(first, 1, X, targets, PassOptions(relaxation=True))
    exact, _ = optimum(first, 1, X, targets, PassOptions(relaxation=False))
    assert relaxed <= exact + 1e-9


def test_passes_report_sizes_and_shrink_the_problem():
    net, cases = mnist_cases(1)
    x, prop = cases[0]
    problem, _ = patch_query(net, 1, x, prop, "linf", reduced=False)
    compiled = compile_problem(problem, build_chain(PassOptions()))
    names = [r["pass"] for r in compiled.sizes_table()]
    assert names[0] == "query" and names[-1] == "compact"
    assert {"variables", "rows", "binaries", "nonzeros"} <= set(compiled.sizes_table()[0])
    first, last = compiled.sizes_table()[0], compiled.sizes_table()[-1]
    assert last["variables"] < first["variables"]
    # zero pixels carry no weight change: every eps from a zero source is gone
    assert last["variables"] <= 2 * 8 * np.count_nonzero(x) + 10 * 8 + 1


def test_input_recovery_worked_example_with_equalities():
    """Targets z1 = (1/8, 0) as equalities: the unique answer is x' = (1/12, 1/24)."""
    first = paper_network().prefix(1)
    targets = NeuronTargets(np.array([1 / 8, 0.0]), np.zeros(2, int), np.zeros(2, bool))
    problem, decoder = input_query(first, X, targets, linf=1.0, objective="l1")
    solved = solve_query(problem, "highs", PassOptions(relaxation=False))
    delta = decoder.decode(solved.x)
    assert delta == pytest.approx([-5 / 12, -11 / 24], abs=1e-9)
    assert X + delta == pytest.approx([1 / 12, 1 / 24], abs=1e-9)


def test_input_recovery_worked_example_relaxed():
    """With z12 <= 0, delta_max 0.5 and the domain [0,1]: both pixels change, x'1 in [1/12, 1/8]."""
    first = paper_network().prefix(1)
    targets = NeuronTargets(np.array([1 / 8, 0.0]), np.zeros(2, int), np.array([False, True]))
    problem, decoder = input_query(first, X, targets, linf=0.5, objective="pixels")
    solved = solve_query(problem, "highs", PassOptions())
    delta = decoder.decode(solved.x)
    x_new = X + delta
    assert np.all(np.abs(delta) > 1e-6)
    assert round(float(np.sum(solved.x[decoder.changed]))) == 2
    assert 1 / 12 - 1e-9 <= x_new[0] <= 1 / 8 + 1e-9
    z1 = first(x_new)
    assert z1[0] == pytest.approx(1 / 8, abs=1e-9) and z1[1] <= 1e-9
