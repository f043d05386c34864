"""The network IR: a chain of layers (``ir.layers``) with an input shape and a domain, and
its view as edge-layers, the unit the compiler and the paper work with.

* An **edge-layer** is a maximal run of affine layers followed by at most one activation
  (ReLU or max pooling).  Its affine part is one map ``z = W a + b`` on flat vectors (the
  run composed; ``W`` dense for a plain dense layer, ``scipy.sparse`` otherwise); an
  activation directly after another gets the identity as its affine part.  Edge-layers are
  numbered from 1 at the input, as in the paper: edge-layer ``k`` maps neuron layer ``k-1``
  to neuron layer ``k``; neuron layer 0 is the input.
* An edge-layer is **patchable** when its affine part is one ``Linear`` layer (plus shape-only
  reshapes, which do not move values): its patch ``eps`` has the shape of that weight.
* ``domain`` is the box of valid inputs, ``[lower, upper]`` per input value, when the model
  file states one (a .nnet file does; Keras and ONNX files do not: None).  The domain is part
  of the task: commands take it from ``--domain`` or the file, and ``with_domain`` sets it.
* Layer conventions (weight orientation, layouts, padding order) are stated in
  ``ir.layers``.  All values are float64.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from common.errors import NetworkError
from common.limits import check_values
from ir.layers import (ARRAY_FIELDS, AvgPool2D, Conv2D, Layer, Linear, MaxPool2D, Pad2D,  # noqa: F401
                       ReLU, Reshape, Scale, Shape, Transpose, Weighted, affine_map, apply_affine,
                       is_activation, output_shape, pool_groups)


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


@dataclass(frozen=True, eq=False)
class AffineMap(Weighted):
    """``z = weight @ a + bias`` on flat vectors: the composition of a run of affine layers.
    ``weight`` is ``(n_out, n_in)``, a dense ``ndarray`` or a ``scipy.sparse.csr_matrix``."""

    weight: object
    bias: np.ndarray


@dataclass(frozen=True, eq=False)
class EdgeLayer:
    """One edge-layer: its affine map, its activation, and where it sits in ``layers``.

    ``linear`` is the ``Linear`` layer itself when the edge is patchable, else an
    ``AffineMap``.  ``activation`` is ``"relu"``, ``"maxpool"`` or None; for max pooling
    ``groups[r]`` lists the indices of ``z`` whose maximum is output ``r`` (-1 pads).
    ``span`` is ``(start, stop)``: the positions in ``Network.layers`` it covers.
    """

    index: int  # 1-based
    linear: Linear | AffineMap
    activation: str | None
    span: tuple[int, int]
    groups: np.ndarray | None = None
    patchable: bool = False

    @property
    def relu(self) -> bool:
        return self.activation == "relu"

    @property
    def width(self) -> int:
        """Values of neuron layer ``index`` after the activation."""
        return len(self.groups) if self.groups is not None else self.linear.n_out

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.linear.weight)

    def activate(self, z: np.ndarray) -> np.ndarray:
        """The activation on a batch of pre-activations ``(B, n_out)``."""
        if self.activation == "relu":
            return np.maximum(z, 0.0)
        if self.activation == "maxpool":
            padded = np.concatenate([z, np.full((len(z), 1), -np.inf)], axis=1)
            return padded[:, self.groups].max(axis=2)
        return z

    def phase(self, z: np.ndarray) -> np.ndarray:
        """The phase of one pre-activation vector: ``z > 0`` per neuron (also for an edge
        without activation), or for max pooling the position of each window's maximum in its
        group (the first on ties)."""
        if self.activation == "maxpool":
            padded = np.append(z, -np.inf)
            return np.argmax(padded[self.groups], axis=1)
        return z > 0


@dataclass(frozen=True)
class Trace:
    """Every layer's values for a batch: ``pre[k]`` (pre-activations, ``(B, n_out_k)``) and
    ``post[k]`` (after the activation, ``(B, width_k)``) for neuron layer k.

    ``pre[0] == post[0]`` is the input.
    """

    pre: list[np.ndarray]
    post: list[np.ndarray]

    @property
    def output(self) -> np.ndarray:
        return self.post[-1]


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network of affine layers, ReLUs and max pooling (``ir.layers``)."""

    layers: tuple[Layer, ...]
    domain: Domain | None
    input_shape: tuple[int, ...] = ()
    name: str = "net"
    notes: tuple[str, ...] = ()   # what a frontend changed on the way (e.g. a softmax dropped)
    shapes: tuple[Shape, ...] = field(init=False, repr=False)
    edges: tuple[EdgeLayer, ...] = field(init=False, repr=False)

    def __post_init__(self):
        layers = tuple(_as_float64(layer, i) for i, layer in enumerate(self.layers))
        object.__setattr__(self, "layers", layers)
        if self.domain is not None:
            object.__setattr__(self, "domain", Domain(
                np.asarray(self.domain.lower, dtype=np.float64),
                np.asarray(self.domain.upper, dtype=np.float64)))
        if not self.input_shape:
            n = layers[0].n_in if layers and isinstance(layers[0], Linear) else 0
            object.__setattr__(self, "input_shape", (n,))
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        from ir.verify import verify_layers, verify_network
        verify_layers(layers)
        object.__setattr__(self, "shapes", _shapes(layers, self.input_shape))
        object.__setattr__(self, "edges", _edges(layers, self.shapes))
        verify_network(self)

    # ---- sizes -------------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.shapes[-1]))

    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1]

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
        """Neuron-layer widths after their activations, input first."""
        return [self.n_inputs] + [e.width for e in self.edges]

    def pixel_groups(self) -> np.ndarray | None:
        """For a colour image input (3 axes, more than one channel): each input value's pixel
        position (``y * W + x``), so that a "pixel" counts a position whatever channels
        change; None for other inputs, whose pixels are their values.  The layout is the
        first convolution's or pooling's, else channels last when the last axis is the
        smallest."""
        if len(self.input_shape) != 3:
            return None
        layout = next((layer.layout for layer in self.layers if hasattr(layer, "layout")),
                      "NHWC" if self.input_shape[-1] <= self.input_shape[0] else "NCHW")
        height, width, channels = (self.input_shape if layout == "NHWC" else
                                   (self.input_shape[1], self.input_shape[2], self.input_shape[0]))
        if channels == 1:
            return None
        position = np.arange(height * width).reshape(height, width)
        grid = np.broadcast_to(position[:, :, None], (height, width, channels))
        return (grid if layout == "NHWC" else grid.transpose(2, 0, 1)).ravel().copy()

    def is_dense(self) -> bool:
        """Only plain dense layers and ReLUs (every edge-layer patchable)."""
        return all(isinstance(layer, (Linear, ReLU)) for layer in self.layers)

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
            z = apply_affine(e.linear.weight, e.linear.bias, a)
            a = e.activate(z)
            pre.append(z)
            post.append(a)
        return Trace(pre, post)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch, or for one input (then a vector)."""
        out = self.simulate(x).output
        return out[0] if np.ndim(x) == 1 else out

    def phases(self, x: np.ndarray) -> list[np.ndarray]:
        """The phases of one input, one array per edge-layer (``EdgeLayer.phase``)."""
        trace = self.simulate(np.asarray(x, dtype=np.float64).reshape(1, -1))
        return [e.phase(trace.pre[e.index][0]) for e in self.edges]

    # ---- transformations ---------------------------------------------------------------
    def prefix(self, k: int, keep_activation: bool = False) -> "Network":
        """Edge-layers ``1..k``; the outputs are neuron layer k's pre-activations ``z_k``
        (its activation dropped) unless ``keep_activation``."""
        edge = self.edge(k)
        stop = edge.span[1] if keep_activation or edge.activation is None else edge.span[1] - 1
        return replace(self, layers=self.layers[:stop], name=f"{self.name}[:{k}]")

    def with_domain(self, domain: Domain | None) -> "Network":
        """A copy with another domain (None: none)."""
        return replace(self, domain=domain)

    def with_patch(self, k: int, eps: np.ndarray) -> "Network":
        """A copy whose edge-layer k has weight ``W_k + eps`` (``eps`` shaped like ``W_k``)."""
        edge = self.edge(k)
        if not edge.patchable:
            raise NetworkError("only a dense edge-layer can be patched; this one is "
                               + describe_span(self.layers[edge.span[0]:edge.span[1]]), layer=k)
        eps = np.asarray(eps, dtype=np.float64)
        if eps.shape != edge.linear.weight.shape:
            raise NetworkError(f"patch has shape {eps.shape}, weight is "
                               f"{edge.linear.weight.shape}", layer=k)
        patched = Linear(edge.linear.weight + eps, edge.linear.bias)
        layers = tuple(patched if layer is edge.linear else layer for layer in self.layers)
        return replace(self, layers=layers)


def describe_span(layers) -> str:
    from ir.layers import kind
    return " + ".join(kind(layer) for layer in layers) or "the identity"


def _shapes(layers: tuple[Layer, ...], input_shape: Shape) -> tuple[Shape, ...]:
    check_values(input_shape, "the input", NetworkError)
    shapes, dense = [tuple(input_shape)], 0
    for position, layer in enumerate(layers):
        dense += isinstance(layer, Linear)
        try:
            shapes.append(output_shape(layer, shapes[-1]))
            check_values(shapes[-1], f"the output of {type(layer).__name__}", NetworkError)
        except NetworkError as err:
            if position == 0:   # the first layer: the input shape is the odd one out
                raise NetworkError(f"input shape {tuple(input_shape)} does not fit layer 1 "
                                   f"({type(layer).__name__}): {err}") from None
            if isinstance(layer, Linear):   # dense layers are named by their count, as in .nnir
                raise NetworkError(str(err).removeprefix("linear: "), dense, position) from None
            raise NetworkError(f"layer {position + 1} ({type(layer).__name__}): {err}",
                               position=position) from None
    return tuple(shapes)


def _edges(layers: tuple[Layer, ...], shapes: tuple[Shape, ...]) -> tuple[EdgeLayer, ...]:
    """Group the layers into edge-layers: each activation closes one; a trailing run of
    affine layers is a last edge without activation (a run of reshapes only adds no edge)."""
    edges, start = [], 0
    for i, layer in enumerate(layers):
        if not is_activation(layer):
            continue
        groups = pool_groups(layer, shapes[i]) if isinstance(layer, MaxPool2D) else None
        activation = "maxpool" if groups is not None else "relu"
        edges.append(_edge(len(edges) + 1, layers, shapes, start, i, activation, groups))
        start = i + 1
    if any(not isinstance(layer, Reshape) for layer in layers[start:]):
        edges.append(_edge(len(edges) + 1, layers, shapes, start, len(layers), None, None))
    return tuple(edges)


def _edge(index, layers, shapes, start, stop, activation, groups) -> EdgeLayer:
    """The edge-layer of the affine run ``layers[start:stop]`` and the activation at ``stop``."""
    run = layers[start:stop]
    dense = [layer for layer in run if isinstance(layer, Linear)]
    span = (start, stop + (activation is not None))
    if len(dense) == 1 and all(isinstance(layer, (Linear, Reshape)) for layer in run):
        return EdgeLayer(index, dense[0], activation, span, groups, patchable=True)
    weight = bias = None     # the identity until a layer says otherwise
    for position in range(start, stop):
        if isinstance(layers[position], Reshape):
            continue
        matrix, offset = affine_map(layers[position], shapes[position])
        if weight is None:   # one layer (the common case) reuses its cached map as it is
            weight, bias = matrix, offset
        else:
            weight, bias = matrix @ weight, matrix @ bias + offset
    if weight is None:
        n = int(np.prod(shapes[start]))
        weight, bias = _identity(n), np.zeros(n)
    if not sp.issparse(weight):
        weight = np.asarray(weight)
    elif weight.shape[0] * weight.shape[1] <= 4096 and weight.nnz > 0.5 * np.prod(weight.shape):
        weight = weight.toarray()    # small and dense: an ndarray is simpler and faster
    return EdgeLayer(index, AffineMap(weight, np.asarray(bias, dtype=np.float64)), activation,
                     span, groups)


@functools.lru_cache(maxsize=16)
def _identity(n: int) -> sp.csr_matrix:
    return sp.identity(n, format="csr")


def _as_float64(layer: Layer, position: int) -> Layer:
    fields = ARRAY_FIELDS.get(type(layer))
    if fields is None:
        if not isinstance(layer, (ReLU, MaxPool2D, AvgPool2D, Pad2D, Reshape, Transpose)):
            raise NetworkError(f"unknown layer type {type(layer).__name__}", layer=position)
        return layer
    values = [getattr(layer, name) for name in fields]
    if all(isinstance(v, np.ndarray) and v.dtype == np.float64 and not v.flags.writeable
           and v.flags.c_contiguous for v in values):
        return layer     # already frozen: keep the object (its cached linear map stays valid)
    arrays = {}
    for name, value in zip(fields, values):
        # C order: a Fortran-ordered (transposed) kernel makes ``v @ W`` ~80x slower
        array = np.array(value, dtype=np.float64, order="C")
        array.setflags(write=False)
        arrays[name] = array
    return replace(layer, **arrays)
