"""``netpatch bench``: attack methods side by side on one network, in the shape of the
paper's Table I, with the same metrics and the same float64 validation for every method.

    netpatch bench NET --data FILE --methods netpatch-dnc,fgsm,pgd --limit 100 --out DIR

writes DIR/table.md, DIR/table.json, DIR/tradeoff.png and one folder per method (its
results.jsonl, report, adversarial.npz and examples.png; rerunning resumes every method).
``--transfer`` adds the paper's Table II; ``--patch-table`` is the paper's Table III: the
smallest patch of every edge-layer for one input and property.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from attacks import AttackConfig
from common.errors import DataError

DEFAULT_METHODS = "netpatch-dnc,netpatch-direct,fgsm,pgd,deepfool,jsma,l0fmn"

DESCRIPTION = """Attack methods side by side on one network (the paper's Table I), with the same
metrics and the same float64 validation for every method.

Writes OUT/table.md, OUT/table.json, OUT/tradeoff.png and one folder per method (its
results.jsonl, report.md, adversarial.npz and examples.png).  A rerun resumes every method;
a bench with other methods into the same OUT adds them to the table (same network, data and
--limit only).  --transfer adds the paper's Table II (retrain on half of every method's
adversarial images, test on the other half); --patch-table is the paper's Table III instead:
the smallest patch of every edge-layer for one input and property."""


def register(sub, add_command) -> None:
    from backends import BACKENDS, DEFAULT_BACKEND
    from evaluation.baselines import METHODS
    from evaluation.bench import NETPATCH_METHODS
    from netpatch.attack_cli import add_engine_args
    from netpatch.command import (QUIET_HELP, add_network_args, at_least_one, count, examples,
                                  positive, text)
    digits = "examples/digits/digits_mlp.keras --data examples/digits/digits_test.npz"
    p = add_command(sub, "bench", help="attack methods side by side (Table I), transferability "
                    "(--transfer) or patch sizes per layer (--patch-table)",
                    description=DESCRIPTION, epilog=examples(
                        "# two netpatch strategies on the bundled digits network, first 20 rows",
                        f"netpatch bench {digits} --methods netpatch-dnc,netpatch-direct "
                        "--limit 20 --out runs/bench-digits",
                        "# two baselines added to the same table (needs the [baselines] extra)",
                        f"netpatch bench {digits} --methods fgsm,jsma --limit 20 "
                        "--out runs/bench-digits",
                        "# Table III on the reference data: every edge-layer's smallest L1 patch",
                        "netpatch bench ../shared/data/acasxu/ACASXU_2_9.json --data "
                        "../shared/data/acasxu/inputs.csv --patch-table --index 0 "
                        "--property 'argmin(y) == 0 by 0.001' --out runs/bench-acas"))
    add_network_args(p, domain=True)
    p.add_argument("--data", required=True, help=".npz with arrays x and y, or .csv (label "
                   "first) (required)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated, from {', '.join(NETPATCH_METHODS)}, {', '.join(METHODS)} "
                        f"(default: {DEFAULT_METHODS})")
    p.add_argument("--limit", type=count, default=100,
                   help="use the first N rows of --data; every method attacks the correctly "
                        "classified ones among them, as netpatch attack does (default: 100)")
    p.add_argument("--linf", type=positive, default=1.0, help="netpatch: largest change of one "
                   "input value (default: 1.0)")
    p.add_argument("--max-pixels", type=at_least_one, default=15, help="netpatch and the pixel attack: "
                   "at most K changed input values (default: 15)")
    p.add_argument("--eps", type=positive, default=0.1, help="FGSM and PGD: L-inf budget (default: 0.1)")
    p.add_argument("--backend", choices=tuple(BACKENDS), default=DEFAULT_BACKEND,
                   help=f"netpatch's solver (default: {DEFAULT_BACKEND})")
    p.add_argument("--time-limit", type=positive, default=30.0, help="netpatch: seconds per "
                   "solver call (default: 30)")
    p.add_argument("--jobs", type=at_least_one, default=1, help="netpatch worker processes "
                   "(default: 1)")
    add_engine_args(p)
    p.add_argument("--image-shape", help="H,W,C to draw and attack flat inputs as images, e.g. "
                   "32,32,3 (default: guessed for 784 and 3072 inputs)")
    p.add_argument("--seed", type=int, default=0, help="random seed of baselines and retraining "
                   "(default: 0)")
    p.add_argument("--transfer", action="store_true", help="also retrain on every method's "
                   "adversarial images and report what still fools the hardened network "
                   "(Table II) (default: off)")
    p.add_argument("--epochs", type=count, default=5, help="--transfer: retraining epochs "
                   "(default: 5)")
    p.add_argument("--patch-table", action="store_true", help="Table III instead: the smallest "
                   "patch of every edge-layer for --index and --property (default: off)")
    p.add_argument("--index", type=count, default=0, help="--patch-table: row of --data "
                   "(default: 0)")
    p.add_argument("--property", type=text, help='--patch-table: e.g. "argmin(y) == 0 by 0.001" (default: '
                   "misclassify the row's predicted label)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.add_argument("--out", default="runs/bench", help="output folder (default: runs/bench)")
    p.set_defaults(run=run)


def run(args) -> int:
    from evaluation.bench import (ATTACKED, BenchSettings, check_table, parse_methods,
                                  run_bench, transfer_section)
    from evaluation.engines import check_engine
    from evaluation.report import image_shape
    from evaluation.runs import make_output_dir, selection_settings
    from frontends.data import check_fits, load_dataset, load_inputs
    from netpatch.attack_cli import parse_image_shape
    from netpatch.command import load_net, network_loader
    check_engine(args.engine, args.scheduler, args.jobs)
    net = load_net(args)
    out = Path(args.out)
    if args.patch_table:
        return patch_table(args, net, load_inputs(args.data, net.n_inputs), out)
    x, y = load_dataset(args.data)
    check_fits(x, y, net.n_inputs, net.n_outputs, args.data, net.domain)
    methods = parse_methods(args.methods)
    attack = AttackConfig(linf=args.linf, max_pixels=args.max_pixels, backend=args.backend,
                          time_limit=args.time_limit)
    n_rows = min(len(x), args.limit)           # the first --limit rows, as in netpatch attack
    keep = (np.flatnonzero(np.argmax(net(x[:n_rows]), axis=1) == y[:n_rows]) if n_rows
            else np.zeros(0, dtype=np.int64))
    settings = BenchSettings(str(args.net), str(args.data), attack, eps=args.eps, seed=args.seed,
                             jobs=args.jobs, load=network_loader(args),
                             image_shape=image_shape(net, parse_image_shape(args.image_shape)),
                             engine=args.engine, scheduler=args.scheduler,
                             selection={**{k: v for k, v in selection_settings(
                                 args.net, args.data, limit=args.limit,
                                 domain=getattr(args, "domain", None)).items()
                                 if k not in ("net", "data")}, "attacked": ATTACKED},
                             source_index=tuple(int(i) for i in keep), quiet=args.quiet)
    make_output_dir(out)
    check_table(out, settings)
    np.savez(out / "images.npz", x=x[keep], y=y[keep], source_index=keep)
    if not args.quiet:
        print(f"{len(keep)} of the first {n_rows} rows of {Path(args.data).name} are correctly "
              "classified: every method attacks those", file=sys.stderr)
    run_bench(net, x[keep], y[keep], methods, settings, out, n_rows=n_rows)
    if args.transfer:
        transfer_section(net, x, y, out, methods, settings, args.epochs)
    return 0


def patch_table(args, net, x, out: Path) -> int:
    from evaluation.patch_table import write_patch_table
    from ir.property import ArgmaxIsNot, parse_property
    if not 0 <= args.index < len(x):
        raise DataError(f"--index {args.index} is out of range: {args.data} has {len(x)} rows")
    xi = x[args.index]
    prop = (parse_property(args.property, net.n_outputs) if args.property
            else ArgmaxIsNot(int(np.argmax(net(xi)))))
    title = (f"Patch sizes per edge-layer: {Path(str(args.net)).name}, row {args.index} of "
             f"{Path(str(args.data)).name}, property {args.property or 'misclassify'}, L1 objective, "
             f"{args.backend}")
    text = write_patch_table(out, net, xi, prop, title, args.backend, args.time_limit)
    print(text, end="")
    print(f"wrote {out / 'patch_table.md'}, {out / 'patch_table.json'}")
    return 0
