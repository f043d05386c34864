"""``netpatch attack``: adversarial inputs for every image of a data set.

Each image's result is appended to ``OUT/results.jsonl`` as soon as it is known, so an
interrupted run loses nothing; a rerun with the same ``--out`` skips the images already done.
At the end: ``report.json``, ``report.md``, ``adversarial.npz`` and ``examples.png``.
"""
from __future__ import annotations

from pathlib import Path

from attacks.config import (CUTS, INNER_TARGETS, RECOVERY, STRATEGIES, AttackConfig,
                            DncConfig, ExactConfig, RecoveryConfig,
                            IMAGE_TIME_LIMIT, image_time_limit)
from common.errors import DataError

DESCRIPTION = """Adversarial inputs for every row of a data set (rows the network already
misclassifies are skipped: the success rate is over the correctly classified ones).

Each image's result is appended to OUT/results.jsonl as soon as it is known, so an
interrupted run loses nothing; a rerun with the same --out skips the images already done.
At the end: report.md (and report.json), adversarial.npz and examples.png.  Progress goes
to stderr: a live bar on a terminal, else a plain line now and then (--quiet: none)."""


def register(sub, add_command) -> None:
    from backends import BACKENDS, DEFAULT_BACKEND
    from netpatch.command import (QUIET_HELP, add_network_args, at_least_one, count, examples,
                                  positive)
    digits = "examples/digits/digits_mlp.keras --data examples/digits/digits_test.npz"
    p = add_command(sub, "attack", help="adversarial inputs for a data set (results.jsonl, "
                    "report, PNG)", description=DESCRIPTION, epilog=examples(
                        "# the demo: at most 10 changed pixels, the first 20 rows",
                        f"netpatch attack {digits} --limit 20 --max-pixels 10 --out runs/demo",
                        "# the true minimum number of changed pixels (free ReLU phases)",
                        f"netpatch attack {digits} --limit 5 --max-pixels 4 --strategy exact "
                        "--out runs/exact",
                        "# the paper's setting on the reference MNIST network, two processes",
                        "netpatch attack ../shared/data/models/mnist_784-8-16-10.h5 --data "
                        "../shared/data/mnist/mnist_aigent_500.npz --limit 100 --linf 1 "
                        "--max-pixels 15 --jobs 2 --out runs/mnist"))
    add_network_args(p, domain=True)
    p.add_argument("--data", required=True, help=".npz with arrays x and y, or .csv (label "
                   "first) (required)")
    p.add_argument("--limit", type=count, help="use the first N rows of --data; the correctly "
                   "classified ones among them are attacked, as in netpatch bench (default: all "
                   "rows)")
    p.add_argument("--linf", type=positive, default=1.0, help="largest change of one input "
                   "value (default: 1.0)")
    p.add_argument("--max-pixels", type=at_least_one, help="at most K changed pixels: input "
                   "values, or positions of a colour image (default: no limit)")
    p.add_argument("--strategy", choices=STRATEGIES, default="dnc",
                   help="dnc: the paper's divide and conquer; direct: one query through "
                        "the network linearized at the input (closed form for one target "
                        "inequality), re-linearized at rejected candidates; exact: free ReLU "
                        "phases, the true minimum (default: dnc)")
    p.add_argument("--inner-targets", choices=INNER_TARGETS, default="pullback",
                   help="dnc's property for the lower half: the output property pulled back "
                        "through the linearized upper half (pullback), or the paper's point "
                        "values relaxed by increment/decrement marks (points) (default: "
                        "pullback)")
    p.add_argument("--cuts", choices=CUTS, default="all",
                   help="dnc's edge-layers to patch: all: the paper's halving "
                        "schedule, then every other first cut, halving below it; halving: the "
                        "paper's schedule only (default: all)")
    p.add_argument("--escalate", action="store_true",
                   help="dnc: when every target and cut fails, try L1 patches, then patches "
                        "that may switch the patched layer's ReLUs (a MILP per patch); they "
                        "seldom pay within seconds, so give them a longer --image-time-limit "
                        "(default: off)")
    p.add_argument("--no-shrink", dest="shrink", action="store_false",
                   help="dnc and direct: keep the answer as found (default: put changed inputs "
                        "back one at a time while the original network still misclassifies)")
    p.add_argument("--bounds", choices=("interval", "symbolic", "lp"), default="symbolic",
                   help="exact: bounds for the big-M constants of its MILPs (default: "
                        "symbolic; interval is looser, lp tighter and slower)")
    p.add_argument("--recovery", choices=RECOVERY, default="sort",
                   help="input recovery for one linear target: sort (the fewest "
                        "changed inputs in closed form, the same count as the MILP) or milp "
                        "(the backend's MILP) (default: sort)")
    p.add_argument("--backend", choices=tuple(BACKENDS), default=DEFAULT_BACKEND,
                   help=f"solver (default: {DEFAULT_BACKEND})")
    p.add_argument("--jobs", type=at_least_one, default=1, help="worker processes (default: 1)")
    add_engine_args(p)
    p.add_argument("--time-limit", type=positive, help="seconds per solver call (default: no "
                   "limit)")
    p.add_argument("--image-time-limit", type=positive, metavar="SECONDS", help="wall-clock "
                   "seconds for one image, all its solver calls included; an image that runs "
                   f"out counts as time_limit (default: {IMAGE_TIME_LIMIT:g} s for dnc and "
                   "direct, no limit for exact)")
    p.add_argument("--max-targets", type=at_least_one, help="try at most N target classes per "
                   "image (default: all)")
    p.add_argument("--image-shape", help="H,W,C to draw flat inputs as images in examples.png, "
                   "e.g. 32,32,3 (default: guessed for 784 and 3072 inputs)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.add_argument("--out", default="runs/attack", help="output folder (default: runs/attack)")
    p.set_defaults(run=run)


def add_engine_args(p) -> None:
    """``--engine`` and ``--scheduler`` (``evaluation.engines``)."""
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: this process, or a pool of --jobs processes; dask: one "
                        "task per image on a Dask cluster: the one at --scheduler, else an "
                        "embedded one of --jobs worker processes (default: local)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="with --engine dask: the address of a "
                   "running Dask scheduler, e.g. tcp://10.0.0.5:8786 (started with "
                   "`dask scheduler`; workers with `dask worker ADDRESS`) (default: an "
                   "embedded cluster)")


def attack_config(args) -> AttackConfig:
    return AttackConfig(linf=args.linf, max_pixels=args.max_pixels, strategy=args.strategy,
                        backend=args.backend, time_limit=args.time_limit,
                        budget=image_time_limit(args.image_time_limit, args.strategy),
                        max_targets=args.max_targets, shrink=args.shrink,
                        dnc=DncConfig(inner_targets=args.inner_targets, cuts=args.cuts,
                                      escalate=args.escalate),
                        recovery=RecoveryConfig(method=args.recovery),
                        exact=ExactConfig(bounds=args.bounds))


def run(args) -> int:
    from evaluation.engines import check_engine
    from evaluation.report import image_shape
    from evaluation.runs import config_dict, run_attacks, selection_settings
    from frontends.data import check_fits, load_dataset
    from netpatch.command import load_net, network_loader
    if args.jobs < 1:
        raise DataError(f"--jobs {args.jobs}: need at least 1")
    check_engine(args.engine, args.scheduler, args.jobs)
    net = load_net(args)
    x, y = load_dataset(args.data)
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    check_fits(x, y, net.n_inputs, net.n_outputs, args.data, net.domain)
    config = attack_config(args)
    settings = {**selection_settings(args.net, args.data, limit=args.limit,
                                     domain=getattr(args, "domain", None)),
                **config_dict(config)}
    shape = image_shape(net, parse_image_shape(args.image_shape))
    run_attacks(net, x, y, config, Path(args.out), settings, jobs=args.jobs,
                engine=args.engine, scheduler=args.scheduler,
                load=network_loader(args), image_shape=shape, quiet=args.quiet)
    return 0


def parse_image_shape(text: str | None) -> tuple[int, ...] | None:
    """``--image-shape H,W,C`` as a tuple (None when not given)."""
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise DataError(f"--image-shape {text!r}: expected integers like 32,32,3") from None
