"""The paper's Table III: for one input and property, the smallest (L1) patch of every
edge-layer, with ReLU phases fixed to the input's activation region (sound: a patch found
holds on the real network), with and without sign pruning.  A layer with no such patch is
infeasible (a proof under phase fixing), shown as "inf" like the paper's infinity sign.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.base import Status
from compiler.passes import PassOptions
from ir.property import targeted_candidates
from attacks.patching import PatchRequest, patch_layer

VARIANTS = {"sign pruning": PassOptions(phase_fixing="region"),
            "no sign pruning": PassOptions(phase_fixing="region", sign_pruning=False)}


@dataclass
class Cell:
    status: str
    weights_changed: int | None = None
    l1: float | None = None
    validated: bool = False
    seconds: float = 0.0

    def text(self) -> str:
        if self.status == Status.INFEASIBLE.value:
            return "inf | inf"
        if self.weights_changed is None:
            return f"{self.status} | -"
        mark = "" if self.validated else " (not validated)"
        return f"{self.weights_changed} | {self.l1:.6g}{mark}"


def patch_table(net, x: np.ndarray, prop, backend: str = "highs",
                time_limit: float | None = None) -> dict[int, dict[str, Cell]]:
    """``{edge-layer: {variant: Cell}}``; the property's first candidate (a targeted
    property is its own) is used for every layer so that rows compare one question."""
    _, target = targeted_candidates(prop, net(x))[0]
    table = {}
    for k in range(1, net.depth + 1):
        table[k] = {}
        for name, options in VARIANTS.items():
            o = patch_layer(PatchRequest(net, k, x, target, backend, options, objective="l1",
                                         time_limit=time_limit, relinearize=0))
            table[k][name] = Cell(o.status.value, o.weights_changed, o.eps_l1, o.validated,
                                  round(o.build_s + o.solve_s, 4))
    return table


def render(table: dict[int, dict[str, Cell]], title: str) -> str:
    names = list(VARIANTS)
    lines = [f"# {title}", "",
             "| edge-layer | " + " | ".join(f"{n}: n | {n}: mod (L1)" for n in names) + " | seconds |",
             "|---|" + "---|---|" * len(names) + "---|"]
    for k, row in table.items():
        seconds = " / ".join(f"{row[n].seconds:.3g}" for n in names)
        lines.append(f"| {k} | " + " | ".join(row[n].text() for n in names) + f" | {seconds} |")
    lines += ["", "n: weights changed (|eps| > 1e-12); mod: their total absolute change; inf: "
              "infeasible with the phases of the input's activation region fixed (a proof under "
              "that pass); every patch re-simulated in float64 on the patched network."]
    return "\n".join(lines) + "\n"


def write_patch_table(out: Path, net, x: np.ndarray, prop, title: str, backend: str = "highs",
                      time_limit: float | None = None) -> str:
    """Compute the table for ``x`` and ``prop``, write ``patch_table.md`` and
    ``patch_table.json`` into ``out``; return the Markdown."""
    table = patch_table(net, x, prop, backend, time_limit)
    text = render(table, title)
    out.mkdir(parents=True, exist_ok=True)
    (out / "patch_table.md").write_text(text)
    (out / "patch_table.json").write_text(json.dumps(
        {str(k): {n: c.__dict__ for n, c in row.items()} for k, row in table.items()}, indent=1) + "\n")
    return text
