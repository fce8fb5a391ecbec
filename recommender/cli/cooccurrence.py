"""``pin2vec cooccurrence``: SESSIONS dir -> co-occurrence INDEX dir (Beam, or the numpy reference).

The directed, distance-weighted variant is the sequential-rules scorer (``--window 10 --directed
--weighting distance``); ``--sessions-as-sets --normalize cosine`` is session item-kNN. The Beam
job is :mod:`pipeline.cooccurrence_job`; it runs the scorer's own arithmetic
(:class:`recommender.scorers.cooccurrence.BatchCounter`), so both engines write the same table.
"""

from __future__ import annotations

import argparse
import os
import sys

from recommender.core.artifacts import file_digest, prepare_output_dir
from recommender.core.errors import ConfigError
from recommender.core.sessions import read_sessions_manifest, session_files
from recommender.scorers.cooccurrence import (
    NORMALIZE,
    WEIGHTING,
    BatchCounter,
    CooccurrenceConfig,
    cooccurrence,
)
from recommender.scorers.data import from_sessions_dir
from recommender.scorers.table import ScoredTable, write_index


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
                   "shrink): cosine with rare items shrunk toward raw counts (default shrunk)")
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


def run_beam(sessions: str, config: CooccurrenceConfig, beam_args: list[str], work_dir: str,
             buckets: int = 16) -> ScoredTable:
    """The table computed by the Beam job."""
    from pipeline import cooccurrence_job

    counter = BatchCounter(config)
    vocab, counts, nbrs, scores = cooccurrence_job.run_beam(sessions, counter, config.k,
                                                            beam_args, work_dir, buckets)
    return counter.finish(vocab, counts, nbrs, scores)


def main(argv: list[str] | None = None) -> int:
    from pipeline.options import check_beam_args

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
    out = prepare_output_dir(args.output, args.overwrite, kind="index", inputs=[sessions])
    if args.engine == "numpy":
        table = cooccurrence(from_sessions_dir(sessions), config)
    else:
        table = run_beam(sessions, config, beam_args, str(out.resolve()), args.buckets)
    manifest = write_index(table, out, overwrite=True, extra={
        "engine": args.engine, "beam_args": beam_args, "sessions_dir": sessions,
        "sessions_digest": file_digest(os.path.join(sessions, "manifest.json"))})
    c = manifest["counts"]
    print(f"wrote {table.label} table: {c['items']:,} items x K={config.k}, "
          f"{c['related_pairs']:,} related pairs ({table.settings['filled_slots']:,} filled "
          f"with popular items) to {args.output}")
    return 0
