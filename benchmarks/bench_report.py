"""How big and how slow `pin2vec report` gets at catalogue scale (default 100k items).

Builds a fake run dir (Zipf sessions, random vectors, random related table, a catalogue with
categories) and times ``write_report`` (median of --repeats), printing the page size and what it
is made of. The page must stay a few MB: the map is sampled and the explorer capped.

    python benchmarks/bench_report.py [--items 100000] [--sessions 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.report import write_report  # noqa: E402


def fake_run(root: Path, items: int, sessions: int, dim: int = 32, k: int = 20) -> Path:
    rng = np.random.default_rng(0)
    ids = np.array([f"item{i:06d}" for i in range(items)])
    lengths = rng.integers(2, 9, sessions)
    tokens = ids[np.minimum(rng.zipf(1.3, lengths.sum()) - 1, items - 1)]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(tokens))
    split = int(sessions * 0.8)
    for name, part in (("train_sessions", lists[:split]), ("test_sessions", lists[split:])):
        (root / name).mkdir(parents=True)
        pq.write_table(pa.table({"items": part}), root / name / "sessions-00000-of-00001.parquet")
        flat = part.flatten().to_numpy(zero_copy_only=False)
        uniq, n = np.unique(flat, return_counts=True)
        pq.write_table(pa.table({"item_id": uniq, "engagements": n}), root / name / "items.parquet")
    counts = np.bincount(np.searchsorted(ids, tokens), minlength=items)
    (root / "model").mkdir()
    np.save(root / "model" / "vectors.npy", rng.normal(size=(items, dim)).astype(np.float32))
    pq.write_table(pa.table({"item_id": ids, "count": counts}), root / "model" / "items.parquet")
    epochs = [{"epoch": e, "loss": 4 / e, "words_per_second": 1e5} for e in range(1, 11)]
    (root / "model" / "manifest.json").write_text(json.dumps(
        {"format_version": 1, "kind": "model", "epochs": epochs, "config": {"dim": dim}}))
    (root / "index").mkdir()
    np.save(root / "index" / "neighbors.npy", rng.integers(0, items, (items, k), dtype=np.int32))
    np.save(root / "index" / "scores.npy",
            -np.sort(-rng.random((items, k), dtype=np.float32), axis=1))
    pq.write_table(pa.table({"item_id": ids, "count": counts}), root / "index" / "items.parquet")
    (root / "index" / "manifest.json").write_text(json.dumps(
        {"format_version": 1, "kind": "index", "k": k, "scoring": "similar",
         "recall_at_10": 0.97, "counts": {"items": items}}))
    cats = [f"category {i % 25}" for i in range(items)]
    pq.write_table(pa.table({"item_id": ids, "title": [f"Title {i}" for i in ids],
                             "category": cats}), root / "catalog.parquet")
    (root / "run.json").write_text(json.dumps({"kind": "run",
                                               "catalog": str(root / "catalog.parquet")}))
    (root / "evaluation.json").write_text(json.dumps({"k": 10, "results": [
        {"name": n, "hr": h, "mrr": h / 3, "ndcg": h / 2} for n, h in
        (("pin2vec (similar)", 0.1), ("co-occurrence", 0.12), ("most-popular", 0.02))]}))
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--sessions", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = fake_run(Path(tmp) / "run", args.items, args.sessions)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            path = write_report(run)
            times.append(time.perf_counter() - t0)
        page = path.read_text(encoding="utf-8")
    explorer = re.search(r'id="explorer-data">(.*?)</script>', page, re.S).group(1)
    png = re.search(r'src="(data:image/png[^"]*)"', page).group(1)
    svg = sum(len(x) for x in re.findall(r"<svg.*?</svg>", page, re.S))
    print(f"{'items':>10} {'sessions':>10} {'median s':>9} {'page MB':>8} {'explorer MB':>12} "
          f"{'map MB':>7} {'charts MB':>10}")
    print(f"{args.items:>10,} {args.sessions:>10,} {statistics.median(times):>9.1f} "
          f"{len(page) / 1e6:>8.2f} {len(explorer) / 1e6:>12.2f} {len(png) / 1e6:>7.2f} "
          f"{svg / 1e6:>10.2f}")


if __name__ == "__main__":
    main()
