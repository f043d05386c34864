"""modifyEdgeLayer as a problem: change ``eps`` to the weights of edge-layer k so that a
target holds on every input.  Returns the problem and the decoder that turns a solution back
into ``eps``.

Objective: L-inf (``max |eps|``, variable ``eps_max``) or L1 (``sum |eps|``).

Two formulations (the caller chooses):

* full: ``eps = eps_pos - eps_neg`` per weight, for any number of inputs;
* reduced (METHOD.md's patch reduction, exact for ONE input): with the source vector ``a``
  fixed, the change of target j is ``d_j = sum_i eps_ji a_i``; ``|eps| <= M`` reaches exactly
  ``|d_j| <= M ||a||_1`` and the cheapest L1 way to get ``d_j`` costs ``|d_j| / ||a||_inf``.
  So only ``d_pos``, ``d_neg`` (n_out each) are variables; the decoder spreads ``d`` back
  over the weights.

The problem marks weight changes whose source neuron is 0 on every input (``inert``) and the
half of each pair the increment/decrement marking rules out (``wrong_sign``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import NetworkError
from compiler.problem import Problem, ProblemBuilder
from compiler.queries.tail import encode_tail, le_max_rows, tail_bounds
from compiler.queries.targets import Target, lower_target, marks_at_trace

OBJECTIVES = ("linf", "l1")


def default_eps_bound(weight: np.ndarray) -> float:
    """The largest weight change considered: twice the largest weight of the layer."""
    return 2.0 * float(np.max(np.abs(weight))) or 1.0


@dataclass(frozen=True, eq=False)
class FullPatchDecoder:
    """``eps = eps_pos - eps_neg`` read from a solution."""

    eps_pos: np.ndarray      # variable indices, shaped like W_k
    eps_neg: np.ndarray

    def decode(self, x: np.ndarray) -> np.ndarray:
        return x[self.eps_pos] - x[self.eps_neg]


@dataclass(frozen=True, eq=False)
class ReducedPatchDecoder:
    """``eps`` from the per-target changes ``d``: L-inf spreads ``d_j`` over every source,
    ``eps_ji = d_j sign(a_i) / ||a||_1``; L1 puts it all on the largest source."""

    d_pos: np.ndarray
    d_neg: np.ndarray
    source: np.ndarray
    objective: str

    def decode(self, x: np.ndarray) -> np.ndarray:
        d = x[self.d_pos] - x[self.d_neg]
        eps = np.zeros((len(d), len(self.source)))
        if not np.any(self.source):
            return eps
        if self.objective == "linf":
            return np.outer(d, np.sign(self.source)) / np.sum(np.abs(self.source))
        i = int(np.argmax(np.abs(self.source)))
        eps[:, i] = d / self.source[i]
        return eps


PatchDecoder = FullPatchDecoder | ReducedPatchDecoder


def patch_query(net, k: int, inputs: np.ndarray, target: Target, objective: str = "linf",
                eps_bound: float | None = None, free_patched_phases: bool = False,
                phase_net=None, reduced: bool = False,
                bounds_method: str = "interval") -> tuple[Problem, PatchDecoder]:
    """Blocks: ``eps_pos``, ``eps_neg`` (shape of W_k) or ``d_pos``, ``d_neg`` (reduced),
    ``eps_max`` (L-inf only), and per input ``z{k}``, ``a{m}``, ``z{m}`` up to the output.

    ``free_patched_phases`` leaves the ReLUs of neuron layer k (those the patch feeds
    directly) without a recorded phase, so phase fixing keeps them exact (binaries) and the
    patch may switch inactive neurons on.  ``phase_net`` (default ``net``) is the network
    whose phases on the inputs the ReluBlocks record: pass a patched network to re-linearize
    at a candidate patch.  ``bounds_method`` bounds the layers above k (big-M constants of
    free phases).
    """
    if objective not in OBJECTIVES:
        raise NetworkError(f"unknown patch objective {objective!r}; use one of {OBJECTIVES}")
    edge = net.edge(k)
    if not edge.patchable:
        raise NetworkError("only a dense edge-layer can be patched", layer=k)
    inputs = np.atleast_2d(net.check_input(inputs))
    trace = net.simulate(inputs)
    phase_trace = trace if phase_net is None else phase_net.simulate(inputs)
    weight = edge.linear.weight
    bound = default_eps_bound(weight) if eps_bound is None else float(eps_bound)
    if reduced:
        if len(inputs) != 1:
            raise NetworkError("the reduced patch formulation holds for one input only")
        return _reduced(net, k, trace, phase_trace, target, objective, bound,
                        free_patched_phases, bounds_method)
    return _full(net, k, inputs, trace, phase_trace, target, objective, bound,
                 free_patched_phases, bounds_method)


def _full(net, k, inputs, trace, phase_trace, target, objective, bound, free_patched_phases,
          bounds_method):
    n_out, n_in = net.edge(k).linear.weight.shape
    b = ProblemBuilder(f"patch_{net.name}_layer{k}")
    eps_pos = b.add_vars("eps_pos", (n_out, n_in), 0.0, bound)
    eps_neg = b.add_vars("eps_neg", (n_out, n_in), 0.0, bound)
    marks = marks_at_trace(net, k, target, phase_trace)
    for t in range(len(inputs)):
        tag = "" if len(inputs) == 1 else f"_in{t}"
        source, z0 = trace.post[k - 1][t], trace.pre[k][t]
        reach = bound * np.sum(np.abs(source))
        z = b.add_vars(f"z{k}{tag}", n_out, z0 - reach, z0 + reach)
        # z_j - sum_i a_i (eps_pos_ji - eps_neg_ji) = z0_j
        j, i = np.nonzero(np.broadcast_to(source != 0, (n_out, n_in)))
        rows = np.concatenate([np.arange(n_out), j, j])
        cols = np.concatenate([z, eps_pos[j, i], eps_neg[j, i]])
        vals = np.concatenate([np.ones(n_out), -source[i], source[i]])
        b.add_rows(f"patch{k}{tag}", rows, cols, vals, z0, z0, n_out)
        lows, highs = tail_bounds(net, k, z0 - reach, z0 + reach, bounds_method)
        y = encode_tail(b, net, k, z, phase_trace, t, lows, highs, tag,
                        free_first=free_patched_phases)
        lower_target(b, y, target, f"target{tag}")

    if objective == "linf":
        m = b.add_vars("eps_max", (1,), 0.0, bound)
        le_max_rows(b, "eps_le_max", [eps_pos.ravel(), eps_neg.ravel()], [1.0, 1.0], m)
        b.minimize(m, 1.0)
    else:
        b.minimize(eps_pos, 1.0)
        b.minimize(eps_neg, 1.0)

    inert_source = np.all(trace.post[k - 1] == 0, axis=0)               # (n_in,)
    source_sign = _consistent_sign(trace.post[k - 1])                   # (n_in,)
    helpful = marks[:, None] * source_sign[None, :]                     # (n_out, n_in)
    b.inert = np.zeros(b.n_vars, bool)
    b.inert[eps_pos[:, inert_source]] = True
    b.inert[eps_neg[:, inert_source]] = True
    b.wrong_sign = np.zeros(b.n_vars, bool)
    b.wrong_sign[eps_neg[helpful > 0]] = True
    b.wrong_sign[eps_pos[helpful < 0]] = True
    return b.build(), FullPatchDecoder(eps_pos, eps_neg)


def _reduced(net, k, trace, phase_trace, target, objective, bound, free_patched_phases,
             bounds_method):
    source, z0 = trace.post[k - 1][0], trace.pre[k][0]
    n_out = len(z0)
    l1_norm, max_abs = float(np.sum(np.abs(source))), float(np.max(np.abs(source), initial=0.0))
    reach = bound * l1_norm
    b = ProblemBuilder(f"patch_{net.name}_layer{k}")
    d_pos = b.add_vars("d_pos", n_out, 0.0, reach)
    d_neg = b.add_vars("d_neg", n_out, 0.0, reach)
    z = b.add_vars(f"z{k}", n_out, z0 - reach, z0 + reach)
    # z_j - d_pos_j + d_neg_j = z0_j
    b.add_rows(f"patch{k}", np.tile(np.arange(n_out), 3), np.concatenate([z, d_pos, d_neg]),
               np.concatenate([np.ones(n_out), -np.ones(n_out), np.ones(n_out)]), z0, z0, n_out)
    lows, highs = tail_bounds(net, k, z0 - reach, z0 + reach, bounds_method)
    y = encode_tail(b, net, k, z, phase_trace, 0, lows, highs, "", free_first=free_patched_phases)
    lower_target(b, y, target, "target")
    if objective == "linf":
        m = b.add_vars("eps_max", (1,), 0.0, bound)
        # d_j <= ||a||_1 * M
        le_max_rows(b, "d_le_reach", [d_pos, d_neg], [l1_norm, l1_norm], m)
        b.minimize(m, 1.0)
    elif max_abs > 0:
        b.minimize(d_pos, 1.0 / max_abs)
        b.minimize(d_neg, 1.0 / max_abs)
    marks = marks_at_trace(net, k, target, phase_trace)
    b.inert = np.zeros(b.n_vars, bool)
    if l1_norm == 0:
        b.inert[d_pos] = b.inert[d_neg] = True
    b.wrong_sign = np.zeros(b.n_vars, bool)
    b.wrong_sign[d_neg[marks > 0]] = True
    b.wrong_sign[d_pos[marks < 0]] = True
    return b.build(), ReducedPatchDecoder(d_pos, d_neg, source, objective)


def _consistent_sign(values: np.ndarray) -> np.ndarray:
    """Per column: +1 / -1 when every nonzero value has that sign, else 0."""
    pos = np.all(values >= 0, axis=0) & np.any(values > 0, axis=0)
    neg = np.all(values <= 0, axis=0) & np.any(values < 0, axis=0)
    return pos.astype(int) - neg.astype(int)
