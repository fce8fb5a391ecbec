"""``pin2vec tune``: search training settings and scoring by validation HR@K."""

from __future__ import annotations

import argparse

from recommender.evaluate.tune import SPACE, TuneConfig, tune


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec tune",
        description="Search window, negative, ns_exponent, sample, epochs, dim and scoring by "
        "validation HR@K on a time split of the sessions; then train and index the best.",
    )
    p.add_argument("--sessions", required=True, help="SESSIONS dir (pipeline output)")
    p.add_argument("--output", required=True,
                   help="writes leaderboard.parquet, best.json, model/ and index/ here")
    p.add_argument("--trials", type=int, default=20, help="training runs at most (default 20)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds; no new trial starts after this (default: none)")
    p.add_argument("--k", type=int, default=10, help="optimise HR@K (default 10)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="latest share of sessions used for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="search and training seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="trainer workers (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = TuneConfig(trials=args.trials, time_budget=args.time_budget, k=args.k,
                        test_fraction=args.test_fraction, seed=args.seed, workers=args.workers,
                        progress=not args.quiet)
    summary = tune(args.sessions, args.output, config, overwrite=args.overwrite)
    k, best = config.k, summary["best"]
    print(f"best of {summary['trials']} trials: HR@{k} {best[f'hr@{k}']:.4f} "
          f"({best['scoring']}), trial {best['trial']}")
    for name, r in summary["baselines"].items():
        print(f"  {name:<14} HR@{k} {r[f'hr@{k}']:.4f}")
    cooc = summary["baselines"]["co-occurrence"][f"hr@{k}"]
    if best[f"hr@{k}"] <= cooc:
        print(f"WARNING: the best model does not beat co-occurrence on validation "
              f"(HR@{k} {best[f'hr@{k}']:.4f} vs {cooc:.4f}); serve co-occurrence or add data.")
    cfg = best["train_config"]
    print("  " + " ".join(f"{n}={cfg[n]}" for n in SPACE))
    print(f"wrote {args.output}/leaderboard.parquet, best.json, model/, index/")
    return 0
