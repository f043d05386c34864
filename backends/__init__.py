"""The backend registry: a name -> where its class lives, imported only when asked for.

Importing this package imports no solver library (highspy, pyomo, gurobipy, z3): each backend
module imports its solver inside its methods, and a module is imported on ``get_backend``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from common.errors import NetpatchError, SolverUnavailable

DEFAULT_BACKEND = "highs"


@dataclass(frozen=True)
class BackendSpec:
    """``module.cls(**kwargs)``, with a one-line description for ``--help``."""

    module: str
    cls: str
    what: str
    kwargs: dict = field(default_factory=dict)

    def create(self):
        return getattr(importlib.import_module(self.module), self.cls)(**self.kwargs)


_PYOMO_GUROBI = BackendSpec("backends.pyomo_backend", "PyomoBackend",
                            "Gurobi through Pyomo (pyomo.contrib.solver GurobiDirect)",
                            {"solver": "gurobi"})

BACKENDS: dict[str, BackendSpec] = {
    "highs": BackendSpec("backends.highs_backend", "HighsBackend",
                         "HiGHS through highspy directly (arrays in, arrays out)"),
    "pyomo-highs": BackendSpec("backends.pyomo_backend", "PyomoBackend",
                               "HiGHS through Pyomo (pyomo.contrib.solver Highs)", {"solver": "highs"}),
    "gurobi": _PYOMO_GUROBI,
    "pyomo-gurobi": _PYOMO_GUROBI,
    "z3": BackendSpec("backends.z3_backend", "Z3Backend", "Z3 Optimize over exact rationals"),
}


def get_backend(name: str):
    """The backend called ``name``, ready to solve.

    Raises ``NetpatchError`` for an unknown name (listing the known ones) and
    ``SolverUnavailable`` (with the backend's reason) when its library or license is missing.
    """
    spec = BACKENDS.get(name)
    if spec is None:
        raise NetpatchError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    backend = spec.create()
    available, reason = backend.is_available()
    if not available:
        raise SolverUnavailable(f"backend {name} is not available: {reason}")
    return backend


def describe_backends() -> str:
    """One block per backend for ``--help``: name, what it is, what sizes it handles."""
    lines = []
    for name, spec in BACKENDS.items():
        default = " (default)" if name == DEFAULT_BACKEND else ""
        lines.append(f"  {name}{default}: {spec.what}")
        lines.append(f"      {spec.create().SIZE_NOTE}")
    return "\n".join(lines)
