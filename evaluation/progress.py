"""Live progress of a batch on stderr: items done, what they gave so far (for attacks: the
successes over the attempted, i.e. correctly classified, images), items per second and the
ETA, and, when one item runs past ``SLOW_S`` seconds, which item and which stage it is in.

* stderr is a terminal: a tqdm bar, refreshed once a second by a daemon thread, so an image
  that takes a minute shows itself while the main thread waits for it;
* stderr is not a terminal (CI logs, pipes): one plain line every ``every`` items (about a
  tenth of the run, at most 100) or after ``PLAIN_S`` seconds without one, whichever comes
  first, and, after ``PLAIN_S`` seconds without a line, one naming the longest-running item
  and its stage;
* ``quiet``: nothing.

A batch of one item (``netpatch verify`` on one property) has no counts to show: on a
terminal its line is the elapsed time and the item's stage, from the start; without one, only
the lines saying it still runs.

Which items run, and in which stage, is told by ``start(index)`` and ``stage(index, text)``
(``evaluation.engines`` calls them for its own process, and feeds events of worker processes
through ``listen(queue)``); with an engine that tells nothing (Dask) the bar still counts.
"""
from __future__ import annotations

import math
import queue as queue_module
import sys
import threading
import time
from collections import Counter

from evaluation.records import SKIPPED_STATUS

SLOW_S = 5.0      # an item running longer than this is named on the bar, with its stage
PLAIN_S = 60.0    # without a terminal: the longest silence while items finish or run
TICK_S = 1.0      # how often the bar is redrawn while nothing finishes


class SuccessTally:
    """Attack records: successes over the attempted images.  An image the network already
    misclassifies is done but not attempted (``SKIPPED_STATUS``), so the rate here is the
    defect detection of the report (``evaluation.metrics.summarize``)."""

    def __init__(self, records=()):
        self.attempted = self.successes = 0
        for record in records:
            self.add(record)

    def add(self, record: dict) -> None:
        if record.get("status") != SKIPPED_STATUS:
            self.attempted += 1
            self.successes += bool(record.get("success"))

    def text(self) -> str:
        rate = f" ({100 * self.successes / self.attempted:.0f}%)" if self.attempted else ""
        return f"successes {self.successes}/{self.attempted} correctly classified{rate}"


class ResultTally:
    """Verification records: how many of each result (sat, unsat, timeout, ...)."""

    ORDER = ("sat", "unsat", "timeout", "unknown", "error")

    def __init__(self, records=()):
        self.counts = Counter()
        for record in records:
            self.add(record)

    def add(self, record: dict) -> None:
        self.counts[record.get("result", "?")] += 1

    def text(self) -> str:
        names = [k for k in self.ORDER if self.counts[k]] + sorted(
            k for k in self.counts if k not in self.ORDER)
        return ", ".join(f"{k} {self.counts[k]}" for k in names) or "no results yet"


class Progress:
    """The progress of ``total`` items, ``done`` of them finished before this run (resumed).

    ``update(record)`` counts a finished item (``tally.add``); ``close()`` (or leaving the
    ``with`` block) stops the refresh thread and ends the bar."""

    def __init__(self, total: int, tally=None, done: int = 0, desc: str = "",
                 quiet: bool = False, unit: str = "image", stream=None, every: int | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.tally = SuccessTally() if tally is None else tally
        self.total, self.done, self.start_done = total, done, done
        self.desc, self.unit = desc, unit
        self.every = every or max(1, min(100, math.ceil(total / 10)))
        self.mode = "quiet" if quiet else ("bar" if _isatty(self.stream) else "plain")
        self.running: dict[int, list] = {}    # index -> [start time, stage]
        self.finished: set[int] = set()
        self.queues: list = []
        self.lock = threading.Lock()
        self.t0 = self.last_line = time.monotonic()
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm
            single = {"bar_format": "{desc}: {elapsed}{postfix}"} if total == 1 else {}
            self.bar = tqdm(total=total, initial=done, desc=desc or None, unit=unit,
                            file=self.stream, dynamic_ncols=True, smoothing=0.1, **single)
            self.bar.set_postfix_str(self.tally.text(), refresh=True)
        self.stop = threading.Event()
        self.thread = None
        if self.mode != "quiet" and done < total:
            self.thread = threading.Thread(target=self._refresh, name="netpatch-progress",
                                           daemon=True)
            self.thread.start()

    # -- what is running ----------------------------------------------------------------

    def start(self, index: int) -> None:
        """Item ``index`` has started."""
        with self.lock:
            if index not in self.finished:
                self.running[index] = [time.monotonic(), ""]

    def stage(self, index: int, text: str) -> None:
        """Item ``index`` is in stage ``text``."""
        with self.lock:
            if index in self.finished:
                return
            self.running.setdefault(index, [time.monotonic(), ""])[1] = text

    def listen(self, queue) -> None:
        """Read ``("start", index)`` and ``("stage", index, text)`` events from ``queue``
        (a ``multiprocessing`` queue filled by worker processes) once a second."""
        self.queues.append(queue)

    def slowest(self) -> tuple[int, float, str] | None:
        """``(index, seconds, stage)`` of the longest-running item, if any runs."""
        self._drain()
        now = time.monotonic()
        with self.lock:
            if not self.running:
                return None
            index, (t0, stage) = min(self.running.items(), key=lambda item: item[1][0])
        return index, now - t0, stage

    # -- what is finished ---------------------------------------------------------------

    def update(self, record: dict) -> None:
        """One more item finished with ``record`` (its ``index``, when it has one, stops
        running)."""
        index = record.get("index")
        with self.lock:
            self.done += 1
            self.tally.add(record)
            if index is not None:
                self.finished.add(index)
                self.running.pop(index, None)
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.update(1)
        elif self.mode == "plain" and self.total > 1:   # one item: its command says the end
            now = time.monotonic()
            if (self.done % self.every == 0 or self.done == self.total
                    or now - self.last_line >= PLAIN_S):
                self._print(self.line())

    def postfix(self) -> str:
        """The bar's text after the counts: the tally, and the slow item when there is one
        (for a batch of one: the item's stage while it runs, then the tally)."""
        text = self.tally.text()
        if self.total == 1:
            slow = self.slowest()
            return slow[2] if slow is not None and slow[2] else text
        slow = self.slowest()
        if slow is not None and slow[1] >= SLOW_S:
            index, seconds, stage = slow
            text += f" | {self.unit} {index}: {seconds:.0f} s" + (f", {stage}" if stage else "")
        return text

    def line(self) -> str:
        """One plain line: done/total, the tally, the rate and the ETA."""
        elapsed = time.monotonic() - self.t0
        new = self.done - self.start_done
        rate = new / elapsed if elapsed > 0 else 0.0
        eta = f"{(self.total - self.done) / rate:.0f} s" if rate > 0 else "-"
        head = f"{self.desc}: " if self.desc else ""
        return (f"{head}[{self.done}/{self.total}] {self.tally.text()}, "
                f"{rate:.2f} {self.unit}s/s, ETA {eta}")

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.bar is not None:
            self.bar.set_postfix_str(self.tally.text(), refresh=False)
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- internals ----------------------------------------------------------------------

    def _drain(self) -> None:
        for q in self.queues:
            while True:
                try:
                    event = q.get_nowait()
                except (queue_module.Empty, OSError, ValueError, EOFError):
                    break
                if event[0] == "start":
                    self.start(event[1])
                elif event[0] == "stage":
                    self.stage(event[1], event[2])

    def _refresh(self) -> None:
        while not self.stop.wait(TICK_S):
            if self.bar is not None:
                self.bar.set_postfix_str(self.postfix(), refresh=True)
                continue
            slow = self.slowest()
            if (slow is not None and slow[1] >= PLAIN_S
                    and time.monotonic() - self.last_line >= PLAIN_S):
                index, seconds, stage = slow
                who = "" if self.total == 1 else f"{self.unit} {index} "
                self._print(f"{self.desc + ': ' if self.desc else ''}{who}still running after "
                            f"{seconds:.0f} s" + (f" ({stage})" if stage else ""))

    def _print(self, text: str) -> None:
        self.last_line = time.monotonic()
        print(text, file=self.stream, flush=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
