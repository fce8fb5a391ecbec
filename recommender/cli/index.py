"""``pin2vec index``: flags -> :class:`~recommender.index.build.IndexConfig` -> ``build_index``.

Options this parser does not know are Beam pipeline options (``--runner``,
``--direct_num_workers``, ``--direct_running_mode``, ...), used when the table is computed by the
Beam pipeline; anything that is neither is an error, so a typo never passes silently.
"""

from __future__ import annotations

import argparse
import logging

from recommender.index.backends import BACKENDS
from recommender.index.build import METRICS, IndexConfig, build_index
from recommender.index.cold import ColdConfig, describe

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec index",
        description="MODEL dir -> INDEX dir: related-item tables from an exact or approximate "
        "search backend, with measured (and calibrated) recall@10.",
        epilog="Other options (--runner, --direct_num_workers, --direct_running_mode, ...) are "
        "passed to Beam when the table is computed by the Beam pipeline.",
    )
    d = IndexConfig()
    p.add_argument("--model", required=True, help="MODEL dir (from pin2vec train)")
    p.add_argument("--output", required=True, help="INDEX dir to write")
    p.add_argument("--k", type=int, default=d.k, help="related items per item (default 20)")
    p.add_argument("--backend", choices=["auto", *sorted(BACKENDS)], default=d.backend,
                   help="auto (default): exact for catalogues where V^2*d is cheaper than an ANN, "
                   "else hnsw (if installed) or annoy")
    p.add_argument("--target-recall", type=float, default=d.target_recall,
                   help="raise the ANN's search effort until recall@10 vs exact on a sample "
                   "reaches this (default %(default)s; 0 = no calibration)")
    p.add_argument("--trees", type=int, help="Annoy trees (default: by catalogue size)")
    p.add_argument("--search-k", type=int, help="Annoy nodes inspected per query "
                   "(default: 50*trees; calibration may raise it)")
    p.add_argument("--hnsw-m", type=int, help="HNSW graph degree M (default 16)")
    p.add_argument("--ef", type=int, help="HNSW query effort ef (default max(32, K+3); "
                   "calibration may raise it)")
    p.add_argument("--scoring", choices=sorted(METRICS), default=d.scoring,
                   help="similar: cosine of input vectors; complementary: input x context (dot)")
    beam = p.add_mutually_exclusive_group()
    beam.add_argument("--beam", dest="use_beam", action="store_true", default=None,
                      help="compute the table with the Beam pipeline")
    beam.add_argument("--no-beam", dest="use_beam", action="store_false",
                      help="compute the table in-process")
    p.add_argument("--beam-threshold", type=int, default=d.beam_threshold,
                   help="use Beam above this many items (default %(default)s)")
    p.add_argument("--recall-sample", type=int, default=d.recall_sample,
                   help="items used to measure recall@10 against exact search (0 skips)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-jobs", type=int, default=d.n_jobs, help="cores to use (-1 = all)")
    c = ColdConfig()
    p.add_argument("--min-engagements", type=int, default=c.min_engagements,
                   help="items with fewer training engagements get their attribute vector "
                   "(models trained with --catalog-attributes; default %(default)s)")
    p.add_argument("--attribute-prior", type=float, default=c.prior,
                   help="blend rare items' vectors towards their attributes, weight "
                   "prior/(count+prior) (default %(default)s; 0 = off)")
    p.add_argument("--attribute-prior-max-count", type=int, default=c.prior_max_count,
                   help="blend only items with at most this many engagements (default "
                   "%(default)s; 0 = every item)")
    p.add_argument("--cold-scoring", default=c.scoring,
                   help="how cold items find related items: space = cosine of attribute "
                   "vectors, context = attribute vector x context vectors (skip-gram logit), "
                   "same:COLUMN = items sharing the item's COLUMN value first, ranked by "
                   "popularity*log(1+engagements) + (1-popularity)*cosine; "
                   "auto (default) = the model's choice, made by validation on pseudo-cold "
                   "items at training time")
    p.add_argument("--cold-popularity", type=float, default=c.popularity,
                   help="cold items' related items score + this * log(1 + engagements) "
                   "(default: the model's validated choice)")
    p.add_argument("--cold-candidates", action="store_true",
                   help="cold items may also be returned as related items")
    p.add_argument("--overwrite", action="store_true", help="replace an existing INDEX dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _check_beam_args(parser: argparse.ArgumentParser, beam_args: list[str]) -> None:
    """Reject unknown options that are not Beam's either (a typo must not pass silently)."""
    if not beam_args:
        return
    from apache_beam.options.pipeline_options import PipelineOptions

    known = PipelineOptions([]).get_all_options()
    for arg in beam_args:
        name = arg[2:].split("=", 1)[0].replace("-", "_") if arg.startswith("--") else None
        if name is not None and name not in known:
            parser.error(f"unrecognized argument {arg} (neither a pin2vec index nor a Beam option)")


def main(argv: list[str] | None = None) -> int:
    """``pin2vec index``; unknown options are Beam pipeline options."""
    parser = _parser()
    args, beam_args = parser.parse_known_args(argv)
    _check_beam_args(parser, beam_args)
    if beam_args and args.use_beam is False:
        log.warning("ignoring Beam options %s: --no-beam computes the table in-process", beam_args)
    config = IndexConfig(
        k=args.k, backend=args.backend, target_recall=args.target_recall, trees=args.trees,
        search_k=args.search_k, hnsw_m=args.hnsw_m, ef=args.ef, scoring=args.scoring,
        beam_threshold=args.beam_threshold, use_beam=args.use_beam,
        recall_sample=args.recall_sample, seed=args.seed, n_jobs=args.n_jobs,
        batch_size=args.batch_size, progress=not args.quiet,
    )
    cold = ColdConfig(min_engagements=args.min_engagements, prior=args.attribute_prior,
                      cold_candidates=args.cold_candidates,
                      popularity=args.cold_popularity, scoring=args.cold_scoring,
                      prior_max_count=args.attribute_prior_max_count)
    m = build_index(args.model, args.output, config, beam_args=beam_args, overwrite=args.overwrite,
                    cold=cold)
    recall_text = "n/a" if m["recall_at_10"] is None else f"{m['recall_at_10']:.3f}"
    settings = ", ".join(f"{k}={v}" for k, v in m["backend_settings"].items())
    target = "" if m["target_recall"] is None else f" (target {m['target_recall']})"
    steps = len(m["calibration"])
    tuned = f", calibrated in {steps - 1} step(s)" if steps > 1 else ""
    print(
        f"index: {m['counts']['items']} items, K={m['k']}, scoring={m['scoring']} ({m['metric']}), "
        f"backend={m['backend']}{f' ({settings})' if settings else ''}{tuned}, "
        f"table by {m['table_engine']}\n"
        f"recall@{m['recall_depth']} vs exact on {m['recall_sample']} items: {recall_text}"
        f"{target}\n"
        f"build {m['build_seconds']:.1f}s, calibration {m['calibrate_seconds']:.1f}s, "
        f"table {m['table_seconds']:.1f}s, recall check {m['recall_seconds']:.1f}s "
        f"-> {args.output}"
    )
    if m.get("cold"):
        print(f"cold start: {m['counts']['warm']} warm and {m['counts']['cold']} cold items "
              f"({m['counts']['attribute_values']} attribute values); cold items: "
              f"{describe(m['cold'])}")
    return 0
