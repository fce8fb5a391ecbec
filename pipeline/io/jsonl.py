"""JSON-lines reader: one JSON object per line, exact line numbers, bad lines dead-lettered.

Each non-blank line must be a JSON object (else ``bad_json``; undecodable bytes are
``bad_encoding``). Ids may be strings or integers (42 -> "42"); floats, booleans, lists and objects
are ``bad_type``. Times may be numbers or strings. A missing key is a missing value.

Lines are parsed a block at a time as one JSON array and each column is handed to Arrow whole;
only a block holding a bad line or mixed value types is redone line by line.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from pipeline.io.base import InputFile, RawBatch, is_encodable
from pipeline.io.text import _text, damage_reject, damaged_batch, iter_lines, open_input

_FAST_TYPES = (pa.types.is_string, pa.types.is_integer, pa.types.is_null)


def read_jsonl(file: InputFile, spec: dict[str, str], batch_size: int):
    """RawBatches of one JSON-lines file (see the module docstring)."""
    with open_input(file.path) as f:
        lines: list[bytes] = []
        numbers: list[int] = []
        number = 0
        for number, raw in enumerate(iter_lines(f), start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte-order mark
            if not raw.strip():
                continue
            lines.append(raw)
            numbers.append(number)
            if len(lines) >= batch_size:
                yield _batch(file, spec, lines, numbers)
                lines, numbers = [], []
        if lines:
            yield _batch(file, spec, lines, numbers)
        damaged = damage_reject(f, number)
        if damaged is not None:
            yield damaged_batch(file, spec, damaged)


def _batch(file: InputFile, spec: dict[str, str], lines: list[bytes], numbers: list[int]):
    # A key this run reads written twice in one object (JSON keeps the last, silently) sends
    # the block line by line, where such a line is rejected. Counting in the whole block first
    # keeps the common case to one C-level pass per key.
    block = b"".join(lines)
    twice = any(block.count(json.dumps(key).encode()) > len(lines) for key in spec.values())
    return (None if twice else _fast(file, spec, lines, numbers)) or _slow(
        file, spec, lines, numbers)


def _fast(file, spec, lines, numbers) -> RawBatch | None:
    """The whole block at once, or None when any line needs a closer look."""
    try:
        objects = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, RecursionError):  # also UnicodeDecodeError; nesting deeper than Python's
        return None
    if len(objects) != len(lines) or not all(type(o) is dict for o in objects):
        return None
    columns = {}
    for canon, key in spec.items():
        try:
            column = pa.array([o.get(key) for o in objects])
        except (pa.ArrowException, OverflowError, UnicodeEncodeError):  # lone surrogates too
            return None
        fast = any(check(column.type) for check in _FAST_TYPES)
        if canon in ("time", "offset"):
            fast = fast or pa.types.is_floating(column.type)
        if not fast:
            return None
        columns[canon] = column if canon in ("time", "offset") else column.cast(pa.string())
    columns["line"] = pa.array(np.asarray(numbers, dtype=np.int64))
    return RawBatch(file.index, file.path, pa.table(columns))


def _slow(file, spec, lines, numbers) -> RawBatch:
    """Line by line, with a reason for every line that cannot be used."""
    canon = list(spec)
    used = set(spec.values())
    values: dict[str, list] = {c: [] for c in canon}
    kept: list[int] = []
    rejects: list = []
    for number, raw in zip(numbers, lines):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            rejects.append((number, "bad_encoding", _text(raw)))
            continue
        try:
            obj = json.loads(text, object_pairs_hook=lambda pairs: _unique(pairs, used))
        except _Duplicate as e:
            rejects.append((number, "bad_json", f"{text.rstrip()} (key {e} appears twice)"))
            continue
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            rejects.append((number, "bad_json", text.rstrip("\r\n")))
            continue
        row = []
        for c in canon:
            v = obj.get(spec[c])
            if isinstance(v, str) and not is_encodable(v):  # "\\ud800": not a Unicode string
                rejects.append((number, "bad_encoding", text.rstrip("\r\n")))
                row = None
                break
            if v is None or isinstance(v, str):
                row.append(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                row.append(str(v))
            elif c in ("time", "offset") and isinstance(v, float):
                row.append(repr(v))
            else:
                row = None
                break
        if row is None:
            if not rejects or rejects[-1][0] != number:
                rejects.append((number, "bad_type", obj))
            continue
        for c, v in zip(canon, row):
            values[c].append(v)
        kept.append(number)
    columns = {c: pa.array(values[c], pa.string()) for c in canon}
    columns["line"] = pa.array(kept, pa.int64())
    return RawBatch(file.index, file.path, pa.table(columns), rejects)




class _Duplicate(ValueError):
    pass


def _unique(pairs, used) -> dict:
    """An object from its pairs, refusing a key this run reads given twice (which one is meant?)."""
    obj = {}
    for key, value in pairs:
        if key in obj and key in used:
            raise _Duplicate(json.dumps(key))
        obj[key] = value
    return obj
