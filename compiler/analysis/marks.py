"""The increment/decrement marking (Elboher et al., used by the paper for sign pruning).

A mark is +1 (the neuron should increase), -1 (decrease) or 0 (neutral).  Marks start at the
neurons a property constrains and are propagated backwards one edge-layer at a time.
"""
from __future__ import annotations

import numpy as np

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


def propagate_marks(weight: np.ndarray, target_marks: np.ndarray,
                    target_alive: np.ndarray | None = None) -> np.ndarray:
    """Marks of an edge-layer's source neurons from those of its targets.

    ``weight`` is (n_out, n_in).  A source is + when every edge into a marked (and alive,
    i.e. not phase-fixed inactive) target pushes the same way: positive weight into +,
    negative into -; - for the opposite pattern; neutral when mixed or when it feeds no
    marked target.
    """
    marks = target_marks.astype(float)
    if target_alive is not None:
        marks = marks * target_alive
    push = np.sign(weight) * marks[:, None]        # (n_out, n_in): the sign each edge asks for
    any_up = np.any(push > 0, axis=0)
    any_down = np.any(push < 0, axis=0)
    return np.where(any_up & ~any_down, 1, np.where(any_down & ~any_up, -1, 0))


def marks_at(net, k: int, output_marks: np.ndarray, phases: list[np.ndarray]) -> np.ndarray:
    """Marks of neuron layer k, propagated down from the network's outputs.

    ``phases[m-1]`` is the phase of neuron layer m; a neuron that is inactive passes nothing
    on, so its mark is not propagated.
    """
    marks = np.asarray(output_marks)
    for m in range(net.depth, k, -1):
        edge = net.edge(m)
        alive = phases[m - 1] if edge.relu else None
        marks = propagate_marks(edge.linear.weight, marks, alive)
    return marks
