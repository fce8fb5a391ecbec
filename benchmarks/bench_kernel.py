"""Where one process's training time goes, in the training loop itself (not in isolation).

For each batch size it runs the trainer's own batch maker and float math over the first chunks of
a corpus, one process, and prints microseconds per training pair for the preparation (pairs,
negatives, weights, scatter indices) and for the float math, then splits the float math of the
first batch size into its numpy steps (gathers, scores, coefficients, gradients, scatter-adds).
Micro-benchmarks of one step in a loop keep their data in cache and mislead: a table of scatter
indices that was 4x faster alone made the loop slower (issue 9).

    python benchmarks/bench_kernel.py                       # 2M-token planted corpus
    python benchmarks/bench_kernel.py --log dense --sizes 1280,2048
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from bench_trainer import _dense_corpus, _sessions, make_corpus  # noqa: E402

from recommender.train.corpus import BatchMaker, Corpus  # noqa: E402
from recommender.train.sgns import _CLIP, apply_sgns_batch, scatter_add  # noqa: E402
from recommender.train.trainer import TrainConfig  # noqa: E402


def _weights(vocab_size: int, dim: int):
    w_in = ((np.random.default_rng(1).random((vocab_size, dim)) - 0.5) / dim).astype(np.float32)
    return w_in, np.zeros((vocab_size, dim), np.float32)


def per_pair(corpus, config, dim, size, chunks):
    """(prep µs/pair, float math µs/pair) over ``chunks`` chunks at batch ``size``."""
    maker = BatchMaker(config, corpus.vocab, dim, size, config.group_size,
                       config.negatives_per_group())
    w_in, w_out = _weights(len(corpus.vocab), dim)
    rng = np.random.default_rng(0)
    prep = math = 0.0
    pairs = 0
    for tokens, lengths in list(corpus.chunks())[:chunks]:
        batches = maker.batches(tokens, lengths, rng, lambda f: 0.02)
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t1 = time.perf_counter()
            if batch is None:
                break
            apply_sgns_batch(w_in, w_out, batch)
            math += time.perf_counter() - t1
            prep += t1 - t0
            pairs += batch.examples
    return prep / pairs * 1e6, math / pairs * 1e6


def steps(corpus, config, dim, size, chunks):
    """µs/pair of each numpy step of :func:`apply_sgns_batch` (the same operations, timed)."""
    maker = BatchMaker(config, corpus.vocab, dim, size, config.group_size,
                       config.negatives_per_group())
    w_in, w_out = _weights(len(corpus.vocab), dim)
    rng = np.random.default_rng(0)
    spent: dict[str, float] = defaultdict(float)
    pairs = 0

    def tick(name, t):
        now = time.perf_counter()
        spent[name] += now - t
        return now

    for tokens, lengths in list(corpus.chunks())[:chunks]:
        for batch in maker.batches(tokens, lengths, rng, lambda f: 0.02):
            pairs += batch.examples
            g, b, s = batch.neg_weight.shape
            t = time.perf_counter()
            v = np.take(w_in, batch.inp, axis=0).reshape(g, b, dim)
            u_pos = np.take(w_out, batch.out, axis=0).reshape(g, b, dim)
            u_neg = np.take(w_out, batch.neg, axis=0)
            t = tick("gather rows", t)
            s_pos = np.einsum("gbd,gbd->gb", v, u_pos)
            s_neg = np.matmul(v, u_neg.transpose(0, 2, 1))
            t = tick("scores (einsum + matmul)", t)
            e_pos = np.exp(-np.maximum(s_pos, -_CLIP))
            loss = float(np.dot(np.log1p(e_pos).ravel(), batch.pos_weight.ravel()))
            d_pos = e_pos / (1 + e_pos)
            d_pos *= batch.pos_weight * batch.lr
            if batch.max_exp:
                d_pos[s_pos <= -batch.max_exp] = 0
            t = tick("positive coefficients + loss", t)
            d_neg = np.exp(np.minimum(s_neg, _CLIP))
            one = d_neg + 1
            np.divide(d_neg, one, out=d_neg)
            np.log(one, out=one)
            one *= batch.neg_weight
            loss += float(one.sum(dtype=np.float64))
            d_neg *= batch.neg_weight
            if batch.max_exp:
                np.putmask(d_neg, s_neg >= batch.max_exp, 0)
            d_neg *= -batch.lr
            t = tick("negative coefficients + loss", t)
            out = np.empty((g * b + g * s, dim), np.float32)
            np.multiply(d_pos[..., None], v, out=out[: g * b].reshape(g, b, dim))
            np.matmul(d_neg.transpose(0, 2, 1), v, out=out[g * b:].reshape(g, s, dim))
            grad_v = np.matmul(d_neg, u_neg)
            grad_v += d_pos[..., None] * u_pos
            t = tick("gradients (2 matmuls + 2 products)", t)
            scatter_add(w_in, batch.in_flat, grad_v)
            scatter_add(w_out, batch.out_flat, out)
            tick("scatter-adds (np.add.at)", t)
    return {name: sec / pairs * 1e6 for name, sec in spent.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", choices=["planted", "dense"], default="planted")
    p.add_argument("--sizes", default="512,768,1024,2048", help="batch sizes (pairs)")
    p.add_argument("--chunks", type=int, default=4, help="chunks of 16k sessions timed (4)")
    p.add_argument("--repeats", type=int, default=3, help="rounds over the sizes; medians (3)")
    args = p.parse_args(argv)
    if args.log == "dense":
        flat, lengths, _, _ = _dense_corpus(1.0)
    else:
        flat, lengths, _ = make_corpus(2_000_000, 50_000, 500, 0.1)
    corpus = Corpus(_sessions(flat, lengths))
    config, dim = TrainConfig(), 64
    sizes = [int(x) for x in args.sizes.split(",")]
    rounds: dict[int, list] = defaultdict(list)
    for _ in range(args.repeats):  # sizes alternate, so they see the same machine noise
        for size in sizes:
            rounds[size].append(per_pair(corpus, config, dim, size, args.chunks))
    print(f"{args.log}: {len(corpus.vocab):,} items; µs per training pair, one process, "
          f"medians of {args.repeats}")
    print(f"{'batch':>8s} {'prepare':>9s} {'float math':>11s} {'total':>8s}")
    for size in sizes:
        prep, math = (float(np.median([r[i] for r in rounds[size]])) for i in (0, 1))
        print(f"{size:8d} {prep:9.3f} {math:11.3f} {prep + math:8.3f}")
    split = steps(corpus, config, dim, sizes[0], args.chunks)
    total = sum(split.values())
    print(f"\nfloat math at batch {sizes[0]}, by step:")
    for name, us in split.items():
        print(f"  {name:38s} {us:6.3f} µs/pair {100 * us / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
