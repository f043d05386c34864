"""The network IR: a chain of affine edge-layers, each optionally followed by a ReLU.

Conventions (the one place they are stated):

* ``Linear.weight`` has shape ``(n_out, n_in)``: row ``j`` holds the weights INTO target
  neuron ``j``, so ``z = weight @ a + bias``.  Keras stores kernels as ``(n_in, n_out)``;
  frontends transpose once.
* Edge-layers are numbered from 1 at the input, as in the paper.  Edge-layer ``k`` maps
  neuron layer ``k-1`` to neuron layer ``k``; neuron layer 0 is the input.
* All values are float64.  Inputs are flat vectors; ``input_shape`` only records how to
  show them (e.g. ``(28, 28)``).
* ``domain`` is the box of valid inputs, ``[lower, upper]`` per input value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np

from ir.errors import NetworkError


@dataclass(frozen=True, eq=False)
class Linear:
    """``z = weight @ a + bias`` with ``weight`` of shape ``(n_out, n_in)``."""

    weight: np.ndarray
    bias: np.ndarray

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True)
class ReLU:
    """``a = max(0, z)`` elementwise."""


Layer = Union[Linear, ReLU]


@dataclass(frozen=True, eq=False)
class Domain:
    """The box ``lower <= x <= upper`` of valid inputs."""

    lower: np.ndarray
    upper: np.ndarray

    @staticmethod
    def box(n: int, lo: float = 0.0, hi: float = 1.0) -> "Domain":
        return Domain(np.full(n, lo, dtype=np.float64), np.full(n, hi, dtype=np.float64))

    def contains(self, x: np.ndarray, tol: float = 0.0) -> bool:
        return bool(np.all(x >= self.lower - tol) and np.all(x <= self.upper + tol))

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lower, self.upper)


@dataclass(frozen=True)
class EdgeLayer:
    """A view of one edge-layer: its affine map and whether a ReLU follows it."""

    index: int  # 1-based
    linear: Linear
    relu: bool


@dataclass(frozen=True)
class Trace:
    """Every layer's values for a batch: ``pre[k]`` and ``post[k]`` for neuron layer k.

    ``pre[0] == post[0]`` is the input.  Arrays have shape ``(batch, n_k)``.
    """

    pre: list[np.ndarray]
    post: list[np.ndarray]

    @property
    def output(self) -> np.ndarray:
        return self.post[-1]


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward ReLU network: ``layers`` alternate Linear and optional ReLU."""

    layers: tuple[Layer, ...]
    domain: Domain
    input_shape: tuple[int, ...] = ()
    name: str = "net"
    edges: tuple[EdgeLayer, ...] = field(init=False, repr=False)

    def __post_init__(self):
        layers = tuple(_as_float64(layer, i) for i, layer in enumerate(self.layers))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "domain", Domain(
            np.asarray(self.domain.lower, dtype=np.float64),
            np.asarray(self.domain.upper, dtype=np.float64)))
        if not self.input_shape:
            n = layers[0].n_in if layers and isinstance(layers[0], Linear) else 0
            object.__setattr__(self, "input_shape", (n,))
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "edges", _edges(layers))
        from ir.verify import verify_network
        verify_network(self)

    # ---- sizes -------------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return self.edges[0].linear.n_in

    @property
    def n_outputs(self) -> int:
        return self.edges[-1].linear.n_out

    @property
    def depth(self) -> int:
        """Number of edge-layers L."""
        return len(self.edges)

    def edge(self, k: int) -> EdgeLayer:
        """Edge-layer ``k`` (1-based)."""
        if not 1 <= k <= self.depth:
            raise NetworkError(f"edge-layer {k} is out of range: this network has edge-layers "
                               f"1..{self.depth}")
        return self.edges[k - 1]

    def widths(self) -> list[int]:
        """Neuron-layer widths, input first."""
        return [self.n_inputs] + [e.linear.n_out for e in self.edges]

    # ---- simulation --------------------------------------------------------------------
    def check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.n_inputs or x.ndim not in (1, 2):
            raise NetworkError(f"input has shape {x.shape}, but {self.name} takes "
                               f"{self.n_inputs} values per input")
        return x

    def simulate(self, x: np.ndarray) -> Trace:
        """Run a batch ``(B, n)`` (or one input ``(n,)``) in float64; keep every layer."""
        x = self.check_input(x)
        a = np.atleast_2d(x)
        pre, post = [a], [a]
        for e in self.edges:
            z = a @ e.linear.weight.T + e.linear.bias
            a = np.maximum(z, 0.0) if e.relu else z
            pre.append(z)
            post.append(a)
        return Trace(pre, post)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch, or for one input (then a vector)."""
        out = self.simulate(x).output
        return out[0] if np.ndim(x) == 1 else out

    def phases(self, x: np.ndarray) -> list[np.ndarray]:
        """ReLU phases of one input: for each edge-layer, True where ``z > 0``."""
        trace = self.simulate(np.asarray(x, dtype=np.float64).reshape(1, -1))
        return [trace.pre[k][0] > 0 for k in range(1, self.depth + 1)]

    # ---- transformations ---------------------------------------------------------------
    def prefix(self, k: int, keep_activation: bool = False) -> "Network":
        """Edge-layers ``1..k``; the outputs are neuron layer k's pre-activations ``z_k``
        (its ReLU dropped) unless ``keep_activation``."""
        edge = self.edge(k)
        layers = self.layers[:_layer_end(self.layers, k)]
        if keep_activation and edge.relu:
            layers = layers + (ReLU(),)
        return replace(self, layers=layers, name=f"{self.name}[:{k}]")

    def with_patch(self, k: int, eps: np.ndarray) -> "Network":
        """A copy whose edge-layer k has weight ``W_k + eps`` (``eps`` shaped like ``W_k``)."""
        edge = self.edge(k)
        eps = np.asarray(eps, dtype=np.float64)
        if eps.shape != edge.linear.weight.shape:
            raise NetworkError(f"patch has shape {eps.shape}, weight is "
                               f"{edge.linear.weight.shape}", layer=k)
        patched = Linear(edge.linear.weight + eps, edge.linear.bias)
        layers = tuple(patched if layer is edge.linear else layer for layer in self.layers)
        return replace(self, layers=layers)


def _layer_end(layers: tuple[Layer, ...], k: int) -> int:
    """Position just after the k-th Linear in ``layers``."""
    seen = 0
    for i, layer in enumerate(layers):
        if isinstance(layer, Linear):
            seen += 1
            if seen == k:
                return i + 1
    raise NetworkError(f"edge-layer {k} not found")


def _as_float64(layer: Layer, position: int) -> Layer:
    if isinstance(layer, Linear):
        weight = np.array(layer.weight, dtype=np.float64)
        bias = np.array(layer.bias, dtype=np.float64)
        weight.setflags(write=False)
        bias.setflags(write=False)
        return Linear(weight, bias)
    if isinstance(layer, ReLU):
        return layer
    raise NetworkError(f"unknown layer type {type(layer).__name__}", layer=position)


def _edges(layers: tuple[Layer, ...]) -> tuple[EdgeLayer, ...]:
    edges = []
    for i, layer in enumerate(layers):
        if isinstance(layer, Linear):
            relu = i + 1 < len(layers) and isinstance(layers[i + 1], ReLU)
            edges.append(EdgeLayer(len(edges) + 1, layer, relu))
    return tuple(edges)
