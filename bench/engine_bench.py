"""Engine benchmark: wall-clock seconds of `netpatch attack` on the first N correctly classified
images with `--engine local --jobs 1|2` and `--engine dask` on 1|2 workers (an embedded
LocalCluster, cluster start-up included; with --external also a `dask scheduler` and workers
started beforehand, start-up excluded).  Run on demand (not a test):

    .venv/bin/python bench/engine_bench.py                 # 40 images of the 6x50 MNIST MLP
    .venv/bin/python bench/engine_bench.py --external --images 20

Every run writes to a fresh folder under --out (default: a temporary one, removed at the end);
the table also checks that every engine found the same successes, and shows the slowest image
(no engine finishes before it) and the machine's 1-minute load average at the start and end of
each run (other programs on the same cores slow the runs with more workers most).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, bench_parser, correctly_classified


def timed_attack(args, images: Path, out: Path, *engine) -> dict:
    """One run: wall-clock seconds, results by index, the slowest image, load averages."""
    argv = [sys.executable, "-m", "netpatch.cli", "attack", args.net, "--data", str(images),
            "--linf", args.linf, "--max-pixels", args.max_pixels, *engine, "--out", str(out)]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(engine)}: failed: {proc.stderr.strip().splitlines()[-1:]}")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {"seconds": seconds, "load": (load, os.getloadavg()[0]),
            "slowest": max(r["total_s"] for r in records),
            "results": {r["index"]: (r["success"], r["adv_label"], r["pixels"]) for r in records}}


class ExternalCluster:
    """A `dask scheduler` and n `dask worker` processes on 127.0.0.1 (stopped on exit)."""

    def __init__(self, folder: Path, n_workers: int):
        self.procs = []
        file = folder / f"scheduler-{n_workers}.json"
        self._spawn("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", file)
        while not file.exists():
            time.sleep(0.05)
        self.address = json.loads(file.read_text())["address"]
        for _ in range(n_workers):
            self._spawn("dask_worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                        "--no-dashboard", "--death-timeout", "60")
        import distributed
        with distributed.Client(self.address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=60)

    def _spawn(self, module, *args):
        self.procs.append(subprocess.Popen([sys.executable, "-m", f"distributed.cli.{module}",
                                            *map(str, args)], cwd=ROOT,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = bench_parser(__doc__, images=40)
    parser.add_argument("--linf", default="1",
                        help="L-inf bound of a change (default: %(default)s)")
    parser.add_argument("--max-pixels", default="15",
                        help="changed pixels at most (default: %(default)s)")
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--external", action="store_true",
                        help="also time a dask scheduler and workers started beforehand")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engine_bench_") as tmp:
        folder = Path(args.out) if args.out else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        images = correctly_classified(args.net, args.data, args.images, folder / "images.npz")
        counts = [int(n) for n in args.workers.split(",")]
        runs = []    # (engine label, workers, run)
        for n in counts:
            for tag, label in (("local", "local"), ("dask", "dask, embedded LocalCluster")):
                run = timed_attack(args, images, folder / f"{tag}-{n}", "--engine", tag,
                                   "--jobs", str(n))
                print(f"{label}, {n} worker(s): {run['seconds']:.1f} s", file=sys.stderr)
                runs.append((label, n, run))
            if args.external:
                with ExternalCluster(folder, n) as cluster:
                    run = timed_attack(args, images, folder / f"external-{n}", "--engine", "dask",
                                       "--scheduler", cluster.address)
                print(f"dask, external, {n} worker(s): {run['seconds']:.1f} s", file=sys.stderr)
                runs.append(("dask, external cluster", n, run))
        reference = runs[0][2]["results"]
        base = {label: run["seconds"] for label, n, run in runs if n == counts[0]}
        print(f"# {Path(args.net).name}: first {len(reference)} correctly classified images of "
              f"{Path(args.data).name}, --linf {args.linf} --max-pixels {args.max_pixels}, "
              f"{os.cpu_count()} cores\n")
        print("| engine | workers | wall-clock s | speed-up | slowest image s | successes | "
              f"same results as local, {counts[0]} | load avg start / end |")
        print("|---|---|---|---|---|---|---|---|")
        for label, n, run in runs:
            results = run["results"]
            wins = sum(success for success, _, _ in results.values())
            print(f"| {label} | {n} | {run['seconds']:.1f} | {base[label] / run['seconds']:.2f}x | "
                  f"{run['slowest']:.1f} | {wins}/{len(results)} | "
                  f"{'yes' if results == reference else 'NO'} | "
                  f"{run['load'][0]:.1f} / {run['load'][1]:.1f} |")


if __name__ == "__main__":
    main()
