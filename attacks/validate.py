"""A solver's answer is a claim: these checks decide it by float64 re-simulation."""
from __future__ import annotations

import numpy as np

from compiler.queries import NeuronTargets, Target

# A property re-simulated in float64 counts as holding when it fails by no more than this.
VALIDATION_TOL = 1e-9


def count_pixels(net, delta: np.ndarray) -> int:
    """Changed pixels: changed values, or for a colour image changed positions
    (``Network.pixel_groups``)."""
    groups = net.pixel_groups()
    changed = np.asarray(delta) != 0
    return int(changed.sum()) if groups is None else len(np.unique(groups[changed]))


def validate(net, x, x_adv, label: int, linf: float, max_pixels: int | None) -> str:
    """Empty when ``x_adv`` is a valid adversarial input for ``x`` of class ``label`` (inside
    the domain, the L-inf and pixel budgets, and the ORIGINAL network no longer predicts
    ``label``), else the reason it is not."""
    if not net.domain.contains(x_adv):
        return "outside the input domain"
    delta = x_adv - x
    if np.max(np.abs(delta), initial=0.0) > linf + 1e-12:
        return f"L-inf {np.max(np.abs(delta)):.6g} exceeds {linf}"
    pixels = count_pixels(net, delta)
    if max_pixels is not None and pixels > max_pixels:
        return f"{pixels} pixels changed, budget {max_pixels}"
    if int(np.argmax(net(x_adv))) == int(label):
        return "the original network still predicts the label"
    return ""


def target_holds(net, inputs: np.ndarray, target: Target, relaxed: bool = True) -> bool:
    """Does ``net`` meet ``target`` on every input (float64, within ``VALIDATION_TOL``)?"""
    outputs = np.atleast_2d(net(np.atleast_2d(inputs)))
    if isinstance(target, NeuronTargets):
        return all(target.holds(y, relaxed=relaxed, tol=VALIDATION_TOL) for y in outputs)
    return all(target.holds(y, tol=VALIDATION_TOL) for y in outputs)
