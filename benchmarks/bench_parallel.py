"""Why ``--processes`` and not threads: the trainer's batch math on two cores, side by side.

``python benchmarks/bench_parallel.py [--tokens 300000] [--batch-size 1024] [--repeats 3]``

Batches of a planted corpus (``bench_trainer.make_corpus``) are prepared once; then the same
batches are applied (``apply_sgns_batch``: gathers, products, gradients, scatter-adds) to two
*independent* copies of the weights, so nothing is shared and nothing waits:

* one after the other in one thread (the baseline);
* in two threads of one process at once;
* in two processes at once (forked).

Throughput is 2 x (one copy's time) / (wall time for both); 2.0 would be perfect use of two
cores. The same is shown for the scatter-adds alone (``np.add.at``, numpy's only duplicate-safe
scatter, which holds the GIL) and for the rest of the math without them. Medians of
``--repeats`` runs; speed only as ratios within one run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from recommender.train import sgns  # noqa: E402

_BATCHES: list = []
_SHAPE: tuple = ()


def _prepare(tokens: int, items: int, batch_size: int) -> None:
    global _SHAPE
    from bench_trainer import _sessions, make_corpus

    from recommender.train.corpus import BatchMaker, Corpus
    from recommender.train.trainer import TrainConfig

    flat, lengths, _ = make_corpus(tokens, items, max(items // 100, 1))
    config = TrainConfig(progress=False)
    corpus = Corpus(_sessions(flat, lengths), 1)
    maker = BatchMaker(config, corpus.vocab, 64, batch_size, config.group_size,
                       config.negatives_per_group())
    for c, (tok, lens) in enumerate(corpus.chunks()):
        _BATCHES.extend(maker.batches(tok, lens, np.random.default_rng(c), lambda f: 0.02))
    _SHAPE = (len(corpus.vocab), 64)


def _weights():
    rng = np.random.default_rng(0)
    return ((rng.random(_SHAPE, dtype=np.float32) - 0.5) / 64, np.zeros(_SHAPE, np.float32))


def _run(part: str) -> None:
    """Apply every batch (or one part of the work) to a fresh copy of the weights."""
    w_in, w_out = _weights()
    d = _SHAPE[1]
    for b in _BATCHES:
        g, bb, s = b.neg_weight.shape
        if part == "all":
            sgns.apply_sgns_batch(w_in, w_out, b)
        elif part == "math without scatter":
            v = np.take(w_in, b.inp, axis=0).reshape(g, bb, d)
            u_pos = np.take(w_out, b.out, axis=0).reshape(g, bb, d)
            u_neg = np.take(w_out, b.neg, axis=0)
            sgns.sgns_loss_grad(v, u_pos, u_neg, b.pos_weight, b.neg_weight, -b.lr, None,
                                b.max_exp)
        else:  # scatter-adds only
            sgns.scatter_add(w_in, b.in_flat, np.zeros((g * bb, d), np.float32))
            sgns.scatter_add(w_out, b.out_flat, np.zeros((g * bb + g * s, d), np.float32))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _both(start_two) -> float:
    def go():
        workers = start_two()
        for w in workers:
            w.join()
    return _timed(go)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=300_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    _prepare(args.tokens, args.items, args.batch_size)
    pairs = sum(b.examples for b in _BATCHES)
    print(f"{len(_BATCHES):,} batches of {args.batch_size} pairs ({pairs:,} pairs), "
          f"{_SHAPE[0]:,} items, dim {_SHAPE[1]}; medians of {args.repeats}")
    ctx = mp.get_context("fork")

    def threads(part):
        ts = [threading.Thread(target=_run, args=(part,)) for _ in range(2)]
        for t in ts:
            t.start()
        return ts

    def processes(part):
        ps = [ctx.Process(target=_run, args=(part,)) for _ in range(2)]
        for q in ps:
            q.start()
        return ps

    print(f"{'work':22s}{'one copy, s':>13s}{'µs/pair':>9s}{'2 threads':>11s}{'2 processes':>13s}")
    for part in ("all", "math without scatter", "scatter-adds only"):
        one, two_t, two_p = [], [], []
        for _ in range(args.repeats):
            one.append(_timed(lambda: _run(part)))
            two_t.append(_both(lambda: threads(part)))
            two_p.append(_both(lambda: processes(part)))
        base = statistics.median(one)
        print(f"{part:22s}{base:13.2f}{base / pairs * 1e6:9.3f}"
              f"{2 * base / statistics.median(two_t):10.2f}x"
              f"{2 * base / statistics.median(two_p):12.2f}x")
    print("(throughput of two independent copies relative to one; 2.00x = both cores used)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
