"""``netpatch``: the umbrella command (ir, eval, attack, bench)."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from netpatch.command import CONVENTIONS, add_network_args, load_net, reports_errors

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
    return 0


def cmd_eval(args) -> int:
    from frontends.data import check_fits, load_dataset
    net = load_net(args)
    x, y = load_dataset(args.data)
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    check_fits(x, y, net.n_inputs, net.n_outputs, args.data)
    logits = net(x)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y)) if len(y) else float("nan")
    if args.logits:
        np.save(args.logits, logits)
    if args.json:
        print(json.dumps({"n": int(len(y)), "accuracy": accuracy}))
    else:
        print(f"{net.name}: {np.sum(np.argmax(logits, axis=1) == y)}/{len(y)} correct, "
              f"accuracy {100 * accuracy:.1f}%")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netpatch", description=__doc__, epilog=CONVENTIONS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ir", help="print a network as .nnir text (or write it with -o)")
    add_network_args(p)
    p.add_argument("-o", "--out", help="write NAME.nnir (large weights go to NAME.npz beside it)")
    p.add_argument("--inline", action="store_true", help="print every array in the text")
    p.set_defaults(run=cmd_ir)

    p = sub.add_parser("eval", help="accuracy of a network on a data set (.npz with x, y)")
    add_network_args(p)
    p.add_argument("--data", required=True, help=".npz with arrays x and y, or .csv")
    p.add_argument("--limit", type=int, help="use the first N rows only")
    p.add_argument("--json", action="store_true", help='print {"n": ..., "accuracy": ...}')
    p.add_argument("--logits", metavar="OUT.npy", help="save the outputs")
    p.set_defaults(run=cmd_eval)

    from netpatch import attack_cli, bench_cli
    attack_cli.register(sub)
    bench_cli.register(sub)
    return parser


@reports_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
