"""How the command-line tools report errors: one line, a non-zero exit, never a traceback."""
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
