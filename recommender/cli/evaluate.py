"""``pin2vec evaluate``: next-item HR/MRR/NDCG of an index or model against the baselines."""

from __future__ import annotations

import argparse
import json

from recommender.core.artifacts import read_manifest, write_json
from recommender.core.errors import ConfigError
from recommender.core.sessions import read_sessions_manifest
from recommender.evaluate.next_item import (
    _model_manifest,
    baselines,
    evaluate,
    format_table,
    index_recommender,
    leakage_warning,
    load_eval_data,
    model_recommender,
    parse_target,
    report,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec evaluate",
        description="Next-item evaluation on held-out sessions: the model's related items vs "
        "most-popular and co-occurrence baselines built from the training sessions.",
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
    p.add_argument("--k", type=int, default=10, help="list length K (default 10)")
    p.add_argument("--scoring", choices=("similar", "complementary"),
                   help="with --model: cosine neighbours (similar, default) or input·context "
                   "(complementary); with --index the index's own scoring is used")
    p.add_argument("--target", nargs="+", default=["next"], metavar="next|window N",
                   help="what counts as a hit: 'next' = the next item of the session (default); "
                   "'window N' = any of the next N items (for logs with many same-time ties)")
    p.add_argument("--cooc-window", type=int, default=5,
                   help="co-occurrence baseline window in positions, 0 = whole session (default 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--output", help="also write the JSON report to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.k < 1:
        raise ConfigError("--k must be at least 1")
    read_sessions_manifest(args.sessions)
    if args.index:
        if args.scoring and args.scoring != read_manifest(args.index, "index").get("scoring"):
            raise ConfigError(
                f"--scoring {args.scoring} differs from the index's scoring; rebuild the index "
                "with `pin2vec index --scoring ...` or evaluate --model DIR"
            )
        model = index_recommender(args.index)
        model_manifest = _model_manifest(args.index)
    else:
        from recommender.train import Model

        loaded = Model.load(args.model)
        model_manifest = loaded.manifest
        model = model_recommender(loaded, args.scoring or "similar", args.k)
    leak = leakage_warning(model_manifest, args.sessions, args.test_sessions)
    window = parse_target(args.target)
    data = load_eval_data(args.sessions, args.test_sessions, args.test_fraction, args.cooc_window,
                          target_window=window)
    results = evaluate([model, *baselines(data.counter, args.k)], data, args.k)
    out = report(results, args.k, window)
    if leak:
        out["warning"] = leak
    if args.output:
        write_json(args.output, out)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(format_table(results, args.k))
        print(out["verdict"])
        if leak:
            print(leak)
    return 0
