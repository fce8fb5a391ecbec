"""Sessionize benchmark: the Beam pipeline vs a single-process pyarrow sort-and-scan, side by side.

Generates N engagement events (Zipf-popular items, users with bursts of activity separated by long
pauses) as one Parquet file in a temporary directory, then times, each in its own subprocess:

* ``reference``  -- single-process pyarrow/numpy: read, sort by (user, time), cut at gaps, collapse
  repeats, drop short sessions, chunk long ones, write Parquet (written here, for comparison);
* ``beam-memory`` -- ``python -m pipeline`` on the DirectRunner (FnApiRunner, in-memory);
* ``beam-multi``  -- the same with ``--direct_num_workers 2 --direct_running_mode
  multi_processing``.

and prints the median wall time, events/s, the ratio to the reference, CPU seconds (all processes),
peak RSS (largest single process) and whether the sessions match the reference's. Contenders run
round-robin so that a noisy machine affects them alike.

Full run (about ten minutes on 2 cores)::

    python benchmarks/bench_sessionize.py                 # 5,000,000 events, median of 3
    python benchmarks/bench_sessionize.py --events 200000 --repeats 1    # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

GAP_S = 1800
MIN_LEN = 2
MAX_LEN = 1000


def generate(path: str, n: int, seed: int = 0) -> None:
    """Write ``n`` synthetic events to ``path`` (Parquet, Arrow timestamp column, time order)."""
    rng = np.random.default_rng(seed)
    n_users = max(n // 40, 1)
    n_items = max(n // 25, 10)
    user = np.sort(rng.integers(0, n_users, n))
    burst = rng.random(n) < 0.15  # a pause of hours to days starts a new visit
    gaps = np.where(burst, rng.exponential(86_400, n), rng.exponential(90, n)).astype(np.int64)
    first = np.r_[True, user[1:] != user[:-1]]
    start = rng.integers(1_700_000_000, 1_702_000_000, n_users)
    csum = np.cumsum(gaps)
    base = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    ts = start[user] + csum - csum[base]
    item = (rng.zipf(1.3, n) - 1) % n_items
    order = np.argsort(ts, kind="stable")  # logs arrive in time order, users interleaved
    table = pa.table({
        "user_id": pc.binary_join_element_wise("u", pa.array(user[order]).cast(pa.string()), ""),
        "item_id": pc.binary_join_element_wise("i", pa.array(item[order]).cast(pa.string()), ""),
        "timestamp": pa.array(ts[order] * 1000, pa.timestamp("ms", tz="UTC")),
        "action": pa.array(np.array(["click", "save", "view"])[rng.integers(0, 3, n)]),
    })
    pq.write_table(table, path, row_group_size=1_000_000)


def reference(path: str, out: str) -> int:
    """Single-process pyarrow sort-and-scan with the pipeline's session rule; returns #sessions."""
    t = pq.read_table(path, columns=["user_id", "item_id", "timestamp"])
    t = t.filter(pc.and_(pc.is_valid(t["user_id"]), pc.is_valid(t["item_id"])))
    ts = t["timestamp"].cast(pa.timestamp("us", "UTC")).cast(pa.int64())
    t = pa.table({"user": t["user_id"], "item": t["item_id"], "ts": ts})
    t = t.sort_by([("user", "ascending"), ("ts", "ascending")]).combine_chunks()
    user = np.asarray(pc.dictionary_encode(t["user"]).combine_chunks().indices)
    item = np.asarray(pc.dictionary_encode(t["item"]).combine_chunks().indices)
    tsn = np.asarray(t["ts"])
    n = len(tsn)
    new = np.r_[True, (user[1:] != user[:-1]) | (np.diff(tsn) > GAP_S * 1_000_000)]
    sid = np.cumsum(new) - 1
    keep = np.r_[True, ~((item[1:] == item[:-1]) & (sid[1:] == sid[:-1]))]
    k = np.flatnonzero(keep)
    lengths = np.bincount(sid[k], minlength=sid[-1] + 1 if n else 0)
    k = k[lengths[sid[k]] >= MIN_LEN]
    s = sid[k]
    run_new = np.r_[True, s[1:] != s[:-1]]
    run_start = np.flatnonzero(run_new)
    rid = np.cumsum(run_new) - 1
    rlen = np.diff(np.r_[run_start, len(k)])[rid]
    chunk = (np.arange(len(k)) - run_start[rid]) * (-(-rlen // MAX_LEN)) // rlen
    out_new = run_new | np.r_[False, chunk[1:] != chunk[:-1]]
    first = np.flatnonzero(out_new)
    offsets = pa.array(np.r_[first, len(k)].astype(np.int32))
    sessions = pa.table({
        "user_id": t["user"].take(pa.array(k[first])),
        "start": pa.array(tsn[k[first]], pa.timestamp("us", "UTC")),
        "items": pa.ListArray.from_arrays(offsets, t["item"].combine_chunks().take(pa.array(k))),
    })
    pq.write_table(sessions, os.path.join(out, "sessions.parquet"))
    return sessions.num_rows


def _child(args) -> None:
    """Run one measured job in this (fresh) process and print a JSON line."""
    t0 = time.perf_counter()
    if args.child == "reference":
        os.makedirs(args.out, exist_ok=True)
        sessions = reference(args.data, args.out)
    else:
        from pipeline.sessions_job import run

        beam = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
        argv = ["--input", args.data, "--output", args.out, "--overwrite", "--quiet"]
        manifest = run(argv + (beam if args.child == "beam-multi" else []))
        sessions = manifest["counts"]["sessions"]
    seconds = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    rss = max(me.ru_maxrss, kids.ru_maxrss)  # largest single process (runner or a worker)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mb": rss / 1024, "sessions": sessions}))


def _session_set(directory: str) -> set:
    files = sorted(f for f in os.listdir(directory) if f.startswith("sessions"))
    t = pa.concat_tables(pq.read_table(os.path.join(directory, f), columns=["user_id", "items"])
                         for f in files)
    return set(zip(t["user_id"].to_pylist(), map(tuple, t["items"].to_pylist())))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=5_000_000, help="events to generate (5M)")
    p.add_argument("--repeats", type=int, default=3, help="runs per contender; the median is shown")
    p.add_argument("--only", default="reference,beam-memory,beam-multi")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory(prefix="bench_sessionize_") as tmp:
        data = os.path.join(tmp, "events.parquet")
        t0 = time.perf_counter()
        generate(data, args.events)
        print(f"generated {args.events:,} events in {time.perf_counter() - t0:.1f} s "
              f"({os.path.getsize(data) / 2**20:.0f} MiB Parquet)", flush=True)
        names = args.only.split(",")
        runs: dict[str, list] = {name: [] for name in names}
        for r in range(args.repeats):  # round-robin, so load changes hit every contender alike
            for name in names:
                out = os.path.join(tmp, name)
                cmd = [sys.executable, __file__, "--child", name, "--data", data, "--out", out]
                line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                runs[name].append(json.loads(line.strip().splitlines()[-1]))
                print(f"  {name} run {r + 1}: {runs[name][-1]['seconds']:.2f} s", flush=True)
        results = {name: (runs[name], _session_set(os.path.join(tmp, name))) for name in names}
        ref_set = results.get("reference", (None, None))[1]
        ref_rate = None
        print(f"\n{'contender':<12} {'median s':>9} {'events/s':>12} {'vs ref':>7} {'CPU s':>7} "
              f"{'peak RSS':>9} {'sessions':>10}  same sessions")
        for name, (runs, found) in results.items():
            sec = statistics.median(r["seconds"] for r in runs)
            rate = args.events / sec
            ref_rate = ref_rate or (rate if name == "reference" else None)
            ratio = f"{rate / ref_rate:.2f}" if ref_rate else "-"
            same = "-" if ref_set is None else ("yes" if found == ref_set else "NO")
            rss = max(r["rss_mb"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            print(f"{name:<12} {sec:>9.2f} {rate:>12,.0f} {ratio:>7} {cpu:>7.1f} {rss:>7.0f}MB "
                  f"{runs[0]['sessions']:>10,}  {same}")


if __name__ == "__main__":
    main()
