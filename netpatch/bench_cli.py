"""``netpatch bench``: attack methods side by side on one network, in the shape of the
paper's Table I, with the same metrics and the same float64 validation for every method.

    netpatch bench NET --data FILE --methods netpatch-dnc,fgsm,pgd --limit 100 --out DIR

writes DIR/table.md, DIR/table.json, DIR/tradeoff.png and one folder per method (its
results.jsonl, report, adversarial.npz and examples.png; rerunning resumes every method).
``--transfer`` adds the paper's Table II; ``--patch-table`` is the paper's Table III: the
smallest patch of every edge-layer for one input and property.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

from common.errors import DataError

NETPATCH_METHODS = {"netpatch-dnc": "dnc", "netpatch-direct": "direct", "netpatch-exact": "exact"}
DEFAULT_METHODS = "netpatch-dnc,netpatch-direct,fgsm,pgd,deepfool,jsma"
CHUNK = 20   # baseline images per batch: the unit of progress and of resuming


def register(sub) -> None:
    from backends import DEFAULT_BACKEND
    from netpatch.baselines import METHODS
    from netpatch.cli import add_network_args
    p = sub.add_parser("bench", help="attack methods side by side (Table I), transferability "
                       "(--transfer) or patch sizes per layer (--patch-table)", description=__doc__)
    add_network_args(p)
    p.add_argument("--data", required=True, help=".npz with arrays x and y, or .csv (label first)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated, from {', '.join(NETPATCH_METHODS)}, {', '.join(METHODS)} "
                        f"(default {DEFAULT_METHODS})")
    p.add_argument("--limit", type=int, default=100,
                   help="attack the first N correctly classified images (default 100)")
    p.add_argument("--linf", type=float, default=1.0, help="netpatch: largest change of one "
                   "input value (default 1.0)")
    p.add_argument("--max-pixels", type=int, default=15, help="netpatch and the pixel attack: "
                   "at most K changed input values (default 15)")
    p.add_argument("--eps", type=float, default=0.1, help="FGSM and PGD: L-inf budget (default 0.1)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, help=f"solver (default {DEFAULT_BACKEND})")
    p.add_argument("--time-limit", type=float, default=30.0, help="seconds per solver call (default 30)")
    p.add_argument("--jobs", type=int, default=1, help="netpatch worker processes (default 1)")
    p.add_argument("--image-shape", help="H,W,C to draw and attack flat inputs as images, e.g. "
                   "32,32,3 (default: guessed for 784 and 3072 inputs)")
    p.add_argument("--seed", type=int, default=0, help="random seed of baselines and retraining")
    p.add_argument("--transfer", action="store_true", help="also retrain on every method's "
                   "adversarial images and report what still fools the hardened network (Table II)")
    p.add_argument("--epochs", type=int, default=5, help="--transfer: retraining epochs (default 5)")
    p.add_argument("--patch-table", action="store_true", help="Table III instead: the smallest "
                   "patch of every edge-layer for --index and --property")
    p.add_argument("--index", type=int, default=0, help="--patch-table: row of --data (default 0)")
    p.add_argument("--property", help='--patch-table: e.g. "argmin(y) == 0 by 0.001" (default: '
                   "misclassify the row's predicted label)")
    p.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    p.set_defaults(run=run)


def run(args) -> int:
    from frontends.data import check_fits, load_dataset, load_inputs
    from netpatch.cli import load_net
    net = load_net(args)
    out = Path(args.out)
    if args.patch_table:
        from netpatch.patch_table import patch_table_command
        out.mkdir(parents=True, exist_ok=True)
        return patch_table_command(args, net, load_inputs(args.data, net.n_inputs), out)
    x, y = load_dataset(args.data)
    check_fits(x, y, net.n_inputs, net.n_outputs, args.data)
    out.mkdir(parents=True, exist_ok=True)
    methods = parse_methods(args.methods)
    from netpatch.attack_cli import guess_image_shape
    shape = guess_image_shape(net, args.image_shape)
    keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)[:args.limit]
    images = out / "images.npz"
    np.savez(images, x=x[keep], y=y[keep], source_index=keep)
    print(f"{len(keep)} correctly classified images of {Path(args.data).name} "
          f"(the first {args.limit} asked for)", file=sys.stderr)
    rows = {}
    for method in methods:
        print(f"== {method}", file=sys.stderr)
        run_dir = out / method
        if method in NETPATCH_METHODS:
            run_netpatch(args, NETPATCH_METHODS[method], images, run_dir, shape)
        else:
            run_baseline_dir(args, method, net, x[keep], y[keep], run_dir, shape)
        rows[method] = method_row(net, run_dir)
    write_table(out, args, net, rows, len(keep))
    if args.transfer:
        from netpatch.bench_transfer import transfer_section
        transfer_section(args, net, x, y, out, methods)
    return 0


def parse_methods(text: str) -> list[str]:
    from netpatch.baselines import METHODS
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in NETPATCH_METHODS and m not in METHODS]
    if unknown or not methods:
        raise DataError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from "
                        f"{', '.join(list(NETPATCH_METHODS) + list(METHODS))}")
    return methods


def run_netpatch(args, strategy: str, images: Path, run_dir: Path, shape) -> None:
    from netpatch.cli import build_parser
    argv = ["attack", str(args.net), "--data", str(images), "--linf", str(args.linf),
            "--max-pixels", str(args.max_pixels), "--strategy", strategy, "--backend", args.backend,
            "--time-limit", str(args.time_limit), "--jobs", str(args.jobs), "--out", str(run_dir),
            "--image-shape", ",".join(map(str, shape))]
    if args.weights:
        argv += ["--weights", args.weights]
    attack_args = build_parser().parse_args(argv)
    attack_args.run(attack_args)


def run_baseline_dir(args, method, net, x, y, run_dir: Path, shape) -> None:
    """One baseline over the images, in chunks appended to results.jsonl (resumable)."""
    from netpatch.attack_cli import Progress, append_records, finish, prepare_output
    from netpatch.baselines import BaselineConfig, classifier, require_art, run_baseline
    require_art()
    config = BaselineConfig(eps=args.eps, max_pixels=args.max_pixels, seed=args.seed)
    settings = {"net": str(args.net), "data": str(args.data), "method": method,
                "eps": config.eps, "max_pixels": config.max_pixels, "seed": config.seed}
    done = prepare_output(run_dir, settings)
    todo = [i for i in range(len(x)) if i not in done]
    progress = Progress(len(x), len(done), sum(r["success"] for r in done.values()))
    clf = classifier(net, shape) if todo else None
    for start in range(0, len(todo), CHUNK):
        rows = np.array(todo[start:start + CHUNK])
        records = run_baseline(method, net, x[rows], y[rows], config, shape, indices=rows, clf=clf)
        append_records(run_dir, records, done, progress)
    progress.finish()
    finish(run_dir, net, x, [done[i] for i in sorted(done)], settings, image_shape=shape)


def method_row(net, run_dir: Path) -> dict:
    """The run's summary plus the Frechet distance of penultimate-layer features."""
    from netpatch.metrics import frechet_distance
    summary = json.loads((run_dir / "report.json").read_text())["summary"]
    adv = np.load(run_dir / "adversarial.npz")
    fd = None
    if len(adv["index"]) >= 2:
        layer = net.depth - 1
        with warnings.catch_warnings():   # fewer images than features: a singular covariance
            warnings.simplefilter("ignore", RuntimeWarning)
            fd = frechet_distance(net.simulate(adv["x"]).post[layer], net.simulate(adv["x_adv"]).post[layer])
    summary["frechet"] = fd
    summary["pixel_counts"] = [int(p) for p in np.count_nonzero(adv["x_adv"] - adv["x"], axis=1)]
    return summary


def write_table(out: Path, args, net, rows: dict, n_images: int) -> None:
    from netpatch.baselines import DESCRIPTIONS
    from netpatch.report import fmt, tradeoff_plot
    header = ("method", "defect detection", "pixels max / mean", "pixels max %", "L2 mean",
              "L-inf mean", "time per image mean / median s", "Pielou", "Frechet (penultimate)")
    lines = [f"# {Path(str(args.net)).name}: first {n_images} correctly classified images of "
             f"{Path(str(args.data)).name}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, s in rows.items():
        dd = s["defect_detection"]
        t = s["time_s"]
        lines.append("| " + " | ".join([
            method, "-" if dd is None else f"{100 * dd:.1f}% ({s['successes']}/{s['attempted']})",
            f"{fmt(s['pixels']['max'])} / {fmt(s['pixels']['mean'])}", fmt(s["pixels_percent_max"]),
            fmt(s["l2"]["mean"]), fmt(s["linf"]["mean"]), f"{fmt(t['mean'])} / {fmt(t['median'])}",
            fmt(s["pielou"]), fmt(s["frechet"])]) + " |")
    notes = [f"netpatch-{NETPATCH_METHODS[m]}: L-inf <= {args.linf}, <= {args.max_pixels} pixels, "
             f"{args.backend}, {args.time_limit} s per solver call" for m in rows if m in NETPATCH_METHODS]
    notes += [f"{m}: {DESCRIPTIONS[m]}" for m in rows if m in DESCRIPTIONS]
    lines += ["", "Every success re-validated in float64 on the original network, inside the input "
              f"domain; baselines run by ART on a float32 Keras copy (eps {args.eps}, seed {args.seed}); "
              "their time per image is the batch time divided by the batch size.  Pixels: input "
              f"values ({net.n_inputs} per image).  Frechet distance between the network's "
              f"penultimate-layer features ({net.widths()[-2]} values) of the originals and of the "
              "adversarial inputs (Inception features are not available offline).", ""]
    lines += [f"- {note}" for note in notes]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "table.json").write_text(json.dumps(
        {"net": str(args.net), "data": str(args.data), "images": n_images,
         "methods": {m: {k: v for k, v in s.items() if k != "pixel_counts"} for m, s in rows.items()}},
        indent=1) + "\n")
    tradeoff_plot(out / "tradeoff.png", {m: s["pixel_counts"] for m, s in rows.items()},
                  {m: s["attempted"] for m, s in rows.items()})
    print("\n".join(lines[2:3 + len(rows) + 1]))
    print(f"wrote {out / 'table.md'}, {out / 'table.json'}, {out / 'tradeoff.png'}")
