"""Turn a column of event times, in whatever form a log holds them, into UTC epoch microseconds.

Accepted forms (``--time-unit``):

* Arrow ``timestamp`` columns of any unit and zone (naive ones are taken as UTC), ``date`` columns.
* Numbers (integer or floating, or strings holding one) as epoch time in ``s``, ``ms``, ``us`` or
  ``ns``. With ``auto`` each value's unit is inferred from its magnitude ``|v|``: below ``1e11``
  seconds, below ``1e14`` milliseconds, below ``1e17`` microseconds, otherwise nanoseconds. Every
  date from 1973-03-03 on is read correctly in every unit; a millisecond (or finer) value before
  1973-03-03 is read as seconds and lands out of range (rejected, not misplaced).
* ISO-8601 strings, with or without a zone offset (``Z``, ``+01``, ``+0100``, ``+01:00``); a string
  without an offset is UTC, and so is one ending in `` UTC`` or `` GMT`` (as BigQuery exports
  write). Fractions finer than a microsecond are truncated. ``--time-unit iso``
  rejects numeric strings instead of reading them as epoch time.

Valid times lie strictly after 1970-01-01T00:00:00Z (epoch 0 is almost always a default, not an
event) and strictly before 2100-01-01T00:00:00Z; others are ``time_out_of_range``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MIN_US = 0  # exclusive
MAX_US = 4_102_444_800 * 1_000_000  # 2100-01-01T00:00:00Z, exclusive
UNITS = ("auto", "s", "ms", "us", "ns", "iso")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

_NUMERIC = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_ISO_NAIVE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"
_ISO_ZONED = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}(:?\d{2})?)$"


def parse_times(values: pa.Array | pa.ChunkedArray, unit: str = "auto"):
    """Parse ``values`` to epoch microseconds.

    Parameters
    ----------
    values : pyarrow array
        The time column as read (timestamp, date, integer, floating, string or null type).
    unit : str
        One of :data:`UNITS`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        int64 microseconds (0 where invalid) and an object array of reject reasons (None where
        valid): ``missing_time``, ``bad_time``, ``time_out_of_range`` or ``bad_type``.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    us = np.zeros(n, dtype=np.int64)
    reason = np.full(n, None, dtype=object)
    t = values.type
    if pa.types.is_null(t):
        reason[:] = "missing_time"
        return us, reason
    if pa.types.is_dictionary(t):
        values = values.cast(t.value_type)
        t = values.type
    if pa.types.is_date(t):
        values = values.cast(pa.timestamp("s"))
        t = values.type
    if pa.types.is_timestamp(t):
        raw = values.cast(pa.timestamp("us", tz=t.tz), safe=False).cast(pa.int64())
        _finish(raw, None, us, reason)
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        if unit == "iso":
            reason[:] = "bad_time"
        else:
            _epoch(values, unit, us, reason)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        _strings(values, unit, us, reason)
    else:
        reason[:] = "bad_type"
    missing = np.asarray(values.is_null(), dtype=bool)
    reason[missing] = "missing_time"
    return us, reason


def _finish(raw: pa.Array, mask, us: np.ndarray, reason: np.ndarray) -> None:
    """Range-check int64 microseconds ``raw`` and store them at ``mask`` (all rows when None)."""
    vals = np.asarray(raw.fill_null(0), dtype=np.int64)
    bad = (vals <= MIN_US) | (vals >= MAX_US)
    if mask is None:
        us[:] = np.where(bad, 0, vals)
        reason[bad] = "time_out_of_range"
    else:
        idx = np.flatnonzero(mask)
        us[idx] = np.where(bad, 0, vals)
        reason[idx[bad]] = "time_out_of_range"


def _epoch(values: pa.Array, unit: str, us: np.ndarray, reason: np.ndarray, mask=None) -> None:
    """Numbers in ``unit`` (or inferred per value) to microseconds, range-checked."""
    if pa.types.is_integer(values.type):
        v = np.asarray(values.cast(pa.int64()).fill_null(0), dtype=np.int64)
        f = v.astype(np.float64)
    else:
        f = np.asarray(values.cast(pa.float64()).fill_null(0.0), dtype=np.float64)
        v = None
    per_second = _per_second(np.abs(f), unit)
    with np.errstate(invalid="ignore", over="ignore"):
        seconds = f / per_second
        bad_value = ~np.isfinite(f)
        out_of_range = ~bad_value & ~((seconds > 0) & (seconds < MAX_US / 1e6))
        if v is not None:
            scale = 1_000_000 // np.minimum(per_second, 1_000_000)
            shrink = np.maximum(per_second // 1_000_000, 1)
            safe = np.where(out_of_range, 0, v)
            micro = safe * scale // shrink
        else:
            micro = np.where(out_of_range | bad_value, 0.0, np.floor(f * (1e6 / per_second)))
            micro = micro.astype(np.int64)
    idx = np.arange(len(f)) if mask is None else np.flatnonzero(mask)
    us[idx] = np.where(out_of_range | bad_value, 0, micro)
    reason[idx[out_of_range]] = "time_out_of_range"
    reason[idx[bad_value]] = "bad_time"


def _per_second(magnitude: np.ndarray, unit: str) -> np.ndarray:
    if unit in _PER_SECOND:
        return np.full(len(magnitude), _PER_SECOND[unit], dtype=np.int64)
    return np.select(
        [magnitude < 1e11, magnitude < 1e14, magnitude < 1e17],
        [1, 1_000, 1_000_000],
        1_000_000_000,
    ).astype(np.int64)


def _strings(values: pa.Array, unit: str, us: np.ndarray, reason: np.ndarray) -> None:
    values = pc.utf8_trim_whitespace(values)
    # "2024-01-01 12:00:00 UTC" (BigQuery, many exporters) is ISO-8601 with a spelled-out zone
    values = pc.replace_substring_regex(values, r"(\d)\s*(UTC|GMT)$", r"\1Z")
    empty = np.asarray(pc.equal(values, "").fill_null(False), dtype=bool)
    numeric = np.asarray(pc.match_substring_regex(values, _NUMERIC).fill_null(False), dtype=bool)
    if numeric.any():
        if unit == "iso":
            reason[numeric] = "bad_time"
        else:
            nums = values.filter(pa.array(numeric))
            is_int = pc.match_substring_regex(nums, r"^[+-]?\d{1,18}$")
            if pc.all(is_int).as_py():
                _epoch(nums.cast(pa.int64()), unit, us, reason, numeric)
            else:
                _epoch(nums.cast(pa.float64()), unit, us, reason, numeric)
    rest = ~numeric & ~empty
    reason[empty] = "missing_time"
    for pattern, zone in ((_ISO_ZONED, "UTC"), (_ISO_NAIVE, None)):
        hit = rest & np.asarray(pc.match_substring_regex(values, pattern).fill_null(False))
        if not hit.any():
            continue
        subset = values.filter(pa.array(hit))
        try:
            raw = subset.cast(pa.timestamp("us", tz=zone)).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # left to the per-value fallback below
        _finish(raw, hit, us, reason)
        rest &= ~hit
    rest &= np.asarray(values.is_valid(), dtype=bool)
    for i in np.flatnonzero(rest):
        parsed = _python_iso(values[i].as_py())
        if parsed is None:
            reason[i] = "bad_time"
        elif not MIN_US < parsed < MAX_US:
            reason[i] = "time_out_of_range"
        else:
            us[i] = parsed


def _python_iso(text: str) -> int | None:
    """The few ISO-8601 spellings Arrow's cast does not take (basic format, ns fractions, ...)."""
    text = text.replace(",", ".")
    head, dot, frac = text.partition(".")
    if dot:  # datetime takes at most 6 fraction digits: keep 6, keep any zone suffix
        digits = len(frac) - len(frac.lstrip("0123456789"))
        text = f"{head}.{frac[:min(digits, 6)]}{frac[digits:]}"
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# 1990-01-01T00:00:00Z. A time misread (milliseconds within a day, or days, read as epoch seconds)
# lands in 1970-72; real logs start later, though not always after 2000 (MovieLens-100k: 1997).
PLAUSIBLE_FROM_US = 631_152_000 * 1_000_000
_OFFSET_US = {"h": 3_600_000_000, "min": 60_000_000, "s": 1_000_000, "ms": 1_000, "us": 1}


def add_offsets(us: np.ndarray, reason: np.ndarray, offsets: pa.Array | pa.ChunkedArray,
                unit: str) -> None:
    """Add ``offsets`` (numbers in ``unit``: h, min, s, ms, us, ns) to parsed times, in place.

    A missing offset is ``missing_time``, a non-numeric one ``bad_time``; the sum is range-checked
    like any time. Rows already rejected keep their reason.
    """
    if isinstance(offsets, pa.ChunkedArray):
        offsets = offsets.combine_chunks()
    t = offsets.type
    if pa.types.is_dictionary(t):
        offsets = offsets.cast(t.value_type)
        t = offsets.type
    n = len(offsets)
    missing = np.asarray(offsets.is_null(), dtype=bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        numbers = offsets.cast(pa.float64())
        bad = np.zeros(n, dtype=bool)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        text = pc.utf8_trim_whitespace(offsets)
        missing |= np.asarray(pc.equal(text, "").fill_null(False), dtype=bool)
        numeric = np.asarray(pc.match_substring_regex(text, _NUMERIC).fill_null(False), bool)
        bad = ~numeric & ~missing
        numbers = pc.if_else(pa.array(numeric), text, None).cast(pa.float64())
    else:
        numbers = pa.nulls(n, pa.float64())
        bad = ~missing
    value = np.asarray(numbers.fill_null(0.0), dtype=np.float64)
    bad |= ~np.isfinite(value)
    if unit == "ns":
        delta = np.floor(np.where(bad, 0.0, value) / 1_000)
    else:
        delta = np.floor(np.where(bad, 0.0, value) * _OFFSET_US[unit])
    ok = np.equal(reason, None)
    reason[ok & missing] = "missing_time"
    reason[ok & bad & ~missing] = "bad_time"
    ok &= ~missing & ~bad
    with np.errstate(over="ignore", invalid="ignore"):
        total = us + np.clip(delta, -MAX_US, MAX_US).astype(np.int64)
    out = ok & ~((total > MIN_US) & (total < MAX_US))
    reason[out] = "time_out_of_range"
    us[:] = np.where(ok & ~out, total, np.where(ok, 0, us))
