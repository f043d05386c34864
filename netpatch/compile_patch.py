"""compile-patch: the smallest change to one edge-layer's weights that makes a property hold.

Lowers (network, input, property, edge-layer) into a solver-neutral problem, runs the passes,
solves it with a backend, and validates the patch by re-simulating the patched network in
float64.  Dumps .lp/.mps (and .smt2 for z3) with --dump-lp; --compare solves the same
problem with several backends.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from attacks.patching import PatchOutcome, PatchRequest, patch_layer
from common.errors import DataError, NetpatchError, SolverUnavailable
from compiler.passes import ORDER, PassOptions, describe_passes
from ir.property import ArgmaxIsNot, parse_property, targeted_candidates
from netpatch.command import (CONVENTIONS, Parser, add_network_args, count, examples, load_net,
                              positive, run_command, text)

# Two backends agree when their optima differ by no more than this (relative to the scale).
AGREEMENT_TOL = 1e-6


def parse_layer(text: str, depth: int) -> int:
    """``first``, ``mid`` (= ceil(L/2)), ``last`` or a 1-based edge-layer index."""
    named = {"first": 1, "mid": math.ceil(depth / 2), "last": depth}
    if text in named:
        return named[text]
    try:
        k = int(text)
    except ValueError:
        raise NetpatchError(f"--layer {text!r}: use first, mid, last or a number 1..{depth}") from None
    if not 1 <= k <= depth:
        raise NetpatchError(f"--layer {k} is out of range: this network has edge-layers 1..{depth}")
    return k


def read_input(args, net) -> tuple[np.ndarray, int | None]:
    """The input to patch for, and its label when it comes from a data set."""
    if args.x is not None:
        try:
            x = np.array([float(v) for v in args.x.split(",")])
        except ValueError:
            raise DataError(f"--x {args.x!r}: expected comma-separated numbers") from None
        label = None
    elif args.data is not None:
        from frontends.data import load_inputs
        xs = load_inputs(args.data, net.n_inputs)
        if not 0 <= args.index < len(xs):
            raise DataError(f"--index {args.index} is out of range: {args.data} has {len(xs)} rows")
        x, label = xs[args.index], data_label(args.data, args.index)
    else:
        raise DataError("give the input with --x V1,V2,... or with --data FILE --index I")
    if x.shape != (net.n_inputs,):
        raise DataError(f"the input has {x.size} values, but {net.name} takes {net.n_inputs}")
    return x, label


def data_label(path, index: int) -> int | None:
    """The label of row ``index`` of an .npz data set (its array ``y``); None for other files
    (a .csv of inputs may hold no labels)."""
    if not str(path).endswith(".npz"):
        return None
    from frontends.data import load_dataset
    try:
        _, y = load_dataset(path)
    except NetpatchError:
        return None
    return int(y[index]) if 0 <= index < len(y) else None


def input_text(args) -> str:
    """Where the input comes from, in words."""
    if args.x is not None:
        return f"--x {args.x}"
    return f"row {args.index} of {args.data}"


def property_text(prop, target_class) -> str:
    """The property a candidate stands for, in the property language."""
    if isinstance(prop, ArgmaxIsNot) and target_class is not None:
        return (f"y[{target_class}] >= y[{prop.label}] + {prop.margin:g} (class "
                f"{prop.label} misclassified as {target_class})")
    return str(getattr(prop, "text", None) or prop)


def model_comment(net, args, k: int, prop, target_class) -> str:
    """The comment block of a dumped model file: what the problem is, and how its variable
    names map to the network's weights and neurons."""
    n_out, n_in = net.edge(k).linear.weight.shape
    objective = ("the largest |weight change| (eps_max)" if args.objective == "linf"
                 else "the sum of |weight changes|")
    reduced = not args.no_reduction
    lines = [
        f"netpatch compile-patch: the smallest change to edge-layer {k} of {args.net} "
        f"({net.name}; {net.depth} edge-layers, numbered from 1 at the input)",
        f"input: {input_text(args)}",
        f"property: {args.property or property_text(prop, target_class)}",
        f"objective: minimize {objective}",
        f"passes: {', '.join(pass_options(args).explicit or ()) or 'the default chain'} "
        f"(phase fixing {'off' if args.no_phase_fixing else args.phase_mode}, sign pruning "
        f"{'off' if args.no_sign_pruning else 'on'}, relaxation "
        f"{'off' if args.no_relaxation else 'on'})",
        "names:",
        f"  W is edge-layer {k}'s weight matrix, {n_out} x {n_in}: W[j, i] is the weight from "
        f"neuron i of layer {k - 1} (the source) into neuron j of layer {k} (the target)",
    ]
    if reduced:
        lines += [
            f"  d_pos_j - d_neg_j: the change of target neuron j's pre-activation z{k}_j "
            "(one input: the weight changes are set from it afterwards, for linf "
            "eps[j, i] = d_j sign(a_i) / ||a||_1, for l1 all of d_j on the largest source)",
            "  (--no-reduction writes one variable pair per weight instead)",
        ]
    else:
        lines += ["  eps_pos_j_i - eps_neg_j_i: the change of W[j, i], the weight from source "
                  "i into target neuron j (both >= 0)"]
    lines += [
        "  eps_max_0: the largest |change| (linf objective); a name ends with its index in "
        "its block",
        f"  z{k}_j, z{k + 1}_j, ...: pre-activation of neuron j of that layer; a{k}_j, ...: "
        f"its output after ReLU; z{net.depth}_j: output y[j]",
        "  rows: patch* tie the pre-activations to the change, layer* the layers above, "
        "target* the property, active_* and inactive_* the fixed ReLU phases",
    ]
    return "\n".join(lines)


def pass_options(args) -> PassOptions:
    explicit = None
    if args.passes is not None:
        explicit = tuple(name.strip() for name in args.passes.split(",") if name.strip())
    return PassOptions(phase_fixing=None if args.no_phase_fixing else args.phase_mode,
                       sign_pruning=not args.no_sign_pruning, relaxation=not args.no_relaxation,
                       explicit=explicit)


def printer(args):
    """``--print-after NAME``: print the problem IR after that pass (or after "query")."""
    if not args.print_after:
        return None
    from compiler.problem_text import format_problem

    def observe(name, problem):
        if name == args.print_after:
            print(f"# after {name}")
            print(format_problem(problem), end="")
    return observe


def solve_candidates(net, k, x, prop, backend, args, only=None) -> PatchOutcome:
    """Try the property's targeted candidates in order; return the first validated patch
    (or the last outcome when none validates).  ``only`` keeps the candidate whose target
    class is given (so that compared backends solve the same problem)."""
    outcome = None
    for target_class, conj in targeted_candidates(prop, net(x)):
        if only is not None and target_class != only:
            continue
        stem = f"{net.name}_layer{k}" + ("" if target_class is None else f"_target{target_class}")
        outcome = patch_layer(PatchRequest(
            net, k, x, conj, backend, pass_options(args), args.objective, args.eps_bound,
            args.time_limit, free_patched_phases=args.free_patched_phases,
            relinearize=args.relinearize, reduced=not args.no_reduction, bounds=args.bounds,
            dump_dir=args.dump_lp,
            dump_stem=stem, observe=printer(args),
            dump_comment=model_comment(net, args, k, prop, target_class) if args.dump_lp else None))
        outcome.target_class = target_class
        if outcome.validated:
            return outcome
    return outcome


TABLE_LEGEND = """objective: the minimized size of the patch (--objective linf: the largest |weight change|;
  l1: their sum); eps_linf / eps_l1: the patch's largest |change| and the sum of |changes|;
  changed: weights of edge-layer {k} changed by more than 1e-12 (of {weights});
  valid: yes when the patched network, re-simulated in float64, satisfies the property;
  build_s / solve_s: seconds to compile (query, passes, solver model) and to solve."""


def explain(net, k: int, x, label, prop, target_class, args) -> list[str]:
    """The lines above compile-patch's table: the layer, the input and its class, and why
    this target class (or which property)."""
    y = net(x)
    predicted = int(np.argmax(y))
    known = "" if label is None else f", labelled {label} in the data"
    lines = [f"{net.name}: edge-layer {k} of {net.depth} (a {net.edge(k).linear.weight.shape[0]}"
             f" x {net.edge(k).linear.weight.shape[1]} weight matrix)",
             f"input: {input_text(args)}; the network predicts class {predicted}{known}"]
    if target_class is None:
        lines.append(f"property: {args.property}")
    else:
        order = [j for j, _ in targeted_candidates(prop, y)]
        gap = float(y[prop.label] - y[target_class])
        lines += [f"target class {target_class}: logit gap y[{prop.label}] - y[{target_class}] "
                  f"= {gap:.4g}, number {order.index(target_class) + 1} of {len(order)} in the "
                  "order tried",
                  f"  (the classes j != {prop.label} are tried by their gap y[{prop.label}] - "
                  "y[j], smallest, i.e. easiest, first, until a patch validates)",
                  f"property: {property_text(prop, target_class)}"]
    return lines


def print_table(rows: list[PatchOutcome]) -> None:
    header = ("backend", "status", "objective", "eps_linf", "eps_l1", "changed", "valid",
              "build_s", "solve_s")
    lines = [header]
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.6g}"
        lines.append((r.backend, r.status.value, fmt(r.objective), fmt(r.eps_linf), fmt(r.eps_l1),
                      "-" if r.weights_changed is None else str(r.weights_changed),
                      "yes" if r.validated else "no", f"{r.build_s:.4f}", f"{r.solve_s:.4f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def disagreements(rows: list[PatchOutcome]) -> list[str]:
    solved = [r for r in rows if r.objective is not None]
    flags = []
    for r in solved[1:]:
        ref = solved[0]
        scale = max(1.0, abs(ref.objective))
        if abs(r.objective - ref.objective) > AGREEMENT_TOL * scale:
            flags.append(f"{r.backend} objective {r.objective:.9g} differs from {ref.backend} "
                         f"{ref.objective:.9g}")
    statuses = {r.status.value for r in rows if r.status.value in ("optimal", "infeasible")}
    if len(statuses) > 1:
        flags.append("backends disagree on feasibility: " +
                     ", ".join(f"{r.backend}={r.status.value}" for r in rows))
    return flags


def build_parser() -> argparse.ArgumentParser:
    from backends import BACKENDS, DEFAULT_BACKEND, describe_backends
    paper = "examples/paper_2222/paper_2222.nnir --layer 2 --x 0.5,0.5 --property 'y[1] >= y[0]'"
    epilog = (CONVENTIONS + "\n\npasses, in their default order (--passes runs an explicit "
              "chain; relu-lowering and max-lowering run only for backends without native "
              "ReLUs or max; a pass marked (off: --no-...) has that switch, the others always "
              "run):\n" + describe_passes() + "\n\nbackends:\n" + describe_backends()
              + "\n\n" + examples(
                  "# the paper's 2-2-2-2 example on three solvers, model files in runs/lp",
                  f"compile-patch {paper} --compare highs,pyomo-highs,z3 --dump-lp runs/lp",
                  "# the smallest change to a digit network's middle edge-layer that "
                  "misclassifies row 0",
                  "compile-patch examples/digits/digits_mlp.keras --layer mid --data "
                  "examples/digits/digits_test.npz --index 0",
                  "# the same on the reference MNIST network, with the problem sizes per pass",
                  "compile-patch ../shared/data/models/mnist_784-50x6-10.h5 --data "
                  "../shared/data/mnist/mnist_aigent_500.npz --index 0 --sizes"))
    parser = Parser(prog="compile-patch", description=__doc__, epilog=epilog,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(parser)
    parser.set_defaults(run=run)
    parser.add_argument("--layer", default="mid",
                        help="edge-layer to patch: first, mid (ceil(L/2)), last, or 1..L "
                             "(default: mid)")
    parser.add_argument("--backend", choices=tuple(BACKENDS), default=DEFAULT_BACKEND,
                        help=f"solver (default: {DEFAULT_BACKEND})")
    where = parser.add_argument_group("input (one of)")
    where.add_argument("--x", help="the input as comma-separated values, e.g. 0.5,0.5 or "
                       "-0.25,0.5 (default: none; give --x or --data)")
    where.add_argument("--data", help="a data set (.npz with x, y, or .csv) (default: none; "
                       "give --x or --data)")
    where.add_argument("--index", type=count, default=0, help="row of --data (default: 0)")
    parser.add_argument("--property", type=text, help='e.g. "y[1] >= y[0] + 0.01", "argmax(y) != 3" '
                        "(default: misclassify the input's predicted label, trying the target "
                        "classes in order of their logit gap, smallest first)")
    parser.add_argument("--objective", choices=("linf", "l1"), default="linf",
                        help="size of the patch to minimize: linf = the largest |weight "
                             "change|, l1 = their sum (default: linf)")
    parser.add_argument("--eps-bound", type=positive,
                        help="largest weight change considered (default: twice the layer's "
                             "largest weight); bounds the big-M constants without phase fixing")
    parser.add_argument("--phase-mode", choices=("linearized", "region"), default="linearized",
                        help="phase fixing: the network's linear model at the input "
                             "(linearized) or its activation region (region, sound) "
                             "(default: linearized)")
    parser.add_argument("--relinearize", type=count, default=3, metavar="R",
                        help="with linearized phases: up to R more rounds at the patched "
                             "network's phases when the real network rejects a patch "
                             "(default: 3)")
    parser.add_argument("--free-patched-phases", action="store_true",
                        help="leave the ReLUs fed by the patched layer free (binaries): slower, "
                             "but patches of the upper layers then validate (default: off)")
    parser.add_argument("--no-phase-fixing", action="store_true",
                        help="keep ReLU phases free: a MILP with big-M from --bounds "
                             "(default: phases fixed, see --phase-mode)")
    parser.add_argument("--bounds", choices=("interval", "symbolic", "lp"), default="interval",
                        help="bounds of the layers above the patched one, the big-M constants "
                             "of free phases (default: interval; symbolic and lp are tighter)")
    parser.add_argument("--no-reduction", action="store_true",
                        help="keep one variable per weight instead of one per target neuron "
                             "(default: one per target neuron, exact for one input)")
    parser.add_argument("--no-sign-pruning", action="store_true",
                        help="let every weight change take either sign (default: the "
                             "increment/decrement marks fix each change's sign, a heuristic "
                             "that may lose the optimum)")
    parser.add_argument("--no-relaxation", action="store_true",
                        help="keep inner targets as equalities (default: relaxed to "
                             "inequalities by mark; inactive targets z <= 0)")
    parser.add_argument("--passes", metavar="A,B,...",
                        help=f"run exactly these passes, in this order (from {', '.join(ORDER)}) "
                             "(default: the order below, as the options choose)")
    parser.add_argument("--print-after", metavar="PASS",
                        help="print the problem IR after this pass (or 'query': before any) "
                             "(default: print none)")
    parser.add_argument("--time-limit", type=positive, help="seconds per solver call "
                        "(default: no limit)")
    parser.add_argument("--dump-lp", metavar="DIR", help="write each compiled query into DIR in "
                        "every format the backend writes (HiGHS and Pyomo: .lp and .mps; z3: "
                        ".smt2), as NAME.BACKEND.SUFFIX, each with a comment block that says "
                        "what it is (default: none written)")
    parser.add_argument("--compare", help="solve the same problem with several backends, "
                        f"e.g. highs,pyomo-highs,z3; from {', '.join(BACKENDS)} (default: "
                        "--backend only)")
    parser.add_argument("--save-patched", metavar="FILE", help="write the patched network "
                        "(the first validated patch) to FILE: .onnx, .nnir or .nnet (default: "
                        "not written)")
    parser.add_argument("--sizes", action="store_true", help="print problem sizes after each "
                        "pass (default: off)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: "
                        "the explained table)")
    return parser


def main(argv=None) -> int:
    return run_command(build_parser(), argv)


def run(args) -> int:
    net = load_net(args)
    k = parse_layer(args.layer, net.depth)
    if args.print_after and args.print_after not in ("query",) + ORDER:
        raise NetpatchError(f"--print-after {args.print_after!r}: use query or one of "
                            f"{', '.join(ORDER)}")
    x, label = read_input(args, net)
    if args.property:
        prop = parse_property(args.property, net.n_outputs)
    else:
        prop = ArgmaxIsNot(int(np.argmax(net(x))))
    if not args.compare:
        rows = [solve_candidates(net, k, x, prop, args.backend, args)]
    else:
        # The first backend that runs picks the target class; the others solve that problem.
        rows = []
        for name in (n.strip() for n in args.compare.split(",")):
            only = rows[0].target_class if rows else None
            try:
                rows.append(solve_candidates(net, k, x, prop, name, args, only=only))
            except SolverUnavailable as err:   # one unusable solver does not end a comparison
                print(f"compile-patch: {name} skipped: {err}", file=sys.stderr)
        if not rows:
            raise NetpatchError("none of the compared backends could run")

    if args.json:
        out = rows[0].as_dict() if len(rows) == 1 else {"compare": [r.as_dict() for r in rows],
                                                          "disagreements": disagreements(rows)}
        print(json.dumps(out, indent=1))
    else:
        print("\n".join(explain(net, k, x, label, prop, rows[0].target_class, args)))
        print_table(rows)
        print(TABLE_LEGEND.format(k=k, weights=net.edge(k).linear.weight.size))
        if args.sizes:
            for row in rows[:1]:
                for record in row.sizes:
                    print("  " + "  ".join(f"{key}={value}" for key, value in record.items()))
        for flag in disagreements(rows):
            print(f"warning: {flag}")
        if args.dump_lp:
            print(f"model files written to {args.dump_lp}")
    if args.save_patched:
        save_patched(net, k, rows, args.save_patched)
    return 0 if any(r.validated for r in rows) else 1


def save_patched(net, k: int, rows: list[PatchOutcome], path) -> None:
    """Write the network with the first validated patch (re-checked on the saved network by
    the caller's validation; nothing is written without one)."""
    from frontends import save_network
    validated = [r for r in rows if r.validated]
    if not validated:
        print(f"compile-patch: no validated patch, so nothing was written to {path}",
              file=sys.stderr)
        return
    save_network(net.with_patch(k, validated[0].eps), path)
    print(f"patched network written to {path} ({validated[0].backend}'s patch)",
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
