"""A readable, deterministic text dump of a problem (``compile-patch --print-after``).

    problem patch_net_layer2: 5 variables (0 integer), 3 rows, 0 ReLU pairs
    minimize  1 eps_max_0
    variables
      d_pos_0 in [0, 2]   ...
    rows
      patch2_0:  z2_0 - d_pos_0 + d_neg_0 == -1.5
    relus
      relu3_0:  a3_0 = max(0, z3_0)   phase on

Names are the problem's own (``Problem.variable_names``/``row_names``); numbers print with
``repr`` after a cut to 6 significant digits; blocks longer than ``limit`` lines show their
first lines and a count of the rest, so a dump of a large problem stays small.
"""
from __future__ import annotations

import numpy as np

from compiler.problem import Problem


def _number(value: float) -> str:
    return "inf" if value == np.inf else "-inf" if value == -np.inf else f"{value:.6g}"


def _linear(coeffs, cols, names) -> str:
    terms = []
    for c, j in zip(coeffs, cols):
        sign = "-" if c < 0 else "+"
        magnitude = "" if abs(c) == 1 else f"{_number(abs(c))} "
        terms.append(f"{sign} {magnitude}{names[j]}")
    text = " ".join(terms) or "0"
    return text[2:] if text.startswith("+ ") else text


def _range(lo: float, body: str, hi: float) -> str:
    if lo == hi:
        return f"{body} == {_number(lo)}"
    if lo == -np.inf and hi == np.inf:
        return f"{body} free"
    if lo == -np.inf:
        return f"{body} <= {_number(hi)}"
    if hi == np.inf:
        return f"{body} >= {_number(lo)}"
    return f"{_number(lo)} <= {body} <= {_number(hi)}"


def _cut(lines: list[str], limit: int, what: str) -> list[str]:
    if len(lines) <= limit:
        return lines
    return lines[:limit] + [f"  ... {len(lines) - limit} more {what}"]


def format_problem(problem: Problem, limit: int = 20) -> str:
    names = problem.variable_names()
    row_names = problem.row_names()
    integer = problem.integer_mask
    sizes = problem.sizes()
    out = [f"problem {problem.name}: {problem.n_vars} variables ({int(integer.sum())} integer), "
           f"{problem.n_rows} rows, {sizes['relus']} ReLU pairs, {sizes['maxes']} max rows"]
    nz = np.flatnonzero(problem.objective)
    objective = _linear(problem.objective[nz], nz, names)
    offset = f" + {_number(problem.objective_offset)}" if problem.objective_offset else ""
    out.append(f"minimize  {objective}{offset}")
    out.append("variables")
    for block in problem.blocks:
        lines = []
        for j in range(block.start, block.start + block.size):
            kind = " integer" if integer[j] else ""
            lines.append(f"  {names[j]} in [{_number(problem.lower[j])}, "
                         f"{_number(problem.upper[j])}]{kind}")
        out += _cut(lines, limit, f"of block {block.name}")
    out.append("rows")
    csr = problem.matrix
    for block in problem.row_blocks:
        lines = []
        for r in range(block.start, block.start + block.count):
            a, b = csr.indptr[r], csr.indptr[r + 1]
            body = _linear(csr.data[a:b], csr.indices[a:b], names)
            relax = ("" if block.relax is None
                     else f"   relax {int(block.relax[r - block.start])}")
            lines.append(f"  {row_names[r]}:  "
                         f"{_range(problem.row_lower[r], body, problem.row_upper[r])}{relax}")
        out += _cut(lines, limit, f"of block {block.name}")
    if problem.relus:
        out.append("relus")
        for block in problem.relus:
            lines = []
            for i, (a, z) in enumerate(zip(block.a, block.z)):
                phase = ("" if block.phase is None
                         else "   phase " + ("on" if block.phase[i] else "off"))
                lines.append(f"  {block.name}_{i}:  {names[a]} = max(0, {names[z]}){phase}")
            out += _cut(lines, limit, f"of block {block.name}")
    if problem.maxes:
        out.append("maxes")
        for block in problem.maxes:
            lines = []
            for i, (m, inputs) in enumerate(zip(block.out, block.inputs)):
                args = ", ".join(names[j] for j in inputs if j >= 0)
                phase = "" if block.phase is None else f"   phase {int(block.phase[i])}"
                lines.append(f"  {block.name}_{i}:  {names[m]} = max({args}){phase}")
            out += _cut(lines, limit, f"of block {block.name}")
    return "\n".join(out) + "\n"
