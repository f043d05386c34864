"""Sizes netpatch refuses before allocating anything, so that a small hostile or broken file
(a header declaring a billion inputs, an unwritten HDF5 kernel, a zip bomb) is a one-line
error instead of gigabytes of memory.  Real networks are far below them: the largest shared
one holds 2.1 million values in its biggest array."""
from __future__ import annotations

import math

from common.errors import NetpatchError

MAX_VALUES = 100_000_000          # values in one array or one tensor (800 MB in float64)
MAX_TEXT_BYTES = 64 * 2**20       # a model config, a property, an .nnir or .nnet file
MAX_ARCHIVE_MEMBER_BYTES = 4 * 2**30

LIMITS_HELP = (f"limits: an array or tensor of more than {MAX_VALUES:,} values, a config or "
               f"text file over {MAX_TEXT_BYTES // 2**20} MB, or a zip member over "
               f"{MAX_ARCHIVE_MEMBER_BYTES // 2**30} GB is refused before it is read")


def check_values(shape, what: str, error=NetpatchError) -> None:
    """Refuse a shape of more than ``MAX_VALUES`` values (``error(message)``)."""
    count = math.prod(int(d) for d in shape)
    if count > MAX_VALUES:
        raise error(f"{what} declares shape {tuple(int(d) for d in shape)} ({count:,} values); "
                    f"netpatch refuses more than {MAX_VALUES:,} values in one array")


def read_limited(stream, limit: int, what: str, error=NetpatchError) -> bytes:
    """At most ``limit`` bytes of ``stream``; more is an error (a size field can lie)."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise error(f"{what} is larger than {limit:,} bytes; netpatch refuses it")
    return data


def read_text_file(path, what: str, error=NetpatchError) -> str:
    """A UTF-8 text file of at most ``MAX_TEXT_BYTES``; anything else is ``error``."""
    try:
        with open(path, "rb") as stream:
            data = read_limited(stream, MAX_TEXT_BYTES, f"{what} {path}", error)
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: not a UTF-8 text file ({what}): byte {err.start} is "
                    f"{data[err.start]:#04x}") from None
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror or err}") from None


def npz_shapes(path, error=NetpatchError) -> dict[str, tuple[int, ...]]:
    """The shapes of an .npz file's arrays, read from their headers (nothing allocated), each
    checked against ``MAX_VALUES``."""
    import zipfile

    import numpy as np
    shapes = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, _ = read_header(member)
            name = info.filename[:-len(".npy")]
            check_values(shape, f"{path}: array {name!r}", error)
            shapes[name] = tuple(shape)
    return shapes
