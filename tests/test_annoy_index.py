"""Index builder: exact tables on hand-made vectors under every backend, recall, manifest, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from recommender import cli
from recommender.core.errors import ArtifactError, ConfigError
from recommender.index.backends import available
from recommender.index.build import IndexConfig, auto_trees, build_index, exact_neighbors, recall
from recommender.index.table import TableSpec, compute_table
from tests.factories import digest, write_model_dir

QUIET = dict(progress=False, recall_sample=100)
BACKENDS = ["exact", "annoy",
            pytest.param("hnsw", marks=pytest.mark.skipif(not available("hnsw"),
                                                          reason="hnswlib not installed"))]

# Five unit vectors on the circle at these angles (degrees): cosine = cos(angle difference).
ANGLES = [0, 10, 30, 90, 180]
IDS = ["a", "b", "c", "d", "e"]


def _circle():
    rad = np.radians(ANGLES)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


@pytest.fixture
def circle_model(tmp_path):
    # Lengths differ on purpose: "similar" must ignore them.
    vectors = _circle() * np.array([[1], [2], [0.5], [3], [1]], dtype=np.float32)
    return write_model_dir(tmp_path / "model", IDS, vectors, counts=[5, 1, 3, 2, 4])


@pytest.mark.parametrize("backend", BACKENDS)
def test_similar_table_is_exact_cosine_order(circle_model, tmp_path, backend):
    m = build_index(circle_model, tmp_path / "index", IndexConfig(k=3, backend=backend, **QUIET))
    nbrs = np.load(tmp_path / "index" / "neighbors.npy")
    scores = np.load(tmp_path / "index" / "scores.npy")
    # a(0°): b(10°), c(30°), d(90°); d(90°): c(60° away), b(80°), a(90°)=e(90°) -> tie to lower row.
    assert nbrs.tolist() == [[1, 2, 3], [0, 2, 3], [1, 0, 3], [2, 1, 0], [3, 2, 1]]
    cos = np.cos(np.radians(np.abs(np.subtract.outer(ANGLES, ANGLES))))
    np.testing.assert_allclose(scores, np.take_along_axis(cos, nbrs, axis=1), atol=1e-6)
    assert nbrs.dtype == np.int32 and scores.dtype == np.float32
    assert m["kind"] == "index" and m["format_version"] == 1 and m["metric"] == "angular"
    assert m["model_digest"] == digest(circle_model)
    assert m["recall_at_10"] == 1.0 and m["counts"]["items"] == 5
    assert m["backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_complementary_table_is_input_dot_context_with_ties_by_row(tmp_path, backend):
    inputs = [[1, 0], [0, 1], [1, 1], [-1, 0]]
    contexts = [[3, 0], [0, 2], [1, 1], [0, -1]]
    model = write_model_dir(tmp_path / "model", ["w", "x", "y", "z"], inputs, contexts)
    m = build_index(model, tmp_path / "index",
                    IndexConfig(k=3, scoring="complementary", backend=backend, **QUIET))
    nbrs = np.load(tmp_path / "index" / "neighbors.npy")
    scores = np.load(tmp_path / "index" / "scores.npy")
    # w=(1,0) . contexts = [3 self, 0, 1, 0] -> y(1), x(0), z(0): tie goes to the lower row.
    assert nbrs.tolist() == [[2, 1, 3], [2, 0, 3], [0, 1, 3], [1, 2, 0]]
    assert scores.tolist() == [[1, 0, 0], [1, 0, -1], [3, 2, -1], [0, -1, -3]]
    assert m["metric"] == "dot" and m["scoring"] == "complementary"


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_when_catalogue_is_smaller_than_k(circle_model, tmp_path, backend):
    build_index(circle_model, tmp_path / "index", IndexConfig(k=6, backend=backend, **QUIET))
    nbrs = np.load(tmp_path / "index" / "neighbors.npy")
    scores = np.load(tmp_path / "index" / "scores.npy")
    assert nbrs.shape == (5, 6)
    assert (nbrs[:, 4:] == -1).all() and np.isnan(scores[:, 4:]).all()
    assert not np.isnan(scores[:, :4]).any()
    related = pq.read_table(tmp_path / "index" / "related.parquet").to_pylist()
    assert len(related) == 5 * 4  # padding is not exported
    assert related[0] == {"item_id": "a", "rank": 1, "related_item_id": "b",
                          "score": pytest.approx(math.cos(math.radians(10)), abs=1e-6)}
    assert all(r["item_id"] != r["related_item_id"] for r in related)


@pytest.mark.parametrize("backend", BACKENDS)
def test_recall_on_random_data_with_defaults(tmp_path, backend):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    ids = [f"i{i}" for i in range(2000)]
    model = write_model_dir(tmp_path / "model", ids, vectors)
    m = build_index(model, tmp_path / "index", IndexConfig(progress=False, backend=backend))
    nbrs = np.load(tmp_path / "index" / "neighbors.npy")
    exact, _ = exact_neighbors(vectors, vectors, 10, "cosine", np.arange(2000))
    assert recall(nbrs[:, :10], exact) >= 0.95
    assert m["recall_at_10"] >= 0.95 and m["recall_sample"] == 1000
    assert not (nbrs == np.arange(2000)[:, None]).any()  # never the item itself


def test_on_disk_build_gives_the_same_index(tmp_path):
    rng = np.random.default_rng(6)
    model = write_model_dir(tmp_path / "model", [f"i{i}" for i in range(200)],
                            rng.standard_normal((200, 8)))
    for name, threshold in (("ram", 10**6), ("disk", 2)):
        config = IndexConfig(k=5, n_jobs=1, on_disk_build_items=threshold, backend="annoy",
                             **QUIET)
        build_index(model, tmp_path / name, config)
    for name in ("items.ann", "neighbors.npy", "scores.npy"):
        assert (tmp_path / "ram" / name).read_bytes() == (tmp_path / "disk" / name).read_bytes()
    assert not list((tmp_path / "disk").glob(".*tmp"))


def test_thread_pool_gives_the_same_table_as_one_thread(tmp_path):
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((300, 8)).astype(np.float32)
    model = write_model_dir(tmp_path / "model", [f"i{i}" for i in range(300)], vectors)
    build_index(model, tmp_path / "index", IndexConfig(k=5, n_jobs=1, backend="annoy", **QUIET))
    spec = TableSpec(str(tmp_path / "index" / "items.ann"), str(tmp_path / "index/vectors.npy"),
                     str(tmp_path / "index" / "vectors.npy"), 8, "angular", 5, 200)
    one = compute_table(spec, 300, 64, n_jobs=1, progress=False)
    two = compute_table(spec, 300, 64, n_jobs=2, progress=False)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_exact_neighbors_matches_brute_force_in_small_blocks():
    rng = np.random.default_rng(5)
    q, items = rng.standard_normal((7, 4)), rng.standard_normal((30, 4))
    for metric in ("cosine", "dot"):
        idx, sc = exact_neighbors(q, items, 5, metric, np.arange(7), block_bytes=8 * 30)
        a = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q
        b = items / np.linalg.norm(items, axis=1, keepdims=True) if metric == "cosine" else items
        full = a @ b.T
        full[np.arange(7), np.arange(7)] = -np.inf
        assert idx.tolist() == np.argsort(-full, axis=1)[:, :5].tolist()
        np.testing.assert_allclose(sc, np.take_along_axis(full, idx, axis=1), rtol=1e-5)


def test_exact_neighbors_pads_and_breaks_ties_by_row():
    items = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    idx, sc = exact_neighbors(items[:1], items, 5, "dot", np.array([1]))
    assert idx.tolist() == [[0, 2, -1, -1, -1]]
    assert sc[0, :2].tolist() == [1, 0] and np.isnan(sc[0, 2:]).all()
    assert recall(np.array([[0, 5, -1]]), np.array([[0, 2, -1]])) == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [dict(k=0), dict(trees=0), dict(search_k=-5), dict(scoring="nearby"), dict(n_jobs=0),
     dict(recall_sample=-1), dict(batch_size=0), dict(use_beam="yes")],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        IndexConfig(**kwargs)


def test_auto_trees_grows_with_catalogue_and_is_capped():
    assert auto_trees(10) == 10 and auto_trees(1000) == 10
    assert auto_trees(10_000) < auto_trees(100_000) <= auto_trees(10**6) == 64


def test_bad_model_dirs_are_artifact_errors(circle_model, tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        build_index(tmp_path / "nothing-here", tmp_path / "i1", IndexConfig(**QUIET))
    np.save(circle_model / "context_vectors.npy", np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(ArtifactError, match="context_vectors.npy"):
        build_index(circle_model, tmp_path / "i2", IndexConfig(**QUIET))


def test_cli_prints_recall_and_refuses_to_overwrite(circle_model, tmp_path, capsys):
    out = tmp_path / "index"
    argv = ["index", "--model", str(circle_model), "--output", str(out), "--k", "2",
            "--scoring", "similar", "--backend", "annoy", "--trees", "3", "--search-k", "100",
            "--quiet"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "recall@2 vs exact on 5 items: 1.000 (target 0.95)" in text and "trees=3" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["k"], manifest["trees"], manifest["search_k"]) == (2, 3, 100)
    assert cli.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite", "--no-beam"]) == 0
