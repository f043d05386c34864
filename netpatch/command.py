"""What every command shares: how errors are reported (one line, a non-zero exit, never a
traceback), the network arguments, and the conventions printed in ``--help``."""
from __future__ import annotations

import functools
import os
import sys

from common.errors import NetpatchError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def reports_errors(main):
    """Wrap a CLI main: known errors print ``PROG: error: MESSAGE`` and exit 2."""
    @functools.wraps(main)
    def wrapper(argv=None):
        prog = main.__module__.rsplit(".", 1)[-1].replace("_", "-")
        try:
            return main(argv)
        except NetpatchError as err:
            print(f"{prog}: error: {err}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # the reader went away (e.g. `| head`): stop quietly, as command-line tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    return wrapper


CONVENTIONS = """conventions:
  edge-layers are numbered from 1 at the input (edge-layer k maps neuron layer k-1 to k);
  output and neuron indices in properties are 0-based, like class labels (y[0] is the first output)."""


def add_network_args(parser) -> None:
    parser.add_argument("net", help="model file: .h5, .keras, Keras 2 .json (+ weights) or .nnir")
    parser.add_argument("--weights", help="weights file for a Keras 2 .json architecture "
                        "(default: NAME.weights.h5 or NAME.h5 beside it)")


def load_net(args):
    from frontends import load_network
    return load_network(args.net, weights=args.weights)


def network_loader(args):
    """A picklable function that loads the network again (for worker processes)."""
    from frontends import load_network
    return functools.partial(load_network, args.net, weights=args.weights)
