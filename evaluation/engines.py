"""Where a batch's images are attacked: the engines behind ``--engine``.

* ``local`` (default): in this process with one job, else a ``spawn`` process pool of
  ``jobs`` workers, each loading the network once with ``load()`` (a picklable callable);
* ``dask``: one task per image on a ``dask.distributed`` cluster: the scheduler at
  ``scheduler`` (e.g. ``tcp://10.0.0.5:8786``), else an embedded ``LocalCluster`` of ``jobs``
  worker processes (one thread each, on 127.0.0.1, no dashboard).  The network (pickled) and
  the data set are scattered once to every worker (``broadcast=True``); each worker process
  unpickles the network once and keeps it (``_worker_network``, keyed by the pickle's
  digest), and tasks carry only an image index: the worker machines need netpatch installed
  but not the model or data files.  A worker that dies has its tasks rerun elsewhere by the
  scheduler; an image that kills ``distributed.scheduler.allowed-failures`` + 1 workers is
  recorded with status ``error``.

Every engine yields one record per image (``evaluation.records``) to the caller, which alone
writes files; the order is the input order with one local job, else the order of completion.
The local engine also tells a ``progress`` (``evaluation.progress.Progress``) which images
run and in which stage (``attacks.work.Work.stage``): directly with one job, through a
queue from the worker processes with several; the Dask engine tells nothing.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import pickle
import sys
import uuid
import warnings
from collections.abc import Iterator

import numpy as np

from common.errors import DataError
from common.threads import one_blas_thread
from evaluation.records import attack_record, error_record

ENGINES = ("local", "dask")
RETRIES = 2            # reruns of a task that raised (attack_record itself never raises)
CONNECT_TIMEOUT = 20   # seconds to reach a --scheduler
NO_PROFILER = {"distributed.worker.profile.enabled": False}   # embedded workers


def check_engine(engine: str, scheduler: str | None, jobs: int = 1) -> None:
    """Reject an unknown engine, ``--scheduler`` without ``--engine dask`` and ``--jobs < 1``."""
    if engine not in ENGINES:
        raise DataError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise DataError(f"--scheduler {scheduler}: only with --engine dask (the engine is {engine})")
    if scheduler is not None and not scheduler.strip():
        raise DataError("--scheduler '': give an address like tcp://HOST:8786")
    if jobs < 1:
        raise DataError(f"--jobs {jobs}: need at least 1")


def attack_records(net, x: np.ndarray, y: np.ndarray, config, todo: list[int], *,
                   engine: str = "local", jobs: int = 1, load=None,
                   scheduler: str | None = None, progress=None) -> Iterator[dict]:
    """One record per row ``i`` of ``todo`` (attacking ``x[i]`` of label ``y[i]``)."""
    check_engine(engine, scheduler, jobs)
    if engine == "dask":
        return dask_records(net, x, y, config, todo, jobs=jobs, scheduler=scheduler)
    return local_records(net, x, y, config, todo, jobs=jobs, load=load, progress=progress)


# -- local ---------------------------------------------------------------------------------

def local_records(net, x, y, config, todo, jobs: int = 1, load=None,
                  progress=None) -> Iterator[dict]:
    """In input order with one job, as they finish with several.  ``progress`` hears which
    image starts and the stages of its attack."""
    if jobs == 1 or len(todo) <= 1:
        from attacks.work import listen_to_stages
        previous = listen_to_stages(None)
        try:
            for i in todo:
                if progress is not None:
                    progress.start(i)
                    listen_to_stages(functools.partial(progress.stage, i))
                yield attack_record(net, x[i], int(y[i]), i, config)
        finally:
            listen_to_stages(previous)
        return
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    events = ctx.Queue() if progress is not None else None
    if events is not None:
        progress.listen(events)
    with ctx.Pool(jobs, initializer=_worker_init, initargs=(load, config, events)) as pool:
        yield from pool.imap_unordered(_worker_attack, [(i, x[i], int(y[i])) for i in todo])


_WORKER = {}


def _worker_init(load, config, events=None):
    one_blas_thread()
    _WORKER["net"] = load()
    _WORKER["config"] = config
    _WORKER["events"] = events
    if events is not None:
        from attacks.work import listen_to_stages
        listen_to_stages(_tell_stage)


def _tell_stage(text: str) -> None:
    """A worker's stage, to the parent's progress (dropped if the queue is gone)."""
    try:
        _WORKER["events"].put_nowait(("stage", _WORKER.get("index"), text))
    except (OSError, ValueError):
        pass


def _worker_attack(job):
    i, xi, yi = job
    _WORKER["index"] = i
    if _WORKER.get("events") is not None:
        try:
            _WORKER["events"].put_nowait(("start", i))
        except (OSError, ValueError):
            pass
    return attack_record(_WORKER["net"], xi, yi, i, _WORKER["config"])


# -- dask ----------------------------------------------------------------------------------

def dask_records(net, x, y, config, todo, jobs: int = 1,
                 scheduler: str | None = None) -> Iterator[dict]:
    """One task per image; records as tasks complete.  Closing the generator (or an
    interrupt) cancels what is left and stops an embedded cluster."""
    if not todo:
        return
    distributed = _import_distributed()

    def submit(client):
        # sent once to every worker, not once per task
        blob = pickle.dumps(net, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(blob).hexdigest()
        net_f = client.scatter(blob, broadcast=True, hash=False)
        x_f = client.scatter(np.ascontiguousarray(x), broadcast=True, hash=False)
        y_f = client.scatter(np.asarray(y), broadcast=True, hash=False)
        return [(int(i), (_dask_attack, net_f, digest, x_f, y_f, int(i), config)) for i in todo]

    for i, future in _dask_completed(distributed, scheduler, jobs, "attack", submit):
        yield _dask_outcome(distributed, future, i, x, y, scheduler)


def _dask_completed(distributed, scheduler, jobs: int, name: str, submit):
    """Connect, submit the ``(key, (function, *args))`` pairs ``submit(client)`` returns,
    and yield ``(key, future)`` as each completes.  Closing the generator (or an interrupt)
    cancels what is left and stops an embedded cluster."""
    client, cluster = _connect(distributed, scheduler, jobs)
    futures = {}
    try:
        token = uuid.uuid4().hex[:12]
        for key, (function, *args) in submit(client):
            future = client.submit(function, *args, key=f"netpatch-{name}-{token}-{key}",
                                   retries=RETRIES)
            futures[future.key] = (future, key)
        for future in distributed.as_completed([f for f, _ in futures.values()]):
            _, key = futures.pop(future.key)
            yield key, future
            future.release()
    finally:
        for future, _ in futures.values():
            future.cancel()
        client.close()
        if cluster is not None:
            cluster.close()


def _dask_attack(blob: bytes, digest: str, x, y, i: int, config):
    """The task, run on a worker: ``blob`` (the pickled network), ``x`` and ``y`` are the
    worker's scattered copies; the image is copied out of the shared array."""
    return attack_record(_worker_network(blob, digest), np.array(x[i]), int(y[i]), i, config)


_NETWORKS: dict[str, object] = {}    # per worker process: pickle digest -> network


def _worker_network(blob: bytes, digest: str):
    """The network of ``blob``, unpickled once per worker process.  (Unpickled here rather
    than stored as an object by Dask: arrays that Dask deserializes into its receive buffers
    gave a different, though valid, answer on one MNIST image; the pickle gives this
    process the same arrays a local worker loads.)"""
    net = _NETWORKS.get(digest)
    if net is None:
        one_blas_thread()
        if len(_NETWORKS) >= 4:      # a worker shared by several runs keeps the latest few
            _NETWORKS.pop(next(iter(_NETWORKS)))
        net = _NETWORKS[digest] = pickle.loads(blob)
    return net


def _dask_outcome(distributed, future, i: int, x, y, scheduler) -> dict:
    from distributed.scheduler import KilledWorker
    try:
        return future.result()
    except KilledWorker as err:
        # the image took down every worker it was given to (e.g. out of memory)
        return error_record(i, int(y[i]), x[i], err)
    except Exception as err:  # noqa: BLE001 - any other failure is the cluster's, not the image's
        where = f"the Dask scheduler at {scheduler}" if scheduler else "the embedded Dask cluster"
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        hint = ("; is netpatch installed on every worker?" if isinstance(err, ImportError) else "")
        raise DataError(f"input {i}: {where} failed ({reason}{hint}); finished inputs are saved, "
                        "rerun the same command to resume") from None


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise DataError("--engine dask needs dask.distributed: pip install 'dask[distributed]'") from None
    return distributed


def _connect(distributed, scheduler: str | None, jobs: int):
    """A client of the scheduler at ``scheduler``, or of a new embedded LocalCluster."""
    if scheduler is None:
        import dask
        try:
            # Dask's sampling profiler wakes every 10 ms in each worker and takes the GIL from
            # the attack: 3% more seconds per image (40 images of the 6x50 network)
            with warnings.catch_warnings(), dask.config.set(NO_PROFILER):
                warnings.simplefilter("ignore", UserWarning)   # "port 8787 is in use"
                cluster = distributed.LocalCluster(
                    n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
                    scheduler_port=0, dashboard_address=None, silence_logs=logging.ERROR)
        except Exception as err:  # noqa: BLE001 - say it in one line
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            raise DataError(f"--engine dask: cannot start an embedded Dask cluster of {jobs} "
                            f"workers ({reason}); give a running one with --scheduler") from None
        try:
            return distributed.Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"--scheduler {scheduler}: cannot reach a Dask scheduler ({reason})") from None
    if not client.scheduler_info().get("workers"):
        print(f"note: no worker has joined {scheduler} yet; the tasks wait for one "
              f"(start one with: dask worker {scheduler})", file=sys.stderr)
    return client, None


# -- any picklable task (verify --instances) ------------------------------------------------

def task_results(function, items: list[tuple], engine: str = "local", jobs: int = 1,
                 scheduler: str | None = None) -> Iterator[tuple[int, object]]:
    """``(position, function(*items[position]))`` for every item: in order in this process
    with one local job, else as tasks complete (a spawn pool of ``jobs`` processes, or one
    Dask task per item).  The items travel to the workers, so paths in them must be readable
    there (a shared file system, or the same checkout on every machine)."""
    check_engine(engine, scheduler, jobs)
    if engine == "local" and (jobs == 1 or len(items) <= 1):
        for position, item in enumerate(items):
            yield position, function(*item)
        return
    if engine == "local":
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(jobs, initializer=one_blas_thread) as pool:
            yield from pool.imap_unordered(_indexed, [(function, p, item)
                                                      for p, item in enumerate(items)])
        return
    distributed = _import_distributed()
    tasks = [(position, (function, *item)) for position, item in enumerate(items)]
    for position, future in _dask_completed(distributed, scheduler, jobs, "task",
                                            lambda client: tasks):
        yield position, future.result()


def _indexed(job):
    function, position, item = job
    return position, function(*item)
