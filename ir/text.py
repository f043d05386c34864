"""The ``.nnir`` text form of a network: printer, parser and the file pair ``.nnir`` + ``.npz``.

The grammar is ``network.lark`` (beside this file); a sample::

    netpatch-ir 1
    network "paper_2222"
    input shape (2) domain box [0.0, 1.0]
    arrays "paper_2222.npz"
    linear 1: 2 -> 2
      weight [[1.0, 1.0],
              [-1.0, 2.0]]
      bias [0.0, 0.0]
    relu
    linear 2: 2 -> 2
      weight @W2
      bias @b2

Contract:

* ``linear k: n_in -> n_out`` heads edge-layer ``k`` (numbered from 1); its weight has shape
  ``(n_out, n_in)`` (row ``j`` holds the weights into target neuron ``j``, as in
  ``ir.network``) and its bias ``(n_out,)``.  A ``relu`` line after it means a ReLU follows.
* ``domain box [lo, hi]`` when every input has the same bounds, otherwise per input
  ``domain lower [...] upper [...]``.
* Numbers are printed with ``repr(float(v))`` (the shortest text that reads back to the same
  float64) and read with ``float()``, so weights round-trip bit for bit.
* An array with more than ``inline_limit`` values is printed as a reference ``@name``
  (``W<k>``, ``b<k>``, ``lower``, ``upper``) and handed over in a dict; a file written by
  ``dump_nnir`` keeps those arrays in an ``.npz`` beside it, named by its ``arrays "..."`` line.
* The printer is deterministic and ``format_network(parse_network(t)) == t`` for its output.
* Every error is an ``common.errors.ParseError`` with line, column and a caret.
"""
from __future__ import annotations

import functools
import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from lark import Lark, Token, Transformer, UnexpectedInput, UnexpectedToken, v_args
from lark.exceptions import VisitError
from lark.lexer import PatternStr

from common.errors import NetworkError, ParseError
from ir.network import Domain, Linear, Network, ReLU

FORMAT_VERSION = "1"
MAGIC = "netpatch-ir"

# inf and nan are not numbers in the grammar; an error at one says why.
_NON_FINITE = re.compile(r"[+-]?(inf(inity)?|nan)\b", re.IGNORECASE)

# How the grammar's regular-expression terminals are named in error messages.
_TERMINAL_NAMES = {"NUMBER": "a number", "NAME": "a name", "ESCAPED_STRING": "a quoted string",
                   "MAGIC": repr(MAGIC)}


# ---- printer ----------------------------------------------------------------------------

def format_network(net: Network, arrays: dict | None = None, inline_limit: int = 64,
                   array_file: str | None = None) -> str:
    """The text of ``net``.

    With an ``arrays`` dict, every array of more than ``inline_limit`` values is written as
    ``@name`` and stored into ``arrays`` under that name; without one, everything is inline.
    ``array_file`` names the file that will hold those arrays (the ``arrays "..."`` line,
    printed only when some array is external).
    """
    out = _ArrayPrinter(arrays, inline_limit)
    body = []
    for edge in net.edges:
        w = edge.linear.weight
        body.append(f"linear {edge.index}: {w.shape[1]} -> {w.shape[0]}")
        body.append("  weight " + out.matrix(f"W{edge.index}", w, indent=len("  weight ")))
        body.append("  bias " + out.vector(f"b{edge.index}", edge.linear.bias))
        if edge.relu:
            body.append("relu")
    shape = ", ".join(str(d) for d in net.input_shape)
    head = [f"{MAGIC} {FORMAT_VERSION}", f"network {json.dumps(net.name)}",
            f"input shape ({shape}) domain" + _format_domain(net.domain, out)]
    if out.external and array_file is not None:
        head.append(f"arrays {json.dumps(array_file)}")
    return "\n".join(head + body) + "\n"


def _format_domain(domain: Domain, out: "_ArrayPrinter") -> str:
    lo, hi = domain.lower, domain.upper
    if _all_same_bits(lo) and _all_same_bits(hi):
        return f" box [{_number(lo[0])}, {_number(hi[0])}]"
    return f"\n  lower {out.vector('lower', lo)}\n  upper {out.vector('upper', hi)}"


def _all_same_bits(values: np.ndarray) -> bool:
    """Every value has the same float64 bit pattern (so ``-0.0`` and ``0.0`` differ)."""
    bits = values.view(np.uint64)
    return len(bits) > 0 and bool(np.all(bits == bits[0]))


def _number(value: float) -> str:
    return repr(float(value))


class _ArrayPrinter:
    """Prints arrays inline, or as ``@name`` references collected into ``arrays``."""

    def __init__(self, arrays: dict | None, inline_limit: int):
        self.arrays, self.inline_limit = arrays, inline_limit
        self.external = False

    def _reference(self, name: str, values: np.ndarray) -> str | None:
        if self.arrays is None or values.size <= self.inline_limit:
            return None
        self.arrays[name] = values
        self.external = True
        return "@" + name

    def vector(self, name: str, values: np.ndarray) -> str:
        return self._reference(name, values) or _vector_text(values)

    def matrix(self, name: str, values: np.ndarray, indent: int) -> str:
        reference = self._reference(name, values)
        if reference:
            return reference
        return "[" + (",\n" + " " * (indent + 1)).join(_vector_text(row) for row in values) + "]"


def _vector_text(values: np.ndarray) -> str:
    return "[" + ", ".join(_number(v) for v in values) + "]"


# ---- parser -----------------------------------------------------------------------------

def parse_network(text: str, arrays: Mapping[str, np.ndarray] | None = None,
                  source: str = "<text>") -> Network:
    """The network written in ``text``; ``@name`` references are looked up in ``arrays``."""
    return _build(_parse_tree(text, source), text, source, arrays)


def dump_nnir(net: Network, path: str | Path, inline_limit: int = 64) -> None:
    """Write ``path`` and, when some array has more than ``inline_limit`` values, the
    ``.npz`` beside it (``path`` with suffix ``.npz``) that holds those arrays."""
    path = Path(path)
    npz_path = path.with_suffix(".npz")
    arrays: dict[str, np.ndarray] = {}
    text = format_network(net, arrays, inline_limit, array_file=npz_path.name)
    if arrays:
        np.savez(npz_path, **arrays)
    path.write_text(text)


def load_nnir(path: str | Path) -> Network:
    """Read an ``.nnir`` file and the ``.npz`` its ``arrays`` line names (same folder)."""
    path = Path(path)
    text = path.read_text()
    tree = _parse_tree(text, str(path))
    arrays = None
    header = next(tree.find_data("array_file"), None)
    if header is not None:
        token = header.children[0]
        arrays = _read_npz(path.parent / _string(token, text, str(path)), token, text, str(path))
    return _build(tree, text, str(path), arrays)


def _read_npz(npz_path: Path, token: Token, text: str, source: str) -> dict[str, np.ndarray]:
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ParseError(f"cannot read the arrays file {npz_path.name!r} (looked in "
                         f"{npz_path.parent}): {err}", text, token.line, token.column,
                         source) from None


class _KeepWords:
    """A do-nothing post-lexer whose ``always_accept`` keeps the unused terminal NAME in the
    lexer: ``relux`` then reads as one unexpected word instead of ``relu`` + a bad ``x``."""

    always_accept = ("NAME",)

    def process(self, stream):
        return stream


@functools.cache
def _parser() -> Lark:
    grammar = Path(__file__).with_name("network.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="basic", postlex=_KeepWords(),
                propagate_positions=True, maybe_placeholders=False)


def _parse_tree(text: str, source: str):
    try:
        return _parser().parse(text)
    except UnexpectedInput as err:
        raise syntax_error(_parser(), err, text, source, _TERMINAL_NAMES) from None


def _build(tree, text: str, source: str, arrays: Mapping[str, np.ndarray] | None) -> Network:
    try:
        return _NetworkBuilder(text, source, arrays).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, ParseError):
            raise err.orig_exc from None
        raise


def syntax_error(parser: Lark, err: UnexpectedInput, text: str, source: str,
                 terminal_names: Mapping[str, str]) -> ParseError:
    """A lark syntax error as a ParseError that says what was found and what was expected;
    ``terminal_names`` names the grammar's regular-expression terminals for the reader.

    An LALR parser raises UnexpectedToken or UnexpectedCharacters.  Shared with
    ``ir.property_parser``.
    """
    non_finite = _NON_FINITE.match(text, err.pos_in_stream or 0)
    if non_finite and not (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        message = f"non-finite number {non_finite.group()!r}: every value must be finite"
        return ParseError(message, text, err.line, err.column, source)
    if isinstance(err, UnexpectedToken):
        if err.token.type == "$END":
            # lark places the end token at the start of the last token; point just after it.
            line, column = err.token.end_line or 1, err.token.end_column or 1
            found = "end of file"
        else:
            line, column, found = err.line, err.column, repr(str(err.token))
        expected = sorted(_describe(parser, name, terminal_names)
                          for name in (err.accepts or err.expected))
        hint = f"; expected {_one_of(expected)}" if expected else ""
        return ParseError(f"unexpected {found}{hint}", text, line, column, source)
    return ParseError(f"unexpected character {text[err.pos_in_stream]!r}", text, err.line,
                      err.column, source)


def _describe(parser: Lark, terminal: str, terminal_names: Mapping[str, str]) -> str:
    if terminal == "$END":
        return "end of file"
    if terminal in terminal_names:
        return terminal_names[terminal]
    pattern = parser.get_terminal(terminal).pattern
    return repr(pattern.value) if isinstance(pattern, PatternStr) else terminal


def _one_of(choices: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join(filter(None, (", ".join(choices[:-1]), choices[-1])))


def _string(token: Token, text: str, source: str) -> str:
    try:
        return json.loads(token)
    except ValueError as err:
        raise ParseError(f"bad string {token}: {err}", text, token.line, token.column,
                         source) from None


def _whole_number(token: Token, what: str, text: str, source: str) -> int:
    if not token.isdigit():
        raise ParseError(f"{what} must be a whole number, got {token}", text, token.line,
                         token.column, source)
    return int(token)


class _NetworkBuilder(Transformer):
    """Parse tree -> ``ir.network`` nodes; checks what the tree alone cannot."""

    def __init__(self, text: str, source: str, arrays: Mapping[str, np.ndarray] | None):
        super().__init__()
        self.text, self.source, self.arrays = text, source, arrays
        self.linear_lines: list[tuple[int, int]] = []  # (line, column) of each `linear`
        self.input_at: tuple[int, int] | None = None  # (line, column) of `input`

    def error(self, message: str, line: int, column: int) -> ParseError:
        return ParseError(message, self.text, line, column, self.source)

    def error_at(self, message: str, token: Token) -> ParseError:
        return self.error(message, token.line, token.column)

    # ---- values ------------------------------------------------------------------------
    def floats(self, tokens: list[Token]) -> np.ndarray:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
        overflow = np.flatnonzero(~np.isfinite(values))
        if len(overflow):
            raise self.error_at(f"number {tokens[overflow[0]]} is out of the float64 range",
                                tokens[overflow[0]])
        return values

    def vector(self, tokens):
        return self.floats(tokens)

    def row(self, tokens):
        return tokens

    @v_args(meta=True)
    def matrix(self, meta, rows):
        for i, row in enumerate(rows[1:], start=2):
            if len(row) != len(rows[0]):
                line, column = (row[0].line, row[0].column) if row else (meta.line, meta.column)
                raise self.error(f"row {i} has {len(row)} values, row 1 has {len(rows[0])}",
                                 line, column)
        width = len(rows[0]) if rows else 0
        return self.floats([t for row in rows for t in row]).reshape(len(rows), width)

    def ref(self, children):
        (token,) = children
        name = token[1:]
        if self.arrays is None:
            raise self.error_at(f"array @{name} is referenced, but no arrays were given (read "
                                f"the file with load_nnir, which loads its .npz)", token)
        if name not in self.arrays:
            held = ", ".join(sorted(self.arrays)) or "nothing"
            raise self.error_at(f"array @{name} not found; the arrays hold: {held}", token)
        try:
            return np.asarray(self.arrays[name], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise self.error_at(f"array @{name} is not numeric: {err}", token) from None

    # ---- statements --------------------------------------------------------------------
    def version(self, children):
        _, number = children
        if number != FORMAT_VERSION:
            raise self.error_at(f"unsupported version {number}; this reader knows "
                                f"{MAGIC} {FORMAT_VERSION}", number)

    def network_name(self, children):
        return _string(children[0], self.text, self.source)

    def array_file(self, children):
        return None  # read by load_nnir before the tree is built

    def shape(self, tokens):
        return tuple(_whole_number(t, "a dimension", self.text, self.source) for t in tokens)

    def box_domain(self, tokens):
        return self.floats(tokens)

    def bounds_domain(self, bounds):
        return Domain(*bounds)

    @v_args(meta=True)
    def input(self, meta, children):
        shape, domain = children
        self.input_at = (meta.line, meta.column)
        if not isinstance(domain, Domain):
            domain = Domain.box(int(np.prod(shape)), *domain)
        return shape, domain

    @v_args(meta=True)
    def linear(self, meta, children):
        index, n_in, n_out, weight, bias = children
        k, width_in, width_out = (_whole_number(t, "a layer count", self.text, self.source)
                                  for t in (index, n_in, n_out))
        expected = len(self.linear_lines) + 1
        if k != expected:
            raise self.error_at(f"this is linear layer {expected}, but it is numbered {k}", index)
        self.linear_lines.append((meta.line, meta.column))
        declared = f"linear {k} declares {width_in} -> {width_out}, so its"
        if weight.shape != (width_out, width_in):
            at = n_in if weight.ndim == 2 and weight.shape[0] == width_out else n_out
            raise self.error_at(f"{declared} weight must have shape ({width_out}, {width_in}) "
                                f"(n_out, n_in), but it has shape {weight.shape}", at)
        if bias.shape != (width_out,):
            raise self.error_at(f"{declared} bias must have shape ({width_out},), but it has shape "
                                f"{bias.shape}", n_out)
        return Linear(weight, bias)

    def relu(self, _):
        return ReLU()

    def start(self, children):
        name = children[1]
        shape, domain = children[2]
        layers = tuple(c for c in children[3:] if isinstance(c, (Linear, ReLU)))
        try:
            return Network(layers, domain, shape, name)
        except NetworkError as err:
            line, column = self.linear_lines[err.layer - 1] if err.layer else self.input_at
            raise self.error(str(err), line, column) from None

