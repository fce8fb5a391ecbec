"""``pin2vec cooccurrence``: SESSIONS dir -> co-occurrence INDEX dir, counted by Apache Beam.

``'Cooccurrence' >> Cooccurrence(vocab_path, config, buckets)`` reads session batches
(``ReadFromParquetBatched``: one Arrow table per row group, no element per session), and in each
batch turns items into rows of the sorted vocabulary, counts the pairs of the batch with the same
numpy code as :func:`recommender.scorers.cooccurrence` and sums them per packed int64 key
``a * V + b`` -- the batch leaves as a few partial sums, one per bucket of query rows
(``a % buckets``). ``CombinePerKey`` merges those partial sums per bucket; Beam lifts the combine
in front of the shuffle, so each worker ships one array pair per bucket, not one element per
pair. Item counts are a global combine of per-batch ``bincount`` arrays, used as a side input.
Each bucket then holds every pair of its query rows: it is normalised and cut to the top K there,
and written as ``.npy`` shards that the driver gathers, fills with popular items and writes as
an INDEX dir through :func:`recommender.scorers.write_index`.

Same table as the single-process numpy reference (``--engine numpy``) -- tested on random
sessions. Beam flags (``--runner``, ``--direct_num_workers``, ``--direct_running_mode``) pass
through; locally the runner is the in-process FnApiRunner (:mod:`pipeline.runner`).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline._beam import FileSystems, beam
from pipeline.runner import make_pipeline
from pipeline.sessions_job import _filtered_worker_stderr
from recommender.core.errors import ArtifactError, ConfigError
from recommender.core.sessions import read_sessions_manifest, session_files
from recommender.scorers.cooccurrence import NORMALIZE, WEIGHTING, CooccurrenceConfig, normalise
from recommender.scorers.pairs import PairCounts, aggregate_keys, count_pairs, distinct_per_session
from recommender.scorers.table import ScoredTable, fill_popular, top_k_rows, write_index

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

    def __init__(self, sessions_dir: str, config: CooccurrenceConfig, buckets: int):
        self.sessions_dir, self.config, self.buckets = sessions_dir, config, buckets
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
        v, c = len(self.vocab), self.config
        counts = np.bincount(rows, minlength=v)
        in_sessions = np.bincount(distinct_per_session(rows, offsets)[0], minlength=v)
        yield beam.pvalue.TaggedOutput(self.COUNTS, np.stack([counts, in_sessions]))
        pairs = count_pairs(rows, offsets, v, c.window, c.directed, c.weighting, c.binary)
        self.sessions.inc(len(lengths))
        self.pairs.inc(len(pairs.a))
        bucket = pairs.a % self.buckets
        keys = pairs.keys()
        for b in np.unique(bucket).tolist():
            m = bucket == b
            yield int(b), (keys[m], pairs.weights[m])


class SumPairs(beam.CombineFn):
    """Merge (keys, weights) partial sums into one sorted, summed pair of arrays."""

    def create_accumulator(self):
        return (np.empty(0, np.int64), np.empty(0))

    def add_input(self, acc, item):
        return self.merge_accumulators([acc, item])

    def merge_accumulators(self, accs):
        accs = list(accs)
        return aggregate_keys(np.concatenate([a[0] for a in accs]),
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


def _write_npy(path: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    with FileSystems.create(path) as f:
        f.write(buf.getvalue())


def _read_npy(path: str) -> np.ndarray:
    with FileSystems.open(path) as f:
        return np.load(io.BytesIO(f.read()), allow_pickle=False)


class TopKBucket(beam.DoFn):
    """(bucket, summed pairs) + item counts -> the bucket's rows of the table, as shard files."""

    def __init__(self, config: CooccurrenceConfig, n_items: int, shard_dir: str):
        self.config, self.n_items, self.shard_dir = config, n_items, shard_dir

    def process(self, element, counts):
        bucket, (keys, weights) = element
        v, c = self.n_items, self.config
        pairs = PairCounts((keys // v).astype(np.int32), (keys % v).astype(np.int32), weights, v)
        n = (counts[1] if c.binary else counts[0]).astype(np.float64)
        rows, nbrs, scores = top_k_rows(pairs.a, pairs.b, normalise(pairs, n, c), c.k,
                                        tiebreak=counts[0][pairs.b])
        stem = FileSystems.join(self.shard_dir, f"bucket-{bucket:05d}")
        for name, array in (("scores", scores), ("rows", rows), ("neighbors", nbrs)):
            _write_npy(f"{stem}.{name}.npy", array)
        yield bucket


class Cooccurrence(beam.PTransform):
    """PBegin -> the buckets whose table shards were written (and the item counts, tagged)."""

    def __init__(self, sessions_dir: str, config: CooccurrenceConfig, n_items: int,
                 shard_dir: str, buckets: int = 16):
        super().__init__()
        self.sessions_dir, self.config, self.n_items = sessions_dir, config, n_items
        self.shard_dir, self.buckets = shard_dir, buckets

    def expand(self, pbegin):
        pattern = FileSystems.join(self.sessions_dir, "sessions-*.parquet")
        batches = pbegin | "ReadSessions" >> beam.io.ReadFromParquetBatched(
            pattern, columns=["items"])
        counted = batches | "CountPairs" >> beam.ParDo(
            CountBatch(self.sessions_dir, self.config, self.buckets)
        ).with_outputs(CountBatch.COUNTS, main="pairs")
        counts = counted[CountBatch.COUNTS] | "SumCounts" >> beam.CombineGlobally(SumArrays())
        done = (
            counted.pairs
            | "SumPairs" >> beam.CombinePerKey(SumPairs())
            | "TopK" >> beam.ParDo(TopKBucket(self.config, self.n_items, self.shard_dir),
                                   counts=beam.pvalue.AsSingleton(counts))
        )
        _ = counts | "WriteCounts" >> beam.Map(
            lambda c, path: _write_npy(path, c), FileSystems.join(self.shard_dir, "counts.npy"))
        return done


def gather(shard_dir: str, vocab: pa.Array, config: CooccurrenceConfig) -> ScoredTable:
    """Assemble the shards into the table over the items that occur, filled with popular items."""
    v = len(vocab)
    counts = _read_npy(FileSystems.join(shard_dir, "counts.npy"))
    nbrs = np.full((v, config.k), -1, np.int32)
    scores = np.full((v, config.k), np.nan, np.float32)
    stems = sorted(m.path[: -len(".neighbors.npy")] for m in FileSystems.match(
        [FileSystems.join(shard_dir, "bucket-*.neighbors.npy")])[0].metadata_list)
    for stem in stems:
        rows = _read_npy(f"{stem}.rows.npy")
        nbrs[rows], scores[rows] = _read_npy(f"{stem}.neighbors.npy"), _read_npy(
            f"{stem}.scores.npy")
    used = counts[0] > 0  # items.parquet may list items no session holds: drop them
    remap = np.cumsum(used) - 1
    nbrs, scores, ids = nbrs[used], scores[used], vocab.filter(pa.array(used))
    nbrs = np.where(nbrs >= 0, remap[np.maximum(nbrs, 0)], -1).astype(np.int32)
    occurrences = counts[0][used]
    filled = 0
    if config.fill_popular:
        order = np.lexsort((np.arange(len(occurrences)), -occurrences))
        filled = fill_popular(nbrs, scores, order)
    return ScoredTable(ids, occurrences, nbrs, scores, "cooccurrence", config.label,
                       {**asdict(config), "filled_slots": filled})


def run_beam(sessions_dir: str, config: CooccurrenceConfig, beam_args: list[str],
             work_dir: str, buckets: int = 16) -> ScoredTable:
    """Run the pipeline with ``beam_args`` and return the gathered table."""
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
        _ = p | "Cooccurrence" >> Cooccurrence(sessions_dir, config, len(vocab), shard_dir,
                                               buckets)
    table = gather(shard_dir, vocab, config)
    FileSystems.delete([shard_dir])
    return table


def run_numpy(sessions_dir: str, config: CooccurrenceConfig) -> ScoredTable:
    """The single-process numpy reference."""
    from recommender.scorers import cooccurrence, from_sessions_dir

    return cooccurrence(from_sessions_dir(sessions_dir), config)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec cooccurrence",
        description="SESSIONS dir -> co-occurrence INDEX dir (Apache Beam). The directed, "
        "distance-weighted variant is the sequential-rules scorer: --window 10 --directed "
        "--weighting distance. Beam flags (--runner, --direct_num_workers, "
        "--direct_running_mode multi_processing, ...) pass through.",
    )
    p.add_argument("--sessions", required=True, help="SESSIONS dir (pipeline output)")
    p.add_argument("--output", required=True, help="INDEX dir to write")
    p.add_argument("--window", type=int, default=5,
                   help="count items at most N positions apart; 0 = whole session, counted at "
                   "most 100 positions apart (default 5)")
    p.add_argument("--directed", action="store_true",
                   help="only 'b came after a' counts for a (sequential rules)")
    p.add_argument("--weighting", choices=WEIGHTING, default="none",
                   help="none: each pair counts 1; distance: 1/d (default none)")
    p.add_argument("--normalize", choices=NORMALIZE, default="shrunk",
                   help="raw counts; cosine n_ab/sqrt(n_a n_b); shrunk n_ab/(sqrt(n_a n_b)+"
                   "shrink), cosine with rare items shrunk toward raw counts (default shrunk)")
    p.add_argument("--shrink", type=float, default=10.0, help="shrunk's constant (default 10)")
    p.add_argument("--sessions-as-sets", action="store_true",
                   help="each pair once per session (session item-kNN with --normalize cosine)")
    p.add_argument("--k", type=int, default=20, help="related items per item (default 20)")
    p.add_argument("--no-fill", action="store_true",
                   help="leave short rows padded instead of filling them with popular items")
    p.add_argument("--engine", choices=("beam", "numpy"), default="beam",
                   help="beam (default) or the single-process numpy reference")
    p.add_argument("--buckets", type=int, default=16,
                   help="buckets of query items the pairs are combined into (default 16)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    return p


def main(argv: list[str] | None = None) -> int:
    from pipeline.options import check_beam_args
    from recommender.core.artifacts import prepare_output_dir

    args, beam_args = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    check_beam_args(beam_args)
    if args.buckets < 1:
        raise ConfigError("--buckets must be at least 1")
    config = CooccurrenceConfig(window=args.window, directed=args.directed,
                                weighting=args.weighting, normalize=args.normalize,
                                shrink=args.shrink, binary=args.sessions_as_sets, k=args.k,
                                fill_popular=not args.no_fill)
    read_sessions_manifest(args.sessions)
    session_files(args.sessions)
    sessions = os.path.abspath(args.sessions)
    out = prepare_output_dir(args.output, args.overwrite)
    if args.engine == "numpy":
        table = run_numpy(sessions, config)
    else:
        table = run_beam(sessions, config, beam_args, str(out.resolve()), args.buckets)
    manifest = write_index(table, out, overwrite=True, extra={
        "engine": args.engine, "beam_args": beam_args, "sessions_dir": sessions})
    c = manifest["counts"]
    print(f"wrote {table.label} table: {c['items']:,} items x K={config.k}, "
          f"{c['related_pairs']:,} related pairs ({table.settings['filled_slots']:,} filled "
          f"with popular items) to {args.output}")
    return 0


if __name__ == "__main__":
    from recommender.cli.main import main as cli_main

    sys.exit(cli_main(["cooccurrence", *sys.argv[1:]]))
