"""Count-based scorers, EASE, hybrid: exact tables on hand-made sessions; INDEX round trip."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.core.errors import ArtifactError
from recommender.lookup import RelatedItems
from recommender.scorers import (
    ITEM_KNN,
    CooccurrenceConfig,
    HybridConfig,
    HybridScorer,
    ItemVectors,
    cooccurrence,
    ease,
    from_lists,
    popular,
    write_index,
)
from recommender.scorers.ease import EaseTooLarge, check_fits
from recommender.scorers.pairs import count_pairs

SESSIONS = [["a", "b", "c", "a"], ["b", "c"], ["c", "d", "e"]]


def pairs_dict(data, **kw):
    p = count_pairs(data.rows, data.offsets, data.n_items, **kw)
    ids = data.item_ids.to_pylist()
    return {(ids[a], ids[b]): w for a, b, w in zip(p.a, p.b, p.weights)}


def test_window_pairs_undirected_and_directed():
    d = from_lists(SESSIONS)
    assert d.item_ids.to_pylist() == ["a", "b", "c", "d", "e"]
    assert d.counts.tolist() == [2, 2, 3, 1, 1]
    one = pairs_dict(d, window=1)
    assert one == {("a", "b"): 1, ("b", "a"): 1, ("b", "c"): 2, ("c", "b"): 2,
                   ("a", "c"): 1, ("c", "a"): 1, ("c", "d"): 1, ("d", "c"): 1,
                   ("d", "e"): 1, ("e", "d"): 1}
    seq = pairs_dict(d, window=10, directed=True, weighting="distance")
    assert seq == {("a", "b"): 1.0, ("a", "c"): 0.5, ("b", "c"): 2.0, ("b", "a"): 0.5,
                   ("c", "a"): 1.0, ("c", "d"): 1.0, ("c", "e"): 0.5, ("d", "e"): 1.0}
    # window 0 = whole session; a-a at distance 3 is a self pair and never counted
    whole = pairs_dict(d, window=0, directed=True)
    assert whole[("a", "c")] == 1 and ("a", "a") not in whole and whole[("b", "a")] == 1


def test_binary_pairs_count_each_pair_once_per_session():
    d = from_lists([["a", "b", "a", "b"], ["a", "b"]])
    assert pairs_dict(d, binary=True) == {("a", "b"): 2, ("b", "a"): 2}


def test_chunked_counting_equals_one_chunk():
    rng = np.random.default_rng(0)
    sessions = [[f"i{x}" for x in rng.integers(0, 30, rng.integers(2, 9))] for _ in range(300)]
    d = from_lists(sessions)
    for kw in ({"window": 3}, {"window": 0, "directed": True, "weighting": "distance"}):
        a = count_pairs(d.rows, d.offsets, d.n_items, **kw)
        b = count_pairs(d.rows, d.offsets, d.n_items, chunk_tokens=17, **kw)
        assert np.array_equal(a.keys(), b.keys()) and np.allclose(a.weights, b.weights)


def test_normalisations_rank_exactly():
    # c: with b twice (n_b=2), with a once (n_a=2), with d once (n_d=1)
    d = from_lists(SESSIONS)
    raw = cooccurrence(d, CooccurrenceConfig(window=1, k=3))
    assert raw.neighbors[2].tolist() == [1, 0, 3]  # b(2); a and d tie at 1: a is more popular
    assert raw.scores[2].tolist() == [2.0, 1.0, 1.0]
    cos = cooccurrence(d, CooccurrenceConfig(window=1, k=3, normalize="cosine"))
    # b: 2/sqrt(3*2)=0.816, d: 1/sqrt(3*1)=0.577, a: 1/sqrt(6)=0.408
    assert cos.neighbors[2].tolist() == [1, 3, 0]
    assert np.allclose(cos.scores[2], [2 / 6**0.5, 1 / 3**0.5, 1 / 6**0.5])
    # shrunk: q met rare p1 once (n=1) and popular p2 three times (n=20)
    d = from_lists([["q", "p1"]] + [["q", "p2"]] * 3 + [["p2", "z"]] * 17)
    q, p1, p2 = (d.item_ids.to_pylist().index(i) for i in ("q", "p1", "p2"))
    cos = cooccurrence(d, CooccurrenceConfig(window=1, k=2, normalize="cosine"))
    assert cos.neighbors[q].tolist() == [p1, p2]  # 1/sqrt(4) > 3/sqrt(80)
    shr = cooccurrence(d, CooccurrenceConfig(window=1, k=2, normalize="shrunk", shrink=10.0))
    assert shr.neighbors[q].tolist() == [p2, p1]  # 3/(sqrt(80)+10) > 1/(2+10)
    assert np.allclose(shr.scores[q], [3 / (80**0.5 + 10), 1 / 12])


def test_short_rows_are_filled_with_popular_items_or_padded():
    d = from_lists(SESSIONS)
    t = cooccurrence(d, CooccurrenceConfig(window=1, k=3))
    assert t.neighbors[4].tolist() == [3, 2, 0]  # e: d (counted), then popular c, a
    assert t.scores[4].tolist() == [1.0, 0.0, 0.0]
    bare = cooccurrence(d, CooccurrenceConfig(window=1, k=3, fill_popular=False))
    assert bare.neighbors[4].tolist() == [3, -1, -1] and np.isnan(bare.scores[4, 1:]).all()


def test_item_knn_is_session_cosine():
    d = from_lists([["a", "b"], ["a", "b", "c"], ["a", "c"], ["c", "d"]])
    t = cooccurrence(d, ITEM_KNN.__class__(**{**ITEM_KNN.__dict__, "k": 2}))
    # a in 3 sessions, b 2, c 3, d 1: a-b 2/sqrt(6), a-c 2/sqrt(9)
    assert t.neighbors[0].tolist() == [1, 2]
    assert np.allclose(t.scores[0], [2 / 6**0.5, 2 / 3])


def test_popular_excludes_the_query():
    t = popular(from_lists(SESSIONS), k=2)
    assert t.neighbors.tolist() == [[2, 1], [2, 0], [0, 1], [2, 0], [2, 0]]


def test_ease_matches_a_dense_solve():
    sessions = [["a", "b"], ["a", "b", "c"], ["b", "c", "d"], ["a", "d"], ["c", "d"]]
    d = from_lists(sessions)
    x = np.zeros((len(sessions), 4))
    for s, items in enumerate(sessions):
        for i in items:
            x[s, "abcd".index(i)] = 1
    lam = 0.5
    # EASE: min ||X - XB||² + λ||B||² s.t. diag(B) = 0, solved column by column.
    b = np.zeros((4, 4))
    for j in range(4):
        others = [i for i in range(4) if i != j]
        xo = x[:, others]
        b[others, j] = np.linalg.solve(xo.T @ xo + lam * np.eye(3), xo.T @ x[:, j])
    t = ease(d, lam, k=3)
    for i in range(4):
        expect = sorted((j for j in range(4) if j != i), key=lambda j: -b[i, j])
        assert t.neighbors[i].tolist() == expect
        assert np.allclose(t.scores[i], b[i, expect], atol=1e-6)


def test_ease_refuses_a_catalogue_too_large():
    with pytest.raises(EaseTooLarge, match="EASE skipped"):
        check_fits(30_000)


def test_hybrid_leans_on_counts_for_evidence_and_vectors_for_thin_items():
    # Counts say b1 (3 sessions) beats b2 (1); the vectors say b2 is a's twin and b1 is far.
    sessions = [["a", "b1"]] * 3 + [["a", "b2"]] + [["x", "y"]] * 2
    d = from_lists(sessions)
    ids = d.item_ids.to_pylist()
    vec = {"a": [1, 0], "b1": [0, 1], "b2": [1, 0.1], "x": [0, -1], "y": [-1, 0]}
    v = np.array([vec[i] for i in ids], np.float32)
    scorer = HybridScorer(d, ItemVectors(ids, v, v), HybridConfig(
        counts=CooccurrenceConfig(), candidates=4, k=3))
    a, b1, b2 = ids.index("a"), ids.index("b1"), ids.index("b2")
    assert scorer.table(evidence=0.0).neighbors[a, :2].tolist() == [b1, b2]  # all counts
    assert scorer.table(evidence=1000.0).neighbors[a, :2].tolist() == [b2, b1]  # thin: vectors
    # an item without a vector keeps its count order whatever the weight
    no_vec = ItemVectors([i for i in ids if i != "a"], v[[ids.index(i) for i in ids if i != "a"]],
                         v[[ids.index(i) for i in ids if i != "a"]])
    t = HybridScorer(d, no_vec, HybridConfig(counts=CooccurrenceConfig(), candidates=4, k=3))
    assert t.table(evidence=1000.0).neighbors[a, :2].tolist() == [b1, b2]


def test_scorer_index_serves_related_and_sessions(tmp_path):
    d = from_lists(SESSIONS)
    write_index(cooccurrence(d, CooccurrenceConfig(window=1, k=3)), tmp_path / "index")
    related = RelatedItems.load(tmp_path / "index", verify=True)
    assert related.scoring == "cooccurrence"
    assert related.related("c", k=2) == [("b", 2.0), ("a", 1.0)]
    assert related.related("zzz", k=1, default="popular")[0][0] == "c"
    # session [b, c]: c's row (weight 1) and b's (0.707) vote; the session's items are skipped
    assert related.related_to_session(["b", "c"], k=2)[0][0] == "a"
    with pytest.raises(ArtifactError, match="without item vectors"):
        related.vector("a")
