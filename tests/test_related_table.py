"""Beam fan-out of the related table: same table as the in-process engine, shard by shard."""

from __future__ import annotations

import numpy as np
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.table_job import RelatedTable, gather
from recommender.index.build import IndexConfig, build_index
from recommender.index.table import (
    TableQuerier,
    TableSpec,
    batch_ranges,
    compute_table,
    write_table,
)
from tests.factories import write_model_dir

N, DIM, K, BATCH = 250, 8, 6, 40


def _model(tmp_path):
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    context = rng.standard_normal((N, DIM)).astype(np.float32)
    return write_model_dir(tmp_path / "model", [f"i{i}" for i in range(N)], vectors, context)


def test_batch_ranges_cover_every_row_once():
    assert batch_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_ranges(8, 4) == [(0, 4), (4, 8)]


def test_composite_writes_one_shard_per_range_equal_to_in_process(tmp_path):
    model = _model(tmp_path)
    build_index(model, tmp_path / "index", IndexConfig(k=K, progress=False, recall_sample=0,
                                                       backend="annoy"))
    index = tmp_path / "index"
    spec = TableSpec(str(index / "items.ann"), str(index / "vectors.npy"),
                     str(index / "vectors.npy"), DIM, "angular", K, 300)
    shards = tmp_path / "shards"
    shards.mkdir()
    with test_pipeline.TestPipeline() as p:
        done = p | "RelatedTable" >> RelatedTable(spec, TableQuerier, batch_ranges(N, BATCH),
                                                  str(shards))
        assert_that(done, equal_to(batch_ranges(N, BATCH)))
    beam_nbrs, beam_scores = gather(str(shards), batch_ranges(N, BATCH), K)
    nbrs, scores = compute_table(spec, N, BATCH, n_jobs=1, progress=False)
    assert np.array_equal(beam_nbrs, nbrs) and np.array_equal(beam_scores, scores)
    assert len(list(shards.iterdir())) == 2 * len(batch_ranges(N, BATCH))


def test_build_index_with_beam_multiprocessing_equals_in_process(tmp_path):
    model = _model(tmp_path)
    config = IndexConfig(k=K, scoring="complementary", progress=False, recall_sample=50,
                         batch_size=BATCH, use_beam=True, backend="annoy")
    beam_args = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    m = build_index(model, tmp_path / "beam", config, beam_args=beam_args)
    assert m["table_engine"] == "beam" and m["recall_at_10"] >= 0.9
    assert not (tmp_path / "beam" / ".table-shards").exists()
    # The in-process engine on the same Annoy file must give the same bytes.
    spec = TableSpec(str(tmp_path / "beam" / "items.ann"), str(tmp_path / "beam/vectors.npy"),
                     str(model / "context_vectors.npy"), DIM, "dot", K, m["search_k"])
    nbrs, scores = compute_table(spec, N, BATCH, n_jobs=1, progress=False)
    write_table(tmp_path / "local", [f"i{i}" for i in range(N)], nbrs, scores)
    for name in ("neighbors.npy", "scores.npy", "related.parquet"):
        assert (tmp_path / "beam" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_composite_with_the_exact_backend_needs_no_index_file(tmp_path):
    model = _model(tmp_path)
    m = build_index(model, tmp_path / "index", IndexConfig(
        k=K, progress=False, recall_sample=0, backend="exact", scoring="complementary"))
    index = tmp_path / "index"
    spec = TableSpec("", str(index / "vectors.npy"), str(index / "context_vectors.npy"), DIM,
                     "dot", K, backend="exact")
    shards = tmp_path / "shards"
    shards.mkdir()
    with test_pipeline.TestPipeline() as p:
        _ = p | "RelatedTable" >> RelatedTable(spec, TableQuerier, batch_ranges(N, BATCH),
                                               str(shards))
    beam_nbrs, beam_scores = gather(str(shards), batch_ranges(N, BATCH), K)
    assert np.array_equal(beam_nbrs, np.load(index / "neighbors.npy"))
    assert np.array_equal(beam_scores, np.load(index / "scores.npy"))
    assert m["backend"] == "exact" and "items.ann" not in m["files"]
