"""The problem IR: a solver-neutral LP/MILP.  It knows nothing of networks or solvers.

A problem is

    minimize    c @ x + c0
    subject to  row_lower <= A @ x <= row_upper          (sparse rows, grouped in RowBlocks)
                lower <= x <= upper                       (variables, grouped in VarBlocks)
                x[j] integer for j in an integer block
                a = max(0, z) for each pair in a ReluBlock  (piecewise-linear, lowered later)
                m = max(v_1, ..., v_k) for each row of a MaxBlock       (max pooling, likewise)

Facts a query knows about its variables and rows travel as typed fields that passes read and
backends ignore: ``Problem.inert`` and ``Problem.wrong_sign`` (variables a pass may fix to 0)
and ``RowBlock.relax`` (how a pass may relax each target row).  Problems are immutable by
convention: passes return new ones.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from common.errors import NetpatchError

INF = np.inf


@dataclass(frozen=True)
class Capabilities:
    """What a backend takes, declared on the backend and read by the pass chain: integer
    variables (a MILP), and ReluBlocks as they are (no big-M lowering needed)."""

    mip: bool = True
    native_relu: bool = False
    native_max: bool = False


class Relax(enum.IntEnum):
    """How the relaxation pass may loosen a target row ``z == c``: keep the equality (up to a
    tolerance), ``z >= c`` (UP), ``z <= c`` (DOWN), or ``z <= 0`` (INACTIVE)."""

    KEEP = 0
    UP = 1
    DOWN = -1
    INACTIVE = 2


@dataclass(frozen=True)
class VarBlock:
    """A named block of variables ``x[start : start + size]`` viewed with ``shape``.

    ``implied``: the bounds are not part of the question but consequences of the other
    constraints for the exact network (a bounds analysis computed them, e.g. for big-M
    constants).  A pass that replaces the network by another model (linearized phase fixing)
    must drop them, or they would cut off that model's solutions."""

    name: str
    shape: tuple[int, ...]
    start: int
    integer: bool = False
    implied: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size)


@dataclass(frozen=True)
class RowBlock:
    """A named group of rows ``A[start : start + count]``; ``relax`` (one ``Relax`` value per
    row, or None) says how the relaxation pass may loosen them."""

    name: str
    start: int
    count: int
    relax: np.ndarray | None = None

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.count)


@dataclass(frozen=True)
class ReluBlock:
    """``x[a[i]] = max(0, x[z[i]])`` for each i; ``phase`` (optional) is the observed phase."""

    name: str
    a: np.ndarray
    z: np.ndarray
    phase: np.ndarray | None = None


@dataclass(frozen=True)
class MaxBlock:
    """``x[out[r]] = max_j x[inputs[r, j]]`` over the entries ``inputs[r, j] >= 0`` (-1 pads);
    ``phase`` (optional) is, per row, the position j of the maximum on the unperturbed input."""

    name: str
    out: np.ndarray
    inputs: np.ndarray
    phase: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Problem:
    name: str
    blocks: tuple[VarBlock, ...]
    lower: np.ndarray
    upper: np.ndarray
    matrix: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    row_blocks: tuple[RowBlock, ...]
    objective: np.ndarray
    objective_offset: float = 0.0
    relus: tuple[ReluBlock, ...] = ()
    maxes: tuple[MaxBlock, ...] = ()
    inert: np.ndarray | None = None        # bool per variable: it changes nothing (fix to 0: exact)
    wrong_sign: np.ndarray | None = None   # bool per variable: the marking rules it out (heuristic)
    var_names: "Sequence[str] | None" = None   # set once blocks no longer give the names
    row_labels: "Sequence[str] | None" = None

    # ---- sizes -------------------------------------------------------------------------
    @property
    def n_vars(self) -> int:
        return len(self.lower)

    @property
    def n_rows(self) -> int:
        return self.matrix.shape[0]

    @property
    def integer_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_vars, dtype=bool)
        for block in self.blocks:
            if block.integer:
                mask[block.start:block.start + block.size] = True
        return mask

    @property
    def is_mip(self) -> bool:
        return (bool(self.relus) or bool(self.maxes)
                or bool(np.any(self.integer_mask & (self.lower < self.upper))))

    def sizes(self) -> dict:
        """Free variables (not fixed by bounds), rows, free binaries, nonzeros, ReLU pairs and
        those whose bounds leave the phase undecided (each needs a binary when lowered)."""
        free = self.lower < self.upper
        return {
            "variables": int(np.sum(free)),
            "rows": int(self.n_rows),
            "binaries": int(np.sum(free & self.integer_mask)),
            "nonzeros": int(self.matrix.nnz),
            "relus": int(sum(len(r.a) for r in self.relus)),
            "unstable_relus": int(sum(np.sum((self.lower[r.z] < 0) & (self.upper[r.z] > 0))
                                      for r in self.relus)),
            "maxes": int(sum(len(m.out) for m in self.maxes)),
        }

    # ---- access ------------------------------------------------------------------------
    def block(self, name: str) -> VarBlock:
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(f"problem {self.name!r} has no variable block {name!r}")

    def has_block(self, name: str) -> bool:
        return any(b.name == name for b in self.blocks)

    def row_block(self, name: str) -> RowBlock:
        for block in self.row_blocks:
            if block.name == name:
                return block
        raise KeyError(f"problem {self.name!r} has no row block {name!r}")

    def values(self, x: np.ndarray, name: str) -> np.ndarray:
        """The values of block ``name`` in solution ``x``, in the block's shape."""
        block = self.block(name)
        return np.asarray(x[block.start:block.start + block.size]).reshape(block.shape)

    def variable_names(self) -> list[str]:
        """Stable names ``block_i_j`` (no brackets: LP formats reject them)."""
        if self.var_names is not None:
            return list(self.var_names)
        names = []
        for block in self.blocks:
            stem = sanitize(block.name)
            names.extend(stem + "".join(f"_{i}" for i in idx) for idx in np.ndindex(*block.shape))
        return names

    def row_names(self) -> list[str]:
        if self.row_labels is not None:
            return list(self.row_labels)
        names = []
        for block in self.row_blocks:
            names.extend(sanitize(f"{block.name}_{i}") for i in range(block.count))
        return names

    def with_(self, **changes) -> "Problem":
        return replace(self, **changes)

    def with_rows(self, name: str, matrix: sp.spmatrix, lower, upper) -> "Problem":
        """A copy with a block of rows appended (``matrix`` has one column per variable)."""
        count = matrix.shape[0]
        labels = None
        if self.row_labels is not None:
            labels = tuple(self.row_labels) + tuple(sanitize(f"{name}_{i}") for i in range(count))
        return replace(
            self, matrix=sp.vstack([self.matrix, sp.csr_matrix(matrix)], format="csr"),
            row_lower=np.concatenate([self.row_lower, np.broadcast_to(lower, (count,))]),
            row_upper=np.concatenate([self.row_upper, np.broadcast_to(upper, (count,))]),
            row_blocks=self.row_blocks + (RowBlock(name, self.n_rows, count),), row_labels=labels)

    def with_vars(self, name: str, count: int, lower, upper, integer=False) -> "Problem":
        """A copy with a block of ``count`` variables appended (zero in rows and objective)."""
        block = VarBlock(name, (count,), self.n_vars, integer)
        names = None
        if self.var_names is not None:
            names = tuple(self.var_names) + tuple(sanitize(f"{name}_{i}") for i in range(count))
        return replace(
            self, blocks=self.blocks + (block,),
            lower=np.concatenate([self.lower, np.broadcast_to(lower, (count,))]),
            upper=np.concatenate([self.upper, np.broadcast_to(upper, (count,))]),
            matrix=sp.hstack([self.matrix, sp.csr_matrix((self.n_rows, count))], format="csr"),
            objective=np.concatenate([self.objective, np.zeros(count)]), var_names=names)

    def check(self) -> None:
        """Reject NaN and inverted bounds before any solver sees the data."""
        for what, arr in (("objective", self.objective), ("matrix", self.matrix.data)):
            if not np.all(np.isfinite(arr)):
                raise NetpatchError(f"problem {self.name!r}: non-finite value in the {what}")
        for what, lo, hi in (("variable", self.lower, self.upper),
                             ("row", self.row_lower, self.row_upper)):
            if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
                raise NetpatchError(f"problem {self.name!r}: NaN {what} bound")
            if np.any(lo > hi):
                i = int(np.argmax(lo > hi))
                raise NetpatchError(f"problem {self.name!r}: {what} {i} has lower bound {lo[i]} "
                                    f"above upper bound {hi[i]}")


class LazyNames(Sequence):
    """Names computed on first use: most solves never print one, and a patch problem of the
    first MNIST layer has 78,400 of them."""

    def __init__(self, make: Callable[[], Sequence[str]]):
        self._make, self._names = make, None

    def _get(self) -> tuple[str, ...]:
        if self._names is None:
            self._names = tuple(self._make())
        return self._names

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, index):
        return self._get()[index]

    def __iter__(self):
        return iter(self._get())


def sanitize(name: str) -> str:
    """A name every LP/MPS writer accepts."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def unique_names(names: list[str]) -> list[str]:
    """The names with repeats made distinct by ``_1``, ``_2``, ... suffixes."""
    seen, out = set(), []
    for name in names:
        base, k = name, 1
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


class ProblemBuilder:
    """Collects variable blocks, row blocks and ReLU pairs, then freezes a ``Problem``."""

    def __init__(self, name: str):
        self.name = name
        self._blocks: list[VarBlock] = []
        self._lower: list[np.ndarray] = []
        self._upper: list[np.ndarray] = []
        self._rows: list[tuple] = []
        self._row_lower: list[np.ndarray] = []
        self._row_upper: list[np.ndarray] = []
        self._row_blocks: list[RowBlock] = []
        self._relus: list[ReluBlock] = []
        self._maxes: list[MaxBlock] = []
        self._objective: list[tuple[np.ndarray, np.ndarray]] = []
        self.objective_offset = 0.0
        self.inert: np.ndarray | None = None
        self.wrong_sign: np.ndarray | None = None
        self._n = 0
        self._m = 0

    @property
    def n_vars(self) -> int:
        return self._n

    def add_vars(self, name: str, shape, lower=-INF, upper=INF, integer=False,
                 implied=False) -> np.ndarray:
        """A block of variables; returns their indices in the block's shape."""
        shape = tuple(int(d) for d in np.atleast_1d(shape))
        block = VarBlock(name, shape, self._n, integer, implied)
        self._blocks.append(block)
        self._lower.append(np.broadcast_to(np.asarray(lower, float), shape).ravel().copy())
        self._upper.append(np.broadcast_to(np.asarray(upper, float), shape).ravel().copy())
        self._n += block.size
        return block.indices.reshape(shape)

    def add_binaries(self, name: str, shape) -> np.ndarray:
        return self.add_vars(name, shape, 0.0, 1.0, integer=True)

    def add_rows(self, name: str, rows, cols, vals, lower, upper, count: int,
                 relax=None) -> np.ndarray:
        """``count`` rows given as triplets (row within the block, variable index, coefficient);
        ``relax`` (per row) lets the relaxation pass loosen them."""
        self._rows.append((np.asarray(rows, np.int64).ravel(), np.asarray(cols, np.int64).ravel(),
                           np.asarray(vals, float).ravel(), count))
        self._row_lower.append(np.broadcast_to(np.asarray(lower, float), (count,)).copy())
        self._row_upper.append(np.broadcast_to(np.asarray(upper, float), (count,)).copy())
        self._row_blocks.append(RowBlock(name, self._m, count,
                                         None if relax is None else np.asarray(relax, np.int8)))
        self._m += count
        return np.arange(self._m - count, self._m)

    def add_dense_rows(self, name: str, coeffs: np.ndarray, var_idx: np.ndarray, lower,
                       upper) -> np.ndarray:
        """Rows ``coeffs @ x[var_idx]`` (``coeffs`` of shape (count, len(var_idx))), zeros skipped."""
        coeffs = np.atleast_2d(np.asarray(coeffs, float))
        r, c = np.nonzero(coeffs)
        return self.add_rows(name, r, np.asarray(var_idx)[c], coeffs[r, c], lower, upper,
                             coeffs.shape[0])

    def add_relus(self, name: str, a: np.ndarray, z: np.ndarray, phase=None) -> None:
        self._relus.append(ReluBlock(name, np.asarray(a).ravel(), np.asarray(z).ravel(),
                                     None if phase is None else np.asarray(phase, bool).ravel()))

    def add_maxes(self, name: str, out: np.ndarray, inputs: np.ndarray, phase=None) -> None:
        self._maxes.append(MaxBlock(name, np.asarray(out).ravel(), np.asarray(inputs),
                                    None if phase is None else np.asarray(phase, np.int64)))

    def minimize(self, idx, coeffs) -> None:
        idx = np.ravel(np.asarray(idx, dtype=np.int64))
        self._objective.append((idx, np.broadcast_to(np.asarray(coeffs, float), idx.shape)))

    def build(self) -> Problem:
        n = self._n
        mats = [sp.csr_matrix((v, (r, c)), shape=(count, n)) for r, c, v, count in self._rows]
        matrix = sp.vstack(mats, format="csr") if mats else sp.csr_matrix((0, n))
        matrix.sum_duplicates()
        objective = np.zeros(n)
        for idx, coeffs in self._objective:
            np.add.at(objective, idx, coeffs)
        problem = Problem(
            name=self.name, blocks=tuple(self._blocks),
            lower=np.concatenate(self._lower) if self._lower else np.zeros(0),
            upper=np.concatenate(self._upper) if self._upper else np.zeros(0),
            matrix=matrix,
            row_lower=np.concatenate(self._row_lower) if self._row_lower else np.zeros(0),
            row_upper=np.concatenate(self._row_upper) if self._row_upper else np.zeros(0),
            row_blocks=tuple(self._row_blocks), objective=objective,
            objective_offset=self.objective_offset, relus=tuple(self._relus),
            maxes=tuple(self._maxes),
            inert=self.inert, wrong_sign=self.wrong_sign)
        problem.check()
        return problem
