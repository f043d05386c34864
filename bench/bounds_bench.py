"""Bounds benchmark: interval, symbolic and LP bounds (compiler.analysis.bounds.layer_bounds)
on the first N correctly classified images, for the 15-pixel L0 set and an L-inf box.  Per
edge-layer: the mean bound width (upper - lower) and the mean number of unstable ReLUs; per
method: the mean time per image.  Run on demand (not a test):

    .venv/bin/python bench/bounds_bench.py --images 20 --out bench/results/bounds
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchlib import ROOT, bench_parser, load_pixel_network

from common.threads import one_blas_thread
from compiler.analysis.bounds import METHODS, layer_bounds
from compiler.analysis.input_sets import Box, SparseBox
from frontends.data import load_dataset


def input_sets(net, x, args):
    """``(title, set)`` pairs for one image."""
    return [(f"{args.pixels} pixels, each within L-inf {args.pixel_linf} in the domain "
             f"(SparseBox, k = {args.pixels})",
             SparseBox.around(x, args.pixel_linf, args.pixels, net.domain)),
            (f"L-inf {args.linf} box in the domain (Box)", Box.around(x, args.linf, net.domain))]


def table(net, runs: dict) -> list[str]:
    """One Markdown table for one input set: ``runs[method]`` is the list of LayerBounds."""
    methods = list(runs)
    rows = ["| edge-layer | " + " | ".join(f"{m} width" for m in methods) + " | "
            + " | ".join(f"{m} unstable" for m in methods) + " |",
            "|---" * (1 + 2 * len(methods)) + "|"]
    for k in range(1, net.depth + 1):
        widths = [np.mean([np.mean(b.upper[k] - b.lower[k]) for b in runs[m]]) for m in methods]
        unstable = [np.mean([b.unstable[k] for b in runs[m]]) for m in methods]
        rows.append(f"| {k} ({net.edge(k).linear.n_out}) | "
                    + " | ".join(f"{w:.4g}" for w in widths) + " | "
                    + " | ".join(f"{u:.1f}" for u in unstable) + " |")
    seconds = [np.mean([b.seconds for b in runs[m]]) for m in methods]
    rows.append("| time per image (s) | " + " | ".join(f"{s:.3g}" for s in seconds)
                + " |" * (len(methods) + 1))
    if "lp" in runs:
        lps = np.mean([sum(b.lp_solved.values()) for b in runs["lp"]])
        rows.append("| LPs proved optimal per image | " + " | ".join(
            f"{lps:.1f}" if m == "lp" else "-" for m in methods) + " |" * (len(methods) + 1))
    return rows


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated methods (default: %(default)s)")
    parser.add_argument("--pixels", type=int, default=15,
                        help="changed pixels of the L0 input set (default: %(default)s)")
    parser.add_argument("--pixel-linf", type=float, default=1.0,
                        help="L-inf bound of a changed pixel, L0 set (default: %(default)s)")
    parser.add_argument("--linf", type=float, default=0.02,
                        help="L-inf bound of a change (default: %(default)s)")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds for the LP stage per image and set (default: none)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "bounds"),
                        help="output (default: %(default)s)")
    args = parser.parse_args()
    one_blas_thread()     # as the commands run: one job, one BLAS thread
    net = load_pixel_network(args.net)
    x, y = load_dataset(args.data)
    keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)[:args.images]
    methods = args.methods.split(",")
    titles, runs = [], []
    for i in keep:
        for s, (title, input_set) in enumerate(input_sets(net, x[i], args)):
            if s == len(runs):
                titles.append(title)
                runs.append({m: [] for m in methods})
            for method in methods:
                bounds = layer_bounds(net, input_set, method, time_budget=args.time_budget)
                runs[s][method].append(bounds)
                print(f"image {i} set {s} {method}: {bounds.seconds:.3f} s, unstable "
                      f"{list(bounds.unstable.values())}", flush=True)
    budget = "none" if args.time_budget is None else f"{args.time_budget} s"
    lines = [f"# Bounds benchmark: {Path(args.net).name}, first {len(keep)} correctly classified "
             f"images of {Path(args.data).name}, LP time budget {budget}", ""]
    for title, run in zip(titles, runs):
        lines += [f"## {title}", ""] + table(net, run) + [""]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    print(f"wrote {out / 'table.md'}")


if __name__ == "__main__":
    main()
