"""Divide and conquer (the paper's Algorithm 1, findFirstLayerMod + mod2adv), in netpatch's
search order.

``dnc_search`` is the whole order, top to bottom (METHOD.md's pseudocode is step 3a):

1. patch mode, cheapest first (``patch_tiers``): L-inf patches, then (escalation) L1
   patches, which concentrate the change on fewer neurons, then patches that may switch the
   patched layer's ReLUs (a MILP per patch);
2. target class, smallest logit gap first (the candidates the caller passes);
3. cut schedule (``cut_schedules``): the edge-layers to patch, in order; for each,
   a. findFirstLayerMod: patch the middle edge-layer, cut the network there, recurse on the
      lower half until edge-layer 1 is patched; the result is what neuron layer 1 must reach;
   b. mod2adv: input changes that make the ORIGINAL first edge-layer reach it, smallest
      first, then stronger pushes; the first that meets the target class's property on the
      real network ends the search for this target class;
4. the target class's answer (that one, or the last candidate found) goes to validation;
5. after the first patch mode failed for every target class, and before the costlier ones:
   ``direct``'s growing search (``attacks.grow``), target class by target class
   (``DncConfig.grow``).  Measured on the 6x50 MNIST network (first 100 images): the first
   mode solves 85, growing 9 of the rest in milliseconds; the L1 and free-phase modes
   (``DncConfig.escalate``, off by default) 1 more after 14.5 s, none on the shared CNNs.

A convolutional network (the paper's footnote) is patched in its dense edge-layers only,
from the first dense one (``first_dense``) up; the target that layer's patch leaves is pulled
back through the convolutions and poolings below it, linearized at the input, to the input.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterator

import numpy as np

from attacks.config import AttackConfig, CUTS, DncConfig
from attacks.patching import PatchRequest, patch_layer
from attacks.grow import grown
from attacks.recovery import first_holding, recovery_changes
from attacks.result import StageFailure
from attacks.work import Work
from compiler.analysis.pullback import pull_back
from compiler.queries import NeuronTargets, Target, marks_for
from ir.property import Conjunction

Candidate = tuple[str, int | None, Conjunction, "np.ndarray | StageFailure"]


def _towards(target_class: int | None) -> str:
    """A stage's target, when it has one (a property given as constraints has none)."""
    return "" if target_class is None else f", target class {target_class}"


def dnc_search(net, x, candidates, config: AttackConfig, work: Work) -> Iterator[Candidate]:
    """Yield ``(tier, target_class, property, answer)`` in search order, one per patch mode
    and target class; ``answer`` is an input to validate or the StageFailure that ended it."""
    first = first_dense(net)
    layer = min(first, net.depth)       # the neuron layer whose target the input must reach
    for position, (tier, dnc) in enumerate(patch_tiers(config.dnc)):      # 1. patch mode
        if position == 1 and config.dnc.grow and config.max_pixels:
            for target_class, conj in candidates:                          # 5.
                work.stage(f"dnc growing search{_towards(target_class)}")
                yield "grow", target_class, conj, grown(net, x, conj, config, work)
        for target_class, conj in candidates:                              # 2. target class
            work.stage(f"dnc {tier} patches{_towards(target_class)}")
            answer, failure = None, None
            for schedule in cut_schedules(net.depth, dnc.cuts, first):     # 3. cut schedule
                try:
                    first_layer = find_first_layer_target(net, x, conj, dnc, config, work,
                                                          schedule, first)  # 3a.
                    answer = first_holding(recovery_changes(net, x, first_layer, layer,
                                                            config, work),
                                           lambda x_adv: conj.holds(net(x_adv)))   # 3b.
                except StageFailure as stage_failure:
                    failure = stage_failure
                    continue
                if conj.holds(net(answer)):
                    break
            yield tier, target_class, conj, (answer if answer is not None else failure)
    if len(patch_tiers(config.dnc)) == 1 and config.dnc.grow and config.max_pixels:
        for target_class, conj in candidates:                              # 5.
            work.stage(f"dnc growing search, target class {target_class}")
            yield "grow", target_class, conj, grown(net, x, conj, config, work)


def patch_tiers(dnc: DncConfig) -> list[tuple[str, DncConfig]]:
    """dnc's patch modes, cheapest first: the configured one, then (``escalate``) L1
    patches, then patches that may switch the patched layer's ReLUs."""
    def name(c: DncConfig) -> str:
        return c.patch_objective + ("-free" if c.free_patched_phases else "")
    tiers = [dnc]
    if dnc.escalate:
        tiers += [replace(dnc, patch_objective="l1"),
                  replace(dnc, patch_objective="linf", free_patched_phases=True)]
    out, seen = [], set()
    for tier in tiers:
        if name(tier) not in seen:
            seen.add(name(tier))
            out.append((name(tier), tier))
    return out


def first_dense(net) -> int:
    """The first of the dense edge-layers that end the network (1 for a dense network; for
    a convolutional one the first fully connected layer); ``depth + 1`` when the last edge-layer
    is not dense (nothing can be patched)."""
    k = net.depth
    while k >= 1 and net.edge(k).patchable:
        k -= 1
    return k + 1


def cut_schedules(depth: int, cuts: str = "all", first: int = 1) -> list[list[int]]:
    """The edge-layers divide and conquer patches, in order, one list per attempt, over the
    dense edge-layers ``first..depth`` (numbered below from 1 within them).

    ``halving`` is the paper's single schedule: ``p = ceil(l / 2)`` down to 1 (``[4, 2, 1]``
    for 7 edge-layers).  ``all`` tries it first, then every other first cut k from
    ``depth - 1`` down to 1, halving below k (``[6, 3, 2, 1]``, ``[5, 3, 2, 1]``, ``[3, 2, 1]``,
    ``[2, 1]``, ``[1]``), and last ``[]``: no patch, the network linearized at the input
    itself.  Each patch linearizes the network at other phases, and the first edge-layer
    target that one schedule cannot reach with the pixel budget another often can.
    """
    if cuts not in CUTS:
        raise ValueError(f"unknown cuts {cuts!r}; use one of {CUTS}")
    if first > 1:
        shift = first - 1
        return [[k + shift for k in schedule]
                for schedule in cut_schedules(depth - shift, cuts)] if depth >= first else [[]]

    def halving_from(k: int) -> list[int]:
        schedule = [k]
        while schedule[-1] > 1:
            schedule.append(math.ceil(schedule[-1] / 2))
        return schedule

    first = halving_from(math.ceil(depth / 2)) if depth > 1 else [1]
    if cuts == "halving":
        return [first]
    others = [halving_from(k) for k in range(depth - 1, 0, -1) if k != first[0]]
    return [first] + others + [[]]


def find_first_layer_target(net, x, conj: Target, dnc: DncConfig, config: AttackConfig,
                            work: Work, schedule: list[int], first: int = 1) -> Target:
    """findFirstLayerMod: patch the edge-layers of ``schedule`` in turn, each against the
    property of the network above it, and return what neuron layer ``first`` (the first
    dense one; its pre-activations) must reach.

    ``inner_targets="points"`` (the paper): the values the patched run gives neuron layer p,
    relaxed by mark.  ``"pullback"``: the property itself, pulled back to neuron layer p
    through the layers above, linearized at the patched run's phases (a linear condition
    rather than a point; it keeps every neuron free that the property does not need).
    """
    if not schedule:
        # no patch: the property pulled back through the network linearized at x itself
        return pull_back(net, min(first, net.depth), conj, net.phases(x))
    current, target = net, conj
    for p in schedule:
        outcome = patch_layer(PatchRequest(
            current, p, x, target, config.backend, config.passes, objective=dnc.patch_objective,
            time_limit=work.time_limit(), free_patched_phases=dnc.free_patched_phases,
            relinearize=0))
        work.compile_s += outcome.build_s
        work.solve_s += outcome.solve_s
        work.saw(outcome.status)
        if outcome.eps is None:
            raise StageFailure(f"patch edge-layer {p}", outcome.status.value, outcome.message)
        # A patch the real tail rejects (outcome.validated False) is still followed: only
        # the final input is judged.
        patched = current.with_patch(p, outcome.eps)
        if dnc.inner_targets == "pullback":
            inner = pull_back(current, p, target, patched.phases(x))
        else:
            values = patched.simulate(x).pre[p][0]
            marks = marks_for(current, p, target, x)
            inactive = values <= 0 if current.edge(p).relu else np.zeros(len(values), bool)
            inner = NeuronTargets(values, marks, inactive)
        if p == first:
            return inner
        current, target = net.prefix(p), inner
    raise ValueError(f"cut schedule {schedule} does not end at edge-layer {first}")
