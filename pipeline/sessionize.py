"""Events -> sessions, vectorised per user-hash bucket.

Session rule (docs/architecture.md): per user, events sorted by time (ties keep input order: file,
then line), a new session starts when the gap to the previous event exceeds ``--session-gap`` --
a gap of exactly the limit stays in the session. With ``--session-column`` a session is instead
every event of one user with one session value. In order:

1. users with more than ``--max-user-events`` events go (``bot_user``);
2. sessions are formed as above;
3. events of items with fewer than ``--min-item-count`` events go (``rare_item``);
4. consecutive repeats of one item collapse (``repeat_collapsed``; off with ``--keep-repeats``);
5. sessions shorter than ``--min-session-length`` go (``short_session``);
6. sessions longer than ``--max-session-length`` are split into ``ceil(n / max)`` consecutive
   chunks whose lengths differ by at most one: never truncated, and chunks are never dropped
   (even when a tiny maximum makes one shorter than the minimum).

Reason codes: see :mod:`pipeline.validate`.

Session ids are 32 hex characters hashing (user, start of the session before any filter, chunk
index) -- or (user, session value, chunk index) with ``--session-column`` -- so they are the same in
every run, on every runner and for every number of buckets. A session's ``start``/``end`` are the
times of its first and last kept event.

In Beam, :class:`Sessionize` keys event tables by a stable hash of the user into ``--buckets``
buckets, groups each bucket, and sessionizes it with numpy/pyarrow (sort, boundaries, list offsets);
``--min-item-count`` needs global item counts, which are summed across buckets and passed to the
sessionizing step as a side input.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline._beam import beam
from pipeline.coders import BucketTable
from pipeline.hashing import hex_ids, splitmix64, string_hash
from pipeline.options import SessionizeConfig
from pipeline.validate import count_metrics

SESSION_SCHEMA = pa.schema([
    ("session_id", pa.string()), ("user_id", pa.string()),
    ("start", pa.timestamp("us", tz="UTC")), ("end", pa.timestamp("us", tz="UTC")),
    ("items", pa.list_(pa.string())), ("length", pa.int32()),
])
ITEM_STATS_SCHEMA = pa.schema(
    [("item_id", pa.string()), ("engagements", pa.int64()), ("sessions", pa.int64())]
)
ITEM_COUNTS_SCHEMA = pa.schema([("item_id", pa.string()), ("count", pa.int64())])
_BUCKET_SEED = 7


def bucket_of(users: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """The bucket (0 .. buckets-1) of each user: a stable hash, the same in every process."""
    if isinstance(users, pa.ChunkedArray):
        users = users.combine_chunks()
    encoded = pc.dictionary_encode(users)  # hash each distinct user once
    per_user = string_hash(encoded.dictionary, _BUCKET_SEED) % np.uint64(buckets)
    return per_user.astype(np.int64)[np.asarray(encoded.indices, dtype=np.int64)]


def split_by_bucket(events: pa.Table, buckets: int):
    """Yield ``(bucket, sub-table)`` for each bucket present in ``events``."""
    if events.num_rows == 0:
        return
    b = bucket_of(events.column("user"), buckets)
    order = np.argsort(b, kind="stable")
    sorted_b = b[order]
    cuts = np.flatnonzero(np.diff(sorted_b)) + 1
    taken = events.take(pa.array(order))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(b)]):
        yield int(sorted_b[lo]), taken.slice(int(lo), int(hi - lo))


def _rank(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(sort rank of each value among the distinct values, the distinct values, their indices)."""
    encoded = pc.dictionary_encode(values)
    indices = np.asarray(encoded.indices, dtype=np.int64)
    rank = np.empty(len(encoded.dictionary), dtype=np.int64)
    rank[np.asarray(pc.array_sort_indices(encoded.dictionary))] = np.arange(len(rank))
    return rank[indices], encoded.dictionary, indices


def drop_bots(events: pa.Table, max_user_events: int) -> tuple[pa.Table, int]:
    """Events of users with at most ``max_user_events`` events (0: all), and the number dropped."""
    if max_user_events <= 0 or events.num_rows == 0:
        return events, 0
    indices = np.asarray(pc.dictionary_encode(events.column("user").combine_chunks()).indices)
    keep = np.bincount(indices)[indices] <= max_user_events
    return events.filter(pa.array(keep)), int((~keep).sum())


def item_counts(events: pa.Table) -> pa.Table:
    """``item_id``, ``count`` of a table of events."""
    counts = pc.value_counts(events.column("item").combine_chunks())
    return pa.table([counts.field("values"), counts.field("counts")], schema=ITEM_COUNTS_SCHEMA)


def sum_tables(tables, schema: pa.Schema) -> pa.Table:
    """Sum the numeric columns of ``tables`` by ``item_id`` (associative: a CombineGlobally fn)."""
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return schema.empty_table()
    names = schema.names[1:]
    summed = pa.concat_tables(tables).group_by("item_id").aggregate([(c, "sum") for c in names])
    columns = [summed.column("item_id")] + [summed.column(f"{c}_sum") for c in names]
    return pa.table(columns, schema=schema)


def _ids(user_hash: np.ndarray, keys: np.ndarray, chunks: np.ndarray) -> pa.Array:
    """Session ids from (64-bit user hash, 64-bit session key, chunk index)."""
    halves = []
    for seed in (1, 2):
        h = splitmix64(user_hash + np.uint64(seed)) ^ splitmix64(keys.astype(np.uint64) + seed)
        halves.append(splitmix64(h ^ splitmix64(chunks.astype(np.uint64) * np.uint64(2) + 1)))
    return hex_ids(*halves)


def sessionize_table(events: pa.Table, config: SessionizeConfig, kept_items=None):
    """Sessionize one bucket's events (every event of each of its users).

    Parameters
    ----------
    events : pyarrow.Table
        Validated events (:func:`pipeline.validate.event_schema`), in any order.
    config : SessionizeConfig
        The session rule's options.
    kept_items : pyarrow.Array of str, optional
        Items with at least ``--min-item-count`` events overall; None keeps every item.

    Returns
    -------
    (pyarrow.Table, pyarrow.Table, dict)
        Sessions (:data:`SESSION_SCHEMA`, by user then time), item stats
        (:data:`ITEM_STATS_SCHEMA`) and counts ``{"sessions", "tokens", "filtered"}``.
    """
    filtered: dict[str, int] = {}
    events = events.combine_chunks()
    n = events.num_rows
    if n == 0:
        return SESSION_SCHEMA.empty_table(), ITEM_STATS_SCHEMA.empty_table(), {"filtered": {}}
    user = events.column("user").chunk(0)
    user_rank, user_dict, user_idx = _rank(user)
    ts = np.asarray(events.column("ts"), dtype=np.int64)
    keys = [np.asarray(events.column("seq"), dtype=np.int64), ts]
    session_col = config.session_column is not None
    if session_col:
        session_rank, _, _ = _rank(events.column("session").chunk(0))
        keys.append(session_rank)
    order = np.lexsort(keys + [user_rank])
    u, t = user_rank[order], ts[order]
    new = np.ones(n, dtype=bool)
    new[1:] = u[1:] != u[:-1]
    if session_col:
        s = session_rank[order]
        new[1:] |= s[1:] != s[:-1]
    else:
        new[1:] |= (t[1:] - t[:-1]) > config.session_gap_us
    raw_sid = np.cumsum(new) - 1
    raw_first = np.flatnonzero(new)
    _, item_dict, item_idx = _rank(events.column("item").chunk(0))
    it = item_idx[order]
    keep = np.ones(n, dtype=bool)
    if kept_items is not None:
        ok = np.asarray(pc.is_in(item_dict, value_set=kept_items), dtype=bool)
        keep = ok[it]
        filtered["rare_item"] = int((~keep).sum())
    if not config.keep_repeats:
        k = np.flatnonzero(keep)
        rep = np.zeros(len(k), dtype=bool)
        rep[1:] = (it[k][1:] == it[k][:-1]) & (raw_sid[k][1:] == raw_sid[k][:-1])
        keep[k[rep]] = False
        filtered["repeat_collapsed"] = int(rep.sum())
    k = np.flatnonzero(keep)
    lengths = np.bincount(raw_sid[k], minlength=len(raw_first))
    short = (lengths < config.min_session_length)[raw_sid[k]]
    filtered["short_session"] = int(short.sum())
    k = k[~short]
    m = len(k)
    filtered = {r: c for r, c in filtered.items() if c}
    if m == 0:
        return SESSION_SCHEMA.empty_table(), ITEM_STATS_SCHEMA.empty_table(), {"filtered": filtered}
    ks = raw_sid[k]
    run_new = np.ones(m, dtype=bool)
    run_new[1:] = ks[1:] != ks[:-1]
    run_start = np.flatnonzero(run_new)
    run_id = np.cumsum(run_new) - 1
    run_len = np.diff(np.r_[run_start, m])[run_id]
    pos = np.arange(m) - run_start[run_id]
    pieces = -(-run_len // config.max_session_length)
    chunk = pos * pieces // run_len
    out_new = run_new.copy()
    out_new[1:] |= chunk[1:] != chunk[:-1]
    first = np.flatnonzero(out_new)
    last = np.r_[first[1:], m] - 1
    rows = order[k]
    users = user.take(pa.array(rows[first]))
    if session_col:
        id_key = string_hash(events.column("session").chunk(0).take(pa.array(rows[first])), 3)
    else:
        id_key = t[raw_first[ks[first]]]
    offsets = pa.array(np.r_[first, m].astype(np.int32))
    items = pa.ListArray.from_arrays(offsets, events.column("item").chunk(0).take(pa.array(rows)))
    sessions = pa.table([
        _ids(string_hash(user_dict, 1)[user_idx[rows[first]]], id_key, chunk[first]), users,
        pa.array(t[k][first], pa.timestamp("us", tz="UTC")),
        pa.array(t[k][last], pa.timestamp("us", tz="UTC")),
        items, pa.array(np.diff(np.r_[first, m]).astype(np.int32)),
    ], schema=SESSION_SCHEMA)
    kept_it = it[k]
    out_id = np.cumsum(out_new) - 1
    pairs = np.sort(out_id * len(item_dict) + kept_it)  # np.sort beats np.unique's hashing here
    distinct = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] % len(item_dict)
    engagements = np.bincount(kept_it, minlength=len(item_dict))
    in_sessions = np.bincount(distinct, minlength=len(item_dict))
    present = np.flatnonzero(engagements)
    stats = pa.table([item_dict.take(pa.array(present)), pa.array(engagements[present]),
                      pa.array(in_sessions[present])], schema=ITEM_STATS_SCHEMA)
    return sessions, stats, {"sessions": len(first), "tokens": m, "filtered": filtered}


class _Prepare(beam.DoFn):
    def __init__(self, config: SessionizeConfig):
        self.config = config

    def process(self, element):
        bucket, tables = element
        events = pa.concat_tables(list(tables))
        events, bots = drop_bots(events, self.config.max_user_events)
        if bots:
            counts = {"filtered": {"bot_user": bots}}
            count_metrics(counts)
            yield beam.pvalue.TaggedOutput("counts", counts)
        if events.num_rows:
            yield bucket, events


class _SessionizeBucket(beam.DoFn):
    def __init__(self, config: SessionizeConfig):
        self.config = config

    def process(self, element, kept_items=None):
        bucket, events = element
        sessions, stats, counts = sessionize_table(events, self.config, kept_items)
        count_metrics(counts)
        if sessions.num_rows:
            yield bucket, sessions
        if stats.num_rows:
            yield beam.pvalue.TaggedOutput("items", stats)
        yield beam.pvalue.TaggedOutput("counts", counts)


def _kept(counts: pa.Table, min_count: int) -> pa.Array:
    mask = pc.greater_equal(counts.column("count"), min_count)
    return counts.column("item_id").filter(mask).combine_chunks()


class Sessionize(beam.PTransform):
    """Event tables -> ``{"sessions": (bucket, table), "items": stats tables, "counts": dicts}``."""

    def __init__(self, config: SessionizeConfig):
        super().__init__()
        self.config = config

    def expand(self, events):
        cfg = self.config
        prepared = (
            events
            | "KeyByBucket" >> beam.FlatMap(split_by_bucket, cfg.buckets).with_output_types(
                BucketTable
            )
            | "GroupByBucket" >> beam.GroupByKey()
            | "DropBots" >> beam.ParDo(_Prepare(cfg))
            .with_output_types(BucketTable)
            .with_outputs("counts", main="events")
        )
        args = []
        if cfg.min_item_count > 1:
            kept = (
                prepared.events
                | "CountItems" >> beam.Map(lambda kv: item_counts(kv[1]))
                | "SumItemCounts" >> beam.CombineGlobally(sum_tables, ITEM_COUNTS_SCHEMA)
                | "KeptItems" >> beam.Map(_kept, cfg.min_item_count)
            )
            args.append(beam.pvalue.AsSingleton(kept))
        out = prepared.events | "SessionizeBuckets" >> beam.ParDo(
            _SessionizeBucket(cfg), *args
        ).with_output_types(BucketTable).with_outputs("items", "counts", main="sessions")
        counts = (prepared.counts, out.counts) | "Counts" >> beam.Flatten()
        return {"sessions": out.sessions, "items": out.items, "counts": counts}
