"""Sessionize composite: exact sessions for the gap rule, repeats, chunking and the filters."""

from __future__ import annotations

import pyarrow as pa
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline._beam import beam
from pipeline.options import SessionizeConfig
from pipeline.sessionize import Sessionize, sessionize_table
from pipeline.sinks import merge_counts
from pipeline.validate import event_schema

T0 = 1_700_000_000  # seconds


def config(**kw) -> SessionizeConfig:
    return SessionizeConfig(inputs=("mem",), output="unused", **kw)


def events(rows, session: bool = False, seq0: int = 0) -> pa.Table:
    """rows: (user, item, seconds after T0[, session]); seq follows the row order."""
    cols = {
        "user": [r[0] for r in rows],
        "item": [r[1] for r in rows],
        "ts": [(T0 + r[2]) * 1_000_000 for r in rows],
        "seq": list(range(seq0, seq0 + len(rows))),
    }
    if session:
        cols["session"] = [r[3] for r in rows]
    return pa.table(cols, schema=event_schema(session))


def run_sessionize(tables, cfg):
    """Run Sessionize on ``tables``; assert and return nothing (assertions are in the pipeline)."""
    p = BeamTestPipeline(runner=FnApiRunner())
    out = p | beam.Create(tables) | Sessionize(cfg)
    return p, out


def rows_of(kv):
    _, table = kv
    for r in table.to_pylist():
        start = int(r["start"].timestamp()) - T0
        yield r["user_id"], tuple(r["items"]), start, r["length"]


def test_gap_equal_to_limit_stays_one_more_second_splits():
    cfg = config(session_gap=1800)
    table = events([("u", "a", 0), ("u", "b", 1800), ("u", "c", 3601), ("u", "d", 3602)])
    p, out = run_sessionize([table], cfg)
    sessions = out["sessions"] | beam.FlatMap(rows_of)
    assert_that(sessions, equal_to([("u", ("a", "b"), 0, 2), ("u", ("c", "d"), 3601, 2)]))
    p.run()


def test_unsorted_input_several_users_and_tables_and_counts():
    cfg = config()
    a = events([("u2", "y", 100), ("u1", "c", 120), ("u1", "a", 0)])
    b = events([("u2", "x", 50), ("u1", "b", 60), ("u3", "z", 0)], seq0=10)
    p, out = run_sessionize([a, b], cfg)
    sessions = out["sessions"] | beam.FlatMap(rows_of)
    assert_that(sessions, equal_to([("u1", ("a", "b", "c"), 0, 3), ("u2", ("x", "y"), 50, 2)]),
                label="sessions")
    counts = out["counts"] | beam.CombineGlobally(merge_counts)
    assert_that(counts, equal_to([{"sessions": 2, "tokens": 5,
                                   "filtered": {"short_session": 1}}]), label="counts")
    p.run()


@pytest.mark.parametrize("keep", [False, True])
def test_consecutive_repeats_collapse_unless_kept(keep):
    cfg = config(keep_repeats=keep)
    table = events([("u", "a", 0), ("u", "a", 1), ("u", "b", 2), ("u", "b", 2), ("u", "a", 3)])
    p, out = run_sessionize([table], cfg)
    expected = ("a", "a", "b", "b", "a") if keep else ("a", "b", "a")
    sessions = out["sessions"] | beam.FlatMap(rows_of)
    assert_that(sessions, equal_to([("u", expected, 0, len(expected))]), label="sessions")
    items = out["items"] | beam.FlatMap(lambda t: t.to_pylist())
    assert_that(items, equal_to([
        {"item_id": "a", "engagements": 3 if keep else 2, "sessions": 1},
        {"item_id": "b", "engagements": 2 if keep else 1, "sessions": 1},
    ]), label="items")
    p.run()


def test_min_item_count_and_bot_guard():
    cfg = config(min_item_count=2, max_user_events=4)
    table = events([
        ("u1", "a", 0), ("u1", "rare", 1), ("u1", "a", 2), ("u1", "b", 3),   # rare goes, a a b
        ("u2", "b", 0), ("u2", "a", 5),
        ("bot", "a", 0), ("bot", "b", 1), ("bot", "c", 2), ("bot", "c", 3), ("bot", "d", 4),
        ("u3", "a", 0), ("u3", "only", 1),                                   # one item left
    ])
    p, out = run_sessionize([table], cfg)
    sessions = out["sessions"] | beam.FlatMap(rows_of)
    assert_that(sessions, equal_to([("u1", ("a", "b"), 0, 2), ("u2", ("b", "a"), 0, 2)]),
                label="sessions")
    counts = out["counts"] | beam.CombineGlobally(merge_counts)
    assert_that(counts, equal_to([{
        "sessions": 2, "tokens": 4,
        "filtered": {"bot_user": 5, "rare_item": 2, "repeat_collapsed": 1, "short_session": 1},
    }]), label="counts")
    p.run()


def test_session_column_mode_ignores_gaps():
    cfg = config(session_column="visit")
    table = events([
        ("u", "a", 0, "s1"), ("u", "b", 99_999, "s1"),   # far apart, one visit
        ("u", "c", 10, "s2"), ("u", "d", 11, "s2"),
        ("v", "e", 0, "s1"), ("v", "f", 1, "s1"),        # same value, another user
    ], session=True)
    p, out = run_sessionize([table], cfg)
    sessions = out["sessions"] | beam.FlatMap(rows_of)
    assert_that(sessions, equal_to([("u", ("a", "b"), 0, 2), ("u", ("c", "d"), 10, 2),
                                    ("v", ("e", "f"), 0, 2)]))
    p.run()


def test_long_sessions_split_into_near_equal_chunks_never_truncated():
    cfg = config(max_session_length=2, min_session_length=2)
    table = events([("u", x, i) for i, x in enumerate("abcde")])
    sessions, _, counts = sessionize_table(table, cfg)
    assert sessions.column("items").to_pylist() == [["a", "b"], ["c", "d"], ["e"]]
    assert sessions.column("length").to_pylist() == [2, 2, 1]
    assert counts["tokens"] == 5 and counts["filtered"] == {}
    assert len(set(sessions.column("session_id").to_pylist())) == 3
    cfg = config(max_session_length=3)
    table = events([("u", str(i), i) for i in range(7)])
    lengths = sessionize_table(table, cfg)[0].column("length").to_pylist()
    assert lengths == [3, 2, 2]  # ceil(7/3) = 3 chunks, lengths differ by at most one


def test_session_ids_do_not_depend_on_order_or_batching():
    cfg = config()
    rows = [("u1", "a", 0), ("u1", "b", 5), ("u2", "c", 0), ("u2", "d", 9), ("u1", "e", 9000),
            ("u1", "f", 9001)]
    first = sessionize_table(events(rows), cfg)[0]
    second = sessionize_table(events(rows[::-1], seq0=0), cfg)[0]
    key = lambda t: sorted(zip(t["session_id"].to_pylist(), t["items"].to_pylist()))  # noqa: E731
    assert key(first) == key(second)
    assert all(len(s) == 32 for s in first["session_id"].to_pylist())
    assert first["start"].type == pa.timestamp("us", tz="UTC")
    assert first["length"].type == pa.int32()


def test_equal_times_keep_input_order():
    table = events([("u", "b", 0), ("u", "a", 0), ("u", "c", 0)])
    sessions = sessionize_table(table, config())[0]
    assert sessions["items"].to_pylist() == [["b", "a", "c"]]
