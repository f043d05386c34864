"""Canonical problems with hand-derived optima, replayed against every backend.

Each backend is skipped with its own reason when its library or license is missing.  Dump
tests read the written ``.lp``/``.mps`` back with highspy; the Gurobi tests check the
size-limited pip license is reported before solving.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends import BACKENDS, DEFAULT_BACKEND, describe_backends, get_backend
from backends.base import Status
from compiler.problem import INF, ProblemBuilder
from common.errors import NetpatchError, SolverUnavailable
from conftest import require_backend

SOLVING = ["highs", "pyomo-highs", "gurobi", "z3"]
TOL = 1e-7
REPO = Path(__file__).resolve().parents[1]


def backend(name: str):
    require_backend(name)
    return get_backend(name)


# ---- canonical problems: (problem, optimum, x at the optimum or None when not unique) -----------
def ranged_lp(sense: int):
    """min  sense * (x + 2y)   s.t.  1 <= x + y <= 3,  x - y >= -1,  x free,  0 <= y <= 1.5.

    sense = -1 (maximise x + 2y): the ranged row at its upper bound, y at its upper bound:
    (1.5, 1.5), optimum -4.5.  sense = +1: the ranged row at its lower bound, y = 0: (1, 0),
    optimum 1."""
    b = ProblemBuilder(f"ranged_{'max' if sense < 0 else 'min'}")
    x = b.add_vars("x", 1)
    y = b.add_vars("y", 1, 0.0, 1.5)
    b.add_dense_rows("sum", [[1, 1]], [x[0], y[0]], 1.0, 3.0)
    b.add_dense_rows("diff", [[1, -1]], [x[0], y[0]], -1.0, INF)
    b.minimize([x[0], y[0]], [sense, 2 * sense])
    if sense < 0:
        return b.build(), -4.5, [1.5, 1.5]
    return b.build(), 1.0, [1.0, 0.0]


def knapsack(relaxed: bool = False):
    """max 5a + 4b + 3c  s.t.  2a + 3b + c <= 4,  a, b, c binary.

    Integer optimum a = c = 1, b = 0: value 8 (objective -8).  The LP relaxation takes c, a and
    b = 1/3 (best value per weight first): 8 + 4/3."""
    b = ProblemBuilder("knapsack")
    v = b.add_vars("pick", 3, 0.0, 1.0, integer=not relaxed)
    b.add_dense_rows("weight", [[2, 3, 1]], v, -INF, 4.0)
    b.minimize(v, [-5, -4, -3])
    return b.build(), -8.0, [1.0, 0.0, 1.0]


def offset_lp():
    """min x + 10.5  s.t.  x + y >= 3,  2 <= x <= 5,  0 <= y <= 0.5:  x = 2.5, optimum 13."""
    b = ProblemBuilder("offset")
    x = b.add_vars("x", 1, 2.0, 5.0)
    y = b.add_vars("y", 1, 0.0, 0.5)
    b.add_dense_rows("cover", [[1, 1]], [x[0], y[0]], 3.0, INF)
    b.minimize(x, 1.0)
    b.objective_offset = 10.5
    return b.build(), 13.0, [2.5, 0.5]


def infeasible_bounded():
    """x + y >= 3 with 0 <= x, y <= 1."""
    b = ProblemBuilder("infeasible_bounded")
    v = b.add_vars("v", 2, 0.0, 1.0)
    b.add_dense_rows("cover", [[1, 1]], v, 3.0, INF)
    b.minimize(v, [1, 1])
    return b.build()


def infeasible_free():
    """x - y >= 1 and y - x >= 1, x and y free, min x (presolve cannot tell infeasible from
    unbounded here; the backends must)."""
    b = ProblemBuilder("infeasible_free")
    v = b.add_vars("v", 2)
    b.add_dense_rows("apart", [[1, -1], [-1, 1]], v, 1.0, INF)
    b.minimize(v[0], 1.0)
    return b.build()


def unbounded_lp():
    """min x  s.t.  x + y <= 0,  x free,  y <= 0:  x goes to -inf."""
    b = ProblemBuilder("unbounded")
    x = b.add_vars("x", 1)
    y = b.add_vars("y", 1, -INF, 0.0)
    b.add_dense_rows("row", [[1, 1]], [x[0], y[0]], -INF, 0.0)
    b.minimize(x, 1.0)
    return b.build()


def relu_problem(case: str):
    """ReLU pairs a = max(0, z) with z tied to x by a row; hand-derived optima:

    * ``inactive``:  min a,  z = x - 2,  0 <= x <= 1:  z < 0, so a = 0;  optimum 0.
    * ``maximise``:  min -a, z = x - 0.5, 0 <= x <= 1: a is largest at x = 1;  optimum -0.5.
    * ``forced``:    min a + x/4, z = 3x - 1, a >= 0.5, 0 <= x <= 1: a = 3x - 1 >= 0.5 needs
      x >= 0.5; a + x/4 = 3.25x - 1 is least at x = 0.5;  optimum 0.625.
    * ``active``:    min x,  z = x - 2,  a >= 1,  0 <= x <= 5:  z >= 1, so x >= 3;  optimum 3.
    """
    shift, slope, a_low, cost = {"inactive": (2.0, 1.0, None, (1.0, 0.0)),
                                 "maximise": (0.5, 1.0, None, (-1.0, 0.0)),
                                 "forced": (1.0, 3.0, 0.5, (1.0, 0.25)),
                                 "active": (2.0, 1.0, 1.0, (0.0, 1.0))}[case]
    optimum = {"inactive": 0.0, "maximise": -0.5, "forced": 0.625, "active": 3.0}[case]
    b = ProblemBuilder(f"relu_{case}")
    x = b.add_vars("x", 1, 0.0, 5.0 if case == "active" else 1.0)
    z = b.add_vars("z", 1)
    a = b.add_vars("a", 1, 0.0, INF)
    b.add_dense_rows("link", [[1.0, -slope]], [z[0], x[0]], -shift, -shift)   # z = slope x - shift
    if a_low is not None:
        b.add_dense_rows("floor", [[1.0]], a, a_low, INF)
    b.add_relus("relu", a, z)
    b.minimize([a[0], x[0]], cost)
    return b.build(), optimum


OPTIMA = {
    "ranged_max": lambda: ranged_lp(-1),
    "ranged_min": lambda: ranged_lp(+1),
    "knapsack": knapsack,
    "offset": offset_lp,
}


def check_solution(problem, result, optimum, x_opt):
    assert result.status == Status.OPTIMAL, result.message
    assert result.objective == pytest.approx(optimum, abs=TOL)
    assert result.x.shape == (problem.n_vars,)
    assert problem.objective @ result.x + problem.objective_offset == pytest.approx(optimum, abs=TOL)
    if x_opt is not None:
        np.testing.assert_allclose(result.x, x_opt, atol=1e-6)


# ---- every backend ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(OPTIMA))
@pytest.mark.parametrize("name", SOLVING)
def test_canonical_optimum(name, case):
    problem, optimum, x_opt = OPTIMA[case]()
    result = backend(name).solve(problem, time_limit=60)
    check_solution(problem, result, optimum, x_opt)
    assert result.build_s >= 0 and result.solve_s > 0 and result.version


def test_knapsack_relaxation_differs():
    """The MILP case is only a test of integrality if its LP relaxation has another optimum."""
    problem, optimum, _ = knapsack(relaxed=True)
    relaxed = backend("highs").solve(problem)
    assert relaxed.objective == pytest.approx(-(8 + 4 / 3), abs=TOL)
    assert relaxed.objective < optimum - 1


@pytest.mark.parametrize("make", [infeasible_bounded, infeasible_free])
@pytest.mark.parametrize("name", SOLVING)
def test_infeasible(name, make):
    result = backend(name).solve(make())
    assert result.status == Status.INFEASIBLE, result.message
    assert result.x is None and result.objective is None


@pytest.mark.parametrize("name", SOLVING)
def test_unbounded(name):
    result = backend(name).solve(unbounded_lp())
    assert result.status == Status.UNBOUNDED, result.message


@pytest.mark.parametrize("name", ["pyomo-highs", "gurobi", "highs"])
def test_relus_refused_unless_native(name):
    be = backend(name)
    assert not be.NATIVE_RELU
    problem, _ = relu_problem("inactive")
    with pytest.raises(ValueError, match="lowered"):
        be.solve(problem)


@pytest.mark.parametrize("case", ["inactive", "maximise", "forced", "active"])
def test_z3_relu(case):
    be = backend("z3")
    assert be.NATIVE_RELU
    problem, optimum = relu_problem(case)
    result = be.solve(problem)
    assert result.status == Status.OPTIMAL, result.message
    assert result.objective == pytest.approx(optimum, abs=1e-12)
    x, z, a = result.x
    assert a == max(0.0, z)


def test_z3_time_limit():
    """A dense LP that exact simplex cannot finish in 0.5 s: unknown -> TIME_LIMIT, no x."""
    rng = np.random.default_rng(0)
    n = 60
    b = ProblemBuilder("dense")
    eps = b.add_vars("eps", n)
    m = b.add_vars("M", 1, 0.0, INF)
    rows = np.arange(n)
    for name, sign in (("hi", 1.0), ("lo", -1.0)):
        b.add_rows(name, np.r_[rows, rows], np.r_[eps, np.repeat(m, n)],
                   np.r_[np.full(n, sign), -np.ones(n)], -INF, 0.0, n)
    coeffs = rng.normal(size=(10, n))
    rhs = coeffs @ rng.normal(size=n)
    b.add_dense_rows("fix", coeffs, eps, rhs, rhs)
    b.minimize(m, 1.0)
    result = backend("z3").solve(b.build(), time_limit=0.5)
    assert result.status == Status.TIME_LIMIT, result.message
    assert result.x is None


def test_mip_start():
    problem, optimum, x_opt = knapsack()
    gurobi = backend("gurobi").solve(problem, mip_start=x_opt)
    check_solution(problem, gurobi, optimum, x_opt)
    assert "mip_start" not in gurobi.info
    highs = backend("pyomo-highs").solve(problem, mip_start=x_opt)
    check_solution(problem, highs, optimum, x_opt)
    assert highs.info["mip_start"].startswith("ignored")


# ---- dumps ------------------------------------------------------------------------------------
def highs_file_optimum(path: Path) -> float:
    import highspy
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(path)) == highspy.HighsStatus.kOk
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return h.getInfo().objective_function_value


@pytest.mark.parametrize("suffix", [".lp", ".mps"])
@pytest.mark.parametrize("case", sorted(OPTIMA))
def test_dump_reads_back(tmp_path, case, suffix):
    problem, optimum, _ = OPTIMA[case]()
    path = tmp_path / f"{case}{suffix}"
    backend("pyomo-highs").write(problem, path)
    assert highs_file_optimum(path) == pytest.approx(optimum, abs=1e-9)


def test_lp_names_are_the_problems(tmp_path):
    b = ProblemBuilder("named")
    eps = b.add_vars("eps", (2, 2), -1.0, 1.0)
    b.add_rows("fix", [0, 0, 0, 0], eps.ravel(), [1, 2, 3, 4], 1.0, 1.0, 1)
    b.minimize(eps.ravel(), [1, 1, 1, 1])
    problem = b.build()
    path = tmp_path / "named.lp"
    backend("pyomo-highs").write(problem, path)
    text = path.read_text()
    for name in problem.variable_names():
        assert f" {name}\n" in text
    assert "c_e_fix_0_" in text
    assert "[" not in text and "x(" not in text


def test_dump_refuses_relus_and_unknown_suffix(tmp_path):
    be = backend("pyomo-highs")
    with pytest.raises(ValueError, match="lowered"):
        be.write(relu_problem("inactive")[0], tmp_path / "relu.lp")
    with pytest.raises(NetpatchError, match=r"writes \.lp, \.mps, not 'offset.txt'"):
        be.write(offset_lp()[0], tmp_path / "offset.txt")
    with pytest.raises(NetpatchError, match=r"writes \.smt2"):
        backend("z3").write(offset_lp()[0], tmp_path / "offset.lp")


def test_smt2_dump(tmp_path):
    problem, _ = relu_problem("forced")
    path = tmp_path / "relu.smt2"
    backend("z3").write(problem, path)
    text = path.read_text()
    assert text.strip()
    for name in problem.variable_names():
        assert name in text
    assert "ite" in text and "minimize" in text


# ---- Gurobi's size-limited license -------------------------------------------------------------
def big_problem():
    """2,501 variables, 5,001 rows: x_i <= M and -x_i <= M for each i, one sum row."""
    n = 2500
    b = ProblemBuilder("big")
    x = b.add_vars("x", n, -1.0, 1.0)
    m = b.add_vars("M", 1, 0.0, INF)
    rows = np.arange(n)
    for name, sign in (("hi", 1.0), ("lo", -1.0)):
        b.add_rows(name, np.r_[rows, rows], np.r_[x, np.repeat(m, n)],
                   np.r_[np.full(n, sign), -np.ones(n)], -INF, 0.0, n)
    b.add_dense_rows("sum", np.ones((1, n)), x, 1.0, 1.0)
    b.minimize(m, 1.0)
    return b.build()


@pytest.fixture
def limited_gurobi():
    be = backend("gurobi")
    from pyomo.contrib.solver.common.base import Availability
    if be._solver._license() != Availability.LimitedLicense:
        pytest.skip("a full Gurobi license is present: no size limit to test")
    return be


def test_gurobi_size_limit_before_solving(limited_gurobi):
    problem = big_problem()
    with pytest.raises(SolverUnavailable) as err:
        limited_gurobi.check_size(problem)
    message = str(err.value)
    assert "size-limited" in message and "2501 variables" in message and "5001 rows" in message
    assert "\n" not in message
    with pytest.raises(SolverUnavailable, match="size-limited"):
        limited_gurobi.solve(problem)


def test_gurobi_error_during_solve_becomes_unavailable(limited_gurobi, monkeypatch):
    """Should the size check miss, Gurobi's own error 10010 becomes the same message."""
    monkeypatch.setattr(type(limited_gurobi._solver), "check_size", lambda self, problem: None)
    with pytest.raises(SolverUnavailable, match=r"size-limited .*2501 variables and 5001 rows"):
        limited_gurobi.solve(big_problem())


def test_gurobi_sizes_count_as_gurobi_does():
    """A ranged row is two constraints; free and empty rows, and the variables only they
    mention, are not sent."""
    from backends.pyomo_backend import _Gurobi
    problem, _, _ = ranged_lp(-1)     # one ranged row, one one-sided row, two variables
    assert _Gurobi.sizes(problem) == (2, 3)
    b = ProblemBuilder("sparse_use")
    x = b.add_vars("x", 3000, -1.0, 1.0)
    b.add_dense_rows("used", [[1, 1]], x[:2], 0.0, 1.0)
    b.add_rows("free", [0], [x[2]], [1.0], -INF, INF, 1)
    b.add_rows("empty", [], [], [], -1.0, 1.0, 1)
    b.minimize(x[3], 1.0)
    assert _Gurobi.sizes(b.build()) == (3, 2)


def test_gurobi_counts_what_it_sends(limited_gurobi):
    """3,000 variables of which 3 are used: within the license, so it solves."""
    b = ProblemBuilder("sparse_use")
    x = b.add_vars("x", 3000, -1.0, 1.0)
    b.add_dense_rows("used", [[1, 1]], x[:2], 0.5, 1.0)
    b.minimize(x[:3], 1.0)
    problem = b.build()
    limited_gurobi.check_size(problem)
    result = limited_gurobi.solve(problem)
    assert result.status == Status.OPTIMAL and result.objective == pytest.approx(-0.5)
    assert result.x.shape == (3000,) and np.all(result.x[3:] == 0)


# ---- the registry -------------------------------------------------------------------------------
def test_registry_names():
    assert DEFAULT_BACKEND == "highs"
    assert {"highs", "pyomo-highs", "gurobi", "pyomo-gurobi", "z3"} <= set(BACKENDS)
    assert BACKENDS["gurobi"] is BACKENDS["pyomo-gurobi"]
    with pytest.raises(NetpatchError, match="unknown backend 'cplex'.*highs, pyomo-highs"):
        get_backend("cplex")


def test_registry_unavailable(monkeypatch):
    from backends.z3_backend import Z3Backend
    monkeypatch.setattr(Z3Backend, "is_available", classmethod(lambda cls: (False, "no z3 here")))
    with pytest.raises(SolverUnavailable, match="backend z3 is not available: no z3 here"):
        get_backend("z3")


def test_describe_backends():
    text = describe_backends()
    for name in BACKENDS:
        assert f"  {name}" in text
    assert "exact" in text and "size-limited" in text


def test_importing_backends_imports_no_solver():
    code = ("import sys, backends; backends.describe_backends(); "
            "import backends.pyomo_backend, backends.z3_backend, backends.highs_backend; "
            "print(sorted(m for m in ('pyomo', 'gurobipy', 'z3', 'highspy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"



def test_highs_models_share_one_thread_count_in_a_process():
    """HiGHS 1.16 sizes one scheduler per process by the first model that runs and fails any
    later model asking for another count.  In a fresh process the LP bounds' model runs
    first, then the backend's MILP must still reach its optimum (every model is opened by
    ``common.highs.new_highs``)."""
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "import numpy as np\n"
        "from compiler.analysis.bounds import layer_bounds\n"
        "from compiler.analysis.input_sets import Box\n"
        "from ir.layers import Linear, ReLU\n"
        "from ir.network import Network\n"
        "from backends import get_backend\n"
        "from test_backends import OPTIMA\n"
        "net = Network((Linear([[1.0], [1.0]], [0.0, -0.5]), ReLU(), Linear([[1.0, -2.0]], "
        "[0.0])), None, (1,), 'tent')\n"
        "b = layer_bounds(net, Box(-np.ones(1), np.ones(1)), 'lp')\n"
        "assert abs(b.upper[2][0] - 0.75) < 1e-6, b.upper\n"
        "problem, optimum, _ = OPTIMA['knapsack']()\n"
        "result = get_backend('highs').solve(problem, time_limit=60)\n"
        "assert result.status.value == 'optimal', (result.status, result.message)\n"
        "assert abs(result.objective - optimum) < 1e-6, (result.objective, optimum)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
    from common.highs import THREADS, new_highs
    assert new_highs().getOptionValue("threads")[1] == THREADS == 1
