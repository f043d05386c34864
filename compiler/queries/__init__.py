"""Queries: (network, inputs, target) -> (Problem, Decoder).  The only part of the compiler
that reads networks to build problems; passes and backends see the problem IR only, and the
decoder beside each query turns a solution back into what the caller asked for (a weight
change ``eps``, an input change ``delta``).

* ``patch_query`` (modifyEdgeLayer, ``compiler.queries.patch``);
* ``input_query`` (mod2adv, and the direct/exact attacks, ``compiler.queries.input``);
* targets: a ``Conjunction`` over the outputs or ``NeuronTargets`` (``compiler.queries.targets``).
"""
from compiler.queries.input import InputDecoder, input_query
from compiler.queries.patch import (FullPatchDecoder, ReducedPatchDecoder, default_eps_bound,
                                    patch_query)
from compiler.queries.targets import NeuronTargets, Target, marks_for

__all__ = ["FullPatchDecoder", "InputDecoder", "NeuronTargets", "ReducedPatchDecoder", "Target",
           "default_eps_bound", "input_query", "marks_for", "patch_query"]
