"""What an attack is asked to do: the budget and solver settings every strategy shares, and a
small config per strategy.  Every option with a fixed set of values is checked when the
config is made: an unknown value is an error that lists the allowed ones."""
from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import NetpatchError
from compiler.passes import PassOptions
from ir.property import DEFAULT_MARGIN

STRATEGIES = ("dnc", "direct", "exact")
INNER_TARGETS = ("pullback", "points")
CUTS = ("halving", "all")
RECOVERY = ("sort", "milp")
PATCH_OBJECTIVES = ("linf", "l1")


# Measured on the 6x50 MNIST network, first 100 images, one core (dnc): no limit 95% success,
# median 0.12 s, mean 1.55 s, slowest 35 s; 5 s: 94%, 0.17 / 0.58 s; 2 s: 94%, 0.14 / 0.44 s.
# On the MNIST CNN 2 s cut dnc from 96% to 91% (its first patch mode alone takes ~1.5 s).
IMAGE_TIME_LIMIT = 5.0


def image_time_limit(given: float | None, strategy: str) -> float | None:
    """``--image-time-limit``, else the default for the heuristics (exact: none)."""
    if given is not None:
        return given
    return None if strategy == "exact" else IMAGE_TIME_LIMIT


def _check(option: str, value, allowed) -> None:
    if value not in allowed:
        raise NetpatchError(f"unknown {option} {value!r}; use one of {', '.join(allowed)}")


@dataclass(frozen=True)
class DncConfig:
    """Divide and conquer (Algorithm 1).

    * ``inner_targets``: the lower half's property: the output property pulled back through
      the upper half linearized at the patched run ("pullback"), or the patched layer's
      values relaxed by increment/decrement marks ("points", the paper's reading);
    * ``cuts``: "halving" (the paper's single schedule) or "all" (then every other first cut);
    * ``patch_objective`` and ``free_patched_phases``: the first patch mode;
    * ``escalate``: when every target and cut fails, L1 patches, then free-phase patches.
      Off by default: on the shared networks' first 100 (CIFAR: 60) correctly classified
      images, with 30 s per image, they found 1 answer in 260 (6x50 MNIST, after 14.5 s),
      while every failing image spent its whole budget in them;
    * ``grow``: after the first patch mode fails (and there is a pixel budget), ``direct``'s
      growing search (``attacks.grow``) for every target class, before the costlier modes.
    """

    inner_targets: str = "pullback"
    cuts: str = "all"
    patch_objective: str = "linf"
    free_patched_phases: bool = False
    escalate: bool = False
    grow: bool = True

    def __post_init__(self):
        _check("inner targets", self.inner_targets, INNER_TARGETS)
        _check("cuts", self.cuts, CUTS)
        _check("patch objective", self.patch_objective, PATCH_OBJECTIVES)


@dataclass(frozen=True)
class DirectConfig:
    """One query from the input through the linearized network; ``relinearize`` more rounds
    at each rejected candidate's phases; then (``grow`` > 0, with a pixel budget K) the
    changed pixels grown one at a time up to ``grow * K`` and thinned back to K
    (``attacks.grow``)."""

    relinearize: int = 3
    grow: int = 3

    def __post_init__(self):
        if self.relinearize < 0:
            raise NetpatchError(f"relinearize must be >= 0, got {self.relinearize}")
        if self.grow < 0:
            raise NetpatchError(f"grow must be >= 0, got {self.grow}")


@dataclass(frozen=True)
class ExactConfig:
    """The exact strategy: ``bounds`` for the big-M constants of its free-phase MILPs
    (``interval``, ``symbolic`` or ``lp``: each sound, each tighter and costlier), with at most
    ``bounds_seconds`` for the LP stage of ``lp``; a network whose largest MILP would keep
    more than ``max_free`` phases undecided is refused as too large (status ``error``)."""

    bounds: str = "symbolic"
    bounds_seconds: float | None = 30.0
    max_free: int = 5000         # undecided ReLUs / max pools beyond which no MILP is tried

    def __post_init__(self):
        from compiler.analysis.bounds import METHODS
        _check("bounds method", self.bounds, METHODS)


@dataclass(frozen=True)
class RecoveryConfig:
    """Input recovery (mod2adv) for dnc and direct: one linear target is solved in closed form
    ("sort", the same pixel count as the MILP) or by the backend's MILP ("milp"); ``push``
    also tries stronger changes along the closed-form direction."""

    method: str = "sort"
    push: bool = True

    def __post_init__(self):
        _check("recovery", self.method, RECOVERY)


@dataclass(frozen=True)
class AttackConfig:
    """The budget (``linf`` per input value, at most ``max_pixels`` changed values), the
    solver (``backend``, ``time_limit`` per solver call, ``passes``), the time for one input
    (``budget``, covering all its solver calls), the candidate target classes (``max_targets``,
    ``margin``), and the strategy with its own config."""

    linf: float = 1.0
    max_pixels: int | None = None
    strategy: str = "dnc"
    backend: str = "highs"
    time_limit: float | None = None      # seconds per solver call
    budget: float | None = None          # wall-clock seconds for the whole attack of one input
    margin: float = DEFAULT_MARGIN
    max_targets: int | None = None
    shrink: bool = True                  # dnc/direct: reset changed inputs that are not needed
    passes: PassOptions = PassOptions()
    dnc: DncConfig = field(default_factory=DncConfig)
    direct: DirectConfig = field(default_factory=DirectConfig)
    exact: ExactConfig = field(default_factory=ExactConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)

    def __post_init__(self):
        _check("strategy", self.strategy, STRATEGIES)
