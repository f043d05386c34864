"""One BLAS thread per job: in the command's process and in every pool worker."""
from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from evaluation.engines import task_results


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_a_command_runs_with_one_blas_thread(capsys):
    from netpatch.cli import main
    with threadpool_limits(limits=2, user_api="blas"):
        main(["ir", "examples/paper_2222/paper_2222.nnir"])
        assert blas_threads() and set(blas_threads()) == {1}
    assert "paper" in capsys.readouterr().out.lower()


def test_pool_workers_run_with_one_blas_thread(monkeypatch):
    from common.threads import BLAS_THREAD_VARIABLES
    for variable in BLAS_THREAD_VARIABLES:    # the workers would inherit 2: only the pool's
        monkeypatch.setenv(variable, "2")     # own setting can bring them to 1
    results = dict(task_results(blas_threads, [()] * 4, engine="local", jobs=2))
    assert sorted(results) == [0, 1, 2, 3]
    assert all(threads == [1] for threads in results.values()), results
