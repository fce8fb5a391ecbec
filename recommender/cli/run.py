"""``pin2vec run``: every stage in one command, with an honest evaluation at the end.

sessionize (Beam) -> time split -> train on the earlier sessions -> index -> evaluate on the later
sessions against most-popular and co-occurrence. With no arguments it runs on ``data_samples/`` into
``./pin2vec-out/``. Options it does not know are passed to ``sessionize`` (``--session-gap``,
``--actions``, ``--runner``, ``--direct_num_workers`` ...).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from recommender.core.artifacts import write_json
from recommender.core.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

RUN_MARKER = "run.json"


def find_samples() -> Path:
    """``data_samples/`` in the working directory, else the one beside this checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "data_samples" / "events").is_dir():
            return base / "data_samples"
    raise ConfigError(
        "no --input given and no data_samples/ found here or beside the package; "
        "pass --input PATH_OR_GLOB"
    )


def _check_output(out: Path, overwrite: bool) -> None:
    # A directory made by an earlier `pin2vec run` is replaced stage by stage; anything else that is
    # not empty needs --overwrite, so that a typo cannot wipe unrelated files.
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_MARKER).exists() and not overwrite:
        raise ArtifactError(
            f"output directory {out} is not empty and was not written by `pin2vec run`; "
            "pass --overwrite or choose another --output"
        )
    (out / RUN_MARKER).unlink(missing_ok=True)


def build_parser() -> argparse.ArgumentParser:
    from recommender.cli.train import add_config_arguments

    p = argparse.ArgumentParser(
        prog="pin2vec run",
        description="Run every stage: sessionize -> time split -> train -> index -> evaluate. "
        "With no options it runs on data_samples/ into ./pin2vec-out/ with the training "
        "settings chosen for the samples (data_samples/train_config.json). "
        "Unknown options go to `pin2vec sessionize` (e.g. --session-gap, --actions, --runner).",
    )
    p.add_argument("--input", action="append",
                   help="engagement log file or glob; repeat for several (default: data_samples)")
    p.add_argument("--output", default="pin2vec-out",
                   help="directory for sessions/, train_sessions/, test_sessions/, model/, "
                   "index/, evaluation.json (default ./pin2vec-out)")
    p.add_argument("--catalog", help="CSV/Parquet with item_id,title[,category] to show titles")
    p.add_argument("--train-config", help="JSON file of training settings (flags override it)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="latest share of sessions held out for evaluation (default 0.2)")
    p.add_argument("--k", type=int, default=10, help="evaluate HR@K etc. (default 10)")
    p.add_argument("--index-k", type=int, default=20, help="related items kept per item (20)")
    p.add_argument("--scoring", choices=("similar", "complementary"), default="similar",
                   help="similar: cosine neighbours; complementary: input x context (default "
                   "similar)")
    p.add_argument("--examples", type=int, default=3, help="items to show with their related")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --output that `pin2vec run` did not write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p)
    from recommender.cli.catalog import add_catalog_arguments

    add_catalog_arguments(p)  # --catalog-attributes: cold start, evaluated in cold_start.json
    return p


def main(argv: list[str] | None = None) -> int:
    import json

    from pipeline import sessions_job
    from recommender.cli.train import config_from_args
    from recommender.evaluate.next_item import (
        baselines,
        evaluate,
        index_recommender,
        load_eval_data,
        report,
    )
    from recommender.evaluate.splits import time_split
    from recommender.index.build import IndexConfig, build_index
    from recommender.train import train

    parser = build_parser()
    args, beam_and_pipeline = parser.parse_known_args(argv)
    started = time.monotonic()
    samples = None
    if not args.input:
        samples = find_samples()
        args.input = [str(samples / "events" / "*")]
        args.catalog = args.catalog or str(samples / "catalog.csv")
        if args.train_config is None and (samples / "train_config.json").is_file():
            args.train_config = str(samples / "train_config.json")
    base = {}
    if args.train_config:
        try:
            base = json.loads(Path(args.train_config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read --train-config {args.train_config}: {e}") from None
    config = config_from_args(args, base=base, progress=not args.quiet)
    out = Path(args.output)
    _check_output(out, args.overwrite)
    out.mkdir(parents=True, exist_ok=True)

    print(f"[1/5] sessionize {' '.join(args.input)} -> {out / 'sessions'}", flush=True)
    pipeline_argv = [a for path in args.input for a in ("--input", path)]
    pipeline_argv += ["--output", str(out / "sessions"), "--overwrite", *beam_and_pipeline]
    if args.quiet:
        pipeline_argv.append("--quiet")
    sessions = sessions_job.run(pipeline_argv)

    print(f"[2/5] time split: latest {args.test_fraction:.0%} of sessions held out", flush=True)
    split = time_split(out / "sessions", out / "train_sessions", out / "test_sessions",
                       args.test_fraction, overwrite=True)

    print(f"[3/5] train {config.architecture} dim={config.dim} window={config.window} "
          f"epochs={config.epochs} on {split['train']:,} sessions", flush=True)
    from recommender.cli.catalog import training_attributes

    attributes = training_attributes(args)
    model = train(out / "train_sessions", config, attributes=attributes)
    model.save(out / "model", overwrite=True)

    print(f"[4/5] index ({args.scoring}, k={args.index_k})", flush=True)
    index = build_index(out / "model", out / "index",
                        IndexConfig(k=max(args.index_k, args.k), scoring=args.scoring,
                                    progress=not args.quiet),
                        beam_args=beam_and_pipeline or None, overwrite=True)

    print(f"[5/5] evaluate next-item on {split['test']:,} held-out sessions", flush=True)
    data = load_eval_data(out / "train_sessions", out / "test_sessions")
    results = evaluate([index_recommender(out / "index"), *baselines(data.counter, args.k)],
                       data, args.k)
    evaluation = report(results, args.k)
    write_json(out / "evaluation.json", evaluation)

    _summary(out, sessions, split, model, index, results, evaluation, args)
    if attributes is not None:
        _cold_start(out, config, attributes)
    write_json(out / RUN_MARKER, {
        "format_version": 1, "kind": "run", "inputs": args.input,
        "train_config": config.to_dict(), "scoring": args.scoring,
        "seconds": round(time.monotonic() - started, 1), "evaluation": evaluation,
    })
    print(f"done in {time.monotonic() - started:.1f} s. Look up related items with:\n"
          f"  pin2vec related --index {out / 'index'} ITEM"
          + (f" --catalog {args.catalog}" if args.catalog else ""))
    return 0


def _cold_start(out: Path, config, attributes) -> None:
    """Hold out 20% of the trained items entirely and score them from their attributes."""
    from recommender.core.sessions import iter_sessions
    from recommender.evaluate.cold import evaluate_cold, format_table

    print("\ncold start: 20% of trained items held out entirely, served from their attributes")
    cold = evaluate_cold(list(iter_sessions(out / "train_sessions")),
                         list(iter_sessions(out / "test_sessions")),
                         attributes[0], config, attributes[1])
    write_json(out / "cold_start.json", cold)
    print(format_table(cold))


def _summary(out, sessions, split, model, index, results, evaluation, args) -> None:
    from recommender.cli.related import label, read_catalog
    from recommender.evaluate.next_item import format_table
    from recommender.lookup import RelatedItems

    counts = sessions["counts"]
    rejected = sum(counts["rejected"].values())
    epochs = model.manifest.get("epochs", [])
    speed = model.manifest.get("words_per_second")
    print()
    reasons = {k: v for k, v in counts["rejected"].items() if v}
    print(f"events   {counts['read']:,} read, {counts['valid']:,} valid, {rejected:,} rejected"
          + (f" {reasons}" if reasons else ""))
    print(f"sessions {counts['sessions']:,} ({split['train']:,} train / {split['test']:,} test, "
          f"split at {split['cutoff']}), {counts['items']:,} items, {counts['tokens']:,} tokens")
    print(f"model    {len(model.item_ids):,} items x {model.vectors.shape[1]} dims"
          + (f", {speed:,.0f} words/s" if speed else "")
          + (f", final loss {epochs[-1]['loss']:.4f}" if epochs else ""))
    recall = index.get("recall_at_10", index.get("recall@10"))
    print(f"index    {index.get('scoring')} k={index.get('k')} trees={index.get('trees')}"
          + (f", recall@10 {recall:.3f} vs exact" if recall is not None else ""))
    print()
    print(format_table(results, args.k))
    print(evaluation["verdict"])
    if args.examples <= 0:
        return
    catalog = read_catalog(args.catalog) if args.catalog else {}
    related = RelatedItems.load(out / "index")
    order = sorted(range(len(model.item_ids)), key=lambda i: -int(model.counts[i]))
    print()
    for row in order[: args.examples]:
        item = model.item_ids[row]
        print(f"{item}{label(catalog, item)}")
        for other, s in related.related(item, k=5):
            print(f"    {s:6.3f}  {other}{label(catalog, other)}")
