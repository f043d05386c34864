"""Compaction: drop fixed variables and empty rows; turn single-variable rows into bounds.

What the earlier passes fixed (lower == upper) is substituted into the rows and the
objective, so backends receive only what is free.  The inverse puts the fixed values back.
"""
from __future__ import annotations

import numpy as np

from compiler.passes.base import Pass
from compiler.problem import LazyNames, RowBlock, VarBlock

# Keep empty rows whose bounds are violated by more than this: they make the problem
# infeasible and the solver must say so.
TOLERANCE = 1e-9


class Compact(Pass):
    name = "compact"
    help = "fixed variables and empty rows removed, single-variable rows become bounds"

    def apply(self, problem):
        return compact(problem)


def compact(problem):
    n = problem.n_vars
    in_relu = np.zeros(n, bool)
    for block in problem.relus:
        in_relu[block.a] = in_relu[block.z] = True
    for block in problem.maxes:
        in_relu[block.out] = True
        in_relu[block.inputs[block.inputs >= 0]] = True
    fixed = (problem.lower == problem.upper) & ~in_relu
    keep = ~fixed
    values = np.where(fixed, problem.lower, 0.0)
    matrix = problem.matrix
    shift = matrix @ values
    row_lower, row_upper = problem.row_lower - shift, problem.row_upper - shift
    sub = matrix[:, keep].tocsr()
    sub.eliminate_zeros()   # coefficients that cancelled (e.g. +1 and -1 on one variable)
    lower, upper = problem.lower[keep].copy(), problem.upper[keep].copy()
    integer = problem.integer_mask[keep]

    # rows with one free variable become bounds
    counts = np.diff(sub.indptr)
    single = np.flatnonzero(counts == 1)
    for r in single:
        col, coef = sub.indices[sub.indptr[r]], sub.data[sub.indptr[r]]
        lo, hi = row_lower[r] / coef, row_upper[r] / coef
        if coef < 0:
            lo, hi = hi, lo
        if integer[col]:
            lo, hi = np.ceil(lo - TOLERANCE), np.floor(hi + TOLERANCE)
        lower[col], upper[col] = max(lower[col], lo), min(upper[col], hi)
    empty_ok = (counts == 0) & (row_lower <= TOLERANCE) & (row_upper >= -TOLERANCE)
    keep_rows = (counts > 1) | ((counts == 0) & ~empty_ok)
    if np.any(lower > upper):
        # contradictory bounds: keep the rows so the solver proves infeasibility
        lower, upper = problem.lower[keep].copy(), problem.upper[keep].copy()
        keep_rows = (counts != 0) | ~empty_ok

    new_index = np.cumsum(keep) - 1
    relus = tuple(type(block)(block.name, new_index[block.a], new_index[block.z], block.phase)
                  for block in problem.relus)
    maxes = tuple(type(block)(block.name, new_index[block.out],
                              np.where(block.inputs >= 0, new_index[block.inputs], -1), block.phase)
                  for block in problem.maxes)
    out = problem.with_(
        blocks=_remap_blocks(problem.blocks, keep, VarBlock),
        lower=lower, upper=upper, matrix=sub[keep_rows].tocsr(),
        row_lower=row_lower[keep_rows], row_upper=row_upper[keep_rows],
        row_blocks=_remap_row_blocks(problem.row_blocks, keep_rows),
        objective=problem.objective[keep],
        objective_offset=problem.objective_offset + float(problem.objective @ values),
        relus=relus, maxes=maxes, inert=None, wrong_sign=None,
        var_names=LazyNames(lambda: np.asarray(problem.variable_names(), dtype=object)[keep]),
        row_labels=LazyNames(lambda: np.asarray(problem.row_names(), dtype=object)[keep_rows]))

    def invert(x):
        full = values.copy()
        full[keep] = x
        return full
    return out, invert


def _remap_blocks(blocks, keep, cls):
    out, start = [], 0
    for block in blocks:
        count = int(np.sum(keep[block.start:block.start + block.size]))
        out.append(cls(block.name, (count,), start, block.integer, block.implied))
        start += count
    return tuple(out)


def _remap_row_blocks(blocks, keep_rows):
    out, start = [], 0
    for block in blocks:
        count = int(np.sum(keep_rows[block.start:block.start + block.count]))
        out.append(RowBlock(block.name, start, count))
        start += count
    return tuple(out)
