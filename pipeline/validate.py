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
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline._beam import beam
from pipeline.coders import RawBatchCoder  # noqa: F401  (registers the Arrow coders)
from pipeline.io.base import RawBatch, column_map, is_utf8
from pipeline.options import SessionizeConfig
from pipeline.timeparse import PLAUSIBLE_FROM_US, add_offsets, parse_times

REJECT_REASONS = (
    "missing_user", "missing_item", "missing_session", "missing_time", "bad_time",
    "time_out_of_range", "short_row", "long_row", "bad_encoding", "bad_json", "bad_type",
)
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


def _jsonable(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


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
    us, time_reason = parse_times(t.column("time"), config.time_unit)
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
    valid = np.equal(reason, None)
    rejects = [(line, dead_letter_line(raw.path, line, r, rec))
               for line, r, rec in raw.rejects]
    rejected = {}
    for r in raw.rejects:
        rejected[r[1]] = rejected.get(r[1], 0) + 1
    if not valid.all():
        bad = np.flatnonzero(~valid)
        lines = t.column("line").take(pa.array(bad)).to_pylist()
        records = t.drop_columns(["line"]).take(pa.array(bad)).to_pylist()
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
        events, rejects, counts = validate_batch(raw, self.config)
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
