"""Data sets: ``.npz`` with arrays ``x`` (N, n) and ``y`` (N,), or CSV (label first, then values)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from common.errors import DataError
from common.limits import npz_shapes


def load_dataset(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Inputs as float64 ``(N, n)`` (flattened) and integer labels ``(N,)``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npz":
            npz_shapes(path, DataError)
            with np.load(path, allow_pickle=False) as f:
                missing = {"x", "y"} - set(f.files)
                if missing:
                    raise DataError(f"{path}: missing array(s) {sorted(missing)}; an .npz data set "
                                    f"holds 'x' (inputs) and 'y' (labels), found {sorted(f.files)}")
                x, y = f["x"], f["y"]
        elif path.suffix.lower() == ".csv":
            table = np.loadtxt(path, delimiter=",", ndmin=2)
            x, y = table[:, 1:], table[:, 0]
        else:
            raise DataError(f"{path}: unknown data format; use .npz (x, y) or .csv (label, values...)")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read data set: {err}") from None
    if np.ndim(x) < 1 or len(x) == 0:
        raise DataError(f"{path}: 'x' holds no rows (shape {np.shape(x)}); a data set is an "
                        "array of inputs, one per row")
    if not np.issubdtype(np.asarray(y).dtype, np.number):
        raise DataError(f"{path}: labels must be numbers, found {np.asarray(y).dtype} values")
    try:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: inputs must be numbers, found {np.asarray(x).dtype} "
                        "values") from None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: labels have shape {y.shape}, expected ({len(x)},)")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: inputs hold non-finite values")
    if not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"{path}: labels must be whole numbers")
    return x, y.astype(np.int64)


def load_inputs(path: str | Path, n_inputs: int) -> np.ndarray:
    """Inputs only, float64 ``(N, n_inputs)``: an .npz's ``x``, or a CSV whose rows are the
    inputs themselves (``n_inputs`` columns, e.g. ACAS Xu's inputs.csv) or a label and then
    the inputs (``n_inputs + 1`` columns)."""
    path = Path(path)
    if path.suffix.lower() == ".csv" and path.exists():
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as err:
            raise DataError(f"{path}: cannot read data set: {err}") from None
        if table.shape[1] == n_inputs:
            if not np.all(np.isfinite(table)):
                raise DataError(f"{path}: inputs hold non-finite values")
            return table
    x, _ = load_dataset(path)
    if x.shape[1] != n_inputs:
        raise DataError(f"{path}: rows have {x.shape[1]} values, the network takes {n_inputs}")
    return x


def check_fits(x: np.ndarray, y: np.ndarray, n_inputs: int, n_outputs: int, source: str,
               domain=None) -> None:
    """Raise a DataError naming the mismatch when the data does not fit the network (and,
    given a ``domain``, when a value lies outside it: row, column and value)."""
    if x.shape[1] != n_inputs:
        raise DataError(f"{source}: inputs have {x.shape[1]} values each, but the network takes "
                        f"{n_inputs}")
    bad = (y < 0) | (y >= n_outputs)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise DataError(f"{source}: label {y[i]} of row {i} is out of range: the network has "
                        f"{n_outputs} outputs (labels 0..{n_outputs - 1})")
    if domain is not None and len(x):
        outside = (x < domain.lower) | (x > domain.upper)
        if np.any(outside):
            r, c = (int(v) for v in np.argwhere(outside)[0])
            lo, hi = float(domain.lower[c]), float(domain.upper[c])
            raise DataError(f"{source}: row {r}, column {c} holds {float(x[r, c])!r}, outside "
                            f"the domain [{lo!r}, {hi!r}] "
                            f"({int(outside.any(axis=1).sum())} rows have such values); give "
                            "the data's range with --domain LO,HI")
