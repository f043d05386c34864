"""How far the heuristics are from the true optimum: dnc, direct and exact on the same images,
per image, with every success re-validated on the original network.  Run on demand:

    .venv/bin/python bench/exact_bench.py --images 20 --max-pixels 3 --out bench/results/exact.md

Reports, over the first N rows the network classifies correctly: successes per strategy,
exact's verdicts (optimal / infeasible / time_limit), and on images where exact proved the
optimum, the mean pixel excess of dnc and direct over it.  A proof of infeasibility with a
success of a heuristic, or a heuristic beating a proved optimum, would be a bug: it is
counted and printed.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchlib import ROOT, bench_parser, load_pixel_network

from common.threads import one_blas_thread
from attacks import AttackConfig, ExactConfig, attack
from frontends.data import load_dataset

STRATEGIES = ("dnc", "direct", "exact")


def main() -> None:
    parser = bench_parser(__doc__, "mnist_784-8-16-10.h5", 20)
    parser.add_argument("--max-pixels", type=int, default=3,
                        help="changed pixels at most (default: %(default)s)")
    parser.add_argument("--linf", type=float, default=1.0,
                        help="L-inf bound of a change (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=60.0,
                        help="seconds per solver call (default: %(default)s)")
    parser.add_argument("--image-time-limit", type=float, default=None,
                        help="wall-clock seconds per image and strategy")
    parser.add_argument("--bounds", default="symbolic", help="exact's big-M bounds")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="comma-separated strategies (default: %(default)s)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "exact.md"),
                        help="output (default: %(default)s)")
    args = parser.parse_args()
    one_blas_thread()     # as the commands run: one job, one BLAS thread
    net = load_pixel_network(args.net)
    strategies = args.strategies.split(",")
    x, y = load_dataset(args.data)
    keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)[:args.images]
    wins, seconds, verdicts, excess, bugs = Counter(), Counter(), Counter(), {}, []
    for i in keep:
        pixels = {}
        status = None
        for strategy in strategies:
            config = AttackConfig(linf=args.linf, max_pixels=args.max_pixels, strategy=strategy,
                                  time_limit=args.time_limit, budget=args.image_time_limit,
                                  exact=ExactConfig(bounds=args.bounds))
            t0 = time.perf_counter()
            r = attack(net, x[i], int(y[i]), config)
            seconds[strategy] += time.perf_counter() - t0
            if r.success:
                assert int(np.argmax(net(r.x_adv))) != y[i] and net.domain.contains(r.x_adv)
                wins[strategy] += 1
                pixels[strategy] = int(np.count_nonzero(r.x_adv - x[i]))
            if strategy == "exact":
                verdicts[r.status] += 1
                status = r.status
        for strategy in ("dnc", "direct"):
            if strategy not in pixels or "exact" not in strategies:
                continue
            if status == "infeasible" or (status == "optimal"
                                          and pixels[strategy] < pixels["exact"]):
                bugs.append(f"image {i}: {strategy} {pixels[strategy]} pixels, exact {status}")
            if status == "optimal":
                excess.setdefault(strategy, []).append(pixels[strategy] - pixels["exact"])
        print(f"image {i}: {pixels} exact {status}", flush=True)
    lines = [f"# Exact vs heuristics: {Path(args.net).name}, first {len(keep)} correctly classified "
             f"images, L-inf {args.linf}, <= {args.max_pixels} pixels, {args.time_limit} s per "
             f"solver call, {args.image_time_limit} s per image, exact's bounds {args.bounds}", "",
             "| strategy | successes | mean s per image | mean pixels above the proved optimum |",
             "|---|---|---|---|"]
    for strategy in strategies:
        above = excess.get(strategy)
        lines.append(f"| {strategy} | {wins[strategy]}/{len(keep)} | "
                     f"{seconds[strategy] / max(len(keep), 1):.3g} | "
                     f"{'-' if not above else f'{np.mean(above):.2f} ({len(above)} images)'} |")
    lines += ["", f"exact verdicts: {dict(verdicts)}", f"contradictions: {bugs or 'none'}"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
