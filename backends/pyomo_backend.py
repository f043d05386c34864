"""HiGHS and Gurobi through Pyomo, and Pyomo's ``.lp``/``.mps`` writers.

The Pyomo model mirrors the problem IR, so a dumped file reads like the problem:

* one ``Var`` per ``VarBlock``, named after the block and indexed ``0 .. size-1`` in the block's
  C order (``Binary`` for integer blocks inside [0, 1], ``Integers`` for other integer blocks);
* one ``Constraint`` per ``RowBlock``, row ``k`` being ``(row_lower, A[start + k] @ x, row_upper)``
  as a ``LinearExpression`` (``None`` for an infinite bound; free rows are skipped);
* one ``Objective`` ``c @ x + objective_offset``, minimised.

Files are written with the problem's own names (``Problem.variable_names()``/``row_names()``,
e.g. ``eps_0_1``); Pyomo's LP writer adds its row prefixes (``c_u_fix_3_``, ``r_l_...``).

Construction, measured on a shared 2-core machine (min of 4-5 runs) for a patch-like LP with
20,001 variables, 40,010 rows and 180,000 nonzeros, the garbage collector paused: per-block
components with ``LinearExpression`` 0.37 s; one flat ``Var``/``Constraint`` with
``LinearExpression(linear_coefs, linear_vars)`` 0.41 s, ``LinearExpression(args)`` 0.38 s,
``sum`` 0.54 s, ``quicksum`` 0.76 s.  With the collector running every figure doubles
(per-block 0.79 s).  So the model is built per block with ``LinearExpression(linear_coefs,
linear_vars)`` and the collector paused: ``build_s`` is 0.05 s for 2,501 variables / 22,478
nonzeros and 0.50 s (0.99 s with the collector on) for 20,000 variables / 160,000 nonzeros.

Interfaces, measured as the time of the ``solve`` call on a prebuilt model whose optimum
presolve finds at once (x = 0), so the figure is the interface's own overhead:

* HiGHS, 20,000 variables / 40,000 rows / 160,000 nonzeros: ``pyomo.contrib.solver`` ``Highs``
  2.30 s, ``appsi.solvers.Highs`` 2.48 s, ``SolverFactory('appsi_highs')`` 2.84 s (2,500
  variables: 0.26, 0.27, 0.28 s).  ``pyomo.contrib.solver`` ``Highs`` is used; it has no MIP
  start, so ``mip_start`` is ignored for HiGHS (``Result.info['mip_start']`` says so).
* Gurobi, 450 variables / 900 ranged rows (the size-limited license forbids more):
  ``pyomo.contrib.solver`` ``GurobiDirect`` 0.019 s, ``SolverFactory('gurobi_direct')`` 0.052 s,
  ``gurobi_persistent`` 0.053 s, ``appsi`` ``Gurobi`` 0.063 s, ``pyomo.contrib.solver``
  ``GurobiPersistent`` 0.094 s.  ``GurobiDirect`` is used; it takes a MIP start for the integer
  variables.

End to end on the 20,000-variable LP: pyomo-highs builds in 0.52 s and solves in 2.9 s, the
direct highs backend in 0.03 s and 0.27 s.
"""
from __future__ import annotations

import contextlib
import gc
import time

import numpy as np

from backends.base import Backend, Result, Status
from compiler.problem import sanitize
from common.errors import SolverUnavailable

# Termination conditions of ``pyomo.contrib.solver``, by name.  Limits stop before a proof.
STATUS_MAP = {
    "convergenceCriteriaSatisfied": Status.OPTIMAL,
    "provenInfeasible": Status.INFEASIBLE,
    "unbounded": Status.UNBOUNDED,
    **{name: Status.TIME_LIMIT for name in ("maxTimeLimit", "iterationLimit", "objectiveLimit",
                                            "interrupted", "minStepLength")},
}


class _Highs:
    """``pyomo.contrib.solver`` ``Highs``: the fastest Pyomo interface to HiGHS (see above)."""

    name = "highs"
    SIZE_NOTE = ("LP and MILP; ~10x the time of highs on large LPs (20,000 variables: 3.4 s "
                 "against 0.3 s), no MIP start")
    WARM_START = False
    # Re-run options that tell infeasible from unbounded (presolve cannot).
    DISAMBIGUATE = {"presolve": "off"}

    def available(self) -> tuple[bool, str]:
        try:
            import highspy  # noqa: F401
        except ImportError:
            return False, "highspy is not installed (pip install highspy)"
        return True, ""

    def make(self):
        from pyomo.contrib.solver.solvers.highs import Highs
        return Highs()

    def options(self, time_limit, threads, mip_rel_gap, warm_start) -> dict:
        return {"time_limit": time_limit, "threads": threads, "rel_gap": mip_rel_gap}

    def check_size(self, problem) -> None:
        """HiGHS has no size limit."""

    @contextlib.contextmanager
    def errors(self, problem):
        yield


class _Gurobi:
    """``pyomo.contrib.solver`` ``GurobiDirect`` (matrix transfer, MIP start for integers).

    The pip wheel ships a size-limited license: 2000 variables and 2000 linear constraints
    (gurobipy 13.0.3: a 2000 x 2000 model solves, one more variable or constraint raises
    GurobiError 10010 "Model too large for size-limited license").  ``GurobiDirect`` sends
    a ranged row as two rows, drops empty and free rows, and sends only the variables left in
    a row or the objective; ``sizes`` counts the same way (checked against Gurobi's NumVars and
    NumConstrs on random problems).
    """

    name = "gurobi"
    SIZE_NOTE = ("LP and MILP; the pip license is size-limited (2000 variables, 2000 "
                 "constraints, checked before solving)")
    WARM_START = True
    DISAMBIGUATE = {"DualReductions": 0}
    LIMITED_VARS = 2000
    LIMITED_ROWS = 2000
    TOO_LARGE = 10010   # GurobiError code: model too large for a size-limited license

    def available(self) -> tuple[bool, str]:
        try:
            import gurobipy  # noqa: F401
        except ImportError:
            return False, "gurobipy is not installed (pip install gurobipy)"
        license_ = self._license()
        if not license_:
            return False, f"gurobi: no usable license ({license_.name})"
        return True, ""

    def make(self):
        from pyomo.contrib.solver.solvers.gurobi.gurobi_direct import GurobiDirect
        return GurobiDirect()

    def options(self, time_limit, threads, mip_rel_gap, warm_start) -> dict:
        return {"time_limit": time_limit, "threads": threads, "rel_gap": mip_rel_gap,
                "warmstart_discrete_vars": warm_start}

    def _license(self):
        """Pyomo's probe (a 2001-variable model): FullLicense, LimitedLicense, BadLicense, ..."""
        return self.make().available()

    @classmethod
    def sizes(cls, problem) -> tuple[int, int]:
        """(variables, constraints) of the model GurobiDirect builds from ``problem``."""
        matrix = problem.matrix.copy()
        matrix.eliminate_zeros()
        lo, hi = problem.row_lower, problem.row_upper
        kept = (matrix.getnnz(axis=1) > 0) & (np.isfinite(lo) | np.isfinite(hi))   # not empty, not free
        used = problem.objective != 0
        used[matrix[kept].indices] = True
        ranged = kept & np.isfinite(lo) & np.isfinite(hi) & (lo < hi)
        return int(used.sum()), int(kept.sum() + ranged.sum())

    def size_message(self, problem) -> str:
        message = (f"gurobi: the pip license is size-limited ({self.LIMITED_VARS} variables, "
                   f"{self.LIMITED_ROWS} constraints); this problem has {problem.n_vars} "
                   f"variables and {problem.n_rows} rows")
        n_vars, n_rows = self.sizes(problem)
        if (n_vars, n_rows) != (problem.n_vars, problem.n_rows):
            message += f" ({n_vars} variables and {n_rows} constraints as sent to Gurobi)"
        return message

    def check_size(self, problem) -> None:
        n_vars, n_rows = self.sizes(problem)
        if n_vars <= self.LIMITED_VARS and n_rows <= self.LIMITED_ROWS:
            return
        from pyomo.contrib.solver.common.base import Availability
        if self._license() == Availability.LimitedLicense:
            raise SolverUnavailable(self.size_message(problem))

    @contextlib.contextmanager
    def errors(self, problem):
        """A license too small for the model (the size check missed it) -> SolverUnavailable."""
        import gurobipy
        try:
            yield
        except gurobipy.GurobiError as err:
            if err.errno == self.TOO_LARGE:
                raise SolverUnavailable(self.size_message(problem)) from err
            raise


_SOLVERS = {"highs": _Highs, "gurobi": _Gurobi}


class PyomoBackend(Backend):
    """``PyomoBackend(solver)``: solve with ``solver`` (``"highs"`` or ``"gurobi"``) through Pyomo.

    ``solve`` returns ``x`` in problem variable order and the objective including
    ``problem.objective_offset``; ``build_s`` is IR -> Pyomo model, ``solve_s`` everything after
    (Pyomo's transfer to the solver, the solve, loading the solution).  ReluBlocks must be
    lowered first.  ``write`` dumps ``.lp`` or ``.mps`` through Pyomo's writers.
    """

    NATIVE_RELU = False
    FILE_FORMATS = (".lp", ".mps")
    STATUS_MAP = STATUS_MAP

    def __init__(self, solver: str = "highs", threads: int = 1, mip_rel_gap: float = 1e-6,
                 verbose: bool = False):
        if solver not in _SOLVERS:
            raise ValueError(f"PyomoBackend: unknown solver {solver!r}; use one of {sorted(_SOLVERS)}")
        self._solver = _SOLVERS[solver]()
        self.name = f"pyomo-{solver}"
        self.SIZE_NOTE = self._solver.SIZE_NOTE
        self.threads = threads
        self.mip_rel_gap = mip_rel_gap
        self.verbose = verbose

    def is_available(self) -> tuple[bool, str]:
        """(available, reason when not).  An instance method: it depends on the solver."""
        try:
            import pyomo  # noqa: F401
        except ImportError:
            return False, "pyomo is not installed (pip install pyomo)"
        return self._solver.available()

    def check_size(self, problem) -> None:
        """Raise ``SolverUnavailable`` when the solver's license cannot take ``problem``."""
        self._solver.check_size(problem)

    def solve(self, problem, time_limit=None, mip_start=None) -> Result:
        _refuse_relus(problem)
        self.check_size(problem)
        model = _PyomoModel(problem)
        warm = mip_start is not None and problem.is_mip
        if warm and self._solver.WARM_START:
            for var, value in zip(model.xs, np.asarray(mip_start, float).tolist()):
                var.set_value(value, skip_validation=True)
        options = self._solver.options(time_limit, self.threads, self.mip_rel_gap,
                                       warm and self._solver.WARM_START)
        t0 = time.perf_counter()
        with self._solver.errors(problem):
            res = self._run(model.model, options)
            if res.termination_condition.name == "infeasibleOrUnbounded":
                res = self._run(model.model, {**options, "solver_options": self._solver.DISAMBIGUATE})
            # unknown (e.g. Gurobi SUBOPTIMAL), error, infeasibleOrUnbounded after the re-run:
            # FEASIBLE with a solution, else ERROR
            status = self.status(res.termination_condition.name,
                                 res.solution_status.name in ("optimal", "feasible"))
            result = Result(status, solver=self.name, version=".".join(map(str, res.solver_version)),
                            build_s=model.build_s, message=res.termination_condition.name)
            if status.has_solution:
                res.solution_loader.load_vars()
                result.x = model.values()
                result.objective = float(res.incumbent_objective)
                if problem.is_mip and res.objective_bound is not None:
                    result.info["bound"] = float(res.objective_bound)
                    result.info["mip_gap"] = _gap(result.objective, result.info["bound"])
        result.solve_s = time.perf_counter() - t0
        if warm and not self._solver.WARM_START:
            result.info["mip_start"] = f"ignored: Pyomo's {self._solver.name} interface takes none"
        return result

    def _run(self, model, options):
        return self._solver.make().solve(model, tee=self.verbose, load_solutions=False,
                                         raise_exception_on_nonoptimal_result=False, **options)

    def _write(self, problem, path) -> None:
        """``.lp`` or ``.mps`` (by the suffix) through Pyomo's writers, with the problem's names."""
        _refuse_relus(problem)
        model = _PyomoModel(problem)
        model.model.write(str(path), io_options={"labeler": model.labeler()})


class _PyomoModel:
    """The Pyomo model of a problem, its variables in problem order, and the build time."""

    def __init__(self, problem):
        import pyomo.environ as pe
        from pyomo.core.expr.numeric_expr import LinearExpression
        self.problem = problem
        t0 = time.perf_counter()
        with _gc_paused():
            m = pe.ConcreteModel(name=sanitize(problem.name))
            self.xs = []
            for block in problem.blocks:
                span = slice(block.start, block.start + block.size)
                lo, hi = _bounds(problem.lower[span]), _bounds(problem.upper[span])
                var = pe.Var(range(block.size), bounds=lambda _, i, lo=lo, hi=hi: (lo[i], hi[i]),
                             domain=_domain(pe, block, problem.lower[span], problem.upper[span]))
                m.add_component(_free_name(m, block.name), var)
                self.xs.extend(var.values())
            xs = self.xs
            csr = problem.matrix
            ptr, cols, vals = csr.indptr.tolist(), csr.indices.tolist(), csr.data.tolist()
            row_lo, row_hi = _bounds(problem.row_lower), _bounds(problem.row_upper)
            self.row_components = []
            for rb in problem.row_blocks:
                def row(_, k, start=rb.start):
                    r = start + k
                    if row_lo[r] is None and row_hi[r] is None:
                        return pe.Constraint.Skip
                    a, b = ptr[r], ptr[r + 1]
                    body = LinearExpression(linear_coefs=vals[a:b], linear_vars=[xs[j] for j in cols[a:b]])
                    return (row_lo[r], body, row_hi[r])
                con = pe.Constraint(range(rb.count), rule=row)
                m.add_component(_free_name(m, rb.name), con)
                self.row_components.append((rb, con))
            nz = np.flatnonzero(problem.objective)
            self.objective = pe.Objective(expr=LinearExpression(
                constant=float(problem.objective_offset), linear_coefs=problem.objective[nz].tolist(),
                linear_vars=[xs[j] for j in nz]), sense=pe.minimize)
            m.add_component(_free_name(m, "objective"), self.objective)
        self.model = m
        self.build_s = time.perf_counter() - t0

    def values(self) -> np.ndarray:
        """The loaded solution in problem order; a variable in no row and not in the objective
        (which Pyomo does not send) gets the value in its bounds nearest 0."""
        x = np.array([np.nan if v.value is None else v.value for v in self.xs], float)
        unset = np.isnan(x)
        x[unset] = np.clip(0.0, self.problem.lower[unset], self.problem.upper[unset])
        return x

    def labeler(self):
        """A Pyomo labeler that gives each variable and row the problem's own (file-safe) name."""
        from pyomo.common.collections import ComponentMap
        names = ComponentMap(zip(self.xs, _file_names(self.problem.variable_names())))
        row_names = _file_names(self.problem.row_names())
        for rb, con in self.row_components:
            for k, data in con.items():
                names[data] = row_names[rb.start + k]
        names[self.objective] = "objective"
        # Pyomo's own helpers (ONE_VAR_CONSTANT, which carries the offset) keep their names.
        return lambda obj: names[obj] if obj in names else sanitize(obj.name)


def _refuse_relus(problem) -> None:
    if problem.relus or problem.maxes:
        raise ValueError("Pyomo backends need ReLUs and max poolings lowered to big-M first "
                         "(compiler.passes.lower_relus)")


def _gap(objective: float, bound: float) -> float:
    """Relative MIP gap as HiGHS and Gurobi define it: |objective - bound| / |objective|."""
    if objective == bound:
        return 0.0
    return abs(objective - bound) / abs(objective) if objective != 0 else float("inf")


def _bounds(values: np.ndarray) -> list:
    """Floats, ``None`` for an infinite bound (Pyomo's convention)."""
    return [v if np.isfinite(v) else None for v in values.tolist()]


def _domain(pe, block, lower: np.ndarray, upper: np.ndarray):
    if not block.integer:
        return pe.Reals
    return pe.Binary if np.all(lower >= 0) and np.all(upper <= 1) else pe.Integers


def _free_name(model, name: str) -> str:
    """``name`` sanitised, with ``_`` appended until it clashes with no component or attribute."""
    name = sanitize(name)
    while hasattr(model, name):
        name += "_"
    return name


def _file_names(names: list[str]) -> list[str]:
    """Names LP/MPS readers accept and keep apart: no leading digit, no duplicates."""
    from compiler.problem import unique_names
    return unique_names([n if n[:1].isalpha() or n[:1] == "_" else "n" + n for n in names])


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: building a Pyomo model allocates millions of objects
    and none of them are garbage yet (halves the build time at 180,000 nonzeros)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
