"""``pin2vec run``: every stage in one command, validated model selection, an honest evaluation.

sessionize (Beam) -> time split (test = the latest sessions) -> validation split carved from the
end of the training period -> train on the earlier part and score every candidate scorer on the
validation pairs (co-occurrence and sequential-rule variants, item-kNN, EASE where it fits, the
embeddings, hybrids with their blend weight) -> retrain the winner's inputs on the whole training
period -> ship the winner as ``index/`` -> evaluate every family's best and the baselines on the
test sessions, the shipped one marked. With no arguments it runs on ``data_samples/`` into
``./pin2vec-out/``. Options it does not know are passed to ``sessionize`` (``--session-gap``,
``--actions``, ``--runner``, ``--direct_num_workers`` ...).
"""

from __future__ import annotations

import argparse
import glob
import logging
import shlex
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
    p.add_argument("--scoring", choices=("auto", "similar", "complementary"), default="auto",
                   help="auto: ship the scorer that wins on the validation split (default); "
                   "similar / complementary: ship that embedding index regardless")
    p.add_argument("--validation-fraction", type=float, default=0.2,
                   help="latest share of the training sessions used to choose the scorer (0.2)")
    p.add_argument("--ease-max-items", type=int, default=10_000,
                   help="try EASE only up to this many items (default 10000; its solve grows "
                   "as items^3, the limit of memory is ~20000)")
    p.add_argument("--no-embeddings", action="store_true",
                   help="skip training: choose among the count-based scorers and EASE only")
    p.add_argument("--examples", default="3", metavar="N|ITEM,ITEM",
                   help="show the related items of the N most popular items (default 3), or of "
                   "the given comma-separated item ids")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --output that `pin2vec run` did not write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p.add_argument_group("training (see pin2vec train --help)"))
    from recommender.cli.catalog import add_catalog_arguments

    add_catalog_arguments(p)  # --catalog-attributes: cold start, evaluated in cold_start.json
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
    from recommender.evaluate.scorecard import parse_target, target_name
    from recommender.evaluate.splits import time_split

    parser = build_parser()
    parser.parse_known_args(argv)  # --help, and type errors in the sessionize flags
    args, beam_and_pipeline = build_parser(sessionize_flags=False).parse_known_args(argv)
    started = time.monotonic()
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
    if args.no_embeddings and args.scoring != "auto":
        raise ConfigError(f"--scoring {args.scoring} ships embeddings; drop --no-embeddings")
    if args.no_embeddings and args.catalog_attributes:
        raise ConfigError("--catalog-attributes trains attribute vectors with the embeddings; "
                          "drop --no-embeddings")
    if config.processes > 1 and args.catalog_attributes:
        raise ConfigError("--catalog-attributes trains with --processes 1 only (attribute vectors "
                          "follow every batch); drop --processes or the attributes")
    from recommender.cli.catalog import (
        catalog_labels,
        catalog_options,
        reading_flags,
        training_attributes,
    )

    attributes = training_attributes(args)  # the catalogue is read before any stage runs
    titles = catalog_labels(args)  # ... with the same options, for the examples at the end
    out = Path(args.output)
    _check_output(out, args.overwrite, args.input)
    out.mkdir(parents=True, exist_ok=True)

    print(f"[1/6] sessionize {' '.join(args.input)} -> {out / 'sessions'}", flush=True)
    pipeline_argv = [a for path in args.input for a in ("--input", path)]
    pipeline_argv += ["--output", str(out / "sessions"), "--overwrite", *beam_and_pipeline]
    if args.quiet:
        pipeline_argv.append("--quiet")
    sessions = sessions_job.run(pipeline_argv)

    print(f"[2/6] time split: latest {args.test_fraction:.0%} of sessions held out", flush=True)
    split = time_split(out / "sessions", out / "train_sessions", out / "test_sessions",
                       args.test_fraction, overwrite=True)

    embeddings = not args.no_embeddings
    selection = _choose(out, args, config, embeddings)
    winner = selection.winner

    model = None
    if embeddings:
        print(f"[4/6] train {config.architecture} dim={config.dim} window={config.window} "
              f"epochs={config.epochs} on all {split['train']:,} training sessions", flush=True)
        from recommender.train import train

        # with --catalog-attributes the attribute vectors are trained with the items, so a
        # shipped embedding index has cold rows (recommender/index/cold.py)
        model = train(out / "train_sessions", config, attributes=attributes)
        model.save(out / "model", overwrite=True)
    else:
        print("[4/6] train: skipped (--no-embeddings)", flush=True)

    print(f"[5/6] index: {winner.name} (k={max(args.index_k, 20)})", flush=True)
    index = _ship(out, winner, model, args, beam_and_pipeline)

    print(f"[6/6] evaluate ({target_name(window)}) on {split['test']:,} held-out sessions",
          flush=True)
    scores, evaluation = _test_table(out, selection, model, args, window)
    write_json(out / "evaluation.json", evaluation)
    _summary(out, sessions, split, model, index, scores, evaluation, selection, args, titles)
    if attributes is not None:
        _cold_start(out, config, attributes)
    write_json(out / RUN_MARKER, {
        "format_version": 1, "kind": "run", "inputs": args.input,
        "catalog": str(Path(args.catalog).resolve()) if args.catalog else None,
        "catalog_options": catalog_options(args).to_dict() if args.catalog else None,
        "train_config": config.to_dict(), "scoring": args.scoring,
        "shipped": winner.to_json(),
        "seconds": round(time.monotonic() - started, 1), "evaluation": evaluation,
    })
    report = _write_report(out)
    if report:
        print(f"report   {report}  (one HTML file: open it in a browser)")
    catalog = (["--catalog", args.catalog, *reading_flags(args)] if args.catalog else [])
    print(f"done in {time.monotonic() - started:.1f} s. Look up related items with:\n"
          f"  pin2vec related --index {shlex.quote(str(out / 'index'))} ITEM"
          + "".join(f" {shlex.quote(a)}" for a in catalog))
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


def _example_items(spec: str, related) -> list[str]:
    """``--examples``: a count of most popular items, or comma-separated ids."""
    if spec.strip().isdigit():
        return [item for item, _ in related.popular(int(spec))]
    return [item.strip() for item in spec.split(",") if item.strip()]


def _choose(out: Path, args, config, embeddings: bool):
    """[3/6]: validation split of the training period, candidates scored on it, the winner."""
    from recommender.core.errors import Pin2VecError
    from recommender.evaluate.baselines import Candidate
    from recommender.evaluate.next_item import load_split
    from recommender.evaluate.select import Selection, select
    from recommender.evaluate.splits import time_split
    from recommender.scorers import ItemVectors

    if args.scoring != "auto":
        fixed = Candidate(f"pin2vec ({args.scoring})", "embedding", "embedding",
                          {"scoring": args.scoring})
        print(f"[3/6] scorer: {fixed.name} (--scoring {args.scoring})", flush=True)
        return Selection([], fixed, {fixed.name: fixed}, [], 0.0)
    work = out / "validation"
    try:
        time_split(out / "train_sessions", work / "train", work / "valid",
                   args.validation_fraction, overwrite=True)
        val = load_split(work / "train", work / "valid")
    except Pin2VecError as e:
        # Too little data to hold a validation period out: sequential rules, the strongest
        # baseline across the logs we measured (docs), is shipped without a contest.
        from recommender.evaluate.baselines import SEQUENTIAL_RULES

        print(f"[3/6] no validation split ({e}); shipping {SEQUENTIAL_RULES.name}", flush=True)
        return Selection([], SEQUENTIAL_RULES, {SEQUENTIAL_RULES.family: SEQUENTIAL_RULES},
                         [str(e)], 0.0)
    vectors = None
    print(f"[3/6] choose the scorer on a validation split ({val.n_pairs:,} pairs from the "
          f"latest {args.validation_fraction:.0%} of training sessions)", flush=True)
    if embeddings:
        from recommender.train import train

        vectors = ItemVectors.from_model(train(work / "train", config))
    selection = select(val, vectors, args.k, max(args.index_k, 20), args.ease_max_items)
    best = [s for c, s in selection.scores if c is selection.winner][0]
    print(f"      {len(selection.scores)} candidates in {selection.seconds:.0f} s; winner "
          f"{selection.winner.name}: validation HR@{args.k} {best.hr(args.k):.4f}", flush=True)
    write_json(work / "selection.json", {
        "format_version": 1, "kind": "selection", "winner": selection.winner.to_json(),
        "notes": selection.notes,
        "candidates": [{**c.to_json(), "metrics": s.metrics} for c, s in selection.scores]})
    return selection


def _ship(out: Path, winner, model, args, beam_args) -> dict:
    """Build the winner on the whole training period and write it as ``index/``."""
    import numpy as np

    from recommender.core.artifacts import file_digest
    from recommender.evaluate.baselines import build
    from recommender.evaluate.next_item import load_split
    from recommender.scorers import ItemVectors, write_index

    k = max(args.index_k, 20)
    if winner.kind == "embedding":
        from recommender.index.build import IndexConfig, build_index

        return build_index(out / "model", out / "index",
                           IndexConfig(k=k, scoring=winner.params["scoring"],
                                       progress=not args.quiet),
                           beam_args=beam_args or None, overwrite=True)
    data = load_split(out / "train_sessions", out / "test_sessions").train
    vectors = ItemVectors.from_model(model) if model is not None else None
    table = build(winner, data, vectors, k)
    extra = {"candidate": winner.to_json(), "sessions_dir": str(out / "train_sessions"),
             "sessions_digest": file_digest(out / "train_sessions" / "manifest.json")}
    if model is not None and model.attributes is not None:
        # catalogue items no session engaged with get rows too (recommender/scorers/cold.py)
        from recommender.index.cold import describe
        from recommender.scorers.cold import add_cold_rows

        table, cold = add_cold_rows(table, model.attributes, model.item_ids,
                                    np.asarray(model.vectors), np.asarray(model.context_vectors))
        if cold is not None:
            extra["cold"] = cold
            extra["model_dir"] = str(out / "model")
            print(f"      + {cold['cold_catalogue']:,} cold catalogue items, related items from "
                  f"their attributes ({describe(cold)})", flush=True)
    if model is not None and winner.needs_vectors:
        extra["model_dir"] = str(out / "model")
    return write_index(table, out / "index", overwrite=True, extra=extra)


def _test_table(out: Path, selection, model, args, window: int = 1):
    """Every family's validated best and the baselines on the test pairs; shipped marked."""
    from recommender.evaluate.baselines import baseline_candidates
    from recommender.evaluate.next_item import (
        candidate_scores,
        index_score,
        load_split,
        report,
        verdict,
    )
    from recommender.scorers import ItemVectors

    ks = tuple(sorted({args.k, 20}))
    test = load_split(out / "train_sessions", out / "test_sessions", target_window=window)
    shipped = index_score(out / "index", test, f"{selection.winner.name} [index/]", ks)
    shipped.shipped = True
    names = {selection.winner.name}
    cands = []
    for c in [*baseline_candidates(None), *selection.family_best.values()]:
        if c.name not in names and (model is not None or not c.needs_vectors):
            names.add(c.name)
            cands.append(c)
    from recommender.evaluate.select import usable_vectors

    notes = []
    vectors = ItemVectors.from_model(model) if model is not None else None
    vectors = usable_vectors(vectors, test.train.n_items, notes)
    cands = [c for c in cands if vectors is not None or not c.needs_vectors]
    scores, more = candidate_scores(cands, test, vectors, ks, args.ease_max_items)
    notes += more
    scores = [shipped, *scores]
    text = verdict(scores, shipped, args.k)
    evaluation = report(scores, text, [*selection.notes, *notes], ks)
    evaluation["shipped"] = selection.winner.to_json()
    return scores, evaluation


def _cold_start(out: Path, config, attributes) -> None:
    """Hold out 20% of the trained items entirely and score them from their attributes."""
    from recommender.evaluate.cold import cold_sessions, evaluate_cold, format_table

    print("\ncold start: 20% of trained items held out entirely, served from their attributes")
    train, test, times = cold_sessions(out / "train_sessions", out / "test_sessions")
    cold = evaluate_cold(train, test, attributes[0], config, attributes[1], train_times=times)
    write_json(out / "cold_start.json", cold)
    print(format_table(cold))


def _summary(out, sessions, split, model, index, scores, evaluation, selection, args,
             catalog) -> None:
    """The scorecard and a few examples; ``catalog``: item_id -> (title, category) or {}."""
    from recommender.cli.related import label, printable
    from recommender.evaluate.scorecard import format_scorecard
    from recommender.lookup import RelatedItems

    counts = sessions["counts"]
    rejected = sum(counts["rejected"].values())
    print()
    reasons = {k: v for k, v in counts["rejected"].items() if v}
    print(f"events   {counts['read']:,} read, {counts['valid']:,} valid, {rejected:,} rejected"
          + (f" {reasons}" if reasons else ""))
    print(f"sessions {counts['sessions']:,} ({split['train']:,} train / {split['test']:,} test, "
          f"split at {split['cutoff']}), {counts['items']:,} items, {counts['tokens']:,} tokens")
    if model is not None:
        epochs = model.manifest.get("epochs", [])
        speed = model.manifest.get("words_per_second")
        print(f"model    {len(model.item_ids):,} items x {model.vectors.shape[1]} dims"
              + (f", {speed:,.0f} words/s" if speed else "")
              + (f", final loss {epochs[-1]['loss']:.4f}" if epochs else ""))
        from recommender.train.model import collapse_advice

        advice = collapse_advice(model.manifest.get("mean_pair_cosine") or 0.0)
        if advice:
            print(f"WARNING: {advice}")
    recall = index.get("recall_at_10")
    print(f"index    {selection.winner.name}: {index.get('scoring')} k={index.get('k')}"
          + (f", recall@10 {recall:.3f} vs exact" if recall is not None else ""))
    print()
    print(format_scorecard(scores, tuple(evaluation["ks"])))
    how = ("chosen on the validation split, before the test" if args.scoring == "auto"
           else f"--scoring {args.scoring}")
    print(f"  * = shipped as index/ ({how})")
    print(evaluation["verdict"])
    for note in evaluation["notes"]:
        print(f"note: {note}")
    related = RelatedItems.load(out / "index")
    items = _example_items(args.examples, related)
    if not items:
        return
    print()
    for item in items:
        if item not in related:
            print(f"{printable(item)}: not in the index ({len(related):,} items; it may be absent "
                  "from the training period or filtered out)")
            continue
        print(f"{printable(item)}{label(catalog, item)}")
        for other, s in related.related(item, k=5):
            print(f"    {s:6.3f}  {printable(other)}{label(catalog, other)}")
