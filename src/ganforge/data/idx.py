"""Reader for the IDX format of MNIST and Fashion-MNIST, gzipped or raw.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in row-major order, big-endian.
"""

from __future__ import annotations

import math
import os
import struct
import zlib

import numpy as np

from ..errors import UserError

# type code -> big-endian numpy dtype, as the IDX format defines them
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_HINT = "re-install it or download it again"
# deflate expands its input at most about 1032 times: a header promising more is wrong
_MAX_DEFLATE_RATIO = 1032


def parse_idx(source: str | os.PathLike[str] | bytes) -> np.ndarray:
    """Read an IDX file (a path or its bytes; gzip is detected by content) into a native-endian
    numpy array of the shape and type the header gives, e.g. uint8 `[60000, 28, 28]`."""
    if isinstance(source, bytes | bytearray | memoryview):
        what, data = "IDX data", bytes(source)
    else:
        what = f"'{os.fspath(source)}'"
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UserError(f"cannot read {what} ({exc.strerror or exc}); {_HINT}") from exc
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, what)
    return _parse_raw(data, what)


def _gunzip(data: bytes, what: str) -> bytes:
    """Decompress gzipped IDX ``data`` without ever holding more than its header promises:
    a small file that expands without end (a gzip bomb) stops one byte past the promise, and
    a header promising more than the compressed bytes can hold is refused before any of it."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: the gzip wrapper
    try:
        raw = d.decompress(data, 4)
        if len(raw) == 4 and raw[:2] == b"\0\0" and raw[2] in IDX_DTYPES and raw[3] > 0:
            raw += d.decompress(d.unconsumed_tail, 4 * raw[3])
            header = 4 + 4 * raw[3]
            if len(raw) == header:
                shape = struct.unpack(f">{raw[3]}I", raw[4:header])
                expected = math.prod(shape) * IDX_DTYPES[raw[2]].itemsize
                limit = _MAX_DEFLATE_RATIO * len(data)
                if expected > limit:
                    raise UserError(
                        f"{what} promises {expected:,} bytes of data (shape {list(shape)}), more "
                        f"than its {len(data):,} compressed bytes can hold (at most about "
                        f"{limit:,}); {_HINT}"
                    )
                raw += d.decompress(d.unconsumed_tail, expected + 1)
    except zlib.error as exc:
        raise UserError(f"{what} is a corrupt gzip file ({exc}); {_HINT}") from exc
    if not d.eof and not d.unconsumed_tail:
        raise UserError(f"{what} is a corrupt gzip file (it ends early); {_HINT}")
    # stopped early (bytes past the promise, or no IDX header): _parse_raw says which
    return raw


def _parse_raw(data: bytes, what: str) -> np.ndarray:
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES or data[3] == 0:
        magic = f"0x{data[:4].hex()}" if data else "empty file"
        raise UserError(
            f"{what} is not an IDX file (magic number {magic}, expected 0x0000TTDD with type TT "
            f"in {', '.join(f'{t:02x}' for t in IDX_DTYPES)} and DD dimensions); {_HINT}"
        )
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(
            f"{what} is truncated: its header needs {header} bytes, found {len(data)}; {_HINT}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise UserError(
            f"{what} is truncated: expected {expected} bytes of data for shape {list(shape)}, "
            f"found {found}; {_HINT}"
        )
    if found > expected:
        raise UserError(
            f"{what} has {found - expected} bytes after the data its header describes "
            f"(shape {list(shape)}); {_HINT}"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    # astype copies, so the result is writable and in native byte order.
    return array.astype(dtype.newbyteorder("=")).reshape(shape)
