"""Attack benchmark: `netpatch attack` per strategy on the first N correctly classified images,
and one table of the METHOD.md metrics.  Run on demand (not a test):

    .venv/bin/python bench/attack_bench.py --strategies dnc,direct --out bench/results/attack
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchlib import ROOT, bench_parser, correctly_classified

from attacks.config import IMAGE_TIME_LIMIT
from netpatch.cli import main as netpatch


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}g}"


def main() -> None:
    parser = bench_parser(__doc__, images=100)
    parser.add_argument("--strategies", default="dnc,direct",
                        help="comma-separated strategies (default: %(default)s)")
    parser.add_argument("--linf", default="1",
                        help="L-inf bound of a change (default: %(default)s)")
    parser.add_argument("--max-pixels", default="15",
                        help="changed pixels at most (default: %(default)s)")
    parser.add_argument("--time-limit", default="30",
                        help="seconds per solver call (default: %(default)s)")
    parser.add_argument("--jobs", default="1",
                        help="processes (default: %(default)s)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "attack"),
                        help="output (default: %(default)s)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = correctly_classified(args.net, args.data, args.images, out / "images.npz")
    population = len(np.load(images)["y"])   # fewer than asked when the data set runs out
    rows = ["| strategy | defect detection | pixels mean/median/max | L2 mean | L-inf mean "
            "| time median s | time mean s (compile / solve) | Pielou |", "|---|---|---|---|---|---|---|---|"]
    for strategy in args.strategies.split(","):
        run_dir = out / strategy
        netpatch(["attack", args.net, "--data", str(images), "--linf", args.linf, "--max-pixels",
                  args.max_pixels, "--strategy", strategy, "--time-limit", args.time_limit,
                  "--jobs", args.jobs, "--out", str(run_dir)])
        s = json.loads((run_dir / "report.json").read_text())["summary"]
        t = s["time_s"]
        rows.append(f"| {strategy} | {100 * s['defect_detection']:.1f}% ({s['successes']}/{s['attempted']}) | "
                    f"{fmt(s['pixels']['mean'])} / {fmt(s['pixels']['median'])} / {fmt(s['pixels']['max'])} | "
                    f"{fmt(s['l2']['mean'])} | {fmt(s['linf']['mean'])} | {fmt(t['median'])} | "
                    f"{fmt(t['mean'])} ({fmt(t['compile_mean'])} / {fmt(t['solve_mean'])}) | {fmt(s['pielou'])} |")
        print(rows[-1], flush=True)
    title = (f"# Attack benchmark: {Path(args.net).name}, first {population} correctly classified "
             f"images of {Path(args.data).name}, L-inf {args.linf}, <= {args.max_pixels} pixels, HiGHS, "
             f"{args.jobs} job(s), {args.time_limit} s per solver call, {IMAGE_TIME_LIMIT:g} s per image "
             f"(dnc, direct)\n\n")
    (out / "table.md").write_text(title + "\n".join(rows) + "\n")
    print(f"wrote {out / 'table.md'}")


if __name__ == "__main__":
    main()
