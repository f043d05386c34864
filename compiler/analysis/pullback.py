"""A property on the outputs as a property on an inner neuron layer, through the network
above it linearized at fixed phases."""
from __future__ import annotations

import numpy as np

from ir.property import Conjunction, Constraint


def pull_back(net, k: int, target: Conjunction, phases: list[np.ndarray]) -> Conjunction:
    """The property ``target`` on the outputs as a property on neuron layer k's
    pre-activations, through the network above k linearized at ``phases``.

    With phases fixed, ``y = J z_k + c`` is affine; ``sum_i w_i y_i >= r`` becomes
    ``(w J) z_k >= r - w c``.  ``phases[m-1]`` is the phase of neuron layer m.
    """
    n = net.edge(k).linear.n_out
    jac, offset = np.eye(n), np.zeros(n)
    for m in range(k, net.depth + 1):
        edge = net.edge(m)
        if m > k:
            jac = edge.linear.weight @ jac
            offset = edge.linear.weight @ offset + edge.linear.bias
        if edge.relu:
            jac = jac * phases[m - 1][:, None]
            offset = offset * phases[m - 1]
    constraints = []
    for constraint in target.constraints:
        w = np.zeros(len(offset))
        for i, c in constraint.coeffs:
            w[i] = c
        row = w @ jac
        coeffs = tuple((int(i), float(row[i])) for i in np.flatnonzero(row))
        constraints.append(Constraint(coeffs, constraint.sense, float(constraint.rhs - w @ offset)))
    return Conjunction(tuple(constraints))
