"""``--engine dask`` (evaluation/engines.py): a real scheduler and two worker processes started
here on 127.0.0.1; a worker killed mid-run has its images rerun elsewhere, each image is
recorded once, every success re-validates on the original network, and the results equal the
local engine's; a killed client resumes; an embedded LocalCluster gives the same results."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="--engine dask needs dask.distributed")

from frontends import load_network  # noqa: E402
from frontends.data import load_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS_NET = ROOT / "examples" / "digits" / "digits_mlp.keras"
DIGITS_DATA = ROOT / "examples" / "digits" / "digits_test.npz"
N = 20
SHORT = 10     # images of the runs that need not be 20 long (keeps the file under 25 s)
# the MILP recovery with a 3-pixel budget takes ~0.1 s per image: slow enough to stop a run
ARGV = (DIGITS_NET, "--data", DIGITS_DATA, "--max-pixels", 3, "--strategy", "direct",
        "--recovery", "milp")


def digits_net():
    """The digits MLP with the domain [0, 1] the commands give it by default."""
    from ir.network import Domain
    net = load_network(DIGITS_NET)
    if net.domain is None:      # the domain is the task's (--domain), not the model file's
        net = net.with_domain(Domain.box(net.n_inputs))
    return net


def command(*extra, limit=N):
    return [sys.executable, "-m", "netpatch.cli", "attack", *map(str, ARGV), "--limit", str(limit),
            *map(str, extra)]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Cluster:
    """A ``dask scheduler`` (port chosen by the OS, read from its scheduler file) and
    ``dask worker`` processes (no nanny: killing one kills the worker), on 127.0.0.1."""

    def __init__(self, folder: Path):
        self.folder, self.workers, self.scheduler = folder, [], None
        self.address = None

    def start(self, n_workers: int) -> None:
        file = self.folder / "scheduler.json"
        self.scheduler = self._spawn("dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", file)
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline and self.scheduler.poll() is None:
            time.sleep(0.05)
        assert file.exists(), "the scheduler did not start"
        self.address = json.loads(file.read_text())["address"]
        for _ in range(n_workers):
            self.workers.append(self._spawn(
                "dask_worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                "--no-nanny", "--no-dashboard", "--death-timeout", "60"))
        with distributed.Client(self.address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=60)

    def _spawn(self, module, *args):
        log = open(self.folder / f"{module}-{len(self.workers)}.log", "w")
        return subprocess.Popen([sys.executable, "-m", f"distributed.cli.{module}",
                                 *map(str, args)], cwd=ROOT, stdout=log, stderr=log)

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is not None:
                stop(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.start(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def local_results():
    """The same attack on the local engine, in this process: index -> (success, adv_label,
    pixels)."""
    from attacks import AttackConfig, RecoveryConfig
    from evaluation.engines import attack_records
    net = digits_net()
    x, y = load_dataset(DIGITS_DATA)
    config = AttackConfig(max_pixels=3, strategy="direct", recovery=RecoveryConfig("milp"))
    results = {r["index"]: (r["success"], r["adv_label"], r["pixels"])
               for r in attack_records(net, x[:N], y[:N], config, list(range(N)), engine="local")}
    assert sorted(results) == list(range(N))
    assert sum(success for success, _, _ in results.values()) >= N // 2
    return results


def first(results: dict, n: int) -> dict:
    return {i: r for i, r in results.items() if i < n}


def raw_indices(out: Path) -> list[int]:
    return [json.loads(line)["index"] for line in (out / "results.jsonl").read_text().splitlines()]


def result_set(out: Path) -> dict:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {r["index"]: (r["success"], r["adv_label"], r["pixels"]) for r in records}


def assert_successes_revalidate(out: Path) -> None:
    """Run the original network on x with each success's recorded changes put in."""
    net = digits_net()
    x, y = load_dataset(DIGITS_DATA)
    wins = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    wins = [r for r in wins if r["success"]]
    assert wins
    for r in wins:
        x_adv = x[r["index"]].copy()
        for j, value in r["changes"]:
            x_adv[j] = value
        predicted = int(np.argmax(net(x_adv)))
        assert predicted == r["adv_label"] != y[r["index"]] == r["label"]
        assert 0 < np.count_nonzero(x_adv - x[r["index"]]) <= 3
        assert np.all((x_adv >= 0) & (x_adv <= 1))


def wait_for_records(out: Path, n: int, proc: subprocess.Popen) -> int:
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= n:
            break
        time.sleep(0.01)
    return results.read_text().count("\n") if results.exists() else 0


def test_a_killed_worker_has_its_images_rerun_and_results_equal_local(cluster, local_results,
                                                                       tmp_path):
    out = tmp_path / "run"
    client = subprocess.Popen(command("--engine", "dask", "--scheduler", cluster.address,
                                      "--out", out), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        seen = wait_for_records(out, 3, client)
        cluster.workers[0].kill()
        cluster.workers[0].wait()
        assert 3 <= seen < N, "the worker should be killed part way through the run"
        _, err = client.communicate(timeout=300)
    finally:
        stop(client)
    assert client.returncode == 0, err
    assert sorted(raw_indices(out)) == list(range(N))       # each image exactly once
    assert_successes_revalidate(out)
    assert result_set(out) == local_results


def test_a_killed_client_resumes_under_dask(cluster, local_results, tmp_path):
    out = tmp_path / "run"
    argv = command("--engine", "dask", "--scheduler", cluster.address, "--out", out, limit=SHORT)
    client = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_records(out, 2, client)
    finally:
        client.kill()
        client.wait()
    before = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()
              if line.endswith("}")]
    assert 2 <= len(before) < SHORT, "the client should be killed part way through the run"
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr and "taking over the lock" in proc.stderr
    assert sorted(raw_indices(out)) == list(range(SHORT))
    again = {json.loads(line)["index"]: json.loads(line)
             for line in (out / "results.jsonl").read_text().splitlines()}
    for record in before:            # images done before the kill were not redone
        assert again[record["index"]] == record
    assert result_set(out) == first(local_results, SHORT)


def test_an_embedded_local_cluster_gives_the_local_results(local_results, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(command("--engine", "dask", "--jobs", "2", "--out", out, limit=SHORT),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(raw_indices(out)) == list(range(SHORT))
    assert_successes_revalidate(out)
    assert result_set(out) == first(local_results, SHORT)


def test_scheduler_without_the_dask_engine_is_a_clear_error(tmp_path, capsys):
    from netpatch.cli import main as netpatch
    code = netpatch(["attack", str(DIGITS_NET), "--data", str(DIGITS_DATA), "--scheduler",
                     "tcp://127.0.0.1:8786", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--scheduler tcp://127.0.0.1:8786: only with --engine dask" in err
    assert not (tmp_path / "run").exists()


def test_a_worker_process_unpickles_the_network_once(monkeypatch):
    """The task's network cache: the second task of a run does not unpickle it again."""
    import pickle

    from evaluation import engines
    monkeypatch.setattr(engines, "_NETWORKS", {})
    net = digits_net()
    first = engines._worker_network(pickle.dumps(net), "run-1")
    assert np.array_equal(first(np.ones(net.n_inputs)), net(np.ones(net.n_inputs)))
    assert engines._worker_network(b"not a pickle", "run-1") is first
    with pytest.raises(pickle.UnpicklingError):
        engines._worker_network(b"not a pickle", "run-2")
