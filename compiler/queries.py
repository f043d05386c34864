"""Queries: (network, inputs, target) -> Problem.  The only module that reads networks to
build problems; everything after it (passes, backends) sees the problem IR only.

Both queries encode the network above the perturbed neuron layer the same way (``_encode_tail``):
for every hidden layer m a block ``a{m}`` with ``a = max(0, z)`` as a ReluBlock carrying the
phase observed on the unperturbed input, and rows ``z{m+1} = W a + b``.  Phase fixing, big-M
lowering and the rest are passes.

* ``patch_query`` (modifyEdgeLayer): change ``eps = eps_pos - eps_neg`` to the weights of
  edge-layer k so that the target holds for every input.  Objective: L-inf (``max |eps|``)
  or L1 (``sum |eps|``).
* ``input_query`` (mod2adv, and the direct/exact attacks): change ``delta = delta_pos -
  delta_neg`` to the input, ``|delta_i| <= linf * changed_i`` with binary ``changed``, inside
  the input domain, optionally at most ``max_pixels`` changed; minimize the number of changed
  inputs, then the L1 size (or only the L1 / L-inf size).
"""
from __future__ import annotations

import numpy as np

from compiler.analysis import bounds
from compiler.analysis.marks import marks_at
from compiler.problem import Problem, ProblemBuilder
from compiler.targets import Target, lower_target, target_marks
from common.errors import NetworkError

OBJECTIVES_PATCH = ("linf", "l1")
OBJECTIVES_INPUT = ("pixels", "l1", "linf")


def default_eps_bound(weight: np.ndarray) -> float:
    """The largest weight change considered: twice the largest weight of the layer."""
    return 2.0 * float(np.max(np.abs(weight))) or 1.0


def patch_query(net, k: int, inputs: np.ndarray, target: Target, objective: str = "linf",
                eps_bound: float | None = None, free_patched_phases: bool = False,
                phase_net=None, reduced: bool | None = None) -> Problem:
    """modifyEdgeLayer as a problem.  Blocks: ``eps_pos``, ``eps_neg`` (shape of W_k),
    ``eps_max`` (L-inf only), and per input ``z{k}``, ``a{m}``, ``z{m}`` up to the output.

    ``free_patched_phases`` leaves the ReLUs of neuron layer k (those the patch feeds
    directly) without a recorded phase, so phase fixing keeps them exact (binaries) and the
    patch may switch inactive neurons on.  ``phase_net`` (default ``net``) is the network
    whose phases on the inputs the ReluBlocks record: pass a patched network to re-linearize
    at a candidate patch.

    ``reduced`` (default: when there is one input) is METHOD.md's patch reduction, exact
    for one input: with the source vector ``a`` fixed, the change of target j is
    ``d_j = sum_i eps_ji a_i``; ``|eps| <= M`` reaches exactly ``|d_j| <= M ||a||_1`` and the
    cheapest L1 way to get ``d_j`` costs ``|d_j| / ||a||_inf``.  So only ``d_pos``, ``d_neg``
    (n_out each) are variables; ``expand_patch`` recovers ``eps``.

    Hints: ``inert`` marks weight changes whose source neuron is 0 on every input (they
    change nothing); ``wrong_sign`` marks the half of each pair the marking rules out.
    """
    if objective not in OBJECTIVES_PATCH:
        raise NetworkError(f"unknown patch objective {objective!r}; use one of {OBJECTIVES_PATCH}")
    edge = net.edge(k)
    inputs = np.atleast_2d(net.check_input(inputs))
    trace = net.simulate(inputs)
    phase_trace = trace if phase_net is None else phase_net.simulate(inputs)
    weight = edge.linear.weight
    n_out, n_in = weight.shape
    bound = default_eps_bound(weight) if eps_bound is None else float(eps_bound)

    if reduced is None:
        reduced = len(inputs) == 1
    if reduced:
        if len(inputs) != 1:
            raise NetworkError("the reduced patch formulation holds for one input only")
        return _reduced_patch_query(net, k, inputs[0], trace, phase_trace, target, objective,
                                    bound, free_patched_phases)

    b = ProblemBuilder(f"patch_{net.name}_layer{k}")
    eps_pos = b.add_vars("eps_pos", (n_out, n_in), 0.0, bound)
    eps_neg = b.add_vars("eps_neg", (n_out, n_in), 0.0, bound)
    marks = _target_marks_at(net, k, target, phase_trace)
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
        lows, highs = bounds.propagate(net, k, z0 - reach, z0 + reach)
        y = _encode_tail(b, net, k, z, phase_trace, t, lows, highs, tag,
                         free_first=free_patched_phases)
        lower_target(b, y, target, f"target{tag}")

    if objective == "linf":
        m = b.add_vars("eps_max", (1,), 0.0, bound)
        flat = np.concatenate([eps_pos.ravel(), eps_neg.ravel()])
        count = len(flat)
        b.add_rows("eps_le_max", np.tile(np.arange(count), 2),
                   np.concatenate([flat, np.full(count, m[0])]),
                   np.concatenate([np.ones(count), -np.ones(count)]), -np.inf, 0.0, count)
        b.minimize(m, 1.0)
    else:
        b.minimize(eps_pos, 1.0)
        b.minimize(eps_neg, 1.0)

    inert_source = np.all(trace.post[k - 1] == 0, axis=0)               # (n_in,)
    source_sign = _consistent_sign(trace.post[k - 1])                   # (n_in,)
    helpful = marks[:, None] * source_sign[None, :]                     # (n_out, n_in)
    n_vars = b.n_vars
    inert = np.zeros(n_vars, bool)
    inert[eps_pos[:, inert_source]] = True
    inert[eps_neg[:, inert_source]] = True
    wrong_sign = np.zeros(n_vars, bool)
    wrong_sign[eps_neg[helpful > 0]] = True
    wrong_sign[eps_pos[helpful < 0]] = True
    b.hints.update(inert=inert, wrong_sign=wrong_sign)
    return b.build()


def _reduced_patch_query(net, k, x, trace, phase_trace, target, objective, bound,
                         free_patched_phases) -> Problem:
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
    lows, highs = bounds.propagate(net, k, z0 - reach, z0 + reach)
    y = _encode_tail(b, net, k, z, phase_trace, 0, lows, highs, "", free_first=free_patched_phases)
    lower_target(b, y, target, "target")
    if objective == "linf":
        m = b.add_vars("eps_max", (1,), 0.0, bound)
        # d_j <= ||a||_1 * M
        b.add_rows("d_le_reach", np.tile(np.arange(2 * n_out), 2),
                   np.concatenate([d_pos, d_neg, np.full(2 * n_out, m[0])]),
                   np.concatenate([np.ones(2 * n_out), -np.full(2 * n_out, l1_norm)]),
                   -np.inf, 0.0, 2 * n_out)
        b.minimize(m, 1.0)
    elif max_abs > 0:
        b.minimize(d_pos, 1.0 / max_abs)
        b.minimize(d_neg, 1.0 / max_abs)
    marks = _target_marks_at(net, k, target, phase_trace)
    inert = np.zeros(b.n_vars, bool)
    if l1_norm == 0:
        inert[d_pos] = inert[d_neg] = True
    wrong_sign = np.zeros(b.n_vars, bool)
    wrong_sign[d_neg[marks > 0]] = True
    wrong_sign[d_pos[marks < 0]] = True
    b.hints.update(inert=inert, wrong_sign=wrong_sign)
    problem = b.build()
    return problem.with_(hints={**problem.hints, "source": source, "objective": objective})


def expand_patch(problem: Problem, x: np.ndarray, weight_shape) -> np.ndarray:
    """The weight change ``eps`` (shape of W_k) from a patch query's solution ``x``.

    For the reduced formulation: L-inf spreads ``d_j`` over every source,
    ``eps_ji = d_j sign(a_i) / ||a||_1``; L1 puts it all on the largest source.
    """
    if problem.has_block("eps_pos"):
        return problem.values(x, "eps_pos") - problem.values(x, "eps_neg")
    d = problem.values(x, "d_pos") - problem.values(x, "d_neg")
    source = problem.hints["source"]
    eps = np.zeros(weight_shape)
    if not np.any(source):
        return eps
    if problem.hints["objective"] == "linf":
        return np.outer(d, np.sign(source)) / np.sum(np.abs(source))
    i = int(np.argmax(np.abs(source)))
    eps[:, i] = d / source[i]
    return eps


def input_query(net, x: np.ndarray, target: Target, linf: float, max_pixels: int | None = None,
                objective: str = "pixels", input_bounds: str = "budget",
                phase_point: np.ndarray | None = None) -> Problem:
    """mod2adv / direct / exact as a problem.  Blocks: ``delta_pos``, ``delta_neg``,
    ``changed`` (binary), ``z1``, ``a{m}``, ``z{m}``, and ``delta_max`` for the L-inf objective.

    ``input_bounds="budget"`` bounds ``z1`` by the ``max_pixels`` largest contributions
    (``compiler.analysis.bounds.budget_first_layer``); ``"box"`` uses the whole L-inf box.
    ``phase_point`` (default ``x``) is the input whose ReLU phases the ReluBlocks record, so
    phase fixing can re-linearize the network at a candidate.
    """
    if objective not in OBJECTIVES_INPUT:
        raise NetworkError(f"unknown input objective {objective!r}; use one of {OBJECTIVES_INPUT}")
    x = net.check_input(x).ravel()
    trace = net.simulate(x)
    phase_trace = trace if phase_point is None else net.simulate(phase_point)
    lo_box, hi_box = bounds.input_box(x, net.domain.lower, net.domain.upper, linf)
    up, down = np.maximum(hi_box - x, 0.0), np.maximum(x - lo_box, 0.0)
    n = net.n_inputs
    edge = net.edge(1)

    b = ProblemBuilder(f"input_{net.name}")
    d_pos = b.add_vars("delta_pos", n, 0.0, up)
    d_neg = b.add_vars("delta_neg", n, 0.0, down)
    cap = np.maximum(up, down)
    changed = b.add_vars("changed", n, 0.0, (cap > 0).astype(float), integer=True)
    # delta_pos_i + delta_neg_i <= cap_i * changed_i
    b.add_rows("pixel", np.tile(np.arange(n), 3), np.concatenate([d_pos, d_neg, changed]),
               np.concatenate([np.ones(n), np.ones(n), -cap]), -np.inf, 0.0, n)
    if max_pixels is not None:
        b.add_rows("pixel_budget", np.zeros(n, int), changed, np.ones(n), -np.inf,
                   float(max_pixels), 1)

    budget = max_pixels if input_bounds == "budget" else None
    z_lo, z_hi = bounds.budget_first_layer(edge.linear.weight, edge.linear.bias, x, lo_box,
                                           hi_box, budget)
    z0 = trace.pre[1][0]
    z = b.add_vars("z1", len(z0), z_lo, z_hi)
    # z1 - W delta_pos + W delta_neg = W x + b
    w = edge.linear.weight
    r, c = np.nonzero(w)
    b.add_rows("layer1", np.concatenate([np.arange(len(z0)), r, r]),
               np.concatenate([z, d_pos[c], d_neg[c]]),
               np.concatenate([np.ones(len(z0)), -w[r, c], w[r, c]]), z0, z0, len(z0))
    lows, highs = bounds.propagate(net, 1, z_lo, z_hi)
    y = _encode_tail(b, net, 1, z, phase_trace, 0, lows, highs, "")
    lower_target(b, y, target, "target")

    size_weight = 1.0
    if objective == "pixels":
        b.minimize(changed, 1.0)
        # Lexicographic: one more pixel always costs more than any L1 saving.
        size_weight = 0.5 / max(float(np.sum(cap)), 1e-12)
    if objective == "linf":
        m = b.add_vars("delta_max", (1,), 0.0, float(np.max(cap, initial=0.0)))
        b.add_rows("delta_le_max", np.tile(np.arange(2 * n), 2),
                   np.concatenate([d_pos, d_neg, np.full(2 * n, m[0])]),
                   np.concatenate([np.ones(2 * n), -np.ones(2 * n)]), -np.inf, 0.0, 2 * n)
        b.minimize(m, 1.0)
    else:
        b.minimize(d_pos, size_weight)
        b.minimize(d_neg, size_weight)

    return b.build()


def _encode_tail(b: ProblemBuilder, net, k: int, z: np.ndarray, trace, t: int, lows, highs,
                 tag: str, free_first: bool = False) -> np.ndarray:
    """Layers above neuron layer k, from its pre-activation variables ``z`` to the outputs.

    Returns the indices of the output variables.  ``lows``/``highs`` bound ``z_k..z_L``.
    """
    for m in range(k, net.depth + 1):
        edge = net.edge(m)
        if edge.relu:
            a = b.add_vars(f"a{m}{tag}", len(z), 0.0, np.maximum(highs[m - k], 0.0))
            phase = None if (free_first and m == k) else trace.pre[m][t] > 0
            b.add_relus(f"relu{m}{tag}", a, z, phase=phase)
            z_or_a = a
        else:
            z_or_a = z
        if m == net.depth:
            return z_or_a
        nxt = net.edge(m + 1).linear
        z = b.add_vars(f"z{m + 1}{tag}", nxt.n_out, lows[m + 1 - k], highs[m + 1 - k])
        r, c = np.nonzero(nxt.weight)
        b.add_rows(f"layer{m + 1}{tag}", np.concatenate([np.arange(nxt.n_out), r]),
                   np.concatenate([z, z_or_a[c]]),
                   np.concatenate([np.ones(nxt.n_out), -nxt.weight[r, c]]),
                   nxt.bias, nxt.bias, nxt.n_out)
    raise AssertionError("unreachable")


def marks_for(net, k: int, target: Target, x: np.ndarray) -> np.ndarray:
    """Increment/decrement marks of neuron layer k for ``target`` under the phases at ``x``."""
    return _target_marks_at(net, k, target, net.simulate(x))


def _target_marks_at(net, k: int, target: Target, trace) -> np.ndarray:
    """Marks of neuron layer k (0 = the input) under the phases of the first input."""
    phases = [trace.pre[m][0] > 0 for m in range(1, net.depth + 1)]
    output_marks = target_marks(target, net.n_outputs)
    if net.edge(net.depth).relu:   # an output ReLU: an inactive output passes nothing on
        output_marks = output_marks * phases[-1]
    return marks_at(net, k, output_marks, phases)


def _consistent_sign(values: np.ndarray) -> np.ndarray:
    """Per column: +1 / -1 when every nonzero value has that sign, else 0."""
    pos = np.all(values >= 0, axis=0) & np.any(values > 0, axis=0)
    neg = np.all(values <= 0, axis=0) & np.any(values < 0, axis=0)
    return pos.astype(int) - neg.astype(int)
