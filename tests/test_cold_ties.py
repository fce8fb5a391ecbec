"""Equal scores rank the lower row first in cold rows, also at the k-th place (issue 12e)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from recommender.core.attributes import AttributeVectors
from recommender.core.vectors import top_k_rows
from recommender.index.cold import ColdRows, cold_table


def test_top_k_rows_breaks_ties_by_column_at_the_kth_place():
    # argpartition alone returns column 3 here (numpy 1.x and 2.x): any of the tied ones.
    assert top_k_rows(np.array([[0.0, 0.0, 1.0, 1.0]]), 1).tolist() == [[2]]
    assert top_k_rows(np.array([[1.0, 0, 0, 0, 0, 2]]), 3).tolist() == [[5, 0, 1]]
    assert top_k_rows(np.array([[np.nan, 1.0, -np.inf, 0.5]]), 4).tolist() == [[1, 3, 0, 2]]
    assert top_k_rows(np.array([[3.0, 1.0, 2.0], [0, 0, 0]]), 5).tolist() == [[0, 2, 1],
                                                                             [0, 1, 2]]
    assert top_k_rows(np.zeros((2, 0)), 3).shape == (2, 0)


def test_top_k_rows_equals_a_stable_full_sort():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.integers(0, 3, (int(rng.integers(1, 5)), int(rng.integers(1, 25))))
        k = int(rng.integers(1, 10))
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        assert np.array_equal(top_k_rows(scores.astype(np.float32), k), expected)


def _rows(scoring: str, popularity: float, counts, tokens, cold_candidates: bool) -> ColdRows:
    """Model rows m0..m{n-1} with ``counts``, then one cold row ``new``; every row carries the
    attribute tokens in ``tokens`` and the same attribute vector (all cosines tie)."""
    n = len(counts)
    ids = [f"m{i}" for i in range(n)] + ["new"]
    attrs = AttributeVectors(None, [], np.zeros(0), np.zeros((0, 2), np.float32),
                             item_ids=ids, item_tokens=tokens)
    vecs = np.tile(np.array([[1.0, 0.0]], np.float32), (n + 1, 1))
    return ColdRows(ids, pa.array(list(counts) + [0], pa.int64()), vecs, n,
                    n + 1 if cold_candidates else n, attrs, {}, vecs.copy(), scoring,
                    popularity)


def test_cold_table_same_value_baseline_ties_go_to_the_lower_row():
    # same:category at weight 1 is "most engaged item of the same value": m2 and m3 tie (3
    # engagements each), so the first place is m2's; then m3, then m0 and m1 (0 each), in order.
    tokens = [["category=x"]] * 5
    rows = _rows("same:category", 1.0, [0, 0, 3, 3], tokens, False)
    assert cold_table(rows, 1)[0].tolist() == [[2]]
    assert cold_table(rows, 3)[0].tolist() == [[2, 3, 0]]


def test_cold_table_equal_cosines_go_to_the_lower_row_and_never_the_row_itself():
    tokens = [["category=x"]] * 5
    rows = _rows("space", 0.0, [5, 1, 2, 7], tokens, True)  # cold row is a candidate too
    nbrs, scores = cold_table(rows, 4)
    assert nbrs.tolist() == [[0, 1, 2, 3]]  # all cosines 1; row 4 (itself) is excluded
    np.testing.assert_allclose(scores, 1.0, rtol=1e-6)


def test_index_and_lookup_break_equal_popularity_by_row(tmp_path):
    # 8 items of brand b0 engaged 5 times each: "most engaged of the same brand" ties for every
    # place, so the cold item's related items are the first b0 rows of the model, in row order,
    # in its index row and from related_to_attributes alike.
    from recommender import RelatedItems
    from recommender.core.catalog import CatalogOptions, parse_attribute_specs, read_catalog
    from recommender.index import IndexConfig, build_index
    from recommender.index.cold import ColdConfig
    from recommender.train import TrainConfig, train
    from recommender.train.attributes import AttributeConfig, CatalogAttributes

    xs = [f"x{i}" for i in range(8)]
    others = [f"a{i}" for i in range(4)]  # brand b1; rows before the x ones (equal counts)
    sessions = [[others[i], others[i + 1]] for _ in range(5) for i in range(0, 4, 2)]
    sessions += [[xs[i], xs[i + 1]] for _ in range(5) for i in range(0, 8, 2)]
    lines = ["item_id,title,brand"] + [f"{i},{i},b0" for i in xs + ["new"]]
    lines += [f"{i},{i},b1" for i in others]
    (tmp_path / "catalog.csv").write_text("\n".join(lines) + "\n")
    specs = parse_attribute_specs("brand")
    attrs = CatalogAttributes.from_catalog(
        read_catalog(tmp_path / "catalog.csv", CatalogOptions(attributes=specs)), specs)
    model = train(sessions, TrainConfig(dim=4, epochs=1, progress=False, workers=1),
                  output_dir=tmp_path / "model", attributes=(attrs, AttributeConfig()))
    assert set(model.counts.tolist()) == {5}
    assert model.item_ids[:4] == others  # b1 rows first: argpartition alone returned other b0 rows
    build_index(tmp_path / "model", tmp_path / "index",
                IndexConfig(k=3, progress=False, n_jobs=1),
                cold=ColdConfig(scoring="same:brand", popularity=1.0))
    related = RelatedItems.load(tmp_path / "index")
    expected = [i for i in model.item_ids if i.startswith("x")][:3]
    assert [i for i, _ in related.related("new", k=3)] == expected
    assert [i for i, _ in related.related_to_attributes({"brand": "b0"}, 3)] == expected


def test_warm_evaluation_breaks_ties_to_the_lower_row_too():
    from recommender.evaluate.cold import _top_k

    items = np.array([[1, 0], [2, 0], [3, 0], [0, 1]], np.float32)  # rows 0-2: cosine 1 to x
    query = np.array([[1, 0], [1, 0]], np.float32)
    top = _top_k(query, items, 2, np.array([-1, 0]))
    assert top.tolist() == [[0, 1], [1, 2]]  # the second query never returns row 0
