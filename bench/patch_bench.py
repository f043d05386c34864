"""Patch-query benchmark: per edge-layer and backend, median build/solve time, problem sizes
with each pass on and off, and patch sizes.  Run on demand (not a test):

    .venv/bin/python bench/patch_bench.py --images 50 --out bench/results/patch_bench.md
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchlib import ROOT, bench_parser, load_pixel_network

from common.threads import one_blas_thread
from compiler.passes import PassOptions
from frontends.data import load_dataset
from ir.property import ArgmaxIsNot, targeted_candidates
from attacks.patching import PatchRequest, patch_layer

VARIANTS = {
    "all passes": PassOptions(),
    "no sign pruning": PassOptions(sign_pruning=False),
    "no inert dropping": PassOptions(drop_inert=False, sign_pruning=False),
    "region phases": PassOptions(phase_fixing="region"),
}


def first_target(net, x):
    return targeted_candidates(ArgmaxIsNot(int(np.argmax(net(x)))), net(x))[0][1]


def measure(net, k, cases, backend, options, objective):
    rows = []
    for x, prop in cases:
        t0 = time.perf_counter()
        o = patch_layer(PatchRequest(net, k, x, prop, backend, options, objective=objective,
                                     relinearize=0))
        rows.append({"total": time.perf_counter() - t0, "build": o.build_s, "solve": o.solve_s,
                     "solved": o.eps is not None, "validated": o.validated,
                     "linf": o.eps_linf, "changed": o.weights_changed,
                     "query": o.sizes[0], "final": o.sizes[-1]})
    return rows


def med(rows, key):
    values = [r[key] for r in rows if r[key] is not None]
    return float(np.median(values)) if values else float("nan")


def main() -> None:
    parser = bench_parser(__doc__, images=50)
    parser.add_argument("--pyomo-images", type=int, default=10,
                        help="images for pyomo-highs (slower) and the pass variants "
                             "(default: %(default)s)")
    parser.add_argument("--objective", default="linf",
                        help="patch objective (default: %(default)s)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "patch_bench.md"),
                        help="output (default: %(default)s)")
    args = parser.parse_args()
    one_blas_thread()     # as the commands run: one job, one BLAS thread
    net = load_pixel_network(args.net)
    xs, _ = load_dataset(args.data)
    cases = [(xs[i], first_target(net, xs[i])) for i in range(args.images)]
    lines = [f"# Patch benchmark: {Path(args.net).name}, {args.images} images, "
             f"objective {args.objective}, first target class by logit gap, one round", "",
             "| edge-layer | backend | images | median total ms | median build ms | median solve ms "
             "| solved | validated | median L-inf | median weights changed | query vars/rows | final vars/rows |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in range(1, net.depth + 1):
        for backend, n in (("highs", args.images), ("pyomo-highs", args.pyomo_images)):
            if n == 0:
                continue
            rows = measure(net, k, cases[:n], backend, PassOptions(), args.objective)
            q, f = rows[0]["query"], rows[0]["final"]
            lines.append(f"| {k} | {backend} | {n} | {1000 * med(rows, 'total'):.1f} | "
                         f"{1000 * med(rows, 'build'):.1f} | {1000 * med(rows, 'solve'):.1f} | "
                         f"{sum(r['solved'] for r in rows)} | {sum(r['validated'] for r in rows)} | "
                         f"{med(rows, 'linf'):.4g} | {med(rows, 'changed'):.0f} | "
                         f"{q['variables']}/{q['rows']} | {f['variables']}/{f['rows']} |")
            print(lines[-1], flush=True)
    lines += ["", "## Pass variants (HiGHS, every edge-layer, same images)", "",
              "| edge-layer | variant | median total ms | solved | validated | median objective "
              "| final vars/rows/binaries |", "|---|---|---|---|---|---|---|"]
    for k in range(1, net.depth + 1 if args.pyomo_images else 1):
        for name, options in VARIANTS.items():
            rows = measure(net, k, cases[:args.pyomo_images], "highs", options, args.objective)
            f = rows[0]["final"]
            lines.append(f"| {k} | {name} | {1000 * med(rows, 'total'):.1f} | "
                         f"{sum(r['solved'] for r in rows)} | {sum(r['validated'] for r in rows)} | "
                         f"{med(rows, 'linf'):.4g} | {f['variables']}/{f['rows']}/{f['binaries']} |")
            print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
