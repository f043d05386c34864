"""What an attack on one input reports, and how a stage that found nothing says why."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class StageFailure(Exception):
    """A stage (a patch, an input recovery, a MILP) that produced no candidate."""

    def __init__(self, stage: str, status: str, reason: str):
        self.stage, self.status, self.reason = stage, status, reason
        super().__init__(f"{stage}: {status}: {reason}")


@dataclass
class AttackResult:
    """``success`` only after float64 validation on the original network (``attacks.validate``).
    ``stage``/``status``/``reason`` describe the last failure when there is no success;
    ``tier`` is dnc's patch mode that succeeded."""

    success: bool
    label: int
    adv_label: int | None = None
    target_class: int | None = None
    x_adv: np.ndarray | None = None
    status: str = ""
    reason: str = ""
    stage: str = ""
    times: dict = field(default_factory=lambda: {"compile_s": 0.0, "solve_s": 0.0})
    tried: int = 0
    tier: str = ""

    def failed(self, stage: str, status: str, reason: str) -> None:
        self.stage, self.status, self.reason = stage, status, reason
