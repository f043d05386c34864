"""A batch run into an output folder: ``results.jsonl`` (one record per input, appended as
soon as it is known, so an interrupted run loses nothing), resumed by a rerun with the same
settings, then ``report.json``, ``report.md``, ``adversarial.npz`` and ``examples.png``.

Used by ``netpatch attack`` and by ``netpatch bench`` for every method.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.errors import DataError
from evaluation.records import attack_record

RESULTS = "results.jsonl"
CONFIG = "config.json"


def config_dict(config) -> dict:
    """An AttackConfig as plain JSON values (nested configs as dicts)."""
    return json.loads(json.dumps(asdict(config)))


def prepare_output(out: Path, settings: dict) -> dict[int, dict]:
    """Create OUT (or check it holds a run with the same settings); return records done."""
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / CONFIG
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != settings:
            changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            raise DataError(f"{out} holds results of a run with other settings ({', '.join(changed)}); "
                            "use another --out or remove that folder")
    else:
        config_path.write_text(json.dumps(settings, indent=1) + "\n")
    done = {}
    results = out / RESULTS
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue   # a line cut short by an interruption: that input runs again
            done[record["index"]] = record
        _rewrite(results, done)
    return done


def _rewrite(results: Path, done: dict) -> None:
    """Drop a torn last line so the file holds each index exactly once."""
    results.write_text("".join(json.dumps(done[i]) + "\n" for i in sorted(done)))


def append_records(out: Path, records: list[dict], done: dict, progress: "Progress") -> None:
    """Append finished inputs to results.jsonl, on disk before anything else happens."""
    with open(out / RESULTS, "a") as sink:
        for record in records:
            sink.write(json.dumps(record) + "\n")
        sink.flush()
        os.fsync(sink.fileno())
    for record in records:
        done[record["index"]] = record
        progress.update(record)


def run_attacks(net, x: np.ndarray, y: np.ndarray, config, out: Path, settings: dict,
                jobs: int = 1, load=None, image_shape=None) -> list[dict]:
    """Attack every row of ``x`` not yet in ``out`` (``jobs`` worker processes, each loading
    the network with ``load()``, a picklable callable), then write the reports.  Returns every
    record, in index order."""
    done = prepare_output(out, settings)
    todo = [i for i in range(len(x)) if i not in done]
    if done:
        print(f"resuming: {len(done)} of {len(x)} inputs already in {out / RESULTS}", file=sys.stderr)
    progress = Progress(len(x), len(done), sum(r["success"] for r in done.values()))
    for record in _records(net, x, y, config, todo, jobs, load):
        append_records(out, [record], done, progress)
    progress.finish()
    records = [done[i] for i in sorted(done)]
    finish(out, net, x, records, settings, image_shape=image_shape)
    return records


def _records(net, x, y, config, todo, jobs: int, load):
    """One record per input, in order with one job, as they finish with several."""
    if jobs == 1 or len(todo) <= 1:
        for i in todo:
            yield attack_record(net, x[i], int(y[i]), i, config)
        return
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs, initializer=_worker_init, initargs=(load, config)) as pool:
        yield from pool.imap_unordered(_worker_attack, [(i, x[i], int(y[i])) for i in todo])


_WORKER = {}


def _worker_init(load, config):
    _WORKER["net"] = load()
    _WORKER["config"] = config


def _worker_attack(job):
    i, xi, yi = job
    return attack_record(_WORKER["net"], xi, yi, i, _WORKER["config"])


class Progress:
    """One status line on stderr: inputs done, successes, rate, ETA."""

    def __init__(self, total: int, done: int, successes: int):
        self.total, self.done, self.successes = total, done, successes
        self.start_done, self.t0 = done, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, record: dict) -> None:
        self.done += 1
        self.successes += bool(record["success"])
        elapsed = time.perf_counter() - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        line = (f"[{self.done}/{self.total}] successes {self.successes} "
                f"({100 * self.successes / self.done:.0f}%)  {rate:.2f} images/s  ETA {eta:.0f} s")
        if self.tty:
            print("\r" + line.ljust(78), end="", file=sys.stderr, flush=True)
        elif self.done % 10 == 0 or self.done == self.total:
            print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def adversarial_arrays(x: np.ndarray, records: list[dict]) -> dict[str, np.ndarray]:
    """The validated successes as arrays ``index, x, x_adv, label, adv_label``."""
    wins = [r for r in records if r["success"]]
    index = np.array([r["index"] for r in wins], dtype=np.int64)
    x_adv = x[index].copy() if len(wins) else np.zeros((0, x.shape[1]))
    for row, r in enumerate(wins):
        for j, value in r["changes"]:
            x_adv[row, j] = value
    return {"index": index, "x": x[index], "x_adv": x_adv,
            "label": np.array([r["label"] for r in wins], dtype=np.int64),
            "adv_label": np.array([r["adv_label"] for r in wins], dtype=np.int64)}


def finish(out: Path, net, x, records: list[dict], settings: dict, image_shape=None) -> None:
    from evaluation.metrics import summarize
    from evaluation.report import image_grid, write_report
    arrays = adversarial_arrays(x, records)
    # Every success is re-validated here against the original network, from the file.
    if len(arrays["index"]):
        predicted = np.argmax(net(arrays["x_adv"]), axis=1)
        if not np.array_equal(predicted, arrays["adv_label"]):
            bad = arrays["index"][predicted != arrays["adv_label"]]
            raise DataError(f"{out / RESULTS}: the stored adversarial inputs of rows "
                            f"{bad.tolist()[:10]} no longer give their recorded labels")
    np.savez_compressed(out / "adversarial.npz", **arrays)
    summary = summarize(records, n_classes=net.n_outputs, n_inputs=net.n_inputs)
    write_report(out, summary, settings, title=f"netpatch attack: {Path(settings['net']).name}")
    image_grid(out / "examples.png", arrays["x"], arrays["x_adv"], arrays["label"],
               arrays["adv_label"], image_shape or net.input_shape)
    dd = summary["defect_detection"]
    print(f"{summary['successes']}/{summary['attempted']} correctly classified images attacked "
          f"successfully ({'-' if dd is None else f'{100 * dd:.1f}%'}); report: {out / 'report.md'}")
