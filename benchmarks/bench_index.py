"""Index build + related-table benchmark: Annoy (pin2vec index) vs exact brute force vs hnswlib.

For each catalogue size, on clustered synthetic vectors (benchmarks/_synthetic.py):

* ``pin2vec index``  -- ``build_index`` with default trees/search_k: Annoy build, the K=20 table for
  every item (in-process engine, one process per core; ``--beam`` adds the Beam engine), recall@10
  against exact neighbours on a sample;
* ``exact``          -- blocked numpy matmul (``exact_neighbors``) for a sample of queries,
  extrapolated to all items (the time the table would take without an index);
* ``hnswlib``        -- HNSW (M=16, ef_construction=200, ef=``--hnsw-ef``), build + all-item
  queries, if installed.

Speed is reported as a ratio against the exact brute-force time measured in the same run.

Full run (about 25 minutes on 2 cores)::

    python benchmarks/bench_index.py --sizes 100000,1000000

Quick run::

    python benchmarks/bench_index.py --sizes 20000 --no-hnsw
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import clustered, peak_rss_mib, write_model  # noqa: E402

from recommender.index.build import IndexConfig, build_index, exact_neighbors, recall  # noqa: E402


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (contention-proof)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _exact(vectors, sample_rows, k, n_jobs_note):
    """Exact top-k of the sample (for recall) and the extrapolated all-items time."""
    started = time.perf_counter()
    exact, _ = exact_neighbors(vectors[sample_rows], vectors, k, "cosine", sample_rows)
    seconds = time.perf_counter() - started
    return exact, seconds * len(vectors) / len(sample_rows)


def _hnsw(vectors, sample_rows, exact, k, ef, threads):
    try:
        import hnswlib
    except ImportError:
        return None
    n, dim = vectors.shape
    cpu0 = _cpu_seconds()
    started = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(max_elements=n, ef_construction=200, M=16, random_seed=0)
    index.add_items(vectors, np.arange(n), num_threads=threads)
    build = time.perf_counter() - started
    index.set_ef(max(ef, k + 1))
    started = time.perf_counter()
    labels = np.empty((n, k + 1), dtype=np.int64)
    for s in range(0, n, 100_000):  # bounded result buffers
        labels[s : s + 100_000], _ = index.knn_query(vectors[s : s + 100_000], k=k + 1,
                                                     num_threads=threads)
    table = time.perf_counter() - started
    rows = labels[sample_rows]
    approx = np.array([[j for j in row if j != i][:10] for i, row in zip(sample_rows, rows)])
    return build, table, recall(approx, exact[:, :10]), _cpu_seconds() - cpu0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100000,1000000", help="catalogue sizes, comma separated")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.6, help="cluster spread (see _synthetic.py)")
    p.add_argument("--exact-sample", type=int, default=2000, help="queries timed for exact search")
    p.add_argument("--recall-sample", type=int, default=1000)
    p.add_argument("--trees", type=int, help="override the auto rule")
    p.add_argument("--search-k", type=int, help="override the auto rule")
    p.add_argument("--repeats", type=int, default=1, help="builds per size (median reported)")
    p.add_argument("--beam", action="store_true", help="also time the Beam table engine")
    p.add_argument("--no-hnsw", action="store_true")
    p.add_argument("--hnsw-ef", type=int, default=100)
    p.add_argument("--n-jobs", type=int, default=-1)
    p.add_argument("--workdir", help="where to write MODEL/INDEX dirs (default: a temp dir)")
    args = p.parse_args(argv)

    import os

    threads = os.cpu_count() if args.n_jobs == -1 else args.n_jobs
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-index-"))
    rows_out = []
    for n in [int(s) for s in args.sizes.split(",")]:
        print(f"\n== {n:,} items, dim {args.dim}, K={args.k}, noise {args.noise} ==", flush=True)
        vectors = clustered(n, args.dim, noise=args.noise, seed=1)
        model = write_model(work / f"model-{n}", vectors)
        sample = np.sort(np.random.default_rng(0).choice(n, min(args.exact_sample, n), False))
        cpu0 = _cpu_seconds()
        exact, exact_seconds = _exact(vectors, sample, 10, threads)
        exact_cpu = (_cpu_seconds() - cpu0) * n / len(sample)
        print(f"exact brute force: {exact_seconds:.1f}s for all {n:,} items "
              f"(extrapolated from {len(sample):,} queries)", flush=True)
        engines = [("in-process", False)] + ([("beam", True)] if args.beam else [])
        for name, use_beam in engines:
            runs = []
            for r in range(args.repeats):
                config = IndexConfig(k=args.k, trees=args.trees, search_k=args.search_k,
                                     use_beam=use_beam, recall_sample=args.recall_sample,
                                     n_jobs=args.n_jobs, progress=False)
                beam_args = ["--direct_num_workers", str(threads),
                             "--direct_running_mode", "multi_processing"]
                cpu0 = _cpu_seconds()
                m = build_index(model, work / f"index-{n}-{name}", config, beam_args=beam_args,
                                overwrite=True)
                cpu = _cpu_seconds() - cpu0
                nbrs = np.load(work / f"index-{n}-{name}" / "neighbors.npy", mmap_mode="r")
                full_recall = recall(np.asarray(nbrs[sample, :10]), exact)
                runs.append((m["build_seconds"], m["table_seconds"], full_recall, cpu))
                print(f"annoy/{name} run {r + 1}: build {m['build_seconds']:.1f}s, table "
                      f"{m['table_seconds']:.1f}s, CPU {cpu:.0f}s (all processes), "
                      f"recall@10 {full_recall:.3f} "
                      f"(manifest {m['recall_at_10']}), trees {m['trees']}, "
                      f"search_k {m['search_k']}", flush=True)
            build = statistics.median(x[0] for x in runs)
            table = statistics.median(x[1] for x in runs)
            cpu = statistics.median(x[3] for x in runs)
            rows_out.append((n, f"annoy {name} (T={m['trees']}, sk={m['search_k']})", build,
                             table, runs[0][2], exact_seconds, cpu))
        if not args.no_hnsw:
            got = _hnsw(vectors, sample, exact, args.k, args.hnsw_ef, threads)
            if got:
                rows_out.append((n, f"hnswlib (M=16, ef={args.hnsw_ef})", got[0], got[1], got[2],
                                 exact_seconds, got[3]))
                print(f"hnswlib: build {got[0]:.1f}s, table {got[1]:.1f}s, recall {got[2]:.3f}",
                      flush=True)
        rows_out.append((n, "exact numpy (extrapolated)", 0.0, exact_seconds, 1.0, exact_seconds,
                         exact_cpu))

    self_rss, child_rss = peak_rss_mib()
    print(f"\nclustered vectors, dim {args.dim}, noise {args.noise}, K={args.k}, {threads} cores; "
          f"peak RSS {self_rss:,.0f} MiB (largest child {child_rss:,.0f} MiB)")
    print("wall-clock seconds; 'CPU s' = CPU time of all processes (does not grow when other "
          "work shares the cores); 'vs exact' = exact wall time / total wall time")
    head = f"{'items':>9}  {'method':<40} {'build s':>8} {'table s':>8} {'total s':>8} " \
           f"{'CPU s':>8} {'recall@10':>9} {'vs exact':>9}"
    print(head)
    print("-" * len(head))
    for n, name, build, table, rec, exact_seconds, cpu in rows_out:
        total = build + table
        print(f"{n:>9,}  {name:<40} {build:>8.1f} {table:>8.1f} {total:>8.1f} {cpu:>8.0f} "
              f"{rec:>9.3f} {exact_seconds / total:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
