"""``pin2vec run``: every stage in one command, with an honest evaluation at the end.

sessionize (Beam) -> time split -> train on the earlier sessions -> index -> evaluate on the later
sessions against most-popular and co-occurrence. With no arguments it runs on ``data_samples/`` into
``./pin2vec-out/``. Options it does not know are passed to ``sessionize`` (``--session-gap``,
``--actions``, ``--runner``, ``--direct_num_workers`` ...).
"""

from __future__ import annotations

import argparse
import glob
import logging
import time
from pathlib import Path

from recommender.core.artifacts import check_not_input, write_json
from recommender.core.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

RUN_MARKER = "run.json"
STAGE_DIRS = ("sessions", "train_sessions", "test_sessions", "model", "index")


def find_samples() -> Path:
    """``data_samples/`` in the working directory, else the one beside this checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "data_samples" / "events").is_dir():
            return base / "data_samples"
    raise ConfigError(
        "no --input given and no data_samples/ found here or beside the package; "
        "pass --input PATH_OR_GLOB"
    )


def _check_output(out: Path, overwrite: bool, inputs=()) -> None:
    # A directory made by an earlier `pin2vec run` is replaced stage by stage; anything else that is
    # not empty needs --overwrite, so that a typo cannot wipe unrelated files. No stage directory
    # may hold an input (each is emptied when its stage starts).
    matched = [p for pattern in inputs for p in (glob.glob(pattern) or [pattern])]
    for stage in STAGE_DIRS:
        check_not_input(out / stage, matched)
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_MARKER).exists() and not overwrite:
        raise ArtifactError(
            f"output directory {out} is not empty and was not written by `pin2vec run`; "
            "pass --overwrite or choose another --output"
        )
    (out / RUN_MARKER).unlink(missing_ok=True)


def build_parser(sessionize_flags: bool = True) -> argparse.ArgumentParser:
    """The parser of ``pin2vec run``; with ``sessionize_flags`` it also lists (and checks) the
    flags passed on to ``pin2vec sessionize``, so that ``--help`` shows every flag run accepts."""
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
    p.add_argument("--target", nargs="+", default=["next"], metavar="next|window N",
                   help="what counts as a hit: 'next' = the next item of the session (default); "
                   "'window N' = any of the next N items (for logs with many same-time ties)")
    p.add_argument("--index-k", type=int, default=20, help="related items kept per item (20)")
    p.add_argument("--scoring", choices=("similar", "complementary"), default="similar",
                   help="similar: cosine neighbours; complementary: input x context (default "
                   "similar)")
    p.add_argument("--examples", default="3", metavar="N|ITEM,ITEM",
                   help="show the related items of the N most popular items (default 3), or of "
                   "the given comma-separated item ids")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --output that `pin2vec run` did not write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p.add_argument_group("training (see pin2vec train --help)"))
    if sessionize_flags:
        from pipeline.options import SessionizeOptions

        group = p.add_argument_group(
            "sessionize (passed to pin2vec sessionize; Beam flags such as --runner too)")
        SessionizeOptions._add_argparse_args(group)  # --input/--output/... above are run's own
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
        parse_target,
        report,
        target_name,
    )
    from recommender.evaluate.splits import time_split
    from recommender.index.build import IndexConfig, build_index
    from recommender.train import train

    parser = build_parser()
    parser.parse_known_args(argv)  # --help, and type errors in the sessionize flags
    args, beam_and_pipeline = build_parser(sessionize_flags=False).parse_known_args(argv)
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
    window = parse_target(args.target)
    out = Path(args.output)
    _check_output(out, args.overwrite, args.input)
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
    model = train(out / "train_sessions", config)
    model.save(out / "model", overwrite=True)

    print(f"[4/5] index ({args.scoring}, k={args.index_k})", flush=True)
    index = build_index(out / "model", out / "index",
                        IndexConfig(k=max(args.index_k, args.k), scoring=args.scoring,
                                    progress=not args.quiet),
                        beam_args=beam_and_pipeline or None, overwrite=True)

    print(f"[5/5] evaluate ({target_name(window)}) on {split['test']:,} held-out sessions",
          flush=True)
    data = load_eval_data(out / "train_sessions", out / "test_sessions", target_window=window)
    results = evaluate([index_recommender(out / "index"), *baselines(data.counter, args.k)],
                       data, args.k)
    evaluation = report(results, args.k, window)
    write_json(out / "evaluation.json", evaluation)

    _summary(out, sessions, split, model, index, results, evaluation, args)
    write_json(out / RUN_MARKER, {
        "format_version": 1, "kind": "run", "inputs": args.input,
        "catalog": str(Path(args.catalog).resolve()) if args.catalog else None,
        "train_config": config.to_dict(), "scoring": args.scoring,
        "seconds": round(time.monotonic() - started, 1), "evaluation": evaluation,
    })
    report = _write_report(out)
    if report:
        print(f"report   {report}  (one HTML file: open it in a browser)")
    print(f"done in {time.monotonic() - started:.1f} s. Look up related items with:\n"
          f"  pin2vec related --index {out / 'index'} ITEM"
          + (f" --catalog {args.catalog}" if args.catalog else ""))
    return 0


def _write_report(out: Path) -> Path | None:
    """``report.html`` of the run; a failure is a warning, not a failed run (the models stand)."""
    from recommender.report import write_report

    try:
        return write_report(out)
    except (OSError, ValueError, ImportError) as e:
        log.warning("could not write the report (%s: %s); retry with `pin2vec report %s`",
                    type(e).__name__, e, out)
        return None


def _example_items(spec: str, model) -> list[str]:
    """``--examples``: a count of most popular items, or comma-separated ids."""
    if spec.strip().isdigit():
        order = sorted(range(len(model.item_ids)), key=lambda i: -int(model.counts[i]))
        return [model.item_ids[row] for row in order[: int(spec)]]
    return [item.strip() for item in spec.split(",") if item.strip()]


def _summary(out, sessions, split, model, index, results, evaluation, args) -> None:
    from recommender.cli.related import label, printable, read_catalog
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
    items = _example_items(args.examples, model)
    if not items:
        return
    catalog = read_catalog(args.catalog) if args.catalog else {}
    related = RelatedItems.load(out / "index")
    print()
    for item in items:
        if item not in related:
            print(f"{printable(item)}: not in the index ({len(related):,} items; it may be absent "
                  "from the training period or filtered out)")
            continue
        print(f"{printable(item)}{label(catalog, item)}")
        for other, s in related.related(item, k=5):
            print(f"    {s:6.3f}  {printable(other)}{label(catalog, other)}")
