"""Index benchmark: every search backend side by side, on clustered and on *trained* vectors.

For each vector set and each backend (``exact``, ``annoy``, ``hnsw``, and ``auto``'s choice),
``build_index`` runs with the default ``--target-recall 0.95``: build, recall calibration, the K=20
table for every item (in-process thread pool), and the recall check. Reported per row: wall-clock
build / calibration / table / total seconds, CPU seconds of the process (all threads; less
sensitive to other jobs sharing the machine), recall@10 of the finished table against exact
neighbours on an independent sample of items (not the one the build calibrated on), the recall the
backend's *default* settings reached before calibration, and the settings calibration ended at.
Speed is a ratio against the exact backend in the same run.

Vector sets (``--sets``, comma separated):

* ``clustered:N``  -- N clustered synthetic vectors (benchmarks/_synthetic.py, dim ``--dim``);
* ``dense:S``      -- skip-gram vectors (gensim, dim ``--dim``) trained on ``reallike.dense_log``
  at scale S (1,682 * S items; a MovieLens-100k-shaped rating log, users' histories as sequences);
* ``sparse:S``     -- the same on ``reallike.sparse_log`` at scale S (~6,700 * S items seen once
  or twice each: mostly barely-trained vectors, the hardest case for tree-based ANN).

Trained MODEL dirs are cached in ``--workdir`` (generating and training takes minutes).

Examples::

    python benchmarks/bench_index.py --sets clustered:100000,dense:12,sparse:10
    python benchmarks/bench_index.py --sets clustered:1000000 --backends annoy,hnsw --repeats 1
    python benchmarks/bench_index.py --sets clustered:20000 --repeats 3     # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import clustered, peak_rss_mib, write_model  # noqa: E402

from recommender.index.backends import available  # noqa: E402
from recommender.index.build import (  # noqa: E402
    IndexConfig,
    RecallTargetError,
    build_index,
    exact_neighbors,
    recall,
)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _trained(kind: str, scale: float, dim: int, work: Path) -> Path:
    """MODEL dir of gensim skip-gram vectors trained on a real-shaped synthetic log (cached)."""
    model = work / f"model-{kind}-{scale:g}-d{dim}"
    if (model / "manifest.json").exists():
        return model
    import reallike
    from gensim.models import Word2Vec

    started = time.perf_counter()
    data = reallike.dense_log(scale=scale) if kind == "dense" else reallike.sparse_log(scale=scale)
    if kind == "dense":
        sequences = reallike.user_sequences(data.events)
    else:
        sequences = reallike.session_sequences(data.events)[0]
    print(f"{kind} log at scale {scale:g}: {data.events.num_rows:,} events, "
          f"{len(sequences):,} sequences ({time.perf_counter() - started:.0f}s)", flush=True)
    started = time.perf_counter()
    w2v = Word2Vec(sequences, vector_size=dim, window=5, negative=5, sg=1, min_count=1,
                   epochs=5, workers=2, seed=0)
    ids = list(w2v.wv.index_to_key)
    vectors = np.ascontiguousarray(w2v.wv.vectors, dtype=np.float32)
    context = np.ascontiguousarray(w2v.syn1neg, dtype=np.float32)
    print(f"trained {len(ids):,} item vectors in {time.perf_counter() - started:.0f}s", flush=True)
    write_model(model, vectors, context, ids=ids)
    return model


def _vector_set(spec: str, dim: int, work: Path) -> tuple[str, Path]:
    kind, _, size = spec.partition(":")
    if kind == "clustered":
        n = int(size)
        path = work / f"model-clustered-{n}-d{dim}"
        if not (path / "manifest.json").exists():
            write_model(path, clustered(n, dim, noise=0.6, seed=1))
        return f"clustered {n:,}", path
    if kind in ("dense", "sparse"):
        path = _trained(kind, float(size), dim, work)
        return f"trained {kind} x{float(size):g}", path
    raise SystemExit(f"unknown vector set {spec!r} (clustered:N, dense:SCALE, sparse:SCALE)")


def _run(model: Path, out: Path, backend: str, args, sample, truth) -> dict:
    config = IndexConfig(k=args.k, backend=backend, target_recall=args.target_recall,
                         n_jobs=args.n_jobs, progress=False, use_beam=False)
    cpu0, started = _cpu_seconds(), time.perf_counter()
    try:
        m = build_index(model, out, config, overwrite=True)
    except RecallTargetError as e:
        return {"error": str(e), "total": time.perf_counter() - started}
    total = time.perf_counter() - started
    nbrs = np.load(out / "neighbors.npy", mmap_mode="r")
    steps = m["calibration"]
    return {
        "backend": m["backend"],
        "build": m["build_seconds"], "calibrate": m["calibrate_seconds"],
        "table": m["table_seconds"], "total": total, "cpu": _cpu_seconds() - cpu0,
        "recall": recall(np.asarray(nbrs[sample, :10]), truth),
        "default_recall": steps[0]["recall"] if steps else None,
        "settings": m["backend_settings"], "steps": len(steps),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="clustered:100000,dense:12,sparse:10")
    p.add_argument("--backends", default="exact,annoy,hnsw,auto")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--eval-sample", type=int, default=2000, help="items for the reported recall")
    p.add_argument("--repeats", type=int, default=1, help="builds per backend (median reported)")
    p.add_argument("--n-jobs", type=int, default=-1)
    p.add_argument("--workdir", default="/tmp/pin2vec-bench-index")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.sets.split(","):
        name, model = _vector_set(spec, args.dim, work)
        vectors = np.load(model / "vectors.npy", mmap_mode="r")
        n = len(vectors)
        # An evaluation sample independent of the build's calibration sample (seed 0).
        sample = np.sort(np.random.default_rng(12345).choice(n, min(args.eval_sample, n), False))
        truth, _ = exact_neighbors(np.asarray(vectors[sample]), vectors, 10, "cosine", sample,
                                   n_jobs=args.n_jobs)
        print(f"\n== {name}: {n:,} items, dim {vectors.shape[1]}, K={args.k} ==", flush=True)
        for backend in args.backends.split(","):
            if backend == "hnsw" and not available("hnsw"):
                print("hnsw: hnswlib not installed, skipped")
                continue
            runs = []
            for r in range(args.repeats):
                got = _run(model, work / f"index-{backend}", backend, args, sample, truth)
                runs.append(got)
                print(f"{backend} run {r + 1}: {json.dumps(got)}", flush=True)
                if "error" in got:
                    break
            ok = [x for x in runs if "error" not in x]
            if not ok:
                rows.append((name, n, backend, runs[0]))
                continue
            med = {key: statistics.median(x[key] for x in ok)
                   for key in ("build", "calibrate", "table", "total", "cpu")}
            rows.append((name, n, backend, {**ok[0], **med, "runs": len(ok)}))

    self_rss, _ = peak_rss_mib()
    print(f"\nK={args.k}, target recall {args.target_recall}, {args.n_jobs} jobs; wall seconds "
          f"(median of {args.repeats}); 'CPU s' = CPU time of all threads; 'vs exact' = exact "
          f"total / this total; recall@10 on {args.eval_sample} items not used for calibration; "
          f"peak RSS {self_rss:,.0f} MiB")
    head = (f"{'vectors':<20} {'items':>9} {'backend':<12} {'build':>6} {'calib':>6} "
            f"{'table':>7} {'total':>7} {'CPU s':>7} {'recall':>6} {'dflt':>6} {'vs exact':>8}"
            f"  settings")
    print(head)
    print("-" * len(head))
    exact_total = {}
    for name, n, backend, r in rows:
        if backend == "exact" and "error" not in r:
            exact_total[name] = r["total"]
    for name, n, backend, r in rows:
        if "error" in r:
            print(f"{name:<20} {n:>9,} {backend:<12} stopped after {r['total']:.0f}s: "
                  f"{r['error'][:120]}")
            continue
        label = backend if backend != "auto" else f"auto->{r['backend']}"
        ratio = exact_total.get(name, float("nan")) / r["total"]
        dflt = "" if r["default_recall"] is None else f"{r['default_recall']:.3f}"
        settings = ",".join(f"{k}={v}" for k, v in r["settings"].items())
        print(f"{name:<20} {n:>9,} {label:<12} {r['build']:>6.1f} {r['calibrate']:>6.1f} "
              f"{r['table']:>7.1f} {r['total']:>7.1f} {r['cpu']:>7.0f} {r['recall']:>6.3f} "
              f"{dflt:>6} {ratio:>7.1f}x  {settings}")
    if args.json:
        Path(args.json).write_text(json.dumps([{"vectors": a, "items": b, "requested": c, **d}
                                               for a, b, c, d in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
