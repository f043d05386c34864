"""HiGHS through highspy directly: the fast path from the problem IR (arrays in, arrays out).
Model files (``.lp``, ``.mps``) are HiGHS's own writers, with the problem's names."""
from __future__ import annotations

import time

import numpy as np

from backends.base import Backend, Result, Status
from common.highs import new_highs
from compiler.problem import unique_names

_LIMITS = ("kTimeLimit", "kIterationLimit", "kSolutionLimit", "kInterrupt", "kHighsInterrupt",
           "kObjectiveBound", "kObjectiveTarget")


class HighsBackend(Backend):
    name = "highs"
    FILE_FORMATS = (".lp", ".mps")
    SIZE_NOTE = "LP and MILP; the default"
    # "unbounded or infeasible" after a re-run without presolve is no proof of either: ERROR.
    STATUS_MAP = {"kOptimal": Status.OPTIMAL, "kInfeasible": Status.INFEASIBLE,
                  "kUnbounded": Status.UNBOUNDED,
                  **{name: Status.TIME_LIMIT for name in _LIMITS}}

    def __init__(self, mip_rel_gap: float = 1e-6, verbose: bool = False):
        self.mip_rel_gap = mip_rel_gap
        self.verbose = verbose

    @classmethod
    def is_available(cls):
        try:
            import highspy  # noqa: F401
        except ImportError:
            return False, "highspy is not installed (pip install highspy)"
        return True, ""

    def _model(self, problem, time_limit, names: bool = False):
        import highspy
        t0 = time.perf_counter()
        h = new_highs(self.verbose)
        h.setOptionValue("mip_rel_gap", self.mip_rel_gap)
        if time_limit is not None:
            h.setOptionValue("time_limit", float(time_limit))
        lp = highspy.HighsLp()
        lp.num_col_ = problem.n_vars
        lp.num_row_ = problem.n_rows
        lp.col_cost_ = problem.objective
        lp.offset_ = problem.objective_offset
        lp.col_lower_ = problem.lower
        lp.col_upper_ = problem.upper
        lp.row_lower_ = problem.row_lower
        lp.row_upper_ = problem.row_upper
        csr = problem.matrix
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = csr.indptr
        lp.a_matrix_.index_ = csr.indices
        lp.a_matrix_.value_ = csr.data
        lp.a_matrix_.num_col_ = problem.n_vars
        lp.a_matrix_.num_row_ = problem.n_rows
        integer = problem.integer_mask
        if integer.any():
            lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                               for i in integer]
        if names:
            lp.col_names_ = unique_names(problem.variable_names())
            lp.row_names_ = unique_names(problem.row_names())
        h.passModel(lp)
        return h, time.perf_counter() - t0

    def solve(self, problem, time_limit=None, mip_start=None) -> Result:
        if problem.relus or problem.maxes:
            raise ValueError("HiGHS needs ReLUs and max poolings lowered to big-M first "
                             "(relu-lowering, max-lowering)")
        import highspy
        h, build_s = self._model(problem, time_limit)
        if mip_start is not None and problem.is_mip:
            start = highspy.HighsSolution()
            start.col_value = list(np.asarray(mip_start, float))
            start.value_valid = True
            h.setSolution(start)
        t0 = time.perf_counter()
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kUnboundedOrInfeasible:
            h.setOptionValue("presolve", "off")  # presolve cannot tell the two apart; the solver can
            h.run()
        solve_s = time.perf_counter() - t0
        model_status = h.getModelStatus()
        has_point = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
        status = self.status(model_status.name, has_point)
        result = Result(status, solver="highs", version=h.version(), build_s=build_s, solve_s=solve_s,
                        message=h.modelStatusToString(model_status))
        if status.has_solution:
            result.x = np.array(h.getSolution().col_value)
            result.objective = float(h.getInfo().objective_function_value)
            if problem.is_mip:
                result.info["mip_gap"] = float(h.getInfo().mip_gap)
                result.info["bound"] = float(h.getInfo().mip_dual_bound)
        return result

    def _write(self, problem, path) -> None:
        if problem.relus or problem.maxes:
            raise ValueError("HiGHS needs ReLUs and max poolings lowered to big-M first "
                             "(relu-lowering, max-lowering)")
        h, _ = self._model(problem, None, names=True)
        h.writeModel(str(path))
