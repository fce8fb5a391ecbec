"""The Beam co-occurrence job equals the numpy reference; its INDEX dir serves lookups."""

from __future__ import annotations

import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from factories import write_sessions_dir

from pipeline.cooccurrence_job import Cooccurrence, gather, read_vocabulary
from recommender.cli.cooccurrence import main
from recommender.lookup import RelatedItems
from recommender.scorers import CooccurrenceConfig, cooccurrence, from_sessions_dir
from recommender.scorers.cooccurrence import BatchCounter


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    rng = np.random.default_rng(7)
    lists = [[f"i{x:02d}" for x in rng.integers(0, 40, rng.integers(2, 12))] for _ in range(400)]
    return write_sessions_dir(tmp_path_factory.mktemp("s") / "sessions", lists, shards=3)


# Weights 1 and 1/2 add up exactly in floating point, so the tables must be identical even
# though Beam sums the partial counts in another order.
CONFIGS = [
    CooccurrenceConfig(window=3, normalize="raw", k=8),
    CooccurrenceConfig(window=2, directed=True, weighting="distance", normalize="shrunk", k=8),
    CooccurrenceConfig(window=0, binary=True, normalize="cosine", k=8),
]


def test_beam_tables_equal_numpy_reference(sessions, tmp_path):
    vocab = read_vocabulary(str(sessions))
    with test_pipeline.TestPipeline() as p:  # one pipeline, one composite per configuration
        for i, config in enumerate(CONFIGS):
            (tmp_path / str(i)).mkdir()
            _ = p | f"C{i}" >> Cooccurrence(str(sessions), BatchCounter(config), len(vocab),
                                             str(tmp_path / str(i)), buckets=3)
    data = from_sessions_dir(sessions)
    for i, config in enumerate(CONFIGS):
        counts, nbrs, scores = gather(str(tmp_path / str(i)), len(vocab), config.k)
        beam_table = BatchCounter(config).finish(vocab, counts, nbrs, scores)
        ref = cooccurrence(data, config)
        assert beam_table.item_ids.equals(ref.item_ids)
        assert np.array_equal(beam_table.counts, ref.counts)
        assert np.array_equal(beam_table.neighbors, ref.neighbors), config
        assert np.array_equal(beam_table.scores, ref.scores, equal_nan=True), config


def test_cli_writes_an_index_related_items_serves(sessions, tmp_path):
    out = tmp_path / "index"
    assert main(["--sessions", str(sessions), "--output", str(out), "--window", "10",
                 "--directed", "--weighting", "distance", "--k", "5"]) == 0
    related = RelatedItems.load(out, verify=True)
    assert related.manifest["label"] == "sequential rules"
    assert related.manifest["settings"]["directed"] is True
    ref = cooccurrence(from_sessions_dir(sessions), CooccurrenceConfig(
        window=10, directed=True, weighting="distance", normalize="shrunk", k=5))
    first = ref.item_ids[0].as_py()
    expect = [ref.item_ids[int(j)].as_py() for j in ref.neighbors[0]]
    assert [i for i, _ in related.related(first, k=5)] == expect
