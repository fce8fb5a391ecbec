"""Stable, vectorised hashes of Arrow string arrays (the same in every process and on every runner).

Python's ``hash`` is salted per process, so it cannot pick a user's bucket or name a session when
the work is spread over several workers. These hashes are plain numpy arithmetic on the Arrow
buffers: a seeded polynomial over the UTF-8 bytes, finished with splitmix64.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser applied element-wise to a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def string_hash(values: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """A 64-bit hash of each string (nulls hash like the empty string).

    Parameters
    ----------
    values : pyarrow string array
        The strings to hash.
    seed : int
        Different seeds give independent hash functions.

    Returns
    -------
    numpy.ndarray
        uint64 array, one hash per value.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.large_string():
        values = values.cast(pa.large_string())
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    _, off_buf, data_buf = values.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[values.offset : values.offset + n + 1]
    base = int(offsets[0])
    rel = offsets - base
    lengths = np.diff(rel)
    total = int(rel[-1])
    data = np.frombuffer(data_buf, dtype=np.uint8)[base : base + total] if total else np.zeros(0)
    max_len = int(lengths.max()) if n else 0
    prime = splitmix64(np.array([seed * 2 + 1], dtype=np.uint64))[0] | np.uint64(1)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(max(max_len, 1), prime, dtype=np.uint64))
        pos = np.arange(total, dtype=np.int64) - np.repeat(rel[:-1], lengths)
        terms = (data.astype(np.uint64) + np.uint64(1)) * powers[pos]
        sums = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(terms, dtype=np.uint64)])
        h = sums[rel[1:]] - sums[rel[:-1]]
        h = h + lengths.astype(np.uint64) * _M2 + np.uint64(seed)
    return splitmix64(h)


def hex_ids(high: np.ndarray, low: np.ndarray) -> pa.Array:
    """32-character lowercase hex strings from two uint64 arrays (vectorised, no Python loop)."""
    n = len(high)
    raw = np.empty((n, 2), dtype=">u8")
    raw[:, 0] = high
    raw[:, 1] = low
    nibbles = raw.view(np.uint8).reshape(n, 16)
    chars = np.empty((n, 32), dtype=np.uint8)
    chars[:, 0::2] = _HEX[nibbles >> 4]
    chars[:, 1::2] = _HEX[nibbles & 15]
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int64)
    out = pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())]
    )
    return out.cast(pa.string())
