"""``pin2vec split``: the time split `pin2vec run` uses, as its own command.

The latest ``--test-fraction`` of sessions by start time become the test set, the rest the
training set; both are complete SESSIONS dirs, so ``train``, ``tune`` and ``evaluate`` read them
like the pipeline's output.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pin2vec split",
        description="Split a SESSIONS dir by time: the latest --test-fraction of sessions (by "
        "start, ties by session id) to --test, the rest to --train. The same split as "
        "`pin2vec run` writes to train_sessions/ and test_sessions/.",
    )
    p.add_argument("--sessions", required=True, metavar="DIR",
                   help="SESSIONS dir written by pin2vec sessionize")
    p.add_argument("--train", metavar="DIR",
                   help="SESSIONS dir for the earlier sessions (default: SESSIONS-train)")
    p.add_argument("--test", metavar="DIR",
                   help="SESSIONS dir for the latest sessions (default: SESSIONS-test)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of the latest sessions held out (default 0.2)")
    p.add_argument("--overwrite", action="store_true", help="replace non-empty output dirs")
    return p


def main(argv: list[str] | None = None) -> int:
    from recommender.evaluate.splits import time_split

    args = build_parser().parse_args(argv)
    source = Path(args.sessions)
    train = Path(args.train or f"{str(source).rstrip('/')}-train")
    test = Path(args.test or f"{str(source).rstrip('/')}-test")
    split = time_split(source, train, test, args.test_fraction, overwrite=args.overwrite)
    print(f"{split['train']:,} train sessions -> {train}\n{split['test']:,} test sessions -> "
          f"{test}  (starting at or after {split['cutoff']})\nnext: pin2vec train --sessions "
          f"{train} --output MODEL; pin2vec evaluate --index INDEX --sessions {train} "
          f"--test-sessions {test}")
    return 0
