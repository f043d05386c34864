r"""Input sets: the sets of values entering an edge-layer that the bound analyses start from.

Every set ``S`` of vectors in ``R^n`` gives

* ``concretize(C, d) -> (lo, hi)``: the exact range of a linear function over the set,
  ``lo_j = min_{x in S} C_j x + d_j`` and ``hi_j = max_{x in S} C_j x + d_j``, for ``C`` of
  shape ``(m, n)``, dense or ``scipy.sparse`` (sparse ``C`` is never densified);
* ``box() -> (lower, upper)``: its interval hull, for interval arithmetic;
* ``sample(count, rng)``: points of the set, extreme ones included, for soundness tests.

``Box`` is the L-inf set; ``SparseBox`` is the L0 budget of METHOD.md ("at most K changed
inputs").  All values are float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from common.errors import DataError
from compiler.analysis.bounds import affine_interval


def _vector(values, name: str) -> np.ndarray:
    array = np.array(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise DataError(f"input set: {name} holds non-finite values")
    array.setflags(write=False)
    return array


def _check_box(lower: np.ndarray, upper: np.ndarray) -> None:
    if lower.shape != upper.shape:
        raise DataError(f"input set: lower has {lower.size} values, upper {upper.size}")
    bad = np.flatnonzero(lower > upper)
    if len(bad):
        raise DataError(f"input set: lower > upper at {len(bad)} coordinate(s), first {bad[0]}")


@dataclass(frozen=True, eq=False)
class Box:
    r"""``{x : lower <= x <= upper}``.  ``concretize`` is interval arithmetic, exact here:
    ``min = C^+ lower + C^- upper + d``, ``max = C^+ upper + C^- lower + d`` with
    ``C^+ = max(C, 0)``, ``C^- = min(C, 0)``."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "lower", _vector(self.lower, "lower"))
        object.__setattr__(self, "upper", _vector(self.upper, "upper"))
        _check_box(self.lower, self.upper)

    @staticmethod
    def around(x, radius: float, domain) -> "Box":
        """The L-inf ball of ``radius`` around ``x`` intersected with ``domain`` (a
        ``Domain``)."""
        x = np.asarray(x, dtype=np.float64)
        return Box(np.maximum(domain.lower, x - radius), np.minimum(domain.upper, x + radius))

    @property
    def n(self) -> int:
        return self.lower.size

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lower, self.upper

    def concretize(self, C, d):
        return affine_interval(C, d, self.lower, self.upper)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` points: a third uniform, a third corners (every coordinate at one end),
        the rest corners with a random half of the coordinates uniform."""
        third = count // 3
        t = rng.uniform(size=(count, self.n))
        corner = rng.integers(0, 2, size=(count - third, self.n)).astype(np.float64)
        keep = rng.uniform(size=corner.shape) < 0.5
        keep[:third] = False
        t[third:] = np.where(keep, t[third:], corner)
        return self.lower + (self.upper - self.lower) * t


@dataclass(frozen=True, eq=False)
class SparseBox:
    r"""Points that differ from ``center`` in at most ``k`` coordinates, each changed
    coordinate within its range: ``{x : x_i in [lower_i, upper_i], #{i : x_i != c_i} <= k}``
    (``lower <= center <= upper``).  The coordinates listed in ``free`` change without
    counting against ``k`` (a box on them, the budget on the rest).

    Exact concretization: with ``g_{ji} = max(C_{ji}(upper_i - c_i), C_{ji}(lower_i - c_i), 0)``
    (the best increase of row j from moving input i alone) and
    ``h_{ji} = max(-C_{ji}(upper_i - c_i), -C_{ji}(lower_i - c_i), 0)`` (the best decrease),

        max_{x in S} C_j x + d_j = C_j c + d_j + (sum of the k largest g_{ji} over i)
        min_{x in S} C_j x + d_j = C_j c + d_j - (sum of the k largest h_{ji} over i)

    (the objective is separable, so the best set of at most k inputs takes the k largest
    individual gains), the sums over i outside ``free``, plus every ``g_{ji}`` (``h_{ji}``)
    of a free coordinate.
    """

    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    k: int
    free: np.ndarray | tuple = ()

    def __post_init__(self):
        for name in ("center", "lower", "upper"):
            object.__setattr__(self, name, _vector(getattr(self, name), name))
        free = np.unique(np.asarray(self.free, dtype=np.int64))
        if len(free) and (free[0] < 0 or free[-1] >= self.center.size):
            raise DataError(f"input set: a free coordinate lies outside 0 .. "
                            f"{self.center.size - 1}")
        free.setflags(write=False)
        object.__setattr__(self, "free", free)
        _check_box(self.lower, self.upper)
        if self.center.shape != self.lower.shape:
            raise DataError(f"input set: center has {self.center.size} values, the box "
                            f"{self.lower.size}")
        outside = np.flatnonzero((self.center < self.lower) | (self.center > self.upper))
        if len(outside):
            raise DataError(f"input set: the center lies outside [lower, upper] at "
                            f"{len(outside)} coordinate(s), first {outside[0]}")
        if int(self.k) != self.k or self.k < 0:
            raise DataError(f"input set: the budget k must be a whole number >= 0, got {self.k}")
        object.__setattr__(self, "k", int(self.k))

    @staticmethod
    def around(x, radius: float, k: int, domain) -> "SparseBox":
        """At most ``k`` inputs of ``x`` change, each by at most ``radius`` and inside
        ``domain`` (a ``Domain``)."""
        x = np.asarray(x, dtype=np.float64)
        return SparseBox(x, np.maximum(domain.lower, x - radius),
                         np.minimum(domain.upper, x + radius), k)

    @property
    def n(self) -> int:
        return self.center.size

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lower, self.upper

    @property
    def budgeted(self) -> np.ndarray:
        """Per coordinate, whether its change counts against ``k`` (not ``free``)."""
        mask = np.ones(self.n, bool)
        mask[self.free] = False
        return mask

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Per point (a row), whether it lies in the set."""
        points = np.atleast_2d(points)
        inside = np.all((points >= self.lower) & (points <= self.upper), axis=1)
        changed = (points != self.center) & self.budgeted
        return inside & (changed.sum(axis=1) <= self.k)

    def concretize(self, C, d):
        # Only inputs with a range can change: those held at the center add nothing, and
        # leaving them out makes the top-k cheaper when few inputs move.
        movable = self.upper > self.lower
        counted = self.budgeted & movable
        if self.k >= np.count_nonzero(counted):
            return affine_interval(C, d, self.lower, self.upper)
        z = C @ self.center + d
        up, down = self.upper - self.center, self.lower - self.center
        if sp.issparse(C):
            C = sp.csr_matrix(C)
            if not C.has_canonical_format:      # a repeated entry is one coefficient
                C = C.copy()
                C.sum_duplicates()
            a, b = C.data * up[C.indices], C.data * down[C.indices]
            rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
            budget = counted[C.indices]
            gain, loss = (_top_k_rows(np.where(budget, v, 0.0), rows, C.indptr, self.k)
                          + np.bincount(rows[~budget], weights=v[~budget],
                                        minlength=C.shape[0])
                          for v in (np.maximum(np.maximum(a, b), 0.0),
                                    np.maximum(np.maximum(-a, -b), 0.0)))
        else:
            C = np.asarray(C, dtype=np.float64)[:, movable]
            a, b = C * up[movable], C * down[movable]
            budget = counted[movable]
            gain, loss = (_top_k_dense(v[:, budget], self.k) + v[:, ~budget].sum(axis=1)
                          for v in (np.maximum(np.maximum(a, b), 0.0),
                                    np.maximum(np.maximum(-a, -b), 0.0)))
        return z - loss, z + gain

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` points, each with a random set of changed coordinates: a third with
        exactly ``k`` changed, each at one end of its range; a third with exactly ``k``
        changed uniformly; the rest with a random number ``<= k`` of changes at the ends.
        The ``free`` coordinates take ends of their ranges in the first third and random
        values in the rest."""
        points = np.tile(self.center, (count, 1))
        third = count // 3
        if len(self.free):
            lo, hi = self.lower[self.free], self.upper[self.free]
            ends = np.where(rng.integers(0, 2, size=(count, len(self.free))) == 1, hi, lo)
            points[:, self.free] = np.where(np.arange(count)[:, None] < third, ends,
                                            rng.uniform(lo, hi, size=ends.shape))
        pool = np.flatnonzero(self.budgeted)
        k = min(self.k, len(pool))
        if k == 0:
            return points
        chosen = pool[np.argpartition(rng.uniform(size=(count, len(pool))), k - 1,
                                      axis=1)[:, :k]]
        lo, hi = self.lower[chosen], self.upper[chosen]
        value = np.where(rng.integers(0, 2, size=(count, k)) == 1, hi, lo)
        value[third:2 * third] = rng.uniform(lo[third:2 * third], hi[third:2 * third])
        moved = np.full(count, k)
        moved[2 * third:] = rng.integers(0, k + 1, size=count - 2 * third)
        rows = np.arange(count)[:, None]
        points[rows, chosen] = np.where(np.arange(k) < moved[:, None], value, points[rows, chosen])
        return points


def _top_k_dense(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the sum of the ``k`` largest entries of a dense ``(m, n)`` array."""
    if k == 0:
        return np.zeros(values.shape[0])
    return np.partition(values, values.shape[1] - k, axis=1)[:, values.shape[1] - k:].sum(axis=1)


def _top_k_rows(values: np.ndarray, rows: np.ndarray, indptr: np.ndarray, k: int) -> np.ndarray:
    """Per row of a CSR matrix (``values`` its data, ``rows`` the row of each entry), the sum
    of the ``k`` largest stored entries (the unstored ones are 0 and all values are >= 0)."""
    order = np.lexsort((-values, rows))              # by row, then largest first
    rank = np.arange(len(values)) - indptr[rows[order]]
    keep = order[rank < k]
    return np.bincount(rows[keep], weights=values[keep], minlength=len(indptr) - 1)
