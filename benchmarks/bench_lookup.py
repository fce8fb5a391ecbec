"""Lookup benchmark: ``RelatedItems.related()`` calls/s and latency in one thread, batch throughput.

Side by side, in the same run and on the same index:

* ``related()``            -- the library: dict lookup + one slice of each memory-mapped row;
* ``related_many(100)``    -- the batch call, per item;
* ``naive numpy row``      -- baseline: iterate the memory-mapped row as numpy scalars
  (what a straightforward implementation does);
* ``related_to_session()`` -- a recency-weighted query through the index's backend (the only call
  that searches);
* ``gensim most_similar``  -- exact brute force per call (what you pay without a table), if gensim
  is installed.

Latency percentiles time each call with ``perf_counter_ns`` (the timer's own ~50-100 ns included).
Throughput is the median of ``--repeats`` runs.

Full run::

    python benchmarks/bench_lookup.py --items 1000000 --dim 64

Quick run::

    python benchmarks/bench_lookup.py --items 20000 --calls 50000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import clustered, peak_rss_mib, write_model  # noqa: E402

from recommender.index.build import IndexConfig, build_index  # noqa: E402
from recommender.lookup import RelatedItems  # noqa: E402


def _rate(fn, queries, repeats) -> float:
    """Median calls/s of ``fn`` over ``queries``."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for q in queries:
            fn(q)
        rates.append(len(queries) / (time.perf_counter() - started))
    return statistics.median(rates)


def _latency_us(fn, queries) -> tuple[float, float]:
    clock = time.perf_counter_ns
    times = np.empty(len(queries), dtype=np.int64)
    for i, q in enumerate(queries):
        t0 = clock()
        fn(q)
        times[i] = clock() - t0
    return float(np.percentile(times, 50)) / 1000, float(np.percentile(times, 99)) / 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=200_000, help="catalogue size")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=10, help="items per related() call")
    p.add_argument("--calls", type=int, default=300_000, help="related() calls per run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--index", help="reuse an INDEX dir instead of building one")
    p.add_argument("--backend", default="auto", help="index backend when building one "
                   "(related() never searches; related_to_session() searches with it)")
    args = p.parse_args(argv)

    if args.index:
        index_dir = Path(args.index)
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
        print(f"building a {args.items:,}-item index in {work} ...", flush=True)
        model = write_model(work / "model", clustered(args.items, args.dim, seed=2))
        build_index(model, work / "index", IndexConfig(progress=False, recall_sample=0,
                                                       backend=args.backend))
        index_dir = work / "index"
    started = time.perf_counter()
    related = RelatedItems.load(index_dir)
    load_seconds = time.perf_counter() - started
    n, k = len(related), args.k
    rng = np.random.default_rng(0)
    ids = related.item_ids
    queries = [ids[i] for i in rng.integers(0, n, args.calls)]
    # Real traffic is skewed: Zipf(1.1) over items ranked by engagement count.
    by_count = np.argsort(-np.asarray(related._counts), kind="stable")
    ranks = rng.zipf(1.1, args.calls * 2)
    zipf_queries = [ids[by_count[r - 1]] for r in ranks[ranks <= n][: args.calls]]
    related.related_many(queries[:50_000], k)  # warm the page cache like a long-running server

    rows = []
    lib = lambda q: related.related(q, k)  # noqa: E731
    rows.append(("related(), uniform ids", _rate(lib, queries, args.repeats),
                 *_latency_us(lib, queries)))
    rows.append(("related(), Zipf(1.1) ids", _rate(lib, zipf_queries, args.repeats),
                 *_latency_us(lib, zipf_queries)))

    batches = [queries[i : i + 100] for i in range(0, len(queries), 100)]
    many = _rate(lambda b: related.related_many(b, k), batches, args.repeats) * 100
    rows.append(("related_many(100 ids), per id", many, float("nan"), float("nan")))

    nb, sc, row_of = related._nb, related._sc, related._rows

    def naive(q):
        r = row_of[q]
        return [(ids[j], float(s)) for j, s in zip(nb[r, :k], sc[r, :k]) if j >= 0]

    assert naive(queries[0]) == related.related(queries[0], k)
    rows.append(("naive numpy row (baseline)", _rate(naive, queries, args.repeats),
                 *_latency_us(naive, queries)))

    sessions = [[ids[j] for j in rng.integers(0, n, 3)] for _ in range(min(args.calls, 5000))]
    sess = lambda s: related.related_to_session(s, k)  # noqa: E731
    rows.append(("related_to_session(3 items)", _rate(sess, sessions, 1),
                 *_latency_us(sess, sessions)))

    try:
        from gensim.models import KeyedVectors

        kv = KeyedVectors(related._vectors.shape[1])
        kv.add_vectors(list(ids), np.asarray(related._vectors))
        kv.fill_norms()
        few = queries[:200]
        gs = lambda q: kv.most_similar(q, topn=k)  # noqa: E731
        rows.append(("gensim most_similar (exact)", _rate(gs, few, 1), *_latency_us(gs, few)))
    except ImportError:
        pass

    base = rows[3][1]
    self_rss, _ = peak_rss_mib()
    print(f"\n{n:,} items, dim {related._vectors.shape[1]}, K={related.k}, k={k}, backend "
          f"{related.manifest.get('backend', 'annoy')}; "
          f"load {load_seconds * 1000:.0f} ms; {args.calls:,} calls x {args.repeats} runs; "
          f"peak RSS {self_rss:,.0f} MiB")
    head = f"{'call':<34} {'calls/s':>12} {'p50 µs':>8} {'p99 µs':>8} {'vs naive':>9}"
    print("naive = iterate the memory-mapped numpy row (uniform ids); latency includes the timer")
    print(head)
    print("-" * len(head))
    for name, rate, p50, p99 in rows:
        print(f"{name:<34} {rate:>12,.0f} {p50:>8.2f} {p99:>8.2f} {rate / base:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
