"""Typed errors shared by every layer of netpatch (the IR, frontends, compiler, backends and
commands).  Every message names what is wrong and where (file, layer, line, flag)."""


class NetpatchError(Exception):
    """Base class: the CLI prints the message and exits non-zero, no traceback."""


class NetworkError(NetpatchError):
    """A network that is malformed: shapes that do not chain, non-finite values.

    ``layer`` is the edge-layer (1-based) at fault, ``position`` the index in
    ``Network.layers`` (0-based), when known; readers of text forms map them to lines."""

    def __init__(self, message: str, layer: int | None = None, position: int | None = None):
        self.layer, self.position = layer, position
        where = f"layer {layer}: " if layer is not None else ""
        super().__init__(where + message)


class FrontendError(NetpatchError):
    """A model file that cannot be read or holds something unsupported."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ParseError(NetpatchError):
    """Text (a .nnir file or a property) that does not parse: shows line, column and a caret."""

    def __init__(self, message: str, text: str, line: int, column: int, source: str = "<text>"):
        self.line, self.column = line, column
        lines = text.splitlines() or [""]
        shown = lines[line - 1] if 0 < line <= len(lines) else ""
        caret = " " * max(column - 1, 0) + "^"
        super().__init__(f"{source}:{line}:{column}: {message}\n  {shown}\n  {caret}")


class DataError(NetpatchError):
    """A data file that cannot be read or does not fit the network."""


class SolverUnavailable(NetpatchError):
    """A backend whose library or license is missing, or too small for the problem."""
