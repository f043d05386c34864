"""``netpatch attack``: adversarial inputs for every image of a data set.

Each image's result is appended to ``OUT/results.jsonl`` as soon as it is known, so an
interrupted run loses nothing; a rerun with the same ``--out`` skips the images already done.
At the end: ``report.json``, ``report.md``, ``adversarial.npz`` and ``examples.png``.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from compiler.passes import PassOptions
from common.errors import DataError
from netpatch.attack import CUTS, RECOVERY, STRATEGIES, AttackConfig, attack

RESULTS = "results.jsonl"
CONFIG = "config.json"


def register(sub) -> None:
    from backends import DEFAULT_BACKEND
    from netpatch.cli import add_network_args
    p = sub.add_parser("attack", help="adversarial inputs for a data set (results.jsonl, report, PNG)",
                       description=__doc__)
    add_network_args(p)
    p.add_argument("--data", required=True, help=".npz with arrays x and y, or .csv (label first)")
    p.add_argument("--limit", type=int, help="attack the first N rows only")
    p.add_argument("--linf", type=float, default=1.0, help="largest change of one input value "
                   "(default 1.0)")
    p.add_argument("--max-pixels", type=int, help="at most K changed input values")
    p.add_argument("--strategy", choices=STRATEGIES, default="dnc",
                   help="dnc: the paper's divide and conquer (default); direct: one MILP through "
                        "the linearized network; exact: free ReLU phases, the true minimum")
    p.add_argument("--inner-targets", choices=("pullback", "points"), default="pullback",
                   help="dnc's property for the lower half: the output property pulled back "
                        "through the linearized upper half (default), or the paper's point "
                        "values relaxed by increment/decrement marks")
    p.add_argument("--cuts", choices=CUTS, default="all",
                   help="dnc's edge-layers to patch: all (default): the paper's halving "
                        "schedule, then every other first cut, halving below it; halving: the "
                        "paper's schedule only")
    p.add_argument("--no-escalation", dest="escalate", action="store_false",
                   help="dnc: only L-inf patches (default: when every target and cut fails, "
                        "try L1 patches, then patches that may switch the patched layer's "
                        "ReLUs, a MILP per patch)")
    p.add_argument("--no-shrink", dest="shrink", action="store_false",
                   help="dnc and direct: keep the answer as found (default: put changed inputs "
                        "back one at a time while the original network still misclassifies)")
    p.add_argument("--recovery", choices=RECOVERY, default="sort",
                   help="input recovery for one linear target: sort (default; the fewest "
                        "changed inputs in closed form, the same count as the MILP) or milp "
                        "(the backend's MILP)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, help=f"solver (default {DEFAULT_BACKEND})")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--time-limit", type=float, help="seconds per solver call")
    p.add_argument("--max-targets", type=int, help="try at most N target classes per image")
    p.add_argument("--image-shape", help="H,W,C to draw flat inputs as images in examples.png, "
                   "e.g. 32,32,3 (default: guessed for 784 and 3072 inputs)")
    p.add_argument("--out", default="runs/attack", help="output folder (default runs/attack)")
    p.set_defaults(run=run)


def run(args) -> int:
    from frontends.data import check_fits, load_dataset
    from netpatch.cli import load_net
    if args.jobs < 1:
        raise DataError(f"--jobs {args.jobs}: need at least 1")
    net = load_net(args)
    x, y = load_dataset(args.data)
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    check_fits(x, y, net.n_inputs, net.n_outputs, args.data)
    config = AttackConfig(linf=args.linf, max_pixels=args.max_pixels, strategy=args.strategy,
                          backend=args.backend, time_limit=args.time_limit,
                          max_targets=args.max_targets, inner_targets=args.inner_targets,
                          cuts=args.cuts, recovery=args.recovery, escalate=args.escalate,
                          shrink=args.shrink)
    out = Path(args.out)
    settings = {"net": str(args.net), "data": str(args.data), **_config_dict(config)}
    done = prepare_output(out, settings)
    todo = [i for i in range(len(x)) if i not in done]
    if done:
        print(f"resuming: {len(done)} of {len(x)} images already in {out / RESULTS}", file=sys.stderr)

    shape = guess_image_shape(net, args.image_shape)
    progress = Progress(len(x), len(done), sum(r["success"] for r in done.values()))
    for record in run_images(args, net, x, y, config, todo):
        append_records(out, [record], done, progress)
    progress.finish()

    records = [done[i] for i in sorted(done)]
    finish(out, net, x, records, settings, image_shape=shape)
    return 0


def append_records(out: Path, records: list[dict], done: dict, progress: "Progress") -> None:
    """Append finished images to results.jsonl, on disk before anything else happens."""
    with open(out / RESULTS, "a") as sink:
        for record in records:
            sink.write(json.dumps(record) + "\n")
        sink.flush()
        os.fsync(sink.fileno())
    for record in records:
        done[record["index"]] = record
        progress.update(record)


def guess_image_shape(net, text: str | None) -> tuple[int, ...]:
    """--image-shape H,W,C, else the network's input shape; a flat input of s*s values (s >= 4)
    is read as an s x s grayscale image and one of 3*s*s values as RGB (MNIST: 28x28x1,
    CIFAR-10: 32x32x3, the digits example: 8x8x1)."""
    if text:
        try:
            shape = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise DataError(f"--image-shape {text!r}: expected integers like 32,32,3") from None
        if int(np.prod(shape)) != net.n_inputs:
            raise DataError(f"--image-shape {text}: {int(np.prod(shape))} values, the network "
                            f"takes {net.n_inputs}")
        return shape
    if len(net.input_shape) != 1:
        return tuple(net.input_shape)
    n = net.n_inputs
    for channels in (1, 3):
        side = math.isqrt(n // channels)
        if side >= 4 and side * side * channels == n:
            return (side, side, channels)
    return tuple(net.input_shape)


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
                continue   # a line cut short by an interruption: that image runs again
            done[record["index"]] = record
        _rewrite(results, done)
    return done


def _rewrite(results: Path, done: dict) -> None:
    """Drop a torn last line so the file holds each index exactly once."""
    results.write_text("".join(json.dumps(done[i]) + "\n" for i in sorted(done)))


def run_images(args, net, x, y, config, todo):
    """Yield one record per image, in order with one job, as they finish with several."""
    if args.jobs == 1 or len(todo) <= 1:
        for i in todo:
            yield attack_one(net, x[i], int(y[i]), i, config)
        return
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs, initializer=_worker_init, initargs=(args.net, args.weights, config)) as pool:
        yield from pool.imap_unordered(_worker_attack, [(i, x[i], int(y[i])) for i in todo])


_WORKER = {}


def _worker_init(net_path, weights, config):
    from frontends import load_network
    _WORKER["net"] = load_network(net_path, weights=weights)
    _WORKER["config"] = config


def _worker_attack(job):
    i, xi, yi = job
    return attack_one(_WORKER["net"], xi, yi, i, _WORKER["config"])


def attack_one(net, xi, label: int, index: int, config: AttackConfig) -> dict:
    """Attack one image and describe the outcome as a JSON-ready record."""
    t0 = time.perf_counter()
    predicted = int(np.argmax(net(xi)))
    if predicted != label:
        return {"index": index, "label": label, "success": False, "adv_label": None,
                "target": None, "pixels": None, "l2": None, "linf": None, "compile_s": 0.0,
                "solve_s": 0.0, "total_s": 0.0, "status": "skipped_misclassified",
                "stage": "", "reason": f"the network predicts {predicted}", "changes": []}
    result = attack(net, xi, label, config)
    record = {"index": index, "label": label, "success": result.success,
              "adv_label": result.adv_label, "target": result.target_class,
              **result.metrics(xi),
              "compile_s": round(result.times["compile_s"], 6),
              "solve_s": round(result.times["solve_s"], 6),
              "total_s": round(time.perf_counter() - t0, 6),
              "status": result.status, "stage": result.stage, "reason": result.reason,
              "targets_tried": result.tried, "patch_mode": result.tier}
    # the changed inputs, exactly (repr floats round-trip): the adversarial input is x + these
    changed = [] if result.x_adv is None else np.flatnonzero(result.x_adv != xi)
    record["changes"] = [[int(j), float(result.x_adv[j])] for j in changed]
    return record


class Progress:
    """One status line on stderr: images done, successes, rate, ETA."""

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
    from netpatch.metrics import summarize
    from netpatch.report import image_grid, write_report
    arrays = adversarial_arrays(x, records)
    # Every success is re-validated here against the original network, from the file.
    if len(arrays["index"]):
        predicted = np.argmax(net(arrays["x_adv"]), axis=1)
        assert np.array_equal(predicted, arrays["adv_label"]), "stored adversarial inputs changed"
    np.savez_compressed(out / "adversarial.npz", **arrays)
    summary = summarize(records, n_classes=net.n_outputs, n_inputs=net.n_inputs)
    write_report(out, summary, settings, title=f"netpatch attack: {Path(settings['net']).name}")
    image_grid(out / "examples.png", arrays["x"], arrays["x_adv"], arrays["label"],
               arrays["adv_label"], image_shape or net.input_shape)
    dd = summary["defect_detection"]
    print(f"{summary['successes']}/{summary['attempted']} correctly classified images attacked "
          f"successfully ({'-' if dd is None else f'{100 * dd:.1f}%'}); report: {out / 'report.md'}")


def _config_dict(config: AttackConfig) -> dict:
    d = asdict(config)
    d["passes"] = asdict(config.passes) if isinstance(config.passes, PassOptions) else d["passes"]
    return d
