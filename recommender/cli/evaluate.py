"""``pin2vec evaluate``: next-item HR/MRR/NDCG of an index or model beside the baseline scorers."""

from __future__ import annotations

import argparse
import json
import sys

from recommender.core.artifacts import read_manifest, write_json
from recommender.core.errors import ConfigError
from recommender.core.sessions import read_sessions_manifest
from recommender.evaluate.next_item import (
    _model_manifest,
    baseline_scores,
    candidate_scores,
    index_score,
    leakage_warning,
    load_split,
    report,
    verdict,
)
from recommender.evaluate.scorecard import format_scorecard, parse_target, target_name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec evaluate",
        description="Next-item evaluation on held-out sessions: the index's (or model's) related "
        "items beside the baseline scorers built from the training sessions -- most-popular, "
        "co-occurrence, sequential rules, item-kNN and EASE where it fits -- at HR/MRR/NDCG@K "
        "and @20, broken down by the query item's popularity.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", help="INDEX dir whose related table is evaluated")
    src.add_argument("--model", help="MODEL dir: evaluate exact neighbours (see --scoring)")
    p.add_argument("--sessions", required=True,
                   help="SESSIONS dir. Without --test-sessions it is split by time: the latest "
                   "--test-fraction of sessions are the test set, the rest build the baselines. "
                   "With --test-sessions it is the training set.")
    p.add_argument("--test-sessions", help="SESSIONS dir of held-out sessions")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of the latest sessions held out (default 0.2)")
    p.add_argument("--k", type=int, default=10, help="list length K; @20 is reported too "
                   "(default 10)")
    p.add_argument("--scoring", choices=("similar", "complementary"),
                   help="with --model: cosine neighbours (similar, default) or input·context "
                   "(complementary); with --index the index's own scoring is used")
    p.add_argument("--target", nargs="+", default=["next"], metavar="next|window N",
                   help="what counts as a hit: 'next' = the next item of the session (default); "
                   "'window N' = any of the next N items (for logs with many same-time ties)")
    p.add_argument("--cooc-window", type=int, default=5,
                   help="co-occurrence baseline window in positions, 0 = whole session (default 5)")
    p.add_argument("--ease-lambda", type=float, default=100.0,
                   help="EASE baseline's L2 weight (default 100); 0 skips EASE")
    p.add_argument("--ease-max-items", type=int, default=10_000,
                   help="score the EASE baseline only up to this many items (default 10000: "
                   "its solve grows as items^3)")
    p.add_argument("--cold-start", action="store_true",
                   help="with --model trained with --catalog-attributes: also evaluate cold "
                   "start as `pin2vec run` does -- hold out 20%% of the trained items entirely, "
                   "train without and with attributes on the training sessions (the model's "
                   "settings), and score the held-out items from their attributes beside "
                   "most-popular and most-popular-within-the-same-value (report key "
                   "'cold_start')")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--output", help="also write the JSON report to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.k < 1:
        raise ConfigError("--k must be at least 1")
    ks = tuple(sorted({args.k, 20}))
    read_sessions_manifest(args.sessions)
    if args.cold_start and not args.model:
        raise ConfigError("--cold-start needs --model DIR: a model trained with --catalog and "
                          "--catalog-attributes (its settings and attributes are reused)")
    window = parse_target(args.target)
    split = load_split(args.sessions, args.test_sessions, args.test_fraction, window)
    if args.index:
        if args.scoring and args.scoring != read_manifest(args.index, "index").get("scoring"):
            raise ConfigError(
                f"--scoring {args.scoring} differs from the index's scoring; rebuild the index "
                "with `pin2vec index --scoring ...` or evaluate --model DIR"
            )
        shipped = index_score(args.index, split, ks=ks)
        # A scorer index (co-occurrence, EASE) records the sessions it counted instead of a model.
        digest = read_manifest(args.index, "index").get("sessions_digest")
        model_manifest = _model_manifest(args.index) or {"source_digest": digest}
    else:
        from recommender.evaluate.baselines import Candidate
        from recommender.scorers import ItemVectors
        from recommender.train import Model

        loaded = Model.load(args.model)
        model_manifest = loaded.manifest
        if args.cold_start and (loaded.attributes is None or loaded.attributes.item_ids is None):
            raise ConfigError(f"{args.model} has no catalogue attributes: train it with "
                              "--catalog and --catalog-attributes to evaluate cold start")
        scoring = args.scoring or "similar"
        cand = Candidate(f"pin2vec ({scoring})", "embedding", "embedding", {"scoring": scoring})
        shipped = candidate_scores([cand], split, ItemVectors.from_model(loaded), ks)[0][0]
    leak = leakage_warning(model_manifest, args.sessions, args.test_sessions)
    if args.cooc_window < 0:
        raise ConfigError("--cooc-window must be >= 0 (0 = whole session)")
    base, notes = baseline_scores(split, args.ease_lambda or None, ks, args.ease_max_items,
                                  args.cooc_window)
    scores = [shipped, *base]
    shipped.shipped = True
    out = report(scores, verdict(scores, shipped, args.k), notes, ks)
    out["target"] = target_name(window)
    if leak:
        out["warning"] = leak
    if args.cold_start:
        out["cold_start"] = _cold_start(args, loaded)
    if args.output:
        write_json(args.output, out)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(format_scorecard(scores, ks))
        print(out["verdict"])
        for line in notes + ([leak] if leak else []):
            print(line)
        if args.cold_start:
            from recommender.evaluate.cold import format_table

            print("\ncold start: 20% of trained items held out entirely, served from their "
                  "attributes")
            print(format_table(out["cold_start"]))
    return 0


def _cold_start(args, model) -> dict:
    """:func:`evaluate_cold` on the evaluation's sessions with ``model``'s settings and
    catalogue attributes (the MODEL keeps every catalogue item's attribute values)."""
    from dataclasses import fields

    from recommender.evaluate.cold import cold_sessions, evaluate_cold
    from recommender.train import TrainConfig
    from recommender.train.attributes import AttributeConfig, CatalogAttributes

    def known(cls, values: dict) -> dict:  # the settings this version knows
        return {f.name: values[f.name] for f in fields(cls) if f.name in values}

    attrs, manifest = model.attributes, model.manifest
    config = TrainConfig(**{**known(TrainConfig, manifest.get("config") or {}),
                            "progress": False})
    attribute_config = AttributeConfig(**known(AttributeConfig,
                                               manifest.get("attributes_training") or {}))
    catalog = CatalogAttributes(attrs.schema, list(attrs.item_ids),
                                [list(t) for t in attrs.item_tokens])
    train, test, times = cold_sessions(args.sessions, args.test_sessions, args.test_fraction)
    print(f"cold start: training twice (without and with attributes) on {len(train):,} "
          "sessions ...", file=sys.stderr, flush=True)
    return evaluate_cold(train, test, catalog, config, attribute_config, train_times=times)
