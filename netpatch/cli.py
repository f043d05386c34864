"""``netpatch``: the umbrella command (ir, eval, export, attack, bench, verify)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common.errors import DataError
from netpatch.command import (CONVENTIONS, Parser, add_network_args, count, domain_pair,
                              examples, load_net, run_command)

DESCRIPTION = """netpatch: adversarial inputs for ReLU networks by network patching, and VNN-LIB
verification.  Commands: ir (print a network), eval (accuracy), export (write a network as
.onnx/.nnir/.nnet), attack (adversarial inputs for a data set), bench (methods side by side),
verify (VNN-LIB properties).  compile-patch, a separate command, patches one edge-layer.
Each command has its own --help, with examples."""

DIGITS = "examples/digits/digits_mlp.keras"
DIGITS_DATA = "examples/digits/digits_test.npz"
PAPER = "examples/paper_2222"


def add_command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser whose errors carry its full name (``netpatch attack: error:``)."""
    p = sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    p.set_defaults(prog=p.prog)
    return p


def cmd_ir(args) -> int:
    from ir.text import dump_nnir, format_network
    net = load_net(args)
    if args.out:
        dump_nnir(net, args.out)
        print(f"wrote {args.out}")
    elif args.inline:
        sys.stdout.write(format_network(net))
    else:
        external = {}
        sys.stdout.write(format_network(net, external))
        if external:
            shapes = ", ".join(f"@{name} {tuple(a.shape)}" for name, a in external.items())
            print(f"# not shown: {shapes}; write them with -o NAME.nnir, or print all with --inline")
    for note in net.notes:
        print(f"# note: {note}")
    return 0


def cmd_eval(args) -> int:
    from frontends.data import check_fits, load_dataset
    net = load_net(args)
    x, y = load_dataset(args.data)
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    check_fits(x, y, net.n_inputs, net.n_outputs, args.data)
    logits = net(x) if len(x) else np.zeros((0, net.n_outputs))
    correct = int(np.sum(np.argmax(logits, axis=1) == y)) if len(y) else 0
    accuracy = correct / len(y) if len(y) else None     # None, not NaN: JSON has no NaN
    if args.logits:
        try:
            np.save(args.logits, logits)
        except OSError as err:
            raise DataError(f"--logits {args.logits}: cannot write: {err.strerror or err}") from None
    if args.json:
        print(json.dumps({"n": int(len(y)), "correct": correct, "accuracy": accuracy}))
    elif len(y) == 0:
        print(f"{net.name}: no rows to evaluate")
    else:
        print(f"{net.name}: {correct}/{len(y)} correct, accuracy {100 * accuracy:.1f}%")
    return 0


def cmd_export(args) -> int:
    from frontends import save_network
    from ir.network import Domain
    net = load_net(args)
    if args.export_domain is not None:
        net = net.with_domain(Domain.box(net.n_inputs, *args.export_domain))
    try:
        Path(args.to).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"--to {args.to}: cannot create its folder ({err.strerror})") from None
    save_network(net, args.to)
    print(f"wrote {args.to}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="netpatch", description=DESCRIPTION,
                    epilog=CONVENTIONS + "\n\n" + examples(
                        f"netpatch ir {PAPER}/paper_2222.nnir",
                        f"netpatch eval {DIGITS} --data {DIGITS_DATA}",
                        f"netpatch attack {DIGITS} --data {DIGITS_DATA} --limit 20 "
                        "--max-pixels 10 --out runs/demo",
                        f"netpatch verify {PAPER}/paper_2222.nnir "
                        f"{PAPER}/class1_within_0.15.vnnlib --timeout 20"),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_command(sub, "ir", help="print a network as .nnir text (or write it with -o)",
                    description="Print the network IR of a model file as .nnir text: every "
                    "layer, its shapes and weights (large arrays by name unless --inline).",
                    epilog=CONVENTIONS + "\n\n" + examples(
                        f"netpatch ir {PAPER}/paper_2222.keras",
                        f"netpatch ir {DIGITS} -o runs/digits_mlp.nnir",
                        "netpatch ir ../shared/data/acasxu/ACASXU_2_9.json"))
    add_network_args(p)
    p.add_argument("-o", "--out", help="write NAME.nnir (large weights go to NAME.npz beside "
                   "it) (default: print to stdout)")
    p.add_argument("--inline", action="store_true", help="print every array in the text "
                   "(default: large arrays by name only)")
    p.set_defaults(run=cmd_ir)

    p = add_command(sub, "eval", help="accuracy of a network on a data set (.npz with x, y)",
                    description="The share of a data set's rows that the network (simulated "
                    "in float64) classifies as labelled.",
                    epilog=examples(
                        f"netpatch eval {DIGITS} --data {DIGITS_DATA}",
                        f"netpatch eval {DIGITS} --data {DIGITS_DATA} --limit 100 --json",
                        "netpatch eval ../shared/data/models/mnist_784-8-16-10.h5 --data "
                        "../shared/data/mnist/mnist_aigent_500.npz"))
    add_network_args(p)
    p.add_argument("--data", required=True, help=".npz with arrays x and y, or .csv "
                   "(required)")
    p.add_argument("--limit", type=count, help="use the first N rows only (default: all rows)")
    p.add_argument("--json", action="store_true",
                   help='print {"n": ..., "correct": ..., "accuracy": ...} (accuracy null '
                        'for no rows) (default: one line of text)')
    p.add_argument("--logits", metavar="OUT.npy", help="save the outputs (default: not "
                   "saved)")
    p.set_defaults(run=cmd_eval)

    p = add_command(sub, "export", help="write a network as .onnx, .nnir or .nnet",
                    description="Write a network (any format netpatch reads) as ONNX (for "
                    "other verification tools), .nnir (netpatch's text form) or .nnet "
                    "(dense networks, ACAS Xu's format).",
                    epilog=examples(
                        f"netpatch export {DIGITS} --to runs/digits_mlp.onnx",
                        f"netpatch export {PAPER}/paper_2222.keras --to runs/paper_2222.nnet "
                        "--domain 0,1"))
    add_network_args(p)
    p.add_argument("--to", required=True, metavar="FILE",
                   help="output file; its suffix chooses the format: .onnx, .nnir or .nnet "
                        "(required)")
    p.add_argument("--domain", type=domain_pair, metavar="LO,HI", dest="export_domain",
                   help="the input box to write with the network (.nnet needs one; .nnir "
                        "keeps it) (default: the model file's, when it holds one)")
    p.set_defaults(run=cmd_export)

    from netpatch import attack_cli, bench_cli, verify_cli
    attack_cli.register(sub, add_command)
    bench_cli.register(sub, add_command)
    verify_cli.register(sub, add_command)
    return parser


def main(argv=None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
