"""What every command shares: how errors are reported (one line, a non-zero exit, never a
traceback), the network arguments, and the conventions printed in ``--help``."""
from __future__ import annotations

import argparse
import functools
import math
import os
import re
import sys

from common.errors import NetpatchError
from common.threads import one_blas_thread

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


MAX_MESSAGE = 400   # characters per line of an error message (an echoed 100k property is cut)


def one_line(message: str) -> str:
    """A message with every line cut to ``MAX_MESSAGE`` characters."""
    return "\n".join(line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE] + " [...]"
                     for line in str(message).splitlines())


class Parser(argparse.ArgumentParser):
    """Errors as ``PROG: error: MESSAGE`` on one line and exit 2 (no usage dump; ``--help``
    has it); the values of ``NUMBER_LISTS`` flags may start with a minus sign."""

    NUMBER_LISTS = ("--x", "--domain")

    def error(self, message):
        print(f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)",
              file=sys.stderr)
        sys.exit(EXIT_ERROR)

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        glued = []
        for arg in args:   # "--x -0.2,0.5" reads as an option; "--x=-0.2,0.5" does not
            if glued and glued[-1] in self.NUMBER_LISTS and re.match(r"-[\d.]", arg):
                glued[-1] = f"{glued[-1]}={arg}"
            else:
                glued.append(arg)
        return super().parse_known_args(glued, namespace)


def run_command(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse ``argv`` and run ``args.run(args)``: known errors print ``PROG: error: MESSAGE``
    (PROG is the subcommand's, e.g. ``netpatch attack``) and exit 2; never a traceback."""
    prog = parser.prog
    one_blas_thread()     # the command's own process is one job (workers do the same)
    try:
        args = parser.parse_args(argv)
        prog = getattr(args, "prog", prog)
        return args.run(args)
    except NetpatchError as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# ---- checked values: a bad one is a one-line error naming the flag and the allowed range ----

def _number(text: str, cast):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if cast is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def positive(text: str) -> float:
    """A finite number > 0 (L-inf budgets, time limits)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def at_least_one(text: str) -> int:
    """A whole number >= 1 (pixel budgets, target classes, jobs)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def count(text: str) -> int:
    """A whole number >= 0 (row limits, rounds, indices)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def text(value: str) -> str:
    """A non-empty string (properties)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def domain_pair(value: str) -> tuple[float, float]:
    """``LO,HI`` with finite LO < HI."""
    parts = value.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {value!r}")
    lo, hi = (_number(part, float) for part in parts)
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"needs LO < HI, got {value}")
    return lo, hi


CONVENTIONS = """conventions:
  edge-layers are numbered from 1 at the input (edge-layer k maps neuron layer k-1 to k);
  output and neuron indices in properties are 0-based, like class labels (y[0] is the first output)."""

EXAMPLES_HEADER = "examples (run from the project root; ../shared/data is the optional reference data):"


def examples(*lines: str) -> str:
    """An epilog of example command lines, each a command or a ``# comment`` line; every
    command parses with the real parser and names files that exist (tests/test_help.py)."""
    return EXAMPLES_HEADER + "\n" + "\n".join(f"  {line}" for line in lines)


def example_commands(epilog: str) -> list[str]:
    """The command lines of an epilog written by :func:`examples`."""
    body = epilog.split(EXAMPLES_HEADER, 1)[1] if EXAMPLES_HEADER in epilog else ""
    return [line.strip() for line in body.splitlines()
            if line.startswith("  ") and not line.strip().startswith("#") and line.strip()]


QUIET_HELP = ("no progress on stderr (default: a live bar on a terminal, else a plain line "
              "every tenth of the run or minute)")


def add_network_args(parser, domain: bool = False) -> None:
    """The model file (and ``--domain`` for commands that change inputs)."""
    parser.add_argument("net", help="model file: .h5, .keras, Keras 2 .json (+ weights), "
                        ".onnx, .nnet or .nnir")
    parser.add_argument("--weights", help="weights file for a Keras 2 .json architecture "
                        "(default: NAME.weights.h5 or NAME.h5 beside it)")
    if domain:
        parser.add_argument("--domain", type=domain_pair, metavar="LO,HI",
                            help="the box every input value stays in (default: the model "
                                 "file's domain when it holds one, as .nnet and .nnir files "
                                 "may; else 0,1)")


def load_net(args):
    """The network of ``args.net``, with the domain of ``--domain`` when the command has it."""
    return _load(args.net, args.weights, getattr(args, "domain", None),
                 hasattr(args, "domain"))


def network_loader(args):
    """A picklable function that loads the same network again (for worker processes)."""
    return functools.partial(_load, args.net, args.weights, getattr(args, "domain", None),
                             hasattr(args, "domain"))


def _load(path, weights, domain, needs_domain: bool):
    from frontends import load_network
    from ir.network import Domain
    net = load_network(path, weights=weights)
    if domain is not None:
        return net.with_domain(Domain.box(net.n_inputs, *domain))
    if needs_domain and net.domain is None:
        return net.with_domain(Domain.box(net.n_inputs, 0.0, 1.0))
    return net
