"""What one attack spends and what stopped it: compile and solve seconds, the solver calls
that hit a limit or failed, and the wall-clock budget of the whole attack.

Every solver call of a strategy asks ``time_limit()`` for its limit (the per-call limit cut
to what the budget leaves) and reports its status to ``saw``; a strategy that found nothing
then says ``time_limit`` rather than anything that sounds like a proof.

``stage(text)`` names what the attack does now ("dnc linf patches, target class 3") for a
progress display: strategies call it a few times per target class, never in a solver loop;
it costs an attribute store unless a listener is set (``listen_to_stages``, one per process).
Work without a ``Work`` (``verify``) says its stages with ``tell``; a search loop reports its
counts through ``paced``, which asks for the text at most once a second.
"""
from __future__ import annotations

import contextlib
import time

from attacks.result import StageFailure
from backends.base import Status


_stage_listener = None     # callable(text) or None: see listen_to_stages
PACE_S = 1.0               # a search loop's counts: told at most this often (``paced``)


def listen_to_stages(listener):
    """Call ``listener(text)`` whenever an attack in this process enters a stage (None: stop
    listening); returns the previous listener."""
    global _stage_listener
    previous, _stage_listener = _stage_listener, listener
    return previous


def tell(text: str) -> None:
    """The process's stage listener, if any, hears ``text``."""
    if _stage_listener is not None:
        _stage_listener(text)


def paced():
    """``say(make_text)`` for a search loop: tells ``make_text()`` once the loop has run
    ``PACE_S`` seconds and then at most once per ``PACE_S``, and only while a listener is set
    (no string is built otherwise; a search that ends sooner says nothing)."""
    due = time.perf_counter() + PACE_S

    def say(make_text) -> None:
        nonlocal due
        if _stage_listener is None:
            return
        now = time.perf_counter()
        if now >= due:
            due = now + PACE_S
            _stage_listener(make_text())
    return say


class Work:
    def __init__(self, call_limit: float | None = None, budget: float | None = None):
        self.compile_s = 0.0
        self.solve_s = 0.0
        self.call_limit = call_limit
        self.budget = budget
        self.deadline = None if budget is None else time.perf_counter() + budget
        self.share_end = None    # a stage's own end (``share``), inside the budget
        self.limits_hit = 0      # calls stopped by a limit (with or without a solution)
        self.errors = 0          # calls that ended in a solver error
        self.current = ""        # the stage the attack is in (``stage``)

    def stage(self, text: str) -> None:
        """The attack enters stage ``text``; the process's stage listener hears it."""
        self.current = text
        tell(text)

    def time_limit(self) -> float | None:
        """Seconds the next solver call may take (the per-call limit, cut to what the budget
        and a ``share`` leave); StageFailure when the budget or the share is spent."""
        self.check()
        if self.share_end is not None and time.perf_counter() >= self.share_end:
            self.limits_hit += 1
            raise StageFailure("share", Status.TIME_LIMIT.value,
                               "this stage's share of the attack's budget is spent")
        ends = [end for end in (self.deadline, self.share_end) if end is not None]
        if not ends:
            return self.call_limit
        left = max(min(ends) - time.perf_counter(), 0.0)
        return left if self.call_limit is None else min(self.call_limit, left)

    @contextlib.contextmanager
    def share(self, fraction: float):
        """Solver calls inside the block end within ``fraction`` of the budget left (no
        effect without a budget): a stage that may not take all of it."""
        saved = self.share_end
        if self.deadline is not None:
            now = time.perf_counter()
            self.share_end = now + fraction * max(self.deadline - now, 0.0)
        try:
            yield
        finally:
            self.share_end = saved

    def check(self) -> None:
        """StageFailure(time_limit) once the attack's wall-clock budget is spent."""
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.limits_hit += 1
            raise StageFailure("budget", Status.TIME_LIMIT.value,
                               f"the attack's budget of {self.budget:g} s is spent")

    def saw(self, status: Status) -> None:
        """Count a solver call's status: a limit (FEASIBLE or TIME_LIMIT) or an error."""
        if status in (Status.FEASIBLE, Status.TIME_LIMIT):
            self.limits_hit += 1
        elif status == Status.ERROR:
            self.errors += 1

    @property
    def times(self) -> dict:
        return {"compile_s": self.compile_s, "solve_s": self.solve_s}
