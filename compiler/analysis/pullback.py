"""A property on the outputs as a property on an inner neuron layer (or on the input), through
the network linearized at fixed phases.

With phases fixed (a ReLU passes its pre-activation or 0; a max pooling passes the input that
won), the network above neuron layer k is affine: ``y = J z_k + c``, and ``sum_i w_i y_i >= r``
becomes ``(w J) z_k >= r - w c``.  ``w J`` is computed backwards, one vector-Jacobian product
per layer (``W^T v`` with sparse ``W`` for convolutions), never as a matrix ``J``: a
convolutional layer has 12,544 neurons, and ``J`` would not fit in memory.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ir.property import Conjunction, Constraint


def pull_back(net, k: int, target: Conjunction, phases: list[np.ndarray]) -> Conjunction:
    """``target`` (over the outputs) as a property over neuron layer k's pre-activations
    ``z_k``, through the layers above k (and k's own activation) linearized at ``phases``
    (``phases[m-1]`` is the phase of neuron layer m, as ``Network.phases`` gives)."""
    rows, offset = _backward(net, _rows(target, net.n_outputs), phases, down_to=k)
    rows = _through_activation(net.edge(k), rows, phases[k - 1])
    return _constraints(target, rows, offset)


def input_function(net, target: Conjunction, phases: list[np.ndarray]):
    """Each constraint's left side as an affine function of the input: ``(gains, offsets)``
    with ``lhs(y(x)) = gains[r] @ x + offsets[r]`` for the network linearized at ``phases``."""
    return _backward(net, _rows(target, net.n_outputs), phases, down_to=0)


def _rows(target: Conjunction, n_outputs: int) -> np.ndarray:
    rows = np.zeros((len(target.constraints), n_outputs))
    for r, constraint in enumerate(target.constraints):
        for i, c in constraint.coeffs:
            rows[r, i] = c
    return rows


def _backward(net, rows: np.ndarray, phases, down_to: int):
    """Coefficients over the post-activation values of neuron layer ``down_to`` (0: the
    input), and the constant collected on the way."""
    offset = np.zeros(len(rows))
    for m in range(net.depth, down_to, -1):
        edge = net.edge(m)
        rows = _through_activation(edge, rows, phases[m - 1])
        offset = offset + rows @ edge.linear.bias
        weight = edge.linear.weight
        rows = np.asarray((weight.T @ rows.T).T) if sp.issparse(weight) else rows @ weight
    return rows, offset


def _through_activation(edge, rows: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Coefficients over an edge's post-activation values -> over its pre-activations."""
    if edge.activation == "relu":
        return rows * phase
    if edge.activation == "maxpool":
        winners = edge.groups[np.arange(len(edge.groups)), phase]
        return np.stack([np.bincount(winners, weights=row, minlength=edge.linear.n_out)
                         for row in rows]) if len(rows) else np.zeros((0, edge.linear.n_out))
    return rows


def _constraints(target: Conjunction, rows: np.ndarray, offset: np.ndarray) -> Conjunction:
    constraints = []
    for constraint, row, shift in zip(target.constraints, rows, offset):
        coeffs = tuple((int(i), float(row[i])) for i in np.flatnonzero(row))
        constraints.append(Constraint(coeffs, constraint.sense, float(constraint.rhs - shift)))
    return Conjunction(tuple(constraints))
