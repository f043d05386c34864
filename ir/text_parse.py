"""``.nnir`` text -> Network: ``parse_network`` reads a text, ``load_nnir`` a file and the
``.npz`` it names; the grammar is ``network.lark`` (beside this file) and a lark
``Transformer`` (``_NetworkBuilder``) turns the parse tree into ``ir.network`` nodes, checking
what the tree alone cannot.  ``syntax_error`` (shared with ``ir.property_parser`` and
``ir.vnnlib``) turns a lark syntax error into a ``ParseError``.  The text form and its
contract are described in ``ir.text``.
"""
from __future__ import annotations

import functools
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lark import Lark, Token, Transformer, UnexpectedInput, UnexpectedToken, v_args
from lark.exceptions import VisitError
from lark.lexer import PatternStr

from common.errors import NetworkError, ParseError
from common.limits import check_values, npz_shapes, read_text_file
from ir.layers import (LAYOUTS, AvgPool2D, Conv2D, Layer, Linear, MaxPool2D, Pad2D, ReLU,
                       Reshape, Scale, Transpose)
from ir.network import Domain, Network
from ir.text_print import DENSE_KINDS, DENSE_VERSION, FULL_VERSION, MAGIC, VERSIONS, edge_indices

# inf and nan are not numbers in the grammar; an error at one says why.
_NON_FINITE = re.compile(r"[+-]?(inf(inity)?|nan)\b", re.IGNORECASE)

# How the grammar's regular-expression terminals are named in error messages.
_TERMINAL_NAMES = {"NUMBER": "a number", "NAME": "a name", "ESCAPED_STRING": "a quoted string",
                   "MAGIC": repr(MAGIC)}


def parse_network(text: str, arrays: Mapping[str, np.ndarray] | None = None,
                  source: str = "<text>") -> Network:
    """The network written in ``text``; ``@name`` references are looked up in ``arrays``."""
    return _build(_parse_tree(text, source), text, source, arrays)


def load_nnir(path: str | Path) -> Network:
    """Read an ``.nnir`` file and the ``.npz`` its ``arrays`` line names (same folder)."""
    path = Path(path)
    text = read_text_file(path, ".nnir network", NetworkError)
    tree = _parse_tree(text, str(path))
    arrays = None
    header = next(tree.find_data("array_file"), None)
    if header is not None:
        token = header.children[0]
        arrays = _read_npz(path.parent / _string(token, text, str(path)), token, text, str(path))
    return _build(tree, text, str(path), arrays)


def _read_npz(npz_path: Path, token: Token, text: str, source: str) -> dict[str, np.ndarray]:
    try:
        npz_shapes(npz_path, NetworkError)
        with np.load(npz_path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NetworkError) as err:
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


@dataclass(frozen=True)
class _Array:
    """An array of the text (inline or ``@name``) and where it starts."""

    values: np.ndarray
    line: int
    column: int


@dataclass(frozen=True)
class _Nested:
    """A nested literal ``[[...], ...]`` read so far: its shape, its numbers in row-major
    order, and where it starts."""

    shape: tuple[int, ...]
    numbers: list[Token]
    line: int
    column: int


@dataclass(frozen=True)
class _Ints:
    """A parenthesized list of numbers ``(a, b, ...)`` (not yet checked) and where it starts."""

    tokens: list[Token]
    line: int
    column: int


@dataclass(frozen=True)
class _Statement:
    """One layer statement: the layer, where it starts, its keyword, its edge-layer number
    (``linear``, ``conv2d``) and, for ``conv2d``, its declared input and output shapes."""

    layer: Layer
    line: int
    column: int
    keyword: str
    number: Token | None = None
    declared: tuple[tuple[str, tuple[int, ...], _Ints], ...] = ()


class _NetworkBuilder(Transformer):
    """Parse tree -> ``ir.network`` nodes; checks what the tree alone cannot."""

    def __init__(self, text: str, source: str, arrays: Mapping[str, np.ndarray] | None):
        super().__init__()
        self.text, self.source, self.arrays = text, source, arrays
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

    @v_args(meta=True)
    def vector(self, meta, tokens):
        return _Array(self.floats(tokens), meta.line, meta.column)

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
        values = self.floats([t for row in rows for t in row]).reshape(len(rows), width)
        return _Array(values, meta.line, meta.column)

    @v_args(meta=True)
    def tensor(self, meta, items):
        """Numbers only, or lists of one shape only (checked here, innermost first)."""
        for i, item in enumerate(items[1:], start=2):
            if _describe_item(item) != _describe_item(items[0]):
                raise self.error(f"ragged array: item {i} is {_describe_item(item)}, item 1 is "
                                 f"{_describe_item(items[0])}", item.line, item.column)
        if not items or isinstance(items[0], Token):
            return _Nested((len(items),), list(items), meta.line, meta.column)
        numbers = [number for item in items for number in item.numbers]
        return _Nested((len(items), *items[0].shape), numbers, meta.line, meta.column)

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
            values = np.asarray(self.arrays[name], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise self.error_at(f"array @{name} is not numeric: {err}", token) from None
        bad = np.argwhere(~np.isfinite(values))
        if len(bad):
            at = tuple(int(i) for i in bad[0])
            raise self.error_at(f"array @{name} holds a non-finite value {values[at]} at {at}",
                                token)
        return _Array(values, token.line, token.column)

    def array(self, value) -> _Array:
        """An inline nested literal or a reference, as an ``_Array``."""
        if isinstance(value, _Nested):
            values = self.floats(value.numbers).reshape(value.shape)
            return _Array(values, value.line, value.column)
        return value

    @v_args(meta=True)
    def ints(self, meta, tokens):
        return _Ints(list(tokens), meta.line, meta.column)

    def whole_numbers(self, ints: _Ints, what: str, statement: str, count: int | None = None,
                      names: str = "") -> tuple[int, ...]:
        """The numbers of ``(a, b, ...)``: ``count`` of them (named by ``names``), each a
        whole number >= 0."""
        if count is not None and len(ints.tokens) != count:
            raise self.error(f"{statement}: {what} needs {count} values {names}, got "
                             f"{len(ints.tokens)}", ints.line, ints.column)
        for token in ints.tokens:
            if not token.isdigit():
                raise self.error_at(f"{statement}: {what} must hold whole numbers >= 0, got "
                                    f"{token}", token)
        return tuple(int(token) for token in ints.tokens)

    def layout(self, token: Token, statement: str) -> str:
        if token not in LAYOUTS:
            raise self.error_at(f"{statement}: unknown layout {str(token)!r}; use "
                                f"{' or '.join(LAYOUTS)}", token)
        return str(token)

    # ---- header ------------------------------------------------------------------------
    def version(self, children):
        _, number = children
        if number not in VERSIONS:
            raise self.error_at(f"unsupported version {number}; this reader knows "
                                f"{' and '.join(f'{MAGIC} {v}' for v in VERSIONS)}", number)
        return str(number)

    def network_name(self, children):
        return _string(children[0], self.text, self.source)

    def array_file(self, children):
        return None  # read by load_nnir before the tree is built

    def box_domain(self, tokens):
        return self.floats(tokens)

    def bounds_domain(self, bounds):
        return Domain(*(bound.values for bound in bounds))

    @v_args(meta=True)
    def input(self, meta, children):
        ints, domain = children if len(children) == 2 else (children[0], None)
        shape = tuple(_whole_number(t, "a dimension", self.text, self.source)
                      for t in ints.tokens)
        self.input_at = (meta.line, meta.column)
        try:
            check_values(shape, "the input", NetworkError)
        except NetworkError as err:
            raise self.error(str(err), meta.line, meta.column) from None
        if domain is not None and not isinstance(domain, Domain):
            domain = Domain.box(int(np.prod(shape)), *domain)
        return shape, domain

    # ---- layer statements --------------------------------------------------------------
    @v_args(meta=True)
    def linear(self, meta, children):
        index, n_in, n_out, weight, bias = children
        weight, bias = weight.values, bias.values
        k, width_in, width_out = (_whole_number(t, "a layer count", self.text, self.source)
                                  for t in (index, n_in, n_out))
        declared = f"linear {k} declares {width_in} -> {width_out}, so its"
        if weight.shape != (width_out, width_in):
            at = n_in if weight.ndim == 2 and weight.shape[0] == width_out else n_out
            raise self.error_at(f"{declared} weight must have shape ({width_out}, {width_in}) "
                                f"(n_out, n_in), but it has shape {weight.shape}", at)
        if bias.shape != (width_out,):
            raise self.error_at(f"{declared} bias must have shape ({width_out},), but it has shape "
                                f"{bias.shape}", n_out)
        return _Statement(Linear(weight, bias), meta.line, meta.column, "linear", index)

    @v_args(meta=True)
    def relu(self, meta, _):
        return _Statement(ReLU(), meta.line, meta.column, "relu")

    @v_args(meta=True)
    def conv2d(self, meta, children):
        index, in_ints, out_ints, stride, pad, layout, weight, bias = children
        k = _whole_number(index, "a layer count", self.text, self.source)
        name = f"conv2d {k}"
        layout = self.layout(layout, name)
        in_shape = self.whole_numbers(in_ints, "input shape", name, 3, _IMAGE_AXES[layout])
        out_shape = self.whole_numbers(out_ints, "output shape", name, 3, _IMAGE_AXES[layout])
        stride = self.whole_numbers(stride, "stride", name, 2, "(height, width)")
        pad = self.whole_numbers(pad, "pad", name, 4, "(top, left, bottom, right)")
        weight = self.array(weight)
        if weight.values.ndim != 4:
            raise self.error(f"{name}: weight must be 4-D (c_out, c_in, kh, kw), but it has shape "
                             f"{weight.values.shape}", weight.line, weight.column)
        channel = -1 if layout == "NHWC" else 0
        c_out, c_in = weight.values.shape[:2]
        for declared, ints, found, what in ((in_shape, in_ints, c_in, "input"),
                                            (out_shape, out_ints, c_out, "output")):
            if declared[channel] != found:
                raise self.error(f"{name} declares {declared[channel]} {what} channels (shape "
                                 f"{declared}, layout {layout}), but its weight has shape "
                                 f"{weight.values.shape} (c_out, c_in, kh, kw)",
                                 ints.line, ints.column)
        if bias.values.shape != (c_out,):
            raise self.error(f"{name}: bias must have shape ({c_out},) (c_out), but it has shape "
                             f"{bias.values.shape}", bias.line, bias.column)
        layer = Conv2D(weight.values, bias.values, stride, pad, layout)
        return _Statement(layer, meta.line, meta.column, "conv2d", index,
                          (("input", in_shape, in_ints), ("output", out_shape, out_ints)))

    def pool_geometry(self, name: str, kernel, stride, pad, layout):
        return (self.whole_numbers(kernel, "kernel", name, 2, "(height, width)"),
                self.whole_numbers(stride, "stride", name, 2, "(height, width)"),
                self.whole_numbers(pad, "pad", name, 4, "(top, left, bottom, right)"),
                self.layout(layout, name))

    @v_args(meta=True)
    def maxpool2d(self, meta, children):
        layer = MaxPool2D(*self.pool_geometry("maxpool2d", *children))
        return _Statement(layer, meta.line, meta.column, "maxpool2d")

    @v_args(meta=True)
    def avgpool2d(self, meta, children):
        kernel, stride, pad, count, layout = children
        if count not in ("true", "false"):
            raise self.error_at(f"avgpool2d: count_include_pad must be true or false, got "
                                f"{str(count)!r}", count)
        layer = AvgPool2D(*self.pool_geometry("avgpool2d", kernel, stride, pad, layout),
                          count_include_pad=count == "true")
        return _Statement(layer, meta.line, meta.column, "avgpool2d")

    @v_args(meta=True)
    def pad2d(self, meta, children):
        pad, layout = children
        layer = Pad2D(self.whole_numbers(pad, "pad", "pad2d", 4, "(top, left, bottom, right)"),
                      self.layout(layout, "pad2d"))
        return _Statement(layer, meta.line, meta.column, "pad2d")

    @v_args(meta=True)
    def reshape(self, meta, children):
        layer = Reshape(self.whole_numbers(children[0], "shape", "reshape"))
        return _Statement(layer, meta.line, meta.column, "reshape")

    @v_args(meta=True)
    def transpose(self, meta, children):
        layer = Transpose(self.whole_numbers(children[0], "perm", "transpose"))
        return _Statement(layer, meta.line, meta.column, "transpose")

    @v_args(meta=True)
    def scale(self, meta, children):
        for what, array in zip(("mul", "add"), children):
            if array.values.ndim != 1:
                raise self.error(f"scale: {what} must be 1-D (one value per tensor value), but "
                                 f"it has shape {array.values.shape}", array.line, array.column)
        mul, add = children
        return _Statement(Scale(mul.values, add.values), meta.line, meta.column, "scale")

    # ---- the whole network -------------------------------------------------------------
    def start(self, children):
        version, name, (shape, domain) = children[:3]
        statements = [c for c in children[3:] if isinstance(c, _Statement)]
        if version == DENSE_VERSION:
            for statement in statements:
                if not isinstance(statement.layer, DENSE_KINDS):
                    raise self.error(f"{statement.keyword} needs {MAGIC} {FULL_VERSION}: version "
                                     f"{DENSE_VERSION} holds linear and relu layers only",
                                     statement.line, statement.column)
        try:
            net = Network(tuple(s.layer for s in statements), domain, shape, name)
        except NetworkError as err:
            raise self.error(str(err), *self.blame(err, statements)) from None
        self.check_numbers(net, statements)
        self.check_declared_shapes(net, statements)
        return net

    def blame(self, err: NetworkError, statements: list[_Statement]) -> tuple[int, int]:
        """Where a NetworkError points: the statement of the layer at fault (``position``, or
        for a dense layer its count), else the ``input`` line."""
        if err.position is not None and 0 <= err.position < len(statements):
            statement = statements[err.position]
            return statement.line, statement.column
        dense = [s for s in statements if isinstance(s.layer, Linear)]
        if err.layer is not None and 0 < err.layer <= len(dense):
            return dense[err.layer - 1].line, dense[err.layer - 1].column
        return self.input_at

    def check_numbers(self, net: Network, statements: list[_Statement]) -> None:
        edge_of = edge_indices(net)
        for position, statement in enumerate(statements):
            if statement.number is not None and int(statement.number) != edge_of[position]:
                raise self.error_at(f"this {statement.keyword} belongs to edge-layer "
                                    f"{edge_of[position]}, but it is numbered "
                                    f"{statement.number}", statement.number)

    def check_declared_shapes(self, net: Network, statements: list[_Statement]) -> None:
        for position, statement in enumerate(statements):
            actual = dict(input=net.shapes[position], output=net.shapes[position + 1])
            for what, declared, ints in statement.declared:
                if declared != actual[what]:
                    source = "the layer before gives" if what == "input" else "it computes"
                    raise self.error(f"{statement.keyword} {statement.number} declares {what} "
                                     f"shape {declared}, but {source} {actual[what]}",
                                     ints.line, ints.column)


def _describe_item(item: Token | _Nested) -> str:
    return "a number" if isinstance(item, Token) else f"a list of shape {item.shape}"


_IMAGE_AXES = {"NHWC": "(height, width, channels)", "NCHW": "(channels, height, width)"}
