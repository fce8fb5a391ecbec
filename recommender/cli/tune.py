"""``pin2vec tune``: search settings, scorings and count-based scorers by validation HR@K."""

from __future__ import annotations

import argparse
import time

from recommender.evaluate.tune import SPACE, TuneConfig, process_age, tune


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec tune",
        description="Rank co-occurrence, sequential rules, item-kNN, EASE, the embeddings "
        "(window, negative, ns_exponent, sample, epochs, dim, alpha searched) and their hybrids "
        "by validation HR@K on a time split of the sessions; then rebuild the best on all of "
        "them. --time-budget is a hard limit.",
    )
    p.add_argument("--sessions", required=True, help="SESSIONS dir (pipeline output)")
    p.add_argument("--output", required=True,
                   help="writes leaderboard.parquet, best.json, index/ (and model/) here")
    p.add_argument("--trials", type=int, default=20, help="training runs at most (default 20)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds for the whole search, final rebuild included: a trial that "
                   "would overrun is stopped or not started (default: none)")
    p.add_argument("--k", type=int, default=10, help="optimise HR@K (default 10)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="latest share of sessions used for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="search and training seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="trainer workers (default 2)")
    p.add_argument("--ease-max-items", type=int, default=10_000,
                   help="score EASE only up to this many items (default 10000)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = TuneConfig(trials=args.trials, time_budget=args.time_budget, k=args.k,
                        test_fraction=args.test_fraction, seed=args.seed, workers=args.workers,
                        ease_max_items=args.ease_max_items, progress=not args.quiet)
    # The budget counts from the start of the process (imports included), like a stopwatch
    # around `pin2vec tune`.
    summary = tune(args.sessions, args.output, config, overwrite=args.overwrite,
                   started=time.monotonic() - process_age())
    k, best = config.k, summary["best"]
    print(f"{summary['trials']} trials trained, {summary['stopped']} stopped at the budget, "
          f"{summary['skipped']} not started (would not fit); {summary['seconds']:.0f} s")
    print(f"best on validation: {best['scorer']}  HR@{k} {best[f'hr@{k}']:.4f}")
    for name, r in summary["baselines"].items():
        print(f"  {name:<28} HR@{k} {r[f'hr@{k}']:.4f}")
    if not best["validated"]:
        print("WARNING: the best scorer could not be rebuilt on all sessions within the budget; "
              f"shipped {summary['shipped']['name']} (the best count-based scorer) instead")
    if best["train_config"]:
        cfg = best["train_config"]
        print("  " + " ".join(f"{n}={cfg[n]}" for n in SPACE))
    print(f"wrote {args.output}/leaderboard.parquet, best.json, index/")
    return 0
