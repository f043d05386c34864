"""A VNN-COMP benchmark's instance list (``instances.csv``: rows ``onnx,vnnlib,timeout``,
paths relative to the list) decided into a results CSV, resumably: ``netpatch verify
--instances``.  ``verify_one`` is the task an engine runs: load, check, decide."""
from __future__ import annotations

import csv
import functools
import time
from collections import Counter
from pathlib import Path

import numpy as np

from common.errors import DataError, NetpatchError

FIELDS = ("onnx", "vnnlib", "timeout", "result", "seconds", "stage", "reason")


def verify_one(net_path, property_path, timeout: float, strategy: str = "auto",
               backend: str = "highs", bounds: str = "symbolic"):
    """Load, check, decide; a bad file becomes an ``error`` verdict, not a traceback."""
    from attacks.verify import Verdict, verify
    from frontends import load_network
    from ir.vnnlib import load_vnnlib
    t0 = time.perf_counter()
    try:
        net = load_network(net_path)
        spec = load_vnnlib(property_path, net.n_inputs, net.n_outputs)
        return verify(net, spec, timeout, strategy, backend, bounds)
    except NetpatchError as err:
        return Verdict("error", seconds=time.perf_counter() - t0, reason=str(err))


def decide_one(net_path, property_path, timeout: float, strategy: str = "auto",
               backend: str = "highs", bounds: str = "symbolic", quiet: bool = False):
    """``verify_one`` with its stage shown live on stderr (``evaluation.progress``) once it
    runs longer than a few seconds, unless ``quiet``."""
    from attacks.work import listen_to_stages
    from evaluation.progress import Progress, ResultTally
    with Progress(1, ResultTally(), desc=f"verify {Path(property_path).name}", quiet=quiet,
                  unit="instance") as progress:
        progress.start(0)
        previous = listen_to_stages(functools.partial(progress.stage, 0))
        try:
            verdict = verify_one(net_path, property_path, timeout, strategy, backend, bounds)
        finally:
            listen_to_stages(previous)
        progress.update({"result": verdict.result, "index": 0})
    return verdict


def decide_instances(instances: Path, out: str | Path | None, strategy: str, backend: str,
                     bounds: str, engine: str = "local", jobs: int = 1,
                     scheduler: str | None = None, quiet: bool = False) -> tuple[list, Path]:
    """Every row of a VNN-COMP instance list decided into the results CSV ``out`` (default
    ``results.csv`` beside the list), rows already there skipped: every record of the CSV,
    and its path."""
    from attacks.work import listen_to_stages
    from evaluation.engines import task_results
    from evaluation.progress import Progress, ResultTally
    rows = read_instances(instances)
    out = Path(out) if out else instances.with_name("results.csv")
    done = read_results(out)
    new = not out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sink = open(out, "a", newline="")
    except OSError as err:
        raise DataError(f"--out {out}: cannot write ({err.strerror or err})") from None
    keys = {(onnx, vnnlib) for onnx, vnnlib, _ in rows}
    earlier = [r for key, r in done.items() if key in keys]
    previous = listen_to_stages(None)
    try:
        with sink, Progress(len(rows), ResultTally(earlier), done=len(earlier), desc="verify",
                            quiet=quiet, unit="instance") as progress:

            def follow(number: int) -> None:      # one local job: which instance runs, its stage
                progress.start(number)
                listen_to_stages(functools.partial(progress.stage, number))
            writer = csv.DictWriter(sink, FIELDS)
            if new:
                writer.writeheader()
            todo = [(number, row) for number, row in enumerate(rows) if row[:2] not in done]
            base = instances.parent.resolve()
            tasks = [(str(base / onnx), str(base / vnnlib), timeout, strategy, backend, bounds)
                     for _, (onnx, vnnlib, timeout) in todo]
            one_by_one = engine == "local" and jobs == 1
            if one_by_one and todo:
                follow(todo[0][0])
            for position, verdict in task_results(verify_one, tasks, engine, jobs, scheduler):
                number, (onnx, vnnlib, timeout) = todo[position]
                key = (onnx, vnnlib)
                if one_by_one and position + 1 < len(todo):
                    follow(todo[position + 1][0])     # the next instance, in order
                record = {"onnx": onnx, "vnnlib": vnnlib, "timeout": timeout,
                          "result": verdict.result, "seconds": f"{verdict.seconds:.3f}",
                          "stage": verdict.stage, "reason": verdict.reason[:300]}
                writer.writerow(record)
                sink.flush()
                done[key] = record
                progress.update({**record, "index": number})
    finally:
        listen_to_stages(previous)
    return list(done.values()), out


def read_instances(path: Path) -> list[tuple[str, str, float]]:
    """The rows ``onnx,vnnlib,timeout`` of a VNN-COMP instances.csv."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows = []
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 3:
                raise DataError(f"{path}:{number}: expected onnx,vnnlib,timeout, got {row}")
            try:
                timeout = float(row[2])
            except ValueError:
                raise DataError(f"{path}:{number}: timeout {row[2]!r} is not a number") from None
            rows.append((row[0].strip(), row[1].strip(), timeout))
    return rows


def read_results(path: Path) -> dict:
    """Rows already decided (a rerun resumes after them)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(f)
                if r.get("result") and r.get("onnx")}


def summary(records: list[dict]) -> str:
    counts = Counter(r["result"] for r in records)
    seconds = [float(r["seconds"]) for r in records]
    median = f"{np.median(seconds):.2f} s" if seconds else "-"
    return (f"{len(records)} instances: " + ", ".join(f"{k} {counts[k]}" for k in
            ("sat", "unsat", "timeout", "unknown", "error") if counts[k]) +
            f"; median time {median}")
