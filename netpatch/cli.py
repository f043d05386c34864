"""``netpatch``: the umbrella command (ir, eval, export, attack, bench, verify)."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from common.errors import DataError
from netpatch.command import (CONVENTIONS, Parser, add_network_args, count, load_net,
                              run_command)


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
    net = load_net(args)
    save_network(net, args.to)
    print(f"wrote {args.to}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="netpatch", description=__doc__, epilog=CONVENTIONS,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_command(sub, "ir", help="print a network as .nnir text (or write it with -o)",
                    description="Print the network IR of a model file as .nnir text: every "
                    "layer, its shapes and weights (large arrays by name unless --inline).")
    add_network_args(p)
    p.add_argument("-o", "--out", help="write NAME.nnir (large weights go to NAME.npz beside it)")
    p.add_argument("--inline", action="store_true", help="print every array in the text")
    p.set_defaults(run=cmd_ir)

    p = add_command(sub, "eval", help="accuracy of a network on a data set (.npz with x, y)",
                    description="The share of a data set's rows that the network (simulated "
                    "in float64) classifies as labelled.")
    add_network_args(p)
    p.add_argument("--data", required=True, help=".npz with arrays x and y, or .csv")
    p.add_argument("--limit", type=count, help="use the first N rows only (default: all)")
    p.add_argument("--json", action="store_true",
                   help='print {"n": ..., "correct": ..., "accuracy": ...} (accuracy null '
                        'for no rows)')
    p.add_argument("--logits", metavar="OUT.npy", help="save the outputs")
    p.set_defaults(run=cmd_eval)

    p = add_command(sub, "export", help="write a network as .onnx, .nnir or .nnet",
                    description="Write a network (any format netpatch reads) as ONNX (for "
                    "other verification tools), .nnir (netpatch's text form) or .nnet "
                    "(dense networks, ACAS Xu's format).")
    add_network_args(p)
    p.add_argument("--to", required=True, metavar="FILE",
                   help="output file; its suffix chooses the format: .onnx, .nnir or .nnet")
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
