"""``netpatch verify``: does a network meet a VNN-LIB property?  The interface verification
tools share (VNN-COMP): an ONNX network (or any format netpatch reads), a .vnnlib property,
a timeout, and a result file whose first line is sat, unsat, timeout, unknown or error,
followed for sat by the counterexample ``((X_0 value) ... (Y_0 value))``.

With --instances FILE.csv it runs a benchmark's instance list (rows onnx,vnnlib,timeout,
paths relative to the CSV) into a results CSV and prints a summary; a rerun resumes.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common.errors import DataError
from netpatch.command import one_line

DESCRIPTION = """Does a network meet a VNN-LIB property?  The interface verification tools
share (VNN-COMP): an ONNX network (or any format netpatch reads), a .vnnlib property, a
timeout, and a result file whose first line is sat, unsat, timeout, unknown or error,
followed for sat by the counterexample ((X_0 value) ... (Y_0 value)).  As in VNN-LIB, the
property states the counterexample sought: sat means one was found.

With --instances FILE.csv it runs a benchmark's instance list (rows onnx,vnnlib,timeout,
paths relative to the CSV) into a results CSV and prints a summary; a rerun resumes."""

PAPER = "examples/paper_2222"
EXAMPLE_LINES = (
    "# sat: an input within 0.15 of (0.5, 0.5) that the paper's network puts in class 1",
    f"netpatch verify {PAPER}/paper_2222.nnir {PAPER}/class1_within_0.15.vnnlib --timeout 20",
    "# an instance list (paths relative to the CSV) into a results CSV; a rerun resumes",
    f"netpatch verify --instances {PAPER}/instances.csv --out runs/verify/results.csv",
)

TOLERANCE_HELP = ("unsat is claimed only when every input box and output conjunction is "
                  "proved: its margins bounded below -1e-6 over the box by sound bounds, over "
                  "every part of the box (input splitting, for boxes of at most 16 varying "
                  "inputs), over both sides of every split ReLU (ReLU splitting: the "
                  "network's LP relaxation on each side, proved optimal or empty by HiGHS), "
                  "or by the exact MILP (every ReLU and max-pool phase free, big-M "
                  "constants from sound bounds) run to its end; these proofs assume float64 "
                  "rounding of the bounds and, for the MILP, the solver's feasibility "
                  "tolerance (HiGHS: 1e-7; also for the LPs of ReLU splitting).  sat is claimed only after a float64 simulation "
                  "of the network on X, X inside the box exactly.")


def register(sub, add_command) -> None:
    from attacks.verify import STRATEGIES
    from backends import BACKENDS, DEFAULT_BACKEND
    from compiler.analysis.bounds import METHODS
    import textwrap
    from netpatch.command import QUIET_HELP, at_least_one, examples, positive
    p = add_command(sub, "verify", help="decide a VNN-LIB property (sat / unsat / timeout)",
                    description=DESCRIPTION + "\n\n" + textwrap.fill(TOLERANCE_HELP, 88),
                    epilog=examples(*EXAMPLE_LINES))
    p.add_argument("net", nargs="?", help="model file (.onnx, .h5, .keras, .nnet, .nnir)")
    p.add_argument("property", nargs="?", help="VNN-LIB property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--instances", metavar="CSV", help="run every row (onnx,vnnlib,timeout) of "
                   "a benchmark's instance list instead of one NET PROPERTY pair (default: "
                   "none)")
    p.add_argument("--timeout", type=positive, default=60.0,
                   help="seconds for one instance; --instances: each row's own (default: 60)")
    p.add_argument("--strategy", choices=STRATEGIES, default="auto",
                   help="auto: cheap falsification (gradient ascent, samples, the "
                        "linearized network, divide and conquer), then the proofs (bounds, "
                        "input splitting, ReLU splitting, the exact MILP); direct, dnc: "
                        "falsification only (sat or unknown); exact: the MILP only "
                        "(default: auto)")
    p.add_argument("--backend", choices=tuple(BACKENDS), default=DEFAULT_BACKEND,
                   help=f"solver (default: {DEFAULT_BACKEND})")
    p.add_argument("--bounds", choices=METHODS, default="symbolic",
                   help="bounds for the MILP's big-M constants: interval, symbolic, "
                        "or lp (tightest, slowest; a quarter of the time left at most) "
                        "(default: symbolic)")
    p.add_argument("--out", metavar="FILE", help="result file of one instance, or the results "
                   "CSV of --instances (default: print only; --instances: results.csv beside "
                   "the list)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="--instances: local (--jobs processes) or dask (one task per instance "
                        "on the cluster at --scheduler, else an embedded one; the instance "
                        "files must be readable by every worker) (default: local)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="--engine dask: a running Dask "
                   "scheduler, e.g. tcp://10.0.0.5:8786 (default: an embedded cluster)")
    p.add_argument("--jobs", type=at_least_one, default=1,
                   help="--instances: instances decided at once (default: 1)")
    p.add_argument("--quiet", action="store_true",
                   help="one instance: nothing on stderr (default: its stage, live, once it "
                        "runs past 5 s on a terminal or past a minute elsewhere, and a last "
                        "line saying how the result was reached); --instances: " + QUIET_HELP)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.instances:
        if args.net or args.property:
            raise DataError("give either NET PROPERTY or --instances CSV, not both")
        return run_instances(args)
    if not (args.net and args.property):
        raise DataError("give a network and a property (NET PROPERTY), or --instances CSV")
    from evaluation.instances import decide_one
    verdict = decide_one(args.net, args.property, args.timeout, args.strategy, args.backend,
                         args.bounds, args.quiet)
    text = result_text(verdict)
    print(text, end="")
    if verdict.result == "error":
        print(f"netpatch verify: error: {verdict.reason}", file=sys.stderr)
    elif not args.quiet:      # how it was decided, or why not: on stderr, the result stays clean
        why = "; ".join(part for part in (verdict.stage, one_line(verdict.reason)) if part)
        print(f"netpatch verify: {verdict.result} in {verdict.seconds:.2f} s"
              + (f" ({why})" if why else ""), file=sys.stderr)
    if args.out:
        write_result(Path(args.out), text)
    return 0 if verdict.result != "error" else 1


def write_result(path: Path, text: str) -> None:
    """Write a result file, creating its folder; a path that cannot be written is a one-line
    error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise DataError(f"--out {path}: cannot write ({err.strerror or err})") from None


def result_text(verdict) -> str:
    """The VNN-COMP result file: the verdict, then for sat the counterexample with every
    float printed in full (``repr``)."""
    if verdict.result != "sat":
        return verdict.result + "\n"
    xs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(verdict.x)]
    ys = [f"(Y_{j} {float(v)!r})" for j, v in enumerate(verdict.y)]
    return "sat\n(" + "\n ".join(xs + ys) + ")\n"


def run_instances(args) -> int:
    from evaluation.instances import decide_instances, summary
    records, out = decide_instances(Path(args.instances), args.out, args.strategy, args.backend,
                                    args.bounds, args.engine, args.jobs, args.scheduler,
                                    args.quiet)
    print(summary(records))
    print(f"results: {out}")
    return 0
