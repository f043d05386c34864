"""The ACAS Xu ``.nnet`` text format (Kyle Julian's NNet) <-> ``ir.network.Network``.

Layout of a file::

    // header comment lines
    numLayers, inputSize, outputSize, maxLayerSize,
    size_0, size_1, ..., size_numLayers,          (size_0 = inputSize)
    0,                                           (a flag, unused)
    min_1, ..., min_inputSize,
    max_1, ..., max_inputSize,
    mean_1, ..., mean_inputSize, mean_out,
    range_1, ..., range_inputSize, range_out,
    then for each layer k: size_k rows of size_{k-1} weights (one row per target neuron),
    then size_k lines of one bias each.

Fields are comma separated; a trailing comma and blank lines are allowed.  Hidden layers have
ReLU, the last layer none.  The network computes ``y * range_out + mean_out`` where ``y`` is
the plain network applied to ``(clip(x, min, max) - mean_i) / range_i``.

``load_nnet`` folds the input normalization into the first ``Linear``
(``W' = W / range``, ``b' = b - W @ (mean / range)``) and the output de-normalization into the
last (``W'' = range_out * W``, ``b'' = range_out * b + mean_out``); the domain is
``[min, max]``, where the clipping is the identity.  ``save_nnet`` writes means 0 and ranges 1
(the weights already hold the normalization) and every number as ``repr(float)``, which reads
back bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import FrontendError, NetworkError
from common.limits import read_text_file
from ir.network import Domain, Linear, Network, ReLU


# ---- reading --------------------------------------------------------------------------------

def load_nnet(path: str | Path) -> Network:
    """Read a ``.nnet`` file into a dense ``Network`` named after the file's stem.

    Raises ``FrontendError`` naming the file and the line for a malformed file.
    """
    path = Path(path)
    source = str(path)
    text = read_text_file(path, ".nnet network", FrontendError)
    lines = _Lines(text, source)
    counts = lines.ints(4, "numLayers, inputSize, outputSize, maxLayerSize")
    n_layers, n_in, n_out = counts[0], counts[1], counts[2]
    if n_layers < 1 or n_in < 1 or n_out < 1:
        raise lines.error(f"numLayers, inputSize and outputSize must be >= 1, got {counts[:3]}")
    sizes = lines.ints(n_layers + 1, f"{n_layers + 1} layer sizes")
    if sizes[0] != n_in or sizes[-1] != n_out or min(sizes) < 1:
        raise lines.error(f"layer sizes {sizes} must start with inputSize {n_in}, end with "
                          f"outputSize {n_out} and be >= 1")
    lines.floats(1, "the flag line (0)")
    lower = lines.floats(n_in, f"{n_in} input minimums")
    upper = lines.floats(n_in, f"{n_in} input maximums")
    means = lines.floats(n_in + 1, f"{n_in + 1} means (inputs, then the output)")
    ranges = lines.floats(n_in + 1, f"{n_in + 1} ranges (inputs, then the output)")
    if np.any(ranges == 0):
        raise lines.error(f"range {int(np.argmax(ranges == 0)) + 1} is 0")
    weights, biases = [], []
    for k in range(1, n_layers + 1):
        rows = [lines.floats(sizes[k - 1], f"a row of {sizes[k - 1]} weights of layer {k}")
                for _ in range(sizes[k])]
        weights.append(np.array(rows))
        biases.append(np.array([lines.floats(1, f"a bias of layer {k}")[0]
                                for _ in range(sizes[k])]))
    lines.expect_end()
    weights[0], biases[0] = _fold_input(weights[0], biases[0], means[:-1], ranges[:-1])
    weights[-1], biases[-1] = _fold_output(weights[-1], biases[-1], means[-1], ranges[-1])
    layers = []
    for k, (w, b) in enumerate(zip(weights, biases)):
        layers += [Linear(w, b)] + ([ReLU()] if k < n_layers - 1 else [])
    try:
        return Network(tuple(layers), Domain(lower, upper), (n_in,), path.stem)
    except NetworkError as err:
        raise FrontendError(str(err), source) from None


def _fold_input(w: np.ndarray, b: np.ndarray, means: np.ndarray, ranges: np.ndarray):
    """``W @ ((x - mean) / range) + b`` as ``W' @ x + b'``; untouched where it is the identity
    (so a file written by ``save_nnet`` reads back bit for bit)."""
    folded_w = w if np.all(ranges == 1.0) else w / ranges[None, :]
    folded_b = b if np.all(means == 0.0) else b - w @ (means / ranges)
    return folded_w, folded_b


def _fold_output(w: np.ndarray, b: np.ndarray, mean: float, scale: float):
    """``scale * (W @ a + b) + mean`` as ``W'' @ a + b''``."""
    if scale != 1.0:
        w, b = w * scale, b * scale
    if mean != 0.0:
        b = b + mean
    return w, b


class _Lines:
    """The data lines of a ``.nnet`` file (header comments and blank lines skipped), read in
    order; errors name the line number."""

    def __init__(self, text: str, source: str):
        self.source = source
        self.rows = [(i, line) for i, line in enumerate(text.splitlines(), start=1)
                     if line.strip() and not line.lstrip().startswith("//")]
        self.position = 0
        self.last = 0                 # the number of the line read last
        self.end = len(text.splitlines()) + 1

    def error(self, message: str) -> FrontendError:
        """An error about the line read last."""
        return FrontendError(f"line {self.last}: {message}", self.source)

    def fields(self, what: str) -> tuple[int, list[str]]:
        if self.position >= len(self.rows):
            raise FrontendError(f"line {self.end}: the file ends where {what} should be",
                                self.source)
        number, line = self.rows[self.position]
        self.position += 1
        self.last = number
        return number, [f.strip() for f in line.split(",") if f.strip()]

    def floats(self, count: int, what: str) -> np.ndarray:
        number, fields = self.fields(what)
        if len(fields) != count:
            raise FrontendError(f"line {number}: expected {what} ({count} values), found "
                                f"{len(fields)}", self.source)
        try:
            values = np.array([float(f) for f in fields], dtype=np.float64)
        except ValueError as err:
            raise FrontendError(f"line {number}: {what}: {err}", self.source) from None
        if not np.all(np.isfinite(values)):
            raise FrontendError(f"line {number}: {what}: non-finite value", self.source)
        return values

    def ints(self, count: int, what: str) -> list[int]:
        values = self.floats(count, what)
        if np.any(values != np.round(values)):
            raise self.error(f"{what} must be whole numbers")
        return [int(v) for v in values]

    def expect_end(self) -> None:
        if self.position < len(self.rows):
            number, line = self.rows[self.position]
            raise FrontendError(f"line {number}: unexpected data after the last layer: "
                                f"{line.strip()[:40]!r}", self.source)


# ---- writing --------------------------------------------------------------------------------

def save_nnet(net: Network, path: str | Path) -> None:
    """Write a dense network (``Linear, ReLU, ..., Linear``: ReLU on every hidden layer, none
    on the last) as ``.nnet``: means 0, ranges 1, min/max from the domain, numbers as
    ``repr(float)``.  Any other network is a ``FrontendError``."""
    layers = net.layers
    dense = (len(layers) % 2 == 1
             and all(isinstance(layer, Linear) for layer in layers[0::2])
             and all(isinstance(layer, ReLU) for layer in layers[1::2]))
    if not dense:
        from ir.network import describe_span
        raise FrontendError(f".nnet holds dense networks only (linear, relu, ..., linear); "
                            f"{net.name} is {describe_span(layers)}", str(path))
    if net.domain is None:
        raise FrontendError(f".nnet holds the input domain (min/max per input) and {net.name} "
                            "has none; give one (netpatch export --domain LO,HI)", str(path))
    dense_layers = layers[0::2]
    sizes = [net.n_inputs] + [layer.n_out for layer in dense_layers]
    n_in = net.n_inputs
    out = [f"// Neural network '{net.name}' written by netpatch",
           "// The weights hold the input normalization: means 0, ranges 1",
           _row([len(dense_layers), n_in, sizes[-1], max(sizes)], int),
           _row(sizes, int),
           "0,",
           _row(net.domain.lower),
           _row(net.domain.upper),
           _row(np.zeros(n_in + 1)),
           _row(np.ones(n_in + 1))]
    for layer in dense_layers:
        out += [_row(row) for row in layer.weight]
        out += [_row([value]) for value in layer.bias]
    try:
        Path(path).write_text("\n".join(out) + "\n")
    except OSError as err:
        raise FrontendError(f"cannot write: {err}", str(path)) from None


def _row(values, kind=float) -> str:
    return ",".join(repr(kind(v)) for v in values) + ","
