import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from factories import write_sessions_dir

from recommender.core.errors import ConfigError, Pin2VecError
from recommender.core.sessions import iter_sessions, read_item_counts, read_sessions_manifest
from recommender.evaluate.baselines import counter_from_sessions
from recommender.evaluate.next_item import (
    Recommender,
    Result,
    evaluate,
    load_eval_data,
    next_item_pairs,
    score,
    verdict,
)
from recommender.evaluate.splits import time_split

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def test_next_item_pairs_stay_inside_sessions():
    items = pa.array([["a", "b", "c"], ["d"], [], ["e", "f"]], pa.list_(pa.string()))
    q, t = next_item_pairs(items)
    assert q.to_pylist() == ["a", "b", "e"]
    assert t.to_pylist() == ["b", "c", "f"]


def test_popular_table_drops_the_query_item():
    c = counter_from_sessions([["a", "b", "c"], ["b", "c", "d"], ["a", "b"]], window=1)
    assert c.item_ids == ["a", "b", "c", "d"]
    assert c.counts().tolist() == [2, 3, 2, 1]
    # popularity order b, a, c (a before c on the tie by first appearance), d
    assert c.popular_table(2).tolist() == [[1, 2], [0, 2], [1, 0], [1, 0]]


def test_cooccurrence_table_counts_window_pairs_and_pads_with_popular():
    c = counter_from_sessions([["a", "b", "c"], ["b", "c", "d"], ["a", "b"]], window=1)
    # a-b twice, b-c twice, c-d once; a-c only at distance 2 (outside window 1)
    assert c.cooccurrence_table(2).tolist() == [[1, 2], [0, 2], [1, 3], [2, 1]]
    wide = counter_from_sessions([["a", "b", "c"], ["b", "c", "d"], ["a", "b"]], window=2)
    # window 2 adds a-c and b-d once each; a: b(2) then c(1)
    assert wide.cooccurrence_table(3).tolist()[0] == [1, 2, 3]


def test_cooccurrence_ignores_self_pairs():
    c = counter_from_sessions([["a", "b", "a"]], window=2)
    assert c.cooccurrence_table(1).tolist() == [[1], [0]]


def test_score_exact_metrics():
    ids = pa.array(["a", "b", "c", "d"])
    table = np.array([[1, 2], [2, 0], [3, 0], [0, 1]], dtype=np.int32)
    rec = Recommender("hand", ids, lambda rows: table[rows])
    queries = pa.array(["a", "b", "c", "x"])
    targets = pa.array(["b", "a", "b", "a"])
    r = score(rec, queries, targets, k=2, catalogue=4)
    assert r.hr == 0.5
    assert r.mrr == pytest.approx((1 + 0.5) / 4)
    assert r.ndcg == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert r.unknown == 0.25
    assert r.coverage == 1.0  # rows a, b, c serve b, c, a, d
    assert r.queries == 4
    assert score(rec, queries, targets, k=1, catalogue=4).hr == 0.25


def test_score_refuses_k_larger_than_table():
    rec = Recommender("hand", pa.array(["a", "b"]), lambda rows: np.zeros((len(rows), 1), np.int32))
    with pytest.raises(ConfigError):
        score(rec, pa.array(["a"]), pa.array(["b"]), k=2, catalogue=2)


def _five_sessions(tmp_path):
    sessions = [["a", "b"], ["b", "c"], ["c", "d", "c"], ["a", "d"], ["d", "e"]]
    starts = [T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2),
              T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=3)]
    return write_sessions_dir(tmp_path / "s", sessions, starts=starts)


def test_time_split_latest_sessions_are_test(tmp_path):
    src = _five_sessions(tmp_path)
    out = time_split(src, tmp_path / "train", tmp_path / "test", test_fraction=0.4)
    assert (out["train"], out["test"]) == (3, 2)
    # sessions 2 and 3 start together; the tie goes by session id, so s000003 is test
    assert list(iter_sessions(tmp_path / "train")) == [["a", "b"], ["b", "c"], ["c", "d", "c"]]
    assert list(iter_sessions(tmp_path / "test")) == [["a", "d"], ["d", "e"]]
    counts = read_item_counts(tmp_path / "train").to_pylist()
    assert counts[2] == {"item_id": "c", "engagements": 3, "sessions": 2}
    manifest = read_sessions_manifest(tmp_path / "test")
    assert manifest["counts"] == {"sessions": 2, "items": 3, "tokens": 4}
    assert manifest["split"]["cutoff_session_id"] == "s000003"


def test_time_split_needs_enough_sessions(tmp_path):
    src = write_sessions_dir(tmp_path / "s", [["a", "b"]])
    with pytest.raises(Pin2VecError, match="too few"):
        time_split(src, tmp_path / "train", tmp_path / "test", 0.2)


def test_eval_data_split_in_memory_matches_split_on_disk(tmp_path):
    src = _five_sessions(tmp_path)
    time_split(src, tmp_path / "train", tmp_path / "test", test_fraction=0.4)
    a = load_eval_data(src, test_fraction=0.4, cooc_window=1)
    b = load_eval_data(tmp_path / "train", tmp_path / "test", cooc_window=1)
    assert a.queries.to_pylist() == b.queries.to_pylist() == ["a", "d"]
    assert a.targets.to_pylist() == ["d", "e"]
    assert a.counter.item_ids == b.counter.item_ids
    assert a.counter.cooccurrence_table(2).tolist() == b.counter.cooccurrence_table(2).tolist()


def test_evaluate_ranks_a_perfect_model_first(tmp_path):
    # Train on pairs x->y; the test repeats them, so co-occurrence and an oracle both hit.
    sessions = [["x1", "y1"], ["x2", "y2"], ["x3", "y3"], ["x1", "y1"], ["x2", "y2"]]
    src = write_sessions_dir(tmp_path / "s", sessions)
    data = load_eval_data(src, test_fraction=0.4)
    ids = pa.array(data.counter.item_ids)
    pos = {x: i for i, x in enumerate(data.counter.item_ids)}
    partner = {f"x{i}": f"y{i}" for i in range(1, 4)} | {f"y{i}": f"x{i}" for i in range(1, 4)}
    table = np.array([[pos[partner[x]]] for x in data.counter.item_ids], np.int32)
    oracle = Recommender("oracle", ids, lambda rows: table[rows])
    from recommender.evaluate.next_item import baselines

    results = evaluate([oracle, *baselines(data.counter, 1)], data, k=1)
    # most-popular: all counts tie, so the order is first appearance (x1, y1, ...): x1 -> y1 hits,
    # x2 -> x1 misses
    assert [r.hr for r in results] == [1.0, 1.0, 0.5]
    assert verdict(results).startswith("WARNING: co-occurrence matches")


def test_verdict_says_when_the_model_wins_and_when_it_loses():
    def r(name, hr):
        return Result(name, hr, 0, 0, 0, 0, 10)

    assert "beats co-occurrence (2.00x" in verdict([r("m", 0.2), r("c", 0.1), r("p", 0.01)])
    lose = verdict([r("m", 0.01), r("c", 0.1), r("p", 0.05)])
    assert lose.startswith("WARNING") and "not even beat most-popular" in lose


def test_leakage_warning_when_the_model_saw_the_test_sessions(tmp_path):
    from factories import digest

    from recommender.evaluate.next_item import leakage_warning

    src = _five_sessions(tmp_path)
    time_split(src, tmp_path / "train", tmp_path / "test", test_fraction=0.4)
    assert leakage_warning({"source_digest": digest(tmp_path / "train")}, tmp_path / "train",
                           tmp_path / "test") is None
    assert "test sessions" in leakage_warning({"source_digest": digest(tmp_path / "test")},
                                              tmp_path / "train", tmp_path / "test")
    assert "test period included" in leakage_warning({"source_digest": digest(src)}, src, None)
    assert leakage_warning({"source_digest": None}, src, None) is None
