import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from factories import write_sessions_dir

from recommender.core.errors import Pin2VecError
from recommender.core.sessions import iter_sessions, read_item_counts, read_sessions_manifest
from recommender.evaluate.next_item import baseline_scores, load_split, verdict
from recommender.evaluate.scorecard import (
    EvalSplit,
    Score,
    next_item_pairs,
    popularity_buckets,
    score_table,
)
from recommender.evaluate.splits import time_split
from recommender.scorers import from_lists

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def test_next_item_pairs_stay_inside_sessions():
    items = pa.array([["a", "b", "c"], ["d"], [], ["e", "f"]], pa.list_(pa.string()))
    q, t = next_item_pairs(items)
    assert q.to_pylist() == ["a", "b", "e"]
    assert t.to_pylist() == ["b", "c", "f"]


def _split(train, queries, targets):
    return EvalSplit(from_lists(train), pa.array(queries), pa.array(targets))


def test_score_exact_metrics_at_two_depths():
    ids = pa.array(["a", "b", "c", "d"])
    table = np.array([[1, 2], [2, 0], [3, 0], [0, 1]], dtype=np.int32)
    split = _split([["a", "b", "c", "d"]], ["a", "b", "c", "x"], ["b", "a", "b", "a"])
    r = score_table("hand", ids, table, split, ks=(1, 2))
    assert r.metrics["hr@2"] == 0.5 and r.metrics["hr@1"] == 0.25
    assert r.metrics["mrr@2"] == pytest.approx((1 + 0.5) / 4)
    assert r.metrics["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert r.buckets["unseen"]["share"] == 0.25  # x was never in training
    assert r.coverage == 0.75  # @1: rows a, b, c serve b, c, d


def test_score_refuses_k_larger_than_table():
    split = _split([["a", "b"]], ["a"], ["b"])
    with pytest.raises(Pin2VecError, match="needs 2"):
        score_table("hand", pa.array(["a", "b"]), np.zeros((2, 1), np.int32), split, ks=(1, 2))


def test_popularity_buckets_split_engagements_50_30_20():
    counts = np.array([50, 10, 20, 10, 10])  # by popularity: 0 (50%), 2, 1, 3, 4
    assert popularity_buckets(counts).tolist() == [0, 1, 1, 2, 2]


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


def test_split_in_memory_matches_split_on_disk(tmp_path):
    src = _five_sessions(tmp_path)
    time_split(src, tmp_path / "train", tmp_path / "test", test_fraction=0.4)
    a = load_split(src, test_fraction=0.4)
    b = load_split(tmp_path / "train", tmp_path / "test")
    assert a.queries.to_pylist() == b.queries.to_pylist() == ["a", "d"]
    assert a.targets.to_pylist() == ["d", "e"]
    assert a.train.item_ids.equals(b.train.item_ids)
    assert np.array_equal(a.train.rows, b.train.rows)


def test_baselines_are_scorers_on_the_same_pairs(tmp_path):
    # Train on pairs x->y; the test repeats them: co-occurrence hits, most-popular misses.
    sessions = [["x1", "y1"], ["x2", "y2"], ["x3", "y3"], ["x1", "y1"], ["x2", "y2"]]
    split = load_split(write_sessions_dir(tmp_path / "s", sessions), test_fraction=0.4)
    scores, notes = baseline_scores(split, ease_lambda=1.0, ks=(1, 2))
    hr = {s.name: s.metrics["hr@1"] for s in scores}
    assert hr["co-occurrence (±5)"] == hr["sequential rules (10, 1/d)"] == 1.0
    assert hr["item-kNN (cosine)"] == hr["EASE (λ=1)"] == 1.0
    assert hr["most-popular"] == 0.0 and notes == []  # all counts tie: x1 <-> x2 only


def test_verdict_names_the_best_baseline_and_says_when_it_loses():
    def s(name, hr):
        return Score(name, {"hr@10": hr}, {}, 0.0)

    pop, cooc, seq = s("most-popular", 0.01), s("co-occurrence (±5)", 0.1), s(
        "sequential rules (10, 1/d)", 0.12)
    win = s("hybrid", 0.24)
    assert "beats the best baseline, sequential rules (10, 1/d), by 2.000x" in verdict(
        [win, pop, cooc, seq], win)
    lose = s("pin2vec (similar)", 0.005)
    text = verdict([lose, pop, cooc, seq], lose)
    assert text.startswith("WARNING: sequential rules") and "not even beat most-popular" in text


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
