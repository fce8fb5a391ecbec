"""``pin2vec cooccurrence``: SESSIONS dir -> co-occurrence INDEX dir, counted by Apache Beam.

``'Cooccurrence' >> Cooccurrence(vocab_path, config, buckets)`` reads session batches
(``ReadFromParquetBatched``: one Arrow table per row group, no element per session), and in each
batch turns items into rows of the sorted vocabulary, counts the pairs of the batch with the same
numpy code as :func:`recommender.scorers.cooccurrence` (passed in as a ``BatchCounter``: the
pipeline imports no scorer) and sums them per packed int64 key
``a * V + b`` -- the batch leaves as a few partial sums, one per bucket of query rows
(``a % buckets``). ``CombinePerKey`` merges those partial sums per bucket; Beam lifts the combine
in front of the shuffle, so each worker ships one array pair per bucket, not one element per
pair. Item counts are a global combine of per-batch ``bincount`` arrays, used as a side input.
Each bucket then holds every pair of its query rows: it is normalised and cut to the top K there,
and written as ``.npy`` shards that the driver gathers, fills with popular items and writes as
an INDEX dir (``pin2vec cooccurrence``, :mod:`recommender.cli.cooccurrence`).

Same table as the single-process numpy reference (``--engine numpy``) -- tested on random
sessions. Beam flags (``--runner``, ``--direct_num_workers``, ``--direct_running_mode``) pass
through; locally the runner is the in-process FnApiRunner (:mod:`pipeline.runner`).
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline._beam import FileSystems, beam
from pipeline.npy import read_npy, write_npy
from pipeline.runner import make_pipeline
from pipeline.sessions_job import _filtered_worker_stderr
from recommender.core.errors import ArtifactError

log = logging.getLogger(__name__)
PipelineOptions = beam.options.pipeline_options.PipelineOptions
Metrics = beam.metrics.Metrics


def read_vocabulary(sessions_dir: str) -> pa.Array:
    """Sorted ``item_id`` values of the SESSIONS dir's ``items.parquet``."""
    path = FileSystems.join(sessions_dir, "items.parquet")
    try:
        with FileSystems.open(path) as f:
            ids = pq.read_table(io.BytesIO(f.read()), columns=["item_id"]).column(0)
    except (OSError, pa.ArrowException) as e:
        raise ArtifactError(f"cannot read {path}: {e}") from None
    ids = ids.combine_chunks().cast(pa.string())
    return ids.take(pc.sort_indices(ids))


class CountBatch(beam.DoFn):
    """Arrow table of sessions -> per-bucket partial pair sums, and tagged item counts."""

    COUNTS = "counts"

    def __init__(self, sessions_dir: str, counter, buckets: int):
        self.sessions_dir, self.counter, self.buckets = sessions_dir, counter, buckets
        self.sessions = Metrics.counter("cooccurrence", "sessions")
        self.pairs = Metrics.counter("cooccurrence", "distinct_pairs_per_batch")

    def setup(self):
        self.vocab = read_vocabulary(self.sessions_dir)

    def process(self, table: pa.Table):
        items = table.column("items").combine_chunks()
        flat = pc.list_flatten(items)
        rows = pc.index_in(flat, value_set=self.vocab)
        if rows.null_count:
            raise ArtifactError(f"pin2vec: {self.sessions_dir}: sessions hold items missing from "
                                "items.parquet; re-run `pin2vec sessionize`")
        rows = rows.to_numpy(zero_copy_only=False).astype(np.int32)
        lengths = pc.list_value_length(items).fill_null(0).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        v = len(self.vocab)
        yield beam.pvalue.TaggedOutput(self.COUNTS, self.counter.item_counts(rows, offsets, v))
        keys, weights = self.counter.pairs(rows, offsets, v)
        self.sessions.inc(len(lengths))
        self.pairs.inc(len(keys))
        bucket = (keys // v) % self.buckets  # by query row: a bucket holds all of a row's pairs
        for b in np.unique(bucket).tolist():
            m = bucket == b
            yield int(b), (keys[m], weights[m])


class SumPairs(beam.CombineFn):
    """Merge (keys, weights) partial sums into one sorted, summed pair of arrays."""

    def __init__(self, counter):
        self.counter = counter

    def create_accumulator(self):
        return (np.empty(0, np.int64), np.empty(0))

    def add_input(self, acc, item):
        return self.merge_accumulators([acc, item])

    def merge_accumulators(self, accs):
        accs = list(accs)
        return self.counter.merge(np.concatenate([a[0] for a in accs]),
                                  np.concatenate([a[1] for a in accs]))

    def extract_output(self, acc):
        return acc


class SumArrays(beam.CombineFn):
    """Element-wise sum of equally shaped int64 arrays (item counts)."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, item):
        return item.astype(np.int64) if acc is None else acc + item

    def merge_accumulators(self, accs):
        out = None
        for a in accs:
            if a is not None:
                out = a if out is None else out + a
        return out

    def extract_output(self, acc):
        return acc


class TopKBucket(beam.DoFn):
    """(bucket, summed pairs) + item counts -> the bucket's rows of the table, as shard files."""

    def __init__(self, counter, n_items: int, shard_dir: str):
        self.counter, self.n_items, self.shard_dir = counter, n_items, shard_dir

    def process(self, element, counts):
        bucket, (keys, weights) = element
        rows, nbrs, scores = self.counter.top_k(keys, weights, counts, self.n_items)
        stem = FileSystems.join(self.shard_dir, f"bucket-{bucket:05d}")
        for name, array in (("scores", scores), ("rows", rows), ("neighbors", nbrs)):
            write_npy(f"{stem}.{name}.npy", array)
        yield bucket


class Cooccurrence(beam.PTransform):
    """PBegin -> the buckets whose table shards were written (and the item counts, tagged)."""

    def __init__(self, sessions_dir: str, counter, n_items: int, shard_dir: str,
                 buckets: int = 16):
        super().__init__()
        self.sessions_dir, self.counter, self.n_items = sessions_dir, counter, n_items
        self.shard_dir, self.buckets = shard_dir, buckets

    def expand(self, pbegin):
        pattern = FileSystems.join(self.sessions_dir, "sessions-*.parquet")
        batches = pbegin | "ReadSessions" >> beam.io.ReadFromParquetBatched(
            pattern, columns=["items"])
        counted = batches | "CountPairs" >> beam.ParDo(
            CountBatch(self.sessions_dir, self.counter, self.buckets)
        ).with_outputs(CountBatch.COUNTS, main="pairs")
        counts = counted[CountBatch.COUNTS] | "SumCounts" >> beam.CombineGlobally(SumArrays())
        done = (
            counted.pairs
            | "SumPairs" >> beam.CombinePerKey(SumPairs(self.counter))
            | "TopK" >> beam.ParDo(TopKBucket(self.counter, self.n_items, self.shard_dir),
                                   counts=beam.pvalue.AsSingleton(counts))
        )
        _ = counts | "WriteCounts" >> beam.Map(
            lambda c, path: write_npy(path, c), FileSystems.join(self.shard_dir, "counts.npy"))
        return done


def gather(shard_dir: str, n_items: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item counts int64 [2, V], neighbours int32 [V, K], scores float32 [V, K]) from shards."""
    counts = read_npy(FileSystems.join(shard_dir, "counts.npy"))
    nbrs = np.full((n_items, k), -1, np.int32)
    scores = np.full((n_items, k), np.nan, np.float32)
    stems = sorted(m.path[: -len(".neighbors.npy")] for m in FileSystems.match(
        [FileSystems.join(shard_dir, "bucket-*.neighbors.npy")])[0].metadata_list)
    for stem in stems:
        rows = read_npy(f"{stem}.rows.npy")
        nbrs[rows] = read_npy(f"{stem}.neighbors.npy")
        scores[rows] = read_npy(f"{stem}.scores.npy")
    return counts, nbrs, scores


def run_beam(sessions_dir: str, counter, k: int, beam_args: list[str], work_dir: str,
             buckets: int = 16):
    """Run the pipeline with ``beam_args``: (vocabulary, counts, neighbours, scores)."""
    vocab = read_vocabulary(sessions_dir)
    shard_dir = FileSystems.join(work_dir, ".cooccurrence-shards")
    if FileSystems.exists(shard_dir):
        FileSystems.delete([shard_dir])
    FileSystems.mkdirs(shard_dir)
    options = PipelineOptions(beam_args)
    multi = options.get_all_options().get("direct_running_mode") == "multi_processing"
    noisy = logging.getLogger("apache_beam.runners.portability.local_job_service")
    if noisy.level == logging.NOTSET:  # relays each worker's start-up warnings
        noisy.setLevel(logging.ERROR)
    with _filtered_worker_stderr(multi), make_pipeline(options) as p:
        _ = p | "Cooccurrence" >> Cooccurrence(sessions_dir, counter, len(vocab), shard_dir,
                                               buckets)
    counts, nbrs, scores = gather(shard_dir, len(vocab), k)
    FileSystems.delete([shard_dir])
    return vocab, counts, nbrs, scores
