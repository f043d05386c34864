"""Fewer changed inputs at no risk: put back changes the original network does not need."""
from __future__ import annotations

import numpy as np

from ir.property import Conjunction


def shrink(net, x: np.ndarray, x_adv: np.ndarray, conj: Conjunction) -> np.ndarray:
    """Put changed inputs back to their original values, one at a time, while the ORIGINAL
    network still meets ``conj``.  Each round re-simulates every single reset in one float64
    batch and keeps the one that leaves the largest slack."""
    x_adv = np.array(x_adv, dtype=np.float64)
    while True:
        changed = np.flatnonzero(x_adv != x)
        if len(changed) == 0:
            return x_adv
        trials = np.repeat(x_adv[None, :], len(changed), axis=0)
        trials[np.arange(len(changed)), changed] = x[changed]
        outputs = np.atleast_2d(net(trials))
        slack = np.array([conj.slack(y) for y in outputs])
        best = int(np.argmax(slack))
        if slack[best] < 0:
            return x_adv
        x_adv = trials[best]
