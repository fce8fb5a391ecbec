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
    p.add_argument("--examples", type=int, default=3, help="items to show with their related")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --output that `pin2vec run` did not write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    import json

    from pipeline import sessions_job
    from recommender.cli.train import config_from_args
    from recommender.evaluate.splits import time_split

    parser = build_parser()
    args, beam_and_pipeline = parser.parse_known_args(argv)
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
    if args.no_embeddings and args.scoring != "auto":
        raise ConfigError(f"--scoring {args.scoring} ships embeddings; drop --no-embeddings")
    out = Path(args.output)
    _check_output(out, args.overwrite)
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

        model = train(out / "train_sessions", config)
        model.save(out / "model", overwrite=True)
    else:
        print("[4/6] train: skipped (--no-embeddings)", flush=True)

    print(f"[5/6] index: {winner.name} (k={max(args.index_k, 20)})", flush=True)
    index = _ship(out, winner, model, args, beam_and_pipeline)

    print(f"[6/6] evaluate next-item on {split['test']:,} held-out sessions", flush=True)
    scores, evaluation = _test_table(out, selection, model, args)
    write_json(out / "evaluation.json", evaluation)
    _summary(out, sessions, split, model, index, scores, evaluation, selection, args)
    write_json(out / RUN_MARKER, {
        "format_version": 1, "kind": "run", "inputs": args.input,
        "train_config": config.to_dict(), "scoring": args.scoring,
        "shipped": winner.to_json(),
        "seconds": round(time.monotonic() - started, 1), "evaluation": evaluation,
    })
    print(f"done in {time.monotonic() - started:.1f} s. Look up related items with:\n"
          f"  pin2vec related --index {out / 'index'} ITEM"
          + (f" --catalog {args.catalog}" if args.catalog else ""))
    return 0


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
    if model is not None and winner.needs_vectors:
        extra["model_dir"] = str(out / "model")
    return write_index(table, out / "index", overwrite=True, extra=extra)


def _test_table(out: Path, selection, model, args):
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
    test = load_split(out / "train_sessions", out / "test_sessions")
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


def _summary(out, sessions, split, model, index, scores, evaluation, selection, args) -> None:
    from recommender.cli.related import label, read_catalog
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
    if args.examples <= 0:
        return
    catalog = read_catalog(args.catalog) if args.catalog else {}
    related = RelatedItems.load(out / "index")
    order = sorted(range(len(related)), key=lambda i: -int(related._counts[i]))
    print()
    for row in order[: args.examples]:
        item = related.item_ids[row]
        print(f"{item}{label(catalog, item)}")
        for other, s in related.related(item, k=5):
            print(f"    {s:6.3f}  {other}{label(catalog, other)}")
