"""The increment/decrement marking (Elboher et al., used by the paper for sign pruning).

A mark is +1 (the neuron should increase), -1 (decrease) or 0 (neutral).  Marks start at the
neurons a property constrains and are propagated backwards one edge-layer at a time.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ir.property import Conjunction


def property_marks(prop: Conjunction, n_outputs: int) -> np.ndarray:
    """Marks of the outputs: in ``sum c_i y_i >= r`` an output with c_i > 0 is +, c_i < 0 is -
    (flipped for ``<=``; ``==`` marks nothing).  Outputs marked both ways are neutral."""
    up = np.zeros(n_outputs, bool)
    down = np.zeros(n_outputs, bool)
    for constraint in prop.constraints:
        if constraint.sense == "==":
            continue
        flip = 1.0 if constraint.sense == ">=" else -1.0
        for i, c in constraint.coeffs:
            (up if c * flip > 0 else down)[i] = True
    return up.astype(int) - down.astype(int)


def propagate_marks(weight, target_marks: np.ndarray,
                    target_alive: np.ndarray | None = None) -> np.ndarray:
    """Marks of an edge-layer's source neurons from those of its targets.

    ``weight`` is (n_out, n_in), dense or sparse.  A source is + when every edge into a marked
    (and alive, i.e. not phase-fixed inactive) target pushes the same way: positive weight
    into +, negative into -; - for the opposite pattern; neutral when mixed or when it feeds
    no marked target.
    """
    marks = target_marks.astype(float)
    if target_alive is not None:
        marks = marks * target_alive
    up, down = (marks > 0).astype(float), (marks < 0).astype(float)
    if sp.issparse(weight):
        pos, neg = (weight > 0).astype(float).T, (weight < 0).astype(float).T
    else:
        pos, neg = (weight > 0).T.astype(float), (weight < 0).T.astype(float)
    any_up = (pos @ up + neg @ down) > 0        # some edge asks the source to increase
    any_down = (pos @ down + neg @ up) > 0
    return np.where(any_up & ~any_down, 1, np.where(any_down & ~any_up, -1, 0))


def marks_before_activation(edge, marks: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Marks of an edge-layer's pre-activations from those of its outputs: an inactive ReLU
    passes nothing on (its mark is dropped); a max pooling passes its mark to the input that
    won."""
    if edge.relu:
        return marks * phase
    if edge.activation == "maxpool":
        out = np.zeros(edge.linear.n_out, dtype=int)
        winners = edge.groups[np.arange(len(edge.groups)), phase]
        out[winners] = marks
        return out
    return marks


def marks_at(net, k: int, output_marks: np.ndarray, phases: list[np.ndarray]) -> np.ndarray:
    """Marks of neuron layer k's pre-activations, propagated down from the network's outputs.

    ``phases[m-1]`` is the phase of neuron layer m (``Network.phases``).
    """
    marks = np.asarray(output_marks)
    for m in range(net.depth, k, -1):
        edge = net.edge(m)
        marks = propagate_marks(edge.linear.weight,
                                marks_before_activation(edge, marks, phases[m - 1]))
    edge = net.edge(k)
    return marks_before_activation(edge, marks, phases[k - 1]) if edge.activation == "maxpool" \
        else marks
