"""One BLAS thread per process that does one job's work.

netpatch's matrices are small (a batch of inputs through layers of tens to a few thousand
neurons) and its solvers run one thread; a second BLAS thread gains nothing on them and
spins against the other jobs on the machine.  Measured on 2 cores: 100 attacks on the 6x50
MNIST network take the same 47 s wall-clock with one BLAS thread, for 16 s less CPU;
gradient ascent on the 8-16 network beside one other busy process runs 10x faster.  A pool
of N workers with OpenBLAS's default of one thread per core would otherwise start N x cores
threads.
"""
from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def one_blas_thread() -> None:
    """Limit this process's BLAS (OpenBLAS, MKL, BLIS) to one thread from now on, and the
    processes it starts (they read the variables when they load their BLAS)."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ[variable] = "1"
    import numpy  # noqa: F401  (loads the BLAS the limit applies to, if not yet loaded)
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api="blas")
