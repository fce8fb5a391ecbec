"""Co-occurrence INDEX from 5M events: Beam in-memory and multi-processing vs the numpy reference.

    python benchmarks/bench_cooccurrence.py [--events 5000000] [--repeats 3] [--window 5]

Writes a synthetic SESSIONS dir (Zipf-popular items, lognormal session lengths, 8 shards), then
builds the same co-occurrence table with each engine, every run in a fresh subprocess so that
peak RSS (the process and its children, from ``getrusage``) is that run's alone. Prints the
median seconds of ``--repeats`` runs, events/s, the speed ratio against the numpy reference and
peak RSS, and checks that every engine's table equals the reference.

``--window 0`` counts whole sessions, at most ``WHOLE_SESSION_SPAN`` (100) positions apart:
pairs grow as length x span, so a log of long sessions needs that cap to fit in memory (a
warning says when it applies).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = {
    "numpy reference (1 process)": ["--engine", "numpy"],
    "Beam in-memory (1 worker)": ["--engine", "beam"],
    "Beam multi-processing (2)": ["--engine", "beam", "--direct_running_mode",
                                  "multi_processing", "--direct_num_workers", "2"],
}


def write_sessions(path: Path, events: int, items: int, seed: int = 0) -> dict:
    """A SESSIONS dir of about ``events`` tokens in 8 shards."""
    from recommender.core.artifacts import write_json, write_parquet
    from recommender.core.sessions import write_item_counts

    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(6), 0.8, events // 6))), 2, 200)
    lengths = lengths[np.cumsum(lengths) <= events].astype(np.int64)
    n_tok = int(lengths.sum())
    # Zipf-ish popularity, and sessions that stay near one "topic" (a random walk over rows).
    pop = 1.0 / np.arange(1, items + 1) ** 0.9
    base = rng.choice(items, size=len(lengths), p=pop / pop.sum())
    steps = rng.integers(-50, 51, n_tok)
    parent = np.repeat(np.arange(len(lengths)), lengths)
    noise = rng.choice(items, size=n_tok, p=pop / pop.sum())
    local = (base[parent] + steps) % items
    rows = np.where(rng.random(n_tok) < 0.5, local, noise)
    ids = np.array([f"item{i:07d}" for i in range(items)], dtype=object)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    t0 = np.datetime64("2024-01-01T00:00:00", "us")
    bounds = np.linspace(0, len(lengths), 9).astype(int)
    for s in range(8):
        lo, hi = bounds[s], bounds[s + 1]
        flat = pa.array(ids[rows[offsets[lo]:offsets[hi]]], pa.string())
        items_col = pa.ListArray.from_arrays(pa.array(offsets[lo:hi + 1] - offsets[lo],
                                                      pa.int32()), flat)
        start = pa.array(t0 + np.arange(lo, hi).astype("timedelta64[s]"),
                         pa.timestamp("us", tz="UTC"))
        write_parquet(path / f"sessions-{s:05d}-of-00008.parquet", pa.table({
            "session_id": pa.array([f"s{i}" for i in range(lo, hi)], pa.string()),
            "user_id": pa.array([f"u{i}" for i in range(lo, hi)], pa.string()),
            "start": start, "end": start, "items": items_col,
            "length": pa.array(lengths[lo:hi].astype(np.int32))}))
    counts = np.bincount(rows, minlength=items)
    used = np.nonzero(counts)[0]
    write_item_counts(path, {ids[i]: int(counts[i]) for i in used},
                      {ids[i]: int(counts[i]) for i in used})
    write_json(path / "manifest.json", {"format_version": 1, "kind": "sessions",
                                        "counts": {"sessions": len(lengths), "tokens": n_tok,
                                                   "items": len(used)}})
    return {"sessions": len(lengths), "tokens": n_tok, "items": len(used)}


def one_run(sessions: str, out: str, engine_args: list[str], window: int) -> dict:
    from recommender.cli.cooccurrence import main

    started = time.perf_counter()
    main(["--sessions", sessions, "--output", out, "--overwrite", "--window", str(window),
          *engine_args])
    seconds = time.perf_counter() - started
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"seconds": seconds, "peak_rss_mb": rss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # SESSIONS OUT ENGINE (subprocess)
    args = p.parse_args()
    if args.one:
        res = one_run(args.one[0], args.one[1], ENGINES[args.one[2]], args.window)
        print("RESULT " + json.dumps(res))
        return
    with tempfile.TemporaryDirectory(prefix="bench-cooc-") as tmp:
        tmp = Path(tmp)
        shape = write_sessions(tmp / "sessions", args.events, args.items)
        print(f"{shape['tokens']:,} events in {shape['sessions']:,} sessions over "
              f"{shape['items']:,} items; window {args.window}; median of {args.repeats} runs")
        print(f"{'engine':<30}{'seconds':>10}{'events/s':>12}{'vs numpy':>10}{'peak RSS MB':>13}"
              f"{'same table':>12}", flush=True)
        ref, first = None, None
        for i, name in enumerate(ENGINES):
            runs = []
            for _ in range(args.repeats):
                out = tmp / f"out-{i}"
                proc = subprocess.run(
                    [sys.executable, __file__, "--window", str(args.window),
                     "--one", str(tmp / "sessions"), str(out), name],
                    capture_output=True, text=True, check=False)
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode or not line:
                    sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
                runs.append(json.loads(line[0][7:]))
            nb, sc = np.load(out / "neighbors.npy"), np.load(out / "scores.npy")
            first = first or (nb, sc)
            same = np.array_equal(nb, first[0]) and np.allclose(sc, first[1], equal_nan=True)
            secs = statistics.median(r["seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            ref = ref or secs
            print(f"{name:<30}{secs:>10.1f}{shape['tokens'] / secs:>12,.0f}{ref / secs:>9.2f}x"
                  f"{rss:>13,.0f}{'yes' if same else 'NO':>12}", flush=True)


if __name__ == "__main__":
    main()
