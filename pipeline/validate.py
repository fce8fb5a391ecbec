"""Validate raw records into events, sending every unusable record to the dead letter with a reason.

Reject reasons (``rejected-*.jsonl`` and ``counts.rejected`` in the manifest):

``missing_user`` / ``missing_item`` / ``missing_session``
    the id is absent, null, blank or one of ``--null-values`` (default ``NA``, ``null`` ...;
    ids are stripped of surrounding whitespace);
    ``missing_session`` only with ``--session-column``.
``missing_time``
    the time (or its ``--time-offset-column``) is absent, null or blank.
``bad_time``
    the time cannot be parsed (see :mod:`pipeline.timeparse`), or is NaN.
``time_out_of_range``
    the time is not strictly between 1970-01-01T00:00:00Z and 2100-01-01T00:00:00Z.
``short_row`` / ``long_row``
    a CSV/TSV row with fewer / more fields than the header (or ``--columns``).
``bad_encoding``
    a field this run reads is not valid UTF-8.
``bad_json``
    a JSON-lines line that is not a JSON object.
``bad_type``
    a value of a type that cannot be an id or a time: booleans, lists, objects, floating-point ids
    (an id stored as a float may already have lost digits; integers become their decimal string).
``field_too_long``
    a value this run reads is longer than :data:`MAX_FIELD_BYTES` (131,072) bytes, whatever the
    format or reading path.
``unterminated_quote``
    a CSV/TSV line opens a quoted field that no later line closes into a well-formed row; the line
    is rejected on its own and reading goes on with the next line (see :mod:`pipeline.io.text`).
``truncated_file``
    a compressed input (``.gz``, ``.bz2``) ends before its end-of-stream marker, or its data is
    damaged: the records read before are kept, the cut-off last line is this one rejected record.

Filter reasons (``counts.filtered``, counted in events; in the order they apply):

``action_not_allowed``
    the event's action is not in ``--actions`` (an event without an action is filtered too).
``bot_user``
    events of users with more than ``--max-user-events`` events (after the action filter).
``rare_item``
    events of items with fewer than ``--min-item-count`` events (after the filters above).
``repeat_collapsed``
    an event repeating the previous item of its session (unless ``--keep-repeats``).
``short_session``
    events of sessions left shorter than ``--min-session-length``.

See :mod:`pipeline.sessionize` for the session rule.

Each dead-letter line is ``{"source": "<file>:<line>", "reason": ..., "record": ...}``; ``line`` is
the physical line (CSV/TSV with its header, JSON lines) or the 1-based row (Parquet); ``record`` is
the raw line where the line itself could not be split or parsed (``short_row``, ``long_row``,
``bad_encoding``, ``bad_json``), else an object of the columns this run reads, as read.

Invariants: ``read == valid + sum(rejected)`` and ``valid == tokens + sum(filtered)``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline._beam import beam
from pipeline.coders import RawBatchCoder  # noqa: F401  (registers the Arrow coders)
from pipeline.io.base import RawBatch, column_map, is_encodable, is_utf8
from pipeline.options import SessionizeConfig
from pipeline.timeparse import PLAUSIBLE_FROM_US, add_offsets, parse_times
from recommender.core.errors import Pin2VecError

REJECT_REASONS = (
    "missing_user", "missing_item", "missing_session", "missing_time", "bad_time",
    "time_out_of_range", "short_row", "long_row", "bad_encoding", "bad_json", "bad_type",
    "field_too_long", "unterminated_quote", "truncated_file",
)
MAX_FIELD_BYTES = 131_072  # the longest id or time value read (Python csv's default field limit)
FILTER_REASONS = (
    "action_not_allowed", "bot_user", "rare_item", "repeat_collapsed", "short_session",
)
LINE_BITS = 40  # seq = file_index << 40 | line: input order, the tie-break for equal times
METRICS_NAMESPACE = "pin2vec"


def event_schema(with_session: bool) -> pa.Schema:
    """Schema of validated events: ``ts`` is UTC epoch microseconds, ``seq`` the input order."""
    fields = [("user", pa.string()), ("item", pa.string()), ("ts", pa.int64()), ("seq", pa.int64())]
    if with_session:
        fields.append(("session", pa.string()))
    return pa.schema(fields)


def normalize_ids(values: pa.Array | pa.ChunkedArray, null_values=()):
    """Ids as stripped strings: (strings, missing mask, bad_type mask, bad_encoding mask).

    Empty text and any of ``null_values`` (after stripping; e.g. ``NA``) are missing.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    none = np.zeros(n, dtype=bool)
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.cast(t.value_type), t.value_type
    bad_type, bad_encoding = none.copy(), none.copy()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        try:
            values = values.cast(pa.string())
        except pa.ArrowInvalid:
            raw = values.to_pylist()
            bad_encoding = np.array([v is not None and not is_utf8(v) for v in raw], dtype=bool)
            values = pa.array([None if b or v is None else v.decode() for v, b in
                               zip(raw, bad_encoding)], pa.string())
    elif pa.types.is_integer(t):
        values = values.cast(pa.string())
    elif pa.types.is_null(t):
        values = pa.nulls(n, pa.string())
    elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        bad_type = np.asarray(values.is_valid(), dtype=bool)
        values = pa.nulls(n, pa.string())
    values = pc.utf8_trim_whitespace(values.cast(pa.string()))
    missing = np.asarray(pc.or_kleene(values.is_null(), pc.equal(values, "")).fill_null(True))
    if null_values:
        missing |= np.asarray(pc.is_in(values, pa.array(list(null_values), pa.string()))
                              .fill_null(False), dtype=bool)
    return values, missing & ~bad_type & ~bad_encoding, bad_type, bad_encoding


def _jsonable(value, depth: int = 0):
    if depth > 32:  # a record nested deeper than any log needs: keep its start as text
        return "<nested deeper than 32 levels>"
    if isinstance(value, str):
        if len(value) > MAX_FIELD_BYTES:  # the dead letter keeps the start of a huge value
            value = f"{value[:1024]}... ({len(value):,} characters)"
        # a lone surrogate (JSON "\\ud800") cannot be written as UTF-8
        return value if is_encodable(value) else value.encode(
            "utf-8", errors="backslashreplace").decode("utf-8")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_jsonable(str(k), depth + 1): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    return value




def safe_values(column: pa.Array | pa.ChunkedArray) -> list:
    """Python values of ``column`` for a dead-letter record, whatever it holds.

    ``to_pylist`` fails on exactly the values that get rows rejected: nanosecond times with a
    sub-microsecond part, timestamps beyond year 9999, strings that are not UTF-8. Times become
    ISO strings at their own resolution (numpy handles any year), invalid text keeps its bytes as
    ``\\xff`` escapes, anything else falls back to ``str``.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    valid = np.asarray(column.is_valid(), dtype=bool)
    if pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_date32(t):
        unit = t.unit if pa.types.is_timestamp(t) else ("ms" if pa.types.is_date64(t) else "D")
        ints = np.asarray(column.cast(pa.int64() if not pa.types.is_date32(t) else pa.int32())
                          .fill_null(0), dtype=np.int64)
        text = np.datetime_as_string(ints.astype(f"datetime64[{unit}]"))
        return [str(s) if ok else None for s, ok in zip(text, valid)]
    if pa.types.is_time(t) or pa.types.is_duration(t):
        ints = np.asarray(column.cast(pa.int64()).fill_null(0), dtype=np.int64)
        return [f"{v} {t.unit}" if ok else None for v, ok in zip(ints.tolist(), valid)]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        raw = column.cast(pa.large_binary()).to_pylist()
        return [None if v is None else v.decode("utf-8", errors="backslashreplace") for v in raw]
    try:
        return column.to_pylist()
    except (ValueError, OverflowError, pa.ArrowException):
        return [None if not ok else str(column[i]) for i, ok in enumerate(valid)]


def invalid_utf8(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Rows of a string column that are not valid UTF-8 (Parquet and IPC do not check), or None
    when there are none. Such a column breaks every string kernel, so validation nulls them."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    try:
        column.validate(full=True)
        return None
    except pa.ArrowInvalid:
        raw = column.cast(pa.large_binary()).to_pylist()
        return np.array([v is not None and not is_utf8(v) for v in raw], dtype=bool)


def too_long(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Rows whose value is longer than :data:`MAX_FIELD_BYTES` bytes (string or binary columns)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)):
        return None
    lengths = pc.binary_length(column.cast(pa.large_binary())).fill_null(0)
    mask = np.asarray(lengths, dtype=np.int64) > MAX_FIELD_BYTES
    return mask if mask.any() else None


def dead_letter_line(path: str, line: int, reason: str, record) -> str:
    """One ``rejected-*.jsonl`` line."""
    entry = {"source": f"{path}:{line}", "reason": reason, "record": _jsonable(record)}
    return json.dumps(entry, ensure_ascii=False)


def validate_batch(raw: RawBatch, config: SessionizeConfig):
    """Split one RawBatch into valid events, dead-letter lines and counts.

    Returns
    -------
    (pyarrow.Table, list[tuple[int, str]], dict)
        Events (:func:`event_schema`), ``(line, dead-letter JSON)`` pairs, and counts
        ``{"read", "valid", "rejected": {reason: n}, "filtered": {reason: n}}``.
    """
    spec = column_map(config)
    t = raw.table
    n = t.num_rows
    early = np.full(n, None, dtype=object)  # found before parsing: the value is not used at all
    for canon in t.column_names:
        if canon == "line":
            continue
        for mask, why in ((invalid_utf8(t.column(canon)), "bad_encoding"),
                          (too_long(t.column(canon)), "field_too_long")):
            if mask is not None:
                early[mask & np.equal(early, None)] = why
    records_from = t  # dead-letter records show the values as read
    unusable = ~np.equal(early, None)
    if unusable.any():  # the kernels below never see them (invalid UTF-8 breaks every one)
        blank = pa.array(unusable)
        for i, canon in enumerate(t.column_names):
            if canon != "line":
                col = t.column(canon)
                t = t.set_column(i, canon, pc.if_else(blank, pa.scalar(None, col.type), col))
    time = t.column("time")
    if pa.types.is_binary(time.type) or pa.types.is_large_binary(time.type):
        time, _, _, bad_text = normalize_ids(time)  # text stored as bytes (Parquet BYTE_ARRAY)
        early[bad_text & np.equal(early, None)] = "bad_encoding"
        unusable = ~np.equal(early, None)
    us, time_reason = parse_times(time, config.time_unit)
    if "offset" in spec:
        add_offsets(us, time_reason, t.column("offset"), config.time_offset_unit)
    reason = time_reason.copy()
    ids = {}
    for canon in ("session", "item", "user"):  # later assignments win: user problems first
        if canon not in spec:
            continue
        values, missing, bad_type, bad_encoding = normalize_ids(t.column(canon),
                                                                config.null_values)
        ids[canon] = values
        reason[bad_type] = "bad_type"
        reason[bad_encoding] = "bad_encoding"
        reason[missing] = f"missing_{canon}"
    reason[unusable] = early[unusable]
    valid = np.equal(reason, None)
    rejects = [(line, dead_letter_line(raw.path, line, r, rec))
               for line, r, rec in raw.rejects]
    rejected = {}
    for r in raw.rejects:
        rejected[r[1]] = rejected.get(r[1], 0) + 1
    if not valid.all():
        bad = np.flatnonzero(~valid)
        lines = t.column("line").take(pa.array(bad)).to_pylist()
        shown = records_from.drop_columns(["line"]).take(pa.array(bad))
        columns = {name: safe_values(shown.column(name)) for name in shown.column_names}
        records = [{name: values[j] for name, values in columns.items()} for j in range(len(bad))]
        for line, i, rec in zip(lines, bad, records):
            named = {spec.get(k, k): v for k, v in rec.items()}
            rejects.append((line, dead_letter_line(raw.path, line, reason[i], named)))
            rejected[reason[i]] = rejected.get(reason[i], 0) + 1
    keep = valid.copy()
    filtered = {}
    if config.actions is not None:
        action, _, _, _ = normalize_ids(t.column("action"))
        allowed = np.asarray(pc.is_in(action, pa.array(config.actions)).fill_null(False))
        dropped = int((valid & ~allowed).sum())
        if dropped:
            filtered["action_not_allowed"] = dropped
        keep &= allowed
    mask = pa.array(keep)
    line = np.asarray(t.column("line").combine_chunks(), dtype=np.int64)
    users = ids["user"] if "user" in ids else ids["session"]  # a session-keyed log
    columns = {
        "user": users.filter(mask),
        "item": ids["item"].filter(mask),
        "ts": pa.array(us[keep], pa.int64()),
        "seq": pa.array((np.int64(raw.file_index) << LINE_BITS) | line[keep], pa.int64()),
    }
    if "session" in spec:
        columns["session"] = ids["session"].filter(mask)
    events = pa.table(columns, schema=event_schema("session" in spec))
    counts = {"read": n + len(raw.rejects), "valid": int(valid.sum()),
              "rejected": rejected, "filtered": filtered}
    early = int((valid & (us < PLAUSIBLE_FROM_US)).sum())
    if early:  # the driver warns when every valid time is this early (a misread unit)
        counts["before_1990"] = early
    return events, rejects, counts


def count_metrics(counts: dict) -> None:
    """Mirror a counts dict into Beam metrics (informational; the manifest uses the counts)."""
    Metrics = beam.metrics.Metrics
    for key in ("read", "valid", "sessions", "tokens"):
        if counts.get(key):
            Metrics.counter(METRICS_NAMESPACE, key).inc(counts[key])
    for group in ("rejected", "filtered"):
        for reason, value in counts.get(group, {}).items():
            Metrics.counter(METRICS_NAMESPACE, f"{group}_{reason}").inc(value)


class _Validate(beam.DoFn):
    def __init__(self, config: SessionizeConfig):
        self.config = config

    def process(self, raw: RawBatch):
        try:
            events, rejects, counts = validate_batch(raw, self.config)
        except Exception as e:  # a bug: still one line naming where, not a worker traceback
            lines = raw.table.column("line")
            where = f"lines {pc.min(lines).as_py()}-{pc.max(lines).as_py()}" if len(lines) else ""
            raise Pin2VecError(f"pin2vec: internal error validating {raw.path} {where}: "
                               f"{type(e).__name__}: {e} (please report it)") from e
        count_metrics(counts)
        if events.num_rows:
            yield events
        if rejects:
            yield beam.pvalue.TaggedOutput("rejected", (raw.file_index, rejects))
        yield beam.pvalue.TaggedOutput("counts", counts)


class ValidateEvents(beam.PTransform):
    """RawBatches -> ``events`` (tables), ``rejected`` ((file, [(line, json)])), ``counts``."""

    def __init__(self, config: SessionizeConfig):
        super().__init__()
        self.config = config

    def expand(self, raws):
        return raws | "Validate" >> beam.ParDo(_Validate(self.config)).with_output_types(
            pa.Table
        ).with_outputs("rejected", "counts", main="events")
