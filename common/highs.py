"""One way to open a HiGHS model, for every module that solves with highspy directly.

HiGHS (from 1.16) keeps one thread scheduler per process, sized by the first model that runs;
a later model asking for another thread count fails with "Option 'threads' is set to 1 but
the scheduler has already been initialized to use 2 threads" before it solves anything.  So
every model here asks for the same count: one thread (one job per core is the
parallelism netpatch uses).
"""
from __future__ import annotations

THREADS = 1


def new_highs(verbose: bool = False):
    """A ``highspy.Highs`` with ``THREADS`` threads, silent unless ``verbose``."""
    import highspy
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(verbose))
    h.setOptionValue("threads", THREADS)
    return h
