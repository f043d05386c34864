"""Z3's ``Optimize``: exact rational LP/MILP, with ReLUs encoded as they are.

The encoding of a problem (in a fresh ``z3.Context``):

* variable ``j`` is ``Real(name_j)``, or ``Int(name_j)`` in an integer block, with
  ``lower_j <= x_j <= upper_j`` asserted for each finite bound;
* row ``i`` is ``row_lower_i <= sum_j A_ij x_j <= row_upper_i`` (one equality when the bounds
  are equal; a free row is skipped);
* a ReluBlock pair is ``x_a == If(x_z >= 0, x_z, 0)``, exactly (``NATIVE_RELU``), and a
  MaxBlock row ``x_m == max(x_v...)`` as a chain of ``If`` (``NATIVE_MAX``);
* ``minimize(c @ x)``; the reported objective adds ``objective_offset``.

Every coefficient and bound enters as the exact rational of its shortest round-trip decimal
(``repr``), so ``0.1`` is ``1/10``.  Values come back as floats of z3's exact rationals.
``sat`` means ``Optimize`` proved the optimum, so it maps to OPTIMAL; ``unsat`` to INFEASIBLE;
``unknown`` after the timeout to TIME_LIMIT (no solution is reported), other ``unknown`` to
ERROR (``STATUS_MAP``).
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from backends.base import Backend, Result, Status
from compiler.problem import unique_names


class Z3Backend(Backend):
    """``solve`` and ``write`` (``.smt2``) as described in the module docstring."""

    name = "z3"
    NATIVE_RELU = True
    NATIVE_MAX = True
    FILE_FORMATS = (".smt2",)
    # check() answers, and "unknown" refined by reason_unknown() when the timer fired.
    STATUS_MAP = {"sat": Status.OPTIMAL, "unsat": Status.INFEASIBLE, "timeout": Status.TIME_LIMIT,
                  "unknown": Status.ERROR}
    # Measured on a shared 2-core machine, 60 s timeout: a random feasible patch-like LP (n
    # variables with |x_i| <= M, minimize M, 10 equality rows of density 0.5; 2n + 10 rows).
    # The exact rationals grow to ~170 digits, which is what makes it slow.
    SIZE_NOTE = ("exact rational arithmetic, for cross-checking small problems: patch-like LP "
                 "with 10 vars 0.02 s, 20 vars 2.3 s, 30 vars 33 s; none of 100, 400 or 2,500 "
                 "vars within 60 s")

    @classmethod
    def is_available(cls):
        try:
            import z3  # noqa: F401
        except ImportError:
            return False, "z3 is not installed (pip install z3-solver)"
        return True, ""

    def solve(self, problem, time_limit=None, mip_start=None) -> Result:
        """``mip_start`` is ignored: ``Optimize`` takes no start."""
        import z3
        model = _Z3Model(problem)
        if time_limit is not None:
            model.opt.set("timeout", max(1, int(time_limit * 1000)))
        t0 = time.perf_counter()
        answer = model.opt.check()
        solve_s = time.perf_counter() - t0
        native = str(answer)
        result = Result(Status.ERROR, solver="z3", version=z3.get_version_string(),
                        build_s=model.build_s, solve_s=solve_s, message=native)
        if answer == z3.unknown:
            reason = model.opt.reason_unknown()
            result.message = f"unknown: {reason}"
            # z3 gives "canceled", "timeout" or plain "unknown" when its timer fires.
            if reason in ("timeout", "canceled") or (time_limit is not None and solve_s >= time_limit):
                native = "timeout"
        result.status = self.status(native, has_solution=False)
        if answer == z3.sat:
            value = model.objective_handle.value()
            if not _is_number(value):   # -1*oo: unbounded below
                result.status = Status.UNBOUNDED
            else:
                result.x = model.values()
                result.objective = float(_fraction(value) + _exact(problem.objective_offset))
        return result

    def _write(self, problem, path) -> None:
        """The ``Optimize`` instance as SMT-LIB 2 (``opt.sexpr()``), variables by problem name,
        ending with ``(check-sat)`` and ``(get-objectives)``: ``z3 FILE.smt2`` prints the
        answer and the optimum."""
        text = _Z3Model(problem).opt.sexpr().rstrip("\n")
        if not text.endswith("(check-sat)"):
            text += "\n(check-sat)"
        path.write_text(text + "\n(get-objectives)\n")


class _Z3Model:
    """The ``Optimize`` instance of a problem, its variables in problem order, the build time.

    Sums are built with one ``Z3_mk_add`` over ``Z3_mk_mul`` terms, numerals cached by value:
    0.6 s for 2,501 variables and 22,478 nonzeros, against 1.4 s with ``z3.Sum`` over
    ``RealVal(c) * x`` (whose sort checks and coercions dominate).  Parsing an SMT-LIB string
    builds in 0.23 s, but the parsed model solved 1.5-3x slower on the same problems (z3's
    search depends on term creation order), so the API is used.
    """

    def __init__(self, problem):
        import z3
        t0 = time.perf_counter()
        self.problem = problem
        self.ctx = z3.Context()
        self.opt = z3.Optimize(ctx=self.ctx)
        self._numerals: dict[float, object] = {}
        integer = problem.integer_mask.tolist()
        names = unique_names(problem.variable_names())
        self.xs = [z3.Int(name, self.ctx) if is_int else z3.Real(name, self.ctx)
                   for name, is_int in zip(names, integer)]
        self._reals = [z3.ToReal(x) if is_int else x for x, is_int in zip(self.xs, integer)]
        for lo, hi, x in zip(problem.lower.tolist(), problem.upper.tolist(), self._reals):
            self._assert_range(x, lo, hi)
        csr = problem.matrix
        ptr, cols, vals = csr.indptr.tolist(), csr.indices.tolist(), csr.data.tolist()
        for r, (lo, hi) in enumerate(zip(problem.row_lower.tolist(), problem.row_upper.tolist())):
            if np.isfinite(lo) or np.isfinite(hi):
                self._assert_range(self._linear(vals[ptr[r]:ptr[r + 1]], cols[ptr[r]:ptr[r + 1]]), lo, hi)
        zero = self._numeral(0.0)
        for relu in problem.relus:
            for a, z in zip(relu.a.tolist(), relu.z.tolist()):
                za = self._reals[z]
                self.opt.add(self._reals[a] == z3.If(za >= zero, za, zero))
        for block in problem.maxes:
            for m, inputs in zip(block.out.tolist(), block.inputs.tolist()):
                best = None
                for v in (self._reals[j] for j in inputs if j >= 0):
                    best = v if best is None else z3.If(v > best, v, best)
                self.opt.add(self._reals[m] == best)
        nz = np.flatnonzero(problem.objective)
        self.objective_handle = self.opt.minimize(
            self._linear(problem.objective[nz].tolist(), nz.tolist()))
        self.build_s = time.perf_counter() - t0

    def _numeral(self, value: float):
        """The exact rational of the shortest decimal that round-trips ``value`` (0.1 -> 1/10)."""
        import z3
        numeral = self._numerals.get(value)
        if numeral is None:
            q = _exact(value)
            numeral = self._numerals[value] = z3.RealVal(f"{q.numerator}/{q.denominator}", self.ctx)
        return numeral

    def _linear(self, coeffs: list[float], cols: list[int]):
        """``sum_k coeffs[k] * x[cols[k]]`` as one n-ary z3 sum (0 when empty)."""
        import z3
        if not cols:
            return self._numeral(0.0)
        ref, pair = self.ctx.ref(), z3.Ast * 2
        terms = [z3.ArithRef(z3.Z3_mk_mul(ref, 2, pair(self._numeral(c).as_ast(), self._reals[j].as_ast())),
                             self.ctx)
                 for c, j in zip(coeffs, cols)]
        args = (z3.Ast * len(terms))(*[t.as_ast() for t in terms])
        return z3.ArithRef(z3.Z3_mk_add(ref, len(terms), args), self.ctx)

    def _assert_range(self, expr, lo: float, hi: float) -> None:
        """``lo <= expr <= hi``, each bound only when finite; one equality when ``lo == hi``."""
        if lo == hi and np.isfinite(lo):
            self.opt.add(expr == self._numeral(lo))
            return
        if np.isfinite(lo):
            self.opt.add(expr >= self._numeral(lo))
        if np.isfinite(hi):
            self.opt.add(expr <= self._numeral(hi))

    def values(self) -> np.ndarray:
        model = self.opt.model()
        return np.array([float(_fraction(model.eval(x, model_completion=True))) for x in self.xs])


def _exact(value: float) -> Fraction:
    """The rational of the shortest decimal that round-trips ``value``."""
    return Fraction(repr(float(value)))


def _is_number(value) -> bool:
    import z3
    return z3.is_int_value(value) or z3.is_rational_value(value)


def _fraction(value) -> Fraction:
    """A z3 integer or rational numeral as an exact ``Fraction``."""
    import z3
    if z3.is_int_value(value):
        return Fraction(value.as_long())
    return Fraction(value.numerator_as_long(), value.denominator_as_long())
